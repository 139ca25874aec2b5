"""CI gates over a finished evaluation: minimum scores, a ceiling on errors, and regressions.

A gate answers one question, "may this change ship?", so each one errs toward failing: a scorer
named in a threshold that the run does not have fails (rather than passing vacuously), a NaN
figure fails, and errored cells count as failures unless the caller opts out with
``errors="ignore"``. The functions return the list of reasons a gate failed (empty: it passed),
so the CLI prints them and the Python API can assert on them alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agenttrace.errors import InvalidArgumentError
from agenttrace.evaluation.metrics import ERROR_POLICIES, headline

__all__ = ["ErrorBudget", "check_thresholds", "parse_error_budget", "parse_thresholds", "regression_failures"]

_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


@dataclass(frozen=True, slots=True)
class ErrorBudget:
    """At most ``count`` errored records, or at most ``percent`` % of the records."""

    count: int | None = None
    percent: float | None = None

    def exceeded(self, errored: int, records: int) -> str | None:
        """Why `errored` of `records` is over budget, or None when it is within."""
        if self.count is not None and errored > self.count:
            return f"{errored} errored records > --max-errors {self.count}"
        if self.percent is not None:
            share = 100.0 * errored / records if records else 0.0
            if share > self.percent:
                return f"{errored} of {records} records errored ({share:.1f}%) > --max-errors {self.percent:g}%"
        return None


def parse_error_budget(text: str) -> ErrorBudget:
    """'3' (records) or '5%' (of the records) to an ErrorBudget."""
    m = _BUDGET.match(text)
    if not m:
        raise InvalidArgumentError(f"max errors {text!r}: use a count (3) or a percentage of the records (5%)")
    number, percent = float(m.group(1)), bool(m.group(2))
    if percent:
        if number > 100:
            raise InvalidArgumentError(f"max errors {text!r}: a percentage is at most 100%")
        return ErrorBudget(percent=number)
    if not number.is_integer():
        raise InvalidArgumentError(f"max errors {text!r}: a count of records is a whole number")
    return ErrorBudget(count=int(number))


def parse_thresholds(items: Iterable[str]) -> dict[str, float]:
    """'SCORER=NUMBER' items to {scorer: minimum}; a missing '=' or a value that is not a finite
    number is refused, naming the item."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InvalidArgumentError(f"{item!r}: use SCORER=NUMBER, like correctness=0.8")
        try:
            number = float(value)
        except ValueError:
            raise InvalidArgumentError(
                f"{item!r}: the threshold {value.strip()!r} is not a number; use SCORER=NUMBER, like correctness=0.8"
            ) from None
        if not math.isfinite(number):
            raise InvalidArgumentError(f"{item!r}: the threshold must be a finite number")
        out[name.strip()] = number
    return out


def check_thresholds(
    metrics: Mapping[str, Any],
    thresholds: Mapping[str, float],
    errors: str = "fail",
    budget: ErrorBudget | None = None,
) -> list[str]:
    """Reasons the run fails its gates: a scorer under its minimum (errored cells counted as failures
    unless ``errors="ignore"``), a scorer the run lacks, or more errored records than the budget."""
    if errors not in ERROR_POLICIES:
        raise InvalidArgumentError(f"errors={errors!r}: use 'fail' or 'ignore'")
    failed = []
    scorers = metrics.get("scorers", {})
    for name, minimum in thresholds.items():
        if name not in scorers:
            failed.append(f"{name} is not a scorer of this run (it has {', '.join(scorers) or 'none'})")
            continue
        value = headline(scorers[name], errors)
        if value is None or not value >= minimum:  # NaN fails too
            shown = value if value is None else round(value, 4)
            failed.append(f"{name} = {shown} < {minimum}{_error_note(scorers[name], errors)}")
    if budget is not None:
        run = metrics.get("run", {})
        over = budget.exceeded(int(run.get("errored_records") or 0), int(run.get("records") or 0))
        if over:
            failed.append(over)
    return failed


def _error_note(summary: Mapping[str, Any], errors: str) -> str:
    n_errors = summary.get("errors") or 0
    if not n_errors:
        return ""
    how = "counted as failures" if errors == "fail" else "left out (--errors ignore)"
    return f" ({n_errors} errored of {summary.get('n', '?')}, {how})"


def regression_failures(comparison: Any, alpha: float) -> list[str]:
    """Reasons a comparison fails a regression gate: a scorer whose delta is negative with a paired
    p-value under ``alpha``, or a record that errors in B but did not in A."""
    if not 0 < alpha < 1:
        raise InvalidArgumentError(f"alpha={alpha}: a significance level is between 0 and 1, like 0.05")
    failed = []
    for row in comparison.scorers.to_dict(orient="records"):
        delta, p = row.get("delta"), row.get("p_value")
        if delta is not None and p is not None and delta < 0 and p < alpha:
            failed.append(f"{row['scorer']} regressed by {delta:.3f} (p = {p:.3g} < {alpha})")
    new_errors = comparison.new_errors
    if len(new_errors):
        records = sorted(set(new_errors.record_id))
        failed.append(f"{len(records)} records now fail with an error: {', '.join(records[:5])}")
    return failed
