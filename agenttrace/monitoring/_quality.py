"""quality_over_time(): per agent version and time window, scores with intervals and trace figures.

The store aggregates (counts, means, standard deviations, latency quantiles) in SQL, so a window
of a million traces costs one GROUP BY; intervals are computed from those figures in closed
form: Wilson's interval for pass rates (boolean scores), mean ± 1.96 standard errors for numeric
ones. Scores are the feedback on production traces (monitors, people, code), not evaluation runs.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agenttrace.errors import InvalidArgumentError
from agenttrace.store import DuckDBStore
from agenttrace.tracing.readback import current_store

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["parse_window", "quality_over_time"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_NS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_Z = 1.959963984540054


def parse_window(text: str) -> int:
    """'1h', '1d', '15m' to nanoseconds."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    if not m or int(m.group(1)) == 0:
        raise InvalidArgumentError(f"window {text!r}: give a whole number and a unit s, m, h, d or w, like 1h or 1d")
    return int(m.group(1)) * _NS[m.group(2)] * 1_000_000_000


def _since_ns(since: Any) -> int:
    if since is None:
        return 0
    if isinstance(since, datetime):
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1e9)
    if isinstance(since, str):
        if _DURATION.match(since):
            return time.time_ns() - parse_window(since)
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            raise InvalidArgumentError(
                f"since={since!r}: give an ISO date ('2026-11-01'), a datetime, or a duration back from now ('7d')"
            ) from None
        return _since_ns(moment)
    raise InvalidArgumentError(f"since={since!r}: give an ISO date, a datetime or a duration like '7d'")


def wilson(p: float, n: int) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    centre = (p + _Z * _Z / (2 * n)) / (1 + _Z * _Z / n)
    half = _Z * math.sqrt(p * (1 - p) / n + _Z * _Z / (4 * n * n)) / (1 + _Z * _Z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _interval(row: Any) -> tuple[float, float]:
    n = int(row.n)
    if n == 0:
        return math.nan, math.nan
    if bool(row.boolean):
        return wilson(float(row.mean), n)
    if n < 2 or row.sd is None or math.isnan(row.sd):
        return math.nan, math.nan
    half = _Z * float(row.sd) / math.sqrt(n)
    return float(row.mean) - half, float(row.mean) + half


def quality_over_time(
    agent: str, window: str = "1h", since: Any = None, *, store: DuckDBStore | None = None
) -> pd.DataFrame:
    """Per version of `agent` and time window: each scorer's mean (pass rate for boolean scores)
    with its 95% interval, and the traces' count, error rate, p50/p95 latency and tokens.

    Args:
        agent: the agent's name (its traces' agent_name).
        window: window length, "1h", "1d" (any N and unit s, m, h, d, w).
        since: only traces started at or after this: a datetime, an ISO date, or "7d" back from now.

    Returns:
        One row per (agent_version, window_start), oldest window first, with columns
        agent_version, window_start (UTC), traces, error_rate, latency_p50_ms, latency_p95_ms,
        total_tokens and, per scorer S: S (mean or pass rate), S.low, S.high (95% interval),
        S.n (scores) and S.errors (scorer errors).
    """
    import pandas as pd

    store = store if store is not None else current_store()
    window_ns = parse_window(window)
    traces, scores = store.quality_frames(agent, window_ns, _since_ns(since))
    keys = ["agent_version", "window_ns"]
    frame = traces
    for scorer, part in scores.groupby("scorer", sort=True):
        cells = part[keys].copy()
        bounds = [_interval(row) for row in part.itertuples()]
        cells[str(scorer)] = part["mean"].astype(float).to_numpy()
        cells[f"{scorer}.low"] = [b[0] for b in bounds]
        cells[f"{scorer}.high"] = [b[1] for b in bounds]
        cells[f"{scorer}.n"] = part["n"].astype(int).to_numpy()
        cells[f"{scorer}.errors"] = part["errors"].astype(int).to_numpy()
        frame = frame.merge(cells, on=keys, how="left")
    frame.insert(1, "window_start", pd.to_datetime(frame["window_ns"], unit="ns", utc=True))
    frame = frame.sort_values(["window_ns", "agent_version"], kind="stable").drop(columns="window_ns")
    return frame.reset_index(drop=True)
