"""compare_evals(): two stored runs, record by record.

Errors are part of the comparison, not holes in it: a cell that errored (its prediction failed or
its scorer raised) counts as 0, the failing value, exactly as in a run's own summary. So a record
that version B crashes on where A passed moves the delta, is counted by the paired test, and is
listed twice: among the regressions and in ``new_errors`` ("now failing with an error"), which a
CI gate fails on whatever the p-value. A cell that errored in A but scores in B is an improvement
(``fixed_errors``). Pairs where neither side has a number (labels, or both errored on a
categorical scorer) are left out of the figures but still reported as new or fixed errors.

Each delta comes with a 95% bootstrap interval over the per-record differences (same seed and
resample count as run summaries) beside the sign-flip permutation p-value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agenttrace.evaluation.metrics import as_number, bootstrap_interval, paired_p_value
from agenttrace.evaluation.result import Comparison
from agenttrace.store import DuckDBStore
from agenttrace.tracing.readback import current_store

_MOVED_COLUMNS = ["record_id", "scorer", "a", "b", "error"]
_ERROR_COLUMNS = ["record_id", "scorer", "error"]


@dataclass(frozen=True, slots=True)
class _Cell:
    value: float | None  # the number used in figures: 0.0 for an errored cell
    error: str | None
    present: bool


def _cell(row: dict[str, Any], name: str) -> _Cell:
    raw = row["scores"].get(name)
    if raw is None:
        return _Cell(None, None, False)
    if raw.get("error"):
        return _Cell(0.0, str(raw["error"]), True)
    return _Cell(as_number(raw.get("value")), None, True)


def compare_runs(store: DuckDBStore, run_a: str, run_b: str) -> Comparison:
    """Compare two stored runs (by id, id prefix or name) record by record; see the module docstring."""
    info_a, rows_a = store.load_eval_run(run_a)
    info_b, rows_b = store.load_eval_run(run_b)
    by_id_b = {r["record_id"]: r for r in rows_b}
    names = [n for n in (info_a.get("scorers") or []) if n in (info_b.get("scorers") or [])]
    for row in rows_a:  # sub-scores (name/part) present in both
        for name in row["scores"]:
            if name not in names and any(name in r["scores"] for r in rows_b):
                names.append(name)
    summary: list[dict[str, Any]] = []
    regressed: list[dict[str, Any]] = []
    improved: list[dict[str, Any]] = []
    new_errors: list[dict[str, Any]] = []
    fixed_errors: list[dict[str, Any]] = []
    for name in names:
        pairs: list[tuple[float, float]] = []
        n_new = n_fixed = 0
        for row in rows_a:
            other = by_id_b.get(row["record_id"])
            if other is None:
                continue
            a, b = _cell(row, name), _cell(other, name)
            if not (a.present and b.present):
                continue
            record_id = row["record_id"]
            if b.error and not a.error:
                n_new += 1
                new_errors.append({"record_id": record_id, "scorer": name, "error": b.error})
                regressed.append({"record_id": record_id, "scorer": name, "a": a.value, "b": None, "error": b.error})
            elif a.error and not b.error:
                n_fixed += 1
                fixed_errors.append({"record_id": record_id, "scorer": name, "error": a.error})
                improved.append({"record_id": record_id, "scorer": name, "a": None, "b": b.value, "error": a.error})
            if a.value is None or b.value is None:
                continue
            pairs.append((a.value, b.value))
            if not (a.error or b.error):
                if b.value < a.value:
                    regressed.append(
                        {"record_id": record_id, "scorer": name, "a": a.value, "b": b.value, "error": None}
                    )
                elif b.value > a.value:
                    improved.append({"record_id": record_id, "scorer": name, "a": a.value, "b": b.value, "error": None})
        summary.append(_summary_row(name, pairs, n_new, n_fixed))
    return Comparison(
        info_a["eval_run_id"],
        info_b["eval_run_id"],
        pd.DataFrame(summary),
        pd.DataFrame(regressed, columns=_MOVED_COLUMNS),
        pd.DataFrame(improved, columns=_MOVED_COLUMNS),
        pd.DataFrame(new_errors, columns=_ERROR_COLUMNS),
        pd.DataFrame(fixed_errors, columns=_ERROR_COLUMNS),
        f"{info_a.get('dataset_name')}@{info_a.get('dataset_version')}",
        f"{info_b.get('dataset_name')}@{info_b.get('dataset_version')}",
    )


def _summary_row(name: str, pairs: list[tuple[float, float]], new_errors: int, fixed_errors: int) -> dict[str, Any]:
    a_values = np.array([p[0] for p in pairs], dtype=float)
    b_values = np.array([p[1] for p in pairs], dtype=float)
    diffs = b_values - a_values
    low, high = bootstrap_interval(diffs) if pairs else (None, None)
    return {
        "scorer": name,
        "a": float(a_values.mean()) if pairs else None,
        "b": float(b_values.mean()) if pairs else None,
        "delta": float(diffs.mean()) if pairs else None,
        "ci95_low": low,
        "ci95_high": high,
        "p_value": paired_p_value(diffs) if pairs else None,
        "pairs": len(pairs),
        "new_errors": new_errors,
        "fixed_errors": fixed_errors,
    }


def compare_evals(run_a: str, run_b: str) -> Comparison:
    """Per-scorer deltas (b − a) with a 95% interval and a paired sign-flip test, and the records
    that moved; errored cells count as failures and new errors are regressions.

    Runs are matched by record id, so compare runs over the same dataset. Refer to runs by id,
    unique id prefix or run name.
    """
    return compare_runs(current_store(), run_a, run_b)
