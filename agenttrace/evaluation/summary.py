"""From finished rows to the run's metrics and its per-record table."""

from __future__ import annotations

from typing import Any

import pandas as pd

from agenttrace.evaluation.metrics import run_figures, summarise_scorer
from agenttrace.scoring import Scorer


def _aggregation_of(name: str, scorers: list[Scorer], values: list[Any]) -> str:
    for s in scorers:
        if s.name == name:
            return s.aggregation
    if values and all(isinstance(v, bool) for v in values):
        return "boolean"
    return "numeric"


def score_names(rows: list[Any], scorers: list[Scorer]) -> list[str]:
    """Scorer names in scorer order, then any sub-scores (name/part) in order of appearance."""
    names = [s.name for s in scorers]
    for row in rows:
        for name in row.scores:
            if name not in names:
                names.append(name)
    return names


def build_metrics(rows: list[Any], scorers: list[Scorer], wall_s: float) -> dict[str, Any]:
    """Per-scorer summaries (errored cells counted as failures, see metrics) and run figures."""
    per_scorer = {}
    for name in score_names(rows, scorers):
        cells = [row.scores[name] for row in rows if name in row.scores]
        values = [c["value"] for c in cells if c.get("error") is None]
        errors = sum(1 for c in cells if c.get("error") is not None)
        per_scorer[name] = summarise_scorer(values, errors, _aggregation_of(name, scorers, values))
    errored = sum(1 for r in rows if r.error or any(c.get("error") is not None for c in r.scores.values()))
    run = run_figures(
        [r.latency_ms for r in rows if r.latency_ms is not None],
        [r.total_tokens for r in rows],
        sum(1 for r in rows if r.error),
        wall_s,
        errored,
    )
    return {"scorers": per_scorer, "run": run}


def final_status(status: str, metrics: dict[str, Any]) -> str:
    """FINISHED_WITH_ERRORS for a finished run with any errored record, so no list shows it green."""
    if status == "FINISHED" and metrics.get("run", {}).get("errored_records"):
        return "FINISHED_WITH_ERRORS"
    return status


def build_table(rows: list[Any], scorers: list[Scorer]) -> pd.DataFrame:
    names = score_names(rows, scorers)
    table = []
    for row in rows:
        item = {
            "record_id": row.record.id,
            "trace_id": row.trace_id,
            "inputs": row.record.inputs,
            "outputs": row.outputs,
            "expectations": row.record.expectations,
            "error": row.error,
            "latency_ms": row.latency_ms,
        }
        for name in names:
            cell = row.scores.get(name, {})
            item[name] = cell.get("value")
            item[f"{name}/rationale"] = cell.get("rationale")
            item[f"{name}/error"] = cell.get("error")
        table.append(item)
    return pd.DataFrame(table)
