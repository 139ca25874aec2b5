"""What evaluate() and compare_evals() return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from agenttrace.evaluation.metrics import headline


@dataclass
class EvaluationResult:
    """One evaluation run.

    Attributes:
        eval_run_id: the stored run's id (`agenttrace eval show ID`).
        status: FINISHED; FINISHED_WITH_ERRORS when a prediction or scorer errored on any record
            (those cells count as failures in the metrics); INTERRUPTED when stopped early (results
            so far are kept).
        metrics: {"scorers": {name: summary}, "run": {...}} - see README "Evaluation".
        tables: {"eval_results": DataFrame with a row per record, a column per scorer, its
            rationale and error, and the trace id}.
    """

    eval_run_id: str
    status: str
    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def scorer_value(self, name: str, errors: str = "fail") -> float | None:
        """The mean or pass rate of one scorer, errored cells counted as failures (or "ignore")."""
        return headline(self.metrics["scorers"][name], errors)


def _no_errors() -> pd.DataFrame:
    return pd.DataFrame(columns=["record_id", "scorer", "error"])


@dataclass
class Comparison:
    """Two runs compared record by record: per-scorer deltas and the records that moved.

    An errored cell counts as 0 (a failure) in the deltas, the paired test and the interval, as
    in the run summaries. A cell that errors in B but not in A is a regression and is also listed
    in ``new_errors`` ("now failing with an error"); one that errored in A only is an improvement
    and is listed in ``fixed_errors``.
    """

    run_a: str
    run_b: str
    scorers: pd.DataFrame  # scorer, a, b, delta, ci95_low, ci95_high, p_value, pairs, new_errors, fixed_errors
    regressed: pd.DataFrame  # record_id, scorer, a, b, error (B's error when it newly errors)
    improved: pd.DataFrame  # record_id, scorer, a, b, error (A's error when B fixed it)
    new_errors: pd.DataFrame = field(default_factory=_no_errors)  # record_id, scorer, error
    fixed_errors: pd.DataFrame = field(default_factory=_no_errors)
    dataset_a: str | None = None  # name@version of each run's dataset
    dataset_b: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (NaN as None), for --json and the REST API."""

        def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{str(k): _plain(v) for k, v in r.items()} for r in frame.to_dict(orient="records")]

        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "dataset_a": self.dataset_a,
            "dataset_b": self.dataset_b,
            "scorers": rows(self.scorers),
            "regressed": rows(self.regressed),
            "improved": rows(self.improved),
            "new_errors": rows(self.new_errors),
            "fixed_errors": rows(self.fixed_errors),
        }


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
