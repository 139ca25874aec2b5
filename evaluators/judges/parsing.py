"""Turn a judge model's reply into a validated (value, rationale), or say precisely why not.

Models wrap JSON in code fences, add prose before or after it, use single quotes or leave
trailing commas, and name the fields differently; all of that is accepted here. What is not
accepted (no JSON object, no value, a value outside the judge's output type) raises
`ReplyProblem`, whose message is shown to the model once in a corrective re-ask. Nothing here
ever turns a bad reply into a default score.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evaluators.judges.errors import JudgeConfigError

__all__ = [
    "BoolOutput",
    "CategoricalOutput",
    "FloatOutput",
    "IntRangeOutput",
    "InvalidValue",
    "OutputType",
    "ReplyProblem",
    "Verdict",
    "extract_json",
    "output_type",
    "parse_verdict",
]

VALUE_KEYS = ("value", "score", "verdict", "result", "rating", "label", "answer")
RATIONALE_KEYS = ("rationale", "reason", "reasoning", "explanation", "justification")

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js)?[ \t]*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_PY_LITERALS = re.compile(r"\b(true|false|null)\b")
_PY_NAMES = {"true": "True", "false": "False", "null": "None"}


class ReplyProblem(ValueError):
    """The reply cannot be used; the message says why in words the judge model can act on."""

    kind = "unparseable"


class InvalidValue(ReplyProblem):
    """The reply parsed, but its value is not of the judge's output type (e.g. out of range)."""

    kind = "invalid_value"


@dataclass(frozen=True, slots=True)
class Verdict:
    value: Any
    rationale: str | None
    label: str | None


# -- output types ------------------------------------------------------------------------------


