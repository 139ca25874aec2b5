"""Alerts: a monitor's `correctness<0.8` checked against quality over time, and webhooks.

Which windows are checked: those that started in the last day (or the last one window, when a
window is longer than a day), per version of the monitor's agent (or its one version), so a cron
job of `monitor run` sees a fresh drop and not last month's. A breach is a window whose value
meets the alert's condition; a window with no value for the metric is no breach.
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from agenttrace.monitoring._monitors import Alert
from agenttrace.monitoring._quality import parse_window, quality_over_time
from agenttrace.registry._versions import get_agent_version
from agenttrace.store import DuckDBStore

logger = logging.getLogger("agenttrace")

__all__ = ["Breach", "check_alerts", "post_webhook"]

DEFAULT_WINDOW = "1h"
_LOOKBACK_NS = 86400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Breach:
    """One window of one version in which a monitor's alert condition held."""

    monitor_id: str
    agent: str
    agent_version: str | None
    window_start: str  # ISO 8601, UTC
    window: str
    metric: str
    op: str
    threshold: float
    value: float
    n: int | None

    def __str__(self) -> str:
        where = f"{self.agent}/{self.agent_version}" if self.agent_version else self.agent
        count = f", n={self.n}" if self.n is not None else ""
        return (
            f"ALERT monitor {self.monitor_id}: {where} {self.metric}={self.value:.4g} "
            f"({self.metric}{self.op}{self.threshold:g}) in the {self.window} window from {self.window_start}{count}"
        )

    def as_json(self) -> dict[str, Any]:
        return {"event": "agenttrace.monitor.alert", **asdict(self)}


def _breaches(store: DuckDBStore, monitor: dict[str, Any], alert: dict[str, Any]) -> list[Breach]:
    window = alert.get("window") or DEFAULT_WINDOW
    window_ns = parse_window(window)
    since_ns = time.time_ns() - max(_LOOKBACK_NS, window_ns)
    since_ns -= since_ns % window_ns
    frame = quality_over_time(monitor["agent_name"], window, since=None, store=store)
    frame = frame[frame["window_start"].map(lambda t: t.value) >= since_ns]
    rule = Alert(alert["metric"], alert["op"], float(alert["threshold"]))
    if rule.metric not in frame.columns:
        return []
    found = []
    for row in frame.to_dict("records"):
        value = row[rule.metric]
        if value is None or (isinstance(value, float) and math.isnan(value)) or not rule.breached(float(value)):
            continue
        n = row.get(f"{rule.metric}.n", row.get("traces"))
        version = row["agent_version"]
        found.append(Breach(
            monitor["monitor_id"], monitor["agent_name"], None if version is None else str(version),
            row["window_start"].isoformat(), window, rule.metric, rule.op, rule.threshold, float(value),
            None if n is None else int(n),
        ))  # fmt: skip
    return found


def check_alerts(store: DuckDBStore, monitors: Iterable[dict[str, Any]]) -> list[Breach]:
    """Breaches of every alert of the given monitors, in the recent windows."""
    found: list[Breach] = []
    for monitor in monitors:
        for alert in monitor.get("alerts") or []:
            breaches = _breaches(store, monitor, alert)
            version = monitor.get("agent_version")
            if version is not None and not str(version).isdigit():
                version = str(get_agent_version(monitor["agent_name"], version).version)
            found.extend(b for b in breaches if version is None or b.agent_version == str(version))
    return found


def post_webhook(url: str, breach: Breach, timeout_s: float = 10.0) -> bool:
    """POST the breach as JSON; a failure is logged (the run goes on) and returns False."""
    body = json.dumps(breach.as_json()).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - a URL the user gave
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        logger.warning("agenttrace: webhook %s failed for %s: %s", url, breach.monitor_id, exc)
        return False
