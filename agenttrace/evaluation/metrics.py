"""Summaries of an evaluation: per-scorer mean or pass rate with a bootstrap interval, run figures,
and the paired comparison of two runs.

Errored cells (the prediction failed or the scorer raised) count as failures: each scores 0, the
failing value, in the headline pass rate or mean and its interval, so a run that crashes on most
records cannot pass a gate on the few it finished. The same figures without the errored cells are
kept beside them (``pass_rate_without_errors``, ``mean_without_errors``) for a user who opts out
(``errors="ignore"``, ``--errors ignore``). ``n`` counts every cell, ``count`` the scored ones.

Bootstrap: 2,000 resamples of the per-record values with a fixed seed, so a summary is
reproducible. Paired test: a sign-flip permutation test on per-record differences (exact when
there are at most 16 pairs, otherwise 20,000 random flips), which assumes no distribution.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np

from agenttrace.errors import InvalidArgumentError

_RESAMPLES = 2_000
_SEED = 20261126
_FEW_DISTINCT = 64


def as_number(value: Any) -> float | None:
    """Scores usable in a mean: numbers and booleans (1/0); anything else is None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, Real):
        return float(value)
    return None


def bootstrap_interval(values: Sequence[float]) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean.

    A resample of n values drawn with replacement is, in distribution, a multinomial count of each
    distinct value, so when there are few distinct values (pass/fail scores, errors counted as 0,
    1-5 ratings) the resample means are drawn as multinomial counts: work proportional to the
    distinct values, not to the records, which keeps summaries of large runs cheap. Many distinct
    values fall back to drawing indices.
    """
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return (float(data[0]), float(data[0])) if len(data) else (float("nan"), float("nan"))
    rng = np.random.default_rng(_SEED)
    distinct, counts = np.unique(data, return_counts=True)
    if len(distinct) <= _FEW_DISTINCT:
        draws = rng.multinomial(len(data), counts / len(data), size=_RESAMPLES)
        means = draws @ distinct / len(data)
    else:
        means = data[rng.integers(0, len(data), size=(_RESAMPLES, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


ERROR_POLICIES = ("fail", "ignore")


def summarise_scorer(values: list[Any], errors: int, aggregation: str) -> dict[str, Any]:
    """Mean (numeric) or pass rate (boolean) with a 95% interval, both with errored cells counted as
    0 (the headline) and without them; label counts otherwise."""
    numbers = [n for n in (as_number(v) for v in values) if n is not None]
    summary: dict[str, Any] = {"n": len(values) + errors, "count": len(values), "errors": errors}
    summary["aggregation"] = aggregation
    if aggregation in ("numeric", "boolean") and len(numbers) == len(values) and (numbers or errors):
        key = "pass_rate" if aggregation == "boolean" else "mean"
        scored = list(bootstrap_interval(numbers)) if numbers else None
        with_errors = numbers + [0.0] * errors  # an errored cell is a failure: it scores 0
        summary[key] = float(np.mean(with_errors))
        summary["ci95"] = list(bootstrap_interval(with_errors)) if errors else scored
        summary[f"{key}_without_errors"] = float(np.mean(numbers)) if numbers else None
        summary["ci95_without_errors"] = scored
    else:
        summary["aggregation"] = "categorical"
        summary["counts"] = dict(Counter(str(v) for v in values))
    return summary


def headline(summary: dict[str, Any], errors: str = "fail") -> float | None:
    """The one number of a scorer's summary: its pass rate or mean, errored cells counted as failures
    (``errors="fail"``) or left out (``errors="ignore"``)."""
    if errors not in ERROR_POLICIES:
        raise InvalidArgumentError(f"errors={errors!r}: use 'fail' (errored cells count as failures) or 'ignore'")
    key = "pass_rate" if "pass_rate" in summary else "mean"
    if errors == "ignore" and f"{key}_without_errors" in summary:
        return summary[f"{key}_without_errors"]
    return summary.get(key)


def run_figures(
    latencies_ms: list[float], tokens: list[int | None], errors: int, wall_s: float, errored_records: int = 0
) -> dict[str, Any]:
    """Run-wide figures; ``errored_records`` counts records whose prediction or any scorer errored."""
    lat = np.asarray(latencies_ms, dtype=float)
    known_tokens = [t for t in tokens if t is not None]
    return {
        "records": len(latencies_ms),
        "prediction_errors": errors,
        "errored_records": errored_records,
        "latency_p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "latency_p95_ms": float(np.percentile(lat, 95)) if len(lat) else None,
        "total_tokens": int(sum(known_tokens)) if known_tokens else None,
        "cost": None,  # no price table yet: tokens are reported, cost stays unknown rather than guessed
        "wall_seconds": wall_s,
    }


def paired_p_value(differences: Sequence[float]) -> float:
    """Two-sided sign-flip permutation test of mean difference = 0."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n == 0 or not np.any(d):
        return 1.0
    observed = abs(d.mean())
    if n <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(_SEED).choice((1.0, -1.0), size=(20_000, n))
    means = np.abs((signs * d).mean(axis=1))
    return float(np.mean(means >= observed - 1e-12))
