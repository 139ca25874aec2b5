"""compare_evals(): two stored runs, record by record."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from agenttrace.evaluation.metrics import as_number, paired_p_value
from agenttrace.evaluation.result import Comparison
from agenttrace.store import DuckDBStore
from agenttrace.tracing.readback import current_store


def compare_runs(store: DuckDBStore, run_a: str, run_b: str) -> Comparison:
    info_a, rows_a = store.load_eval_run(run_a)
    info_b, rows_b = store.load_eval_run(run_b)
    by_id_b = {r["record_id"]: r for r in rows_b}
    names = [n for n in (info_a.get("scorers") or []) if n in (info_b.get("scorers") or [])]
    for row in rows_a:  # sub-scores (name/part) present in both
        for name in row["scores"]:
            if name not in names and any(name in r["scores"] for r in rows_b):
                names.append(name)
    summary, regressed, improved = [], [], []
    for name in names:
        pairs: list[tuple[str, float, float]] = []
        for row in rows_a:
            other = by_id_b.get(row["record_id"])
            if other is None:
                continue
            a = as_number(_value(row, name))
            b = as_number(_value(other, name))
            if a is not None and b is not None:
                pairs.append((row["record_id"], a, b))
        a_values = np.array([p[1] for p in pairs])
        b_values = np.array([p[2] for p in pairs])
        summary.append(
            {
                "scorer": name,
                "a": float(a_values.mean()) if pairs else None,
                "b": float(b_values.mean()) if pairs else None,
                "delta": float((b_values - a_values).mean()) if pairs else None,
                "p_value": paired_p_value(b_values - a_values) if pairs else None,
                "pairs": len(pairs),
            }
        )
        for record_id, a, b in pairs:
            if b < a:
                regressed.append({"record_id": record_id, "scorer": name, "a": a, "b": b})
            elif b > a:
                improved.append({"record_id": record_id, "scorer": name, "a": a, "b": b})
    columns = ["record_id", "scorer", "a", "b"]
    return Comparison(
        info_a["eval_run_id"],
        info_b["eval_run_id"],
        pd.DataFrame(summary),
        pd.DataFrame(regressed, columns=columns),
        pd.DataFrame(improved, columns=columns),
    )


def _value(row: dict[str, Any], name: str) -> Any:
    cell = row["scores"].get(name) or {}
    return None if cell.get("error") else cell.get("value")


def compare_evals(run_a: str, run_b: str) -> Comparison:
    """Per-scorer deltas (b − a) with a paired sign-flip test, and the records that moved.

    Runs are matched by record id, so compare runs over the same dataset. Refer to runs by id,
    unique id prefix or run name.
    """
    return compare_runs(current_store(), run_a, run_b)
