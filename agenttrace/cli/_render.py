"""Rendering evaluation summaries for the terminal (shared by `eval run` and `eval show`)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table


def console() -> Console:
    # Piped output gets a wide console so nothing is cut.
    return Console(width=None if sys.stdout.isatty() else 160)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def scorer_table(metrics: dict[str, Any]) -> Table:
    """Each scorer's headline (errored cells counted as failures), the same without them, n and errors."""
    table = Table(title="scores")
    for column in ("scorer", "value", "without errors", "95% CI", "n", "errors"):
        table.add_column(column, justify="left" if column == "scorer" else "right")
    for name, s in metrics.get("scorers", {}).items():
        if "counts" in s:
            value = ", ".join(f"{k}: {v}" for k, v in s["counts"].items())
            ci = without = ""
        else:
            key = "pass_rate" if "pass_rate" in s else "mean"
            value = f"{_fmt(s.get(key))} {'pass' if key == 'pass_rate' else 'mean'}"
            without = _fmt(s.get(f"{key}_without_errors")) if s.get("errors") else "same"
            low, high = s.get("ci95") or (None, None)
            ci = f"{_fmt(low)} – {_fmt(high)}"
        n = s.get("n", s.get("count", 0) + s.get("errors", 0))
        table.add_row(name, value, without, ci, str(n), str(s.get("errors", 0)))
    return table


def run_line(metrics: dict[str, Any]) -> str:
    r = metrics.get("run", {})
    parts = [
        f"records {r.get('records')}",
        f"errored records {r.get('errored_records', r.get('prediction_errors'))}",
        f"prediction errors {r.get('prediction_errors')}",
        f"latency p50 {_fmt(r.get('latency_p50_ms'))} ms",
        f"p95 {_fmt(r.get('latency_p95_ms'))} ms",
        f"tokens {_fmt(r.get('total_tokens')) or '-'}",
        f"wall {_fmt(r.get('wall_seconds'))} s",
    ]
    return " · ".join(parts)
