"""Scorers with parameters, named in one string: ``recall_at_k:k=5``, ``regex_match:pattern=^\\d+$``.

The text before the first ``:`` is the registered name; after it come ``key=value`` pairs split at
a comma only where one is followed by another ``key=``, so a value may itself hold commas, colons
and ``=`` (``regex_match:pattern=^\\d{1,3}(,\\d{3})*$``). Each value is converted by what the
scorer's constructor declares for that parameter (bool, int, float, text, or JSON for lists and
objects), so the same spec works from the CLI, a config file or `evaluate(scorers=[...])`.

Parameters come from the constructor's signature, the one declaration of what a scorer takes;
for a judge, only the judge class's own parameters count (the endpoint settings are shared and
set with judge_model / judge_options instead). A parameter the scorer does not take is refused
with the list of those it does.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from typing import Any

from agenttrace.errors import InvalidArgumentError

__all__ = ["Parameter", "build_with", "parameters_of", "parse_spec", "spec_name"]

_SPLIT = re.compile(r",(?=\s*[A-Za-z_]\w*\s*=)")
_KINDS = re.compile(r"\b(bool|int|float|str|None)\b")
_STRUCTURED = re.compile(r"\b(Mapping|dict|list|Sequence|Iterable|tuple)\b")
_TRUE, _FALSE = frozenset({"true", "yes", "1", "on"}), frozenset({"false", "no", "0", "off"})
_JUDGE_BASE = frozenset({"model", "base_url", "api_key", "cache", "on_call", "client"})


@dataclass(frozen=True, slots=True)
class Parameter:
    """One constructor parameter a spec may set."""

    name: str
    annotation: str
    default: Any
    required: bool

    def show(self) -> str:
        if self.required:
            return f"{self.name} (required)"
        return f"{self.name}={self.default!r}"


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'name:key=value,key2=value2' to (name, {key: raw text})."""
    name, sep, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise InvalidArgumentError(f"scorer {spec!r}: give a registered name first, like recall_at_k:k=5")
    params: dict[str, str] = {}
    if sep:
        for item in _SPLIT.split(rest):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise InvalidArgumentError(f"scorer {spec!r}: {item!r} is not key=value, like {name}:k=5")
            params[key.strip()] = value
    return name, params


def spec_name(spec: str) -> str:
    """The name a spec's scores will carry: its name= parameter, else the registered name."""
    name, params = parse_spec(spec)
    return params.get("name", name).strip()


def parameters_of(target: Any) -> list[Parameter]:
    """What a registered target (Scorer subclass, judge class, instance or function) takes."""
    if not isinstance(target, type):
        return []  # an instance is already built; a plain function scorer takes only record arguments
    from evaluators.judges import Judge

    # The most derived constructor declares what the class takes (its bases get it through **kwargs);
    # a judge's base constructor only takes the endpoint, which is not a per-scorer parameter.
    classes = [c for c in target.__mro__ if "__init__" in vars(c) and c is not object]
    if issubclass(target, Judge):
        classes = [c for c in classes if c is not Judge and not issubclass(Judge, c)]
    if not classes:
        return []
    found = []
    for p in inspect.signature(classes[0].__init__).parameters.values():  # type: ignore[misc]
        if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in _JUDGE_BASE:
            continue
        if p.annotation is p.empty:
            annotation = ""
        else:
            annotation = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        found.append(Parameter(p.name, str(annotation), p.default, p.default is inspect.Parameter.empty))
    return found


def build_with(name: str, target: Any, raw: dict[str, str], **fixed: Any) -> Any:
    """Build ``target`` with converted ``raw`` parameters (plus ``fixed`` ones, e.g. a judge client)."""
    params = {p.name: p for p in parameters_of(target)}
    unknown = sorted(set(raw) - set(params))
    if unknown:
        takes = ", ".join(p.show() for p in params.values()) or "no parameters"
        wrong = ", ".join(map(repr, unknown))
        raise InvalidArgumentError(f"scorer {name!r} takes no parameter {wrong}; it takes {takes}")
    missing = [p.name for p in params.values() if p.required and p.name not in raw]
    if missing:
        raise InvalidArgumentError(
            f"scorer {name!r} needs {', '.join(missing)}: give it as {name}:{missing[0]}=..., "
            f"e.g. --scorer {name}:{missing[0]}=VALUE"
        )
    values = {key: _convert(name, params[key], text) for key, text in raw.items()}
    return target(**values, **fixed)


def _convert(scorer: str, param: Parameter, text: str) -> Any:
    kinds = set(_KINDS.findall(param.annotation))
    if not kinds and not _STRUCTURED.search(param.annotation) and param.default not in (None, inspect.Parameter.empty):
        kinds = {type(param.default).__name__}
    word = text.strip().lower()
    if "None" in kinds and word in ("none", "null"):
        return None
    if "bool" in kinds and word in _TRUE | _FALSE:
        return word in _TRUE
    if "int" in kinds and re.fullmatch(r"[+-]?\d+", text.strip()):
        return int(text)
    if kinds & {"int", "float"} and "float" in kinds:
        try:
            return float(text)
        except ValueError:
            pass
    if _STRUCTURED.search(param.annotation) or not kinds:
        try:
            return json.loads(text)
        except ValueError:
            if not kinds and not _STRUCTURED.search(param.annotation):
                return text
    if "str" in kinds:
        return text
    wanted = " or ".join(sorted(kinds - {"None"})) or param.annotation
    raise InvalidArgumentError(f"scorer {scorer!r}: {param.name}={text!r} is not {wanted}")