class OutputType:
    """What a judge's "value" must be: how to describe it to the model and how to check it."""

    aggregation = "numeric"

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def example(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def validate(self, value: Any) -> Any:  # pragma: no cover - abstract
        """Return the canonical value or raise ReplyProblem."""
        raise NotImplementedError

    def label(self, value: Any) -> str | None:
        return None


class BoolOutput(OutputType):
    aggregation = "boolean"
    _TRUE = frozenset({"yes", "y", "true", "pass", "passed", "1"})
    _FALSE = frozenset({"no", "n", "false", "fail", "failed", "0"})

    def describe(self) -> str:
        return '"yes" or "no"'

    def example(self) -> str:
        return '"yes"'

    def validate(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):  # 1, 0, 1.0 and 0.0; never 0.5
            return bool(value)
        if isinstance(value, str):
            word = value.strip().strip(".!").lower()
            if word in self._TRUE:
                return True
            if word in self._FALSE:
                return False
        raise InvalidValue(f'"value" must be "yes" or "no", got {value!r}')

    def label(self, value: Any) -> str:
        return "pass" if value else "fail"

    def __repr__(self) -> str:
        return "bool"


class IntRangeOutput(OutputType):
    def __init__(self, lo: int, hi: int) -> None:
        if lo >= hi:
            raise JudgeConfigError(f"an integer output range needs lo < hi, got ({lo}, {hi})")
        self.lo, self.hi = lo, hi

    def describe(self) -> str:
        return f"an integer from {self.lo} to {self.hi}"

    def example(self) -> str:
        return str(self.hi)

    def validate(self, value: Any) -> int:
        number = _number(value)
        if number is None or not float(number).is_integer():
            raise InvalidValue(f'"value" must be an integer from {self.lo} to {self.hi}, got {value!r}')
        if not self.lo <= number <= self.hi:
            raise InvalidValue(f'"value" must be an integer from {self.lo} to {self.hi}; {value!r} is out of range')
        return int(number)

    def __repr__(self) -> str:
        return f"int[{self.lo}, {self.hi}]"


class FloatOutput(OutputType):
    def __init__(self, lo: float | None = None, hi: float | None = None) -> None:
        if lo is not None and hi is not None and lo >= hi:
            raise JudgeConfigError(f"a float output range needs lo < hi, got ({lo}, {hi})")
        self.lo, self.hi = lo, hi

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"a number from {self.lo} to {self.hi}"
        return "a number"

    def example(self) -> str:
        return str(self.hi if self.hi is not None else 0.5)

    def validate(self, value: Any) -> float:
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise InvalidValue(f'"value" must be {self.describe()}, got {value!r}')
        if (self.lo is not None and number < self.lo) or (self.hi is not None and number > self.hi):
            raise InvalidValue(f'"value" must be {self.describe()}; {value!r} is out of range')
        return float(number)

    def __repr__(self) -> str:
        return f"float[{self.lo}, {self.hi}]"


class CategoricalOutput(OutputType):
    # Not "numeric" nor "boolean": a mean of labels means nothing; the engine should count them.
    aggregation = "categorical"

    def __init__(self, categories: Sequence[str]) -> None:
        cats = [str(c) for c in categories]
        if len(cats) < 2:
            raise JudgeConfigError(f"a categorical output needs at least two categories, got {cats}")
        lowered = [c.strip().lower() for c in cats]
        if len(set(lowered)) != len(lowered):
            raise JudgeConfigError(f"categories must differ ignoring case, got {cats}")
        self.categories = cats
        self._by_lower = dict(zip(lowered, cats, strict=True))

    def describe(self) -> str:
        return "one of " + ", ".join(json.dumps(c) for c in self.categories)

    def example(self) -> str:
        return json.dumps(self.categories[0])

    def validate(self, value: Any) -> str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            found = self._by_lower.get(str(value).strip().strip(".").lower())
            if found is not None:
                return found
        raise InvalidValue(f'"value" must be {self.describe()}, got {value!r}')

    def label(self, value: Any) -> str:
        return str(value)

    def __repr__(self) -> str:
        return f"categories{self.categories}"


def output_type(spec: Any) -> OutputType:
    """Build an OutputType from ``bool``, ``float``, ``(lo, hi)`` ints or floats, or a category list."""
    if isinstance(spec, OutputType):
        return spec
    if spec is bool:
        return BoolOutput()
    if spec is float:
        return FloatOutput()
    if isinstance(spec, tuple) and len(spec) == 2 and all(_is_real(x) for x in spec):
        lo, hi = spec
        if isinstance(lo, int) and isinstance(hi, int):
            return IntRangeOutput(lo, hi)
        return FloatOutput(float(lo), float(hi))
    if isinstance(spec, list | tuple) and spec and all(isinstance(c, str) for c in spec):
        return CategoricalOutput(spec)
    raise JudgeConfigError(
        f"unknown judge output {spec!r}; use bool, float, an (lo, hi) range such as (1, 5), "
        'or a list of categories such as ["good", "bad"]'
    )


def _is_real(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


# -- reply parsing -----------------------------------------------------------------------------


def extract_json(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``: bare, in a code fence, or inside prose.

    Raises:
        ReplyProblem: there is no object that parses.
    """
    stripped = (text or "").strip()
    if not stripped:
        raise ReplyProblem("the reply was empty")
    candidates = [stripped, *(m.group(1).strip() for m in _FENCE.finditer(stripped))]
    candidates.extend(_braced_spans(stripped))
    for candidate in candidates:
        obj = _loads_lenient(candidate)
        if isinstance(obj, dict):
            return obj
    raise ReplyProblem("the reply contained no JSON object")


def _braced_spans(text: str) -> list[str]:
    """Balanced {...} substrings, outermost first, each starting at a different '{'."""
    spans: list[str] = []
    for start, ch in enumerate(text):
        if ch != "{":
            continue
        end = _matching_brace(text, start)
        if end is not None:
            spans.append(text[start : end + 1])
        if len(spans) >= 20:
            break
    return spans


def _matching_brace(text: str, start: int) -> int | None:
    depth, quote, escaped = 0, "", False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _loads_lenient(candidate: str) -> Any:
    if not candidate.startswith("{"):
        return None
    try:
        return json.loads(candidate)
    except ValueError:
        pass
    repaired = _TRAILING_COMMA.sub(r"\1", candidate)
    try:
        return json.loads(repaired)
    except ValueError:
        pass
    # Single quotes and Python literals: let Python's literal parser read it (no code is run).
    pythonic = _PY_LITERALS.sub(lambda m: _PY_NAMES[m.group(1)], repaired)
    try:
        return ast.literal_eval(pythonic)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _pick(obj: dict[str, Any], keys: Sequence[str]) -> tuple[bool, Any]:
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    for key in keys:
        if key in lowered:
            return True, lowered[key]
    return False, None


def _bare_value(text: str) -> tuple[bool, Any]:
    """A reply that is nothing but one value (``yes``, ``1.0``, ``"pass"``, ``true``), fences and a
    final full stop allowed; prose around a value is not taken, since what it qualifies is a guess."""
    stripped = (text or "").strip()
    fenced = _FENCE.fullmatch(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    stripped = stripped.rstrip(".!").strip()
    if not stripped or "\n" in stripped or len(stripped) > 40:
        return False, None
    try:
        value = json.loads(stripped)
    except ValueError:
        return (True, stripped) if re.fullmatch(r"[\w\- ]+", stripped) and len(stripped.split()) <= 2 else (False, None)
    return (not isinstance(value, dict | list)), value


def _agreeing_value(obj: dict[str, Any], output: OutputType) -> Any:
    """The value of a reply's object; every value-like field it carries must say the same thing.

    ``{"score": 1.0, "label": "pass"}`` is one verdict said twice and is accepted; ``{"score":
    1.0, "label": "fail"}`` or ``{"score": 0.9, "label": "pass"}`` (a yes/no judge given a score
    that is neither) are ambiguous and refused. For non-boolean outputs a label that is not of the
    output type (``{"score": 4, "label": "good"}``) is a description, not a second verdict.
    """
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    present = [k for k in VALUE_KEYS if k in lowered]
    if not present:
        raise ReplyProblem(f'the JSON object had no "value" field (it had {sorted(obj)})')
    value = output.validate(lowered[present[0]])
    for key in present[1:]:
        try:
            other = output.validate(lowered[key])
        except ReplyProblem:
            if isinstance(output, BoolOutput):
                raise InvalidValue(
                    f'the reply is ambiguous: "{present[0]}" says {lowered[present[0]]!r} but "{key}" says '
                    f'{lowered[key]!r}; give one "value" of {output.describe()}'
                ) from None
            continue
        if other != value:
            raise InvalidValue(
                f'the reply is ambiguous: "{present[0]}" says {lowered[present[0]]!r} but "{key}" says '
                f'{lowered[key]!r}; give one "value" of {output.describe()}'
            )
    return value


def parse_verdict(text: str, output: OutputType) -> Verdict:
    """Parse and validate a reply against ``output``.

    Accepted: a JSON object (see extract_json) whose value fields agree, or a reply that is only
    a value of the output type (``yes``, ``1.0``). Refused: anything ambiguous.

    Raises:
        ReplyProblem: the reply is not usable; its message is meant for the corrective re-ask.
    """
    try:
        obj = extract_json(text)
    except ReplyProblem:
        bare, raw = _bare_value(text)
        if not bare:
            raise
        value = output.validate(raw)
        return Verdict(value=value, rationale=None, label=output.label(value))
    value = _agreeing_value(obj, output)
    _, rationale = _pick(obj, RATIONALE_KEYS)
    rationale_text = None if rationale is None else str(rationale).strip() or None
    return Verdict(value=value, rationale=rationale_text, label=output.label(value))
