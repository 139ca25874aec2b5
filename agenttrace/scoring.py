"""The scorer contract: what a scorer is, what it may return, and the registry that finds it by name.

A scorer is any callable taking some of the keyword arguments ``inputs``, ``outputs``,
``expectations`` and ``trace`` and returning a bool, a number, a string, a `Score` or a list of
Scores. `@scorer` wraps a plain function so it receives only the arguments it names.
Built-in scorers register through the same entry-point group (``agenttrace.scorers``) that
third-party packages use, so the CLI finds both by name.

Who calls a scorer: the evaluation engine, on one of its worker threads, once per record; a scorer
may raise, and the engine records that as the cell's error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import entry_points
from numbers import Real
from typing import Any, TypeAlias

from agenttrace.errors import InvalidScorerError, UnknownScorerError
from agenttrace.records import Score

__all__ = [
    "ENTRY_POINT_GROUP",
    "SCORER_ARGUMENTS",
    "Scorer",
    "ScorerResult",
    "available_scorers",
    "get_scorer",
    "normalize_result",
    "as_scorers",
    "register_scorer",
    "scorer",
    "scorer_target",
]

ENTRY_POINT_GROUP = "agenttrace.scorers"
SCORER_ARGUMENTS = ("inputs", "outputs", "expectations", "trace")

# What a scorer may return; numpy scalars are taken too and turned into Python values.
ScorerResult: TypeAlias = bool | float | str | Score | Sequence[Score]


class Scorer:
    """A named scorer; subclasses implement `score` with any subset of SCORER_ARGUMENTS.

    `score` takes the arguments it reads as keywords, e.g. ``def score(self, *, outputs=None,
    expectations=None) -> Score``, and the engine passes exactly those. No one method signature
    allows every subset (a subclass may not drop parameters of a declared method), so `score` is
    declared as a callable attribute: each subclass's own signature is its contract, and the type
    checker still checks what it returns.
    """

    name: str = "scorer"
    # "numeric" means mean is the summary; "boolean" means pass rate.
    aggregation: str = "numeric"
    score: Callable[..., ScorerResult]

    def _wanted(self) -> tuple[str, ...]:
        score = getattr(self, "score", None)
        if score is None:
            raise InvalidScorerError(
                f"{type(self).__name__} has no score(); a Scorer subclass defines score(...) taking the "
                f"arguments it reads from {', '.join(SCORER_ARGUMENTS)}"
            )
        params = inspect.signature(score).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return SCORER_ARGUMENTS
        return tuple(n for n in SCORER_ARGUMENTS if n in params)

    def __call__(self, **available: Any) -> Any:
        wanted = self.__dict__.get("_wanted_cache") or self._wanted()
        self.__dict__["_wanted_cache"] = wanted
        return self.score(**{name: available.get(name) for name in wanted})

    def __repr__(self) -> str:
        return f"<scorer {self.name}>"


class _FunctionScorer(Scorer):
    def __init__(self, fn: Callable[..., Any], name: str, aggregation: str | None) -> None:
        self._fn = fn
        self.name = name
        params = inspect.signature(fn).parameters
        variadic = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        unknown = [
            n
            for n, p in params.items()
            if n not in SCORER_ARGUMENTS and p.default is inspect.Parameter.empty and p.kind not in variadic
        ]
        if unknown:
            raise InvalidScorerError(
                f"scorer {name!r} asks for {unknown}; a scorer may only ask for {', '.join(SCORER_ARGUMENTS)}"
            )
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self._names = SCORER_ARGUMENTS if takes_all else tuple(n for n in SCORER_ARGUMENTS if n in params)
        hint = inspect.signature(fn).return_annotation
        self.aggregation = aggregation or ("boolean" if hint in (bool, "bool") else "numeric")
        self.__doc__ = fn.__doc__

    def __call__(self, **available: Any) -> Any:
        return self._fn(**{n: available.get(n) for n in self._names})


def scorer(fn: Callable[..., Any] | None = None, *, name: str | None = None, aggregation: str | None = None) -> Any:
    """Turn a function into a Scorer; it receives only the arguments it names.

    Usable bare (``@scorer``) or with options (``@scorer(name="polite")``).
    """

    def wrap(f: Callable[..., Any]) -> Scorer:
        return _FunctionScorer(f, name or f.__name__, aggregation)

    return wrap(fn) if fn is not None else wrap


def normalize_result(name: str, result: Any) -> list[Score]:
    """Turn whatever a scorer returned into a list of named Scores."""
    if type(result).__module__ == "numpy" and hasattr(result, "item"):
        result = result.item()  # numpy.bool_, numpy.float64, ... become plain Python values
    if isinstance(result, Score):
        return [_named(result, name)]
    if isinstance(result, list | tuple) and not result:
        raise InvalidScorerError(f"scorer {name!r} returned an empty list; return at least one Score")
    if isinstance(result, list | tuple) and all(isinstance(r, Score) for r in result):
        return [_named(r, f"{name}/{r.name}" if r.name else name) for r in result]
    if isinstance(result, bool | str | Real) or result is None:
        if result is None:
            raise InvalidScorerError(f"scorer {name!r} returned None; return a bool, number, string or Score")
        return [Score(value=result, name=name)]
    raise InvalidScorerError(
        f"scorer {name!r} returned {type(result).__name__}; return a bool, number, string, Score or list of Scores"
    )


def _named(score: Score, name: str) -> Score:
    if score.name == name:
        return score
    return Score(score.value, score.rationale, score.label, score.metadata, name, score.error)


_registered: dict[str, Any] = {}


def register_scorer(name: str, target: Any) -> None:
    """Register a Scorer instance, a Scorer subclass or a plain function under a name."""
    _registered[name] = target


def _entry_point_targets() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_scorers() -> list[str]:
    """Names of every scorer known through entry points or `register_scorer`."""
    return sorted(set(_entry_point_targets()) | set(_registered))


def scorer_target(name: str) -> Any:
    """What is registered under `name` (instance, Scorer subclass or function), not yet built."""
    target = _registered.get(name)
    if target is None:
        ep = _entry_point_targets().get(name)
        if ep is None:
            valid = ", ".join(available_scorers()) or "(none registered)"
            raise UnknownScorerError(f"unknown scorer {name!r}; valid scorers: {valid}")
        target = ep.load()
    return target


def get_scorer(name: str) -> Scorer:
    """Find a scorer by registered name; unknown names raise with the valid names listed."""
    target = scorer_target(name)
    if isinstance(target, Scorer):
        return target
    if isinstance(target, type) and issubclass(target, Scorer):
        return target()
    return scorer(target, name=name)


def as_scorers(items: Iterable[Any]) -> list[Scorer]:
    """Accept scorer objects, plain functions and registered names alike."""
    out: list[Scorer] = []
    for item in items:
        if isinstance(item, Scorer):
            out.append(item)
        elif isinstance(item, str):
            out.append(get_scorer(item))
        elif callable(item):
            out.append(scorer(item))
        else:
            raise InvalidScorerError(f"{item!r} is not a scorer; pass a Scorer, a function or a registered name")
    return out
