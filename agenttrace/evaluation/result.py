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
        status: FINISHED, or INTERRUPTED when stopped early (results so far are kept).
        metrics: {"scorers": {name: summary}, "run": {...}} - see README "Evaluation".
        tables: {"eval_results": DataFrame with a row per record, a column per scorer, its
            rationale and error, and the trace id}.
    """

    eval_run_id: str
    status: str
    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def scorer_value(self, name: str) -> float | None:
        """The mean or pass rate of one scorer."""
        return headline(self.metrics["scorers"][name])


@dataclass
class Comparison:
    """Two runs compared record by record: per-scorer deltas and the records that moved."""

    run_a: str
    run_b: str
    scorers: pd.DataFrame  # scorer, a, b, delta, p_value, pairs
    regressed: pd.DataFrame  # record_id, scorer, a, b
    improved: pd.DataFrame
