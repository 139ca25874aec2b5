"""Formatting shared by the UI's pages and the HTML reports: times, durations, values, headlines.

Each returns plain text; templates escape it (autoescaping is on everywhere), so nothing here
needs to know about HTML.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from agenttrace.evaluation.metrics import headline

__all__ = ["FILTERS", "fmt_ms", "fmt_num", "fmt_time", "fmt_value", "headline_of", "short"]


def fmt_time(ns: Any) -> str:
    """Nanoseconds since the epoch as 'YYYY-MM-DD HH:MM:SS' UTC (datetimes as the same)."""
    if ns is None:
        return ""
    if hasattr(ns, "strftime"):
        return str(ns.strftime("%Y-%m-%d %H:%M:%S"))
    try:
        return datetime.fromtimestamp(int(ns) / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return str(ns)


def fmt_ms(ms: Any) -> str:
    if ms is None or (isinstance(ms, float) and not math.isfinite(ms)):
        return ""
    ms = float(ms)
    if ms >= 60_000:
        return f"{ms / 60_000:.1f} min"
    if ms >= 1_000:
        return f"{ms / 1_000:.2f} s"
    return f"{ms:.1f} ms" if ms >= 1 else f"{ms:.2f} ms"


def fmt_num(value: Any, digits: int = 3) -> str:
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def fmt_value(value: Any) -> str:
    """A score or assessment value in a table cell: booleans as pass/fail, numbers rounded."""
    if isinstance(value, bool):
        return "pass" if value else "fail"
    if isinstance(value, float):
        return fmt_num(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def short(value: Any, width: int = 80) -> str:
    """One line of a payload: strings as they are, anything else as compact JSON, cut to `width`."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def headline_of(summary: dict[str, Any] | None) -> str:
    """'pass rate 0.940' or 'mean 0.712' for one scorer's summary."""
    if not summary:
        return ""
    value = headline(summary)
    if value is None:
        return ""
    kind = "pass rate" if "pass_rate" in summary else "mean"
    return f"{kind} {value:.3f}"


FILTERS = {
    "fmt_time": fmt_time,
    "fmt_ms": fmt_ms,
    "fmt_num": fmt_num,
    "fmt_value": fmt_value,
    "short": short,
    "pretty": pretty,
    "headline": headline_of,
}
