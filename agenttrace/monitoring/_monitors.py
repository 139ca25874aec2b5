"""Registering monitors: a scorer to run on a sample of one agent's new traces.

A monitor is checked completely when it is added, so `monitor run` (often from cron, unattended)
never meets a monitor it cannot run: the agent must be registered (and the version or alias
exist), the scorer must build (same resolution as `evaluate`, parameters included), the filter
must parse, the sample must be in (0, 1], and each alert must read as `metric<op>number`.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agenttrace.errors import InvalidArgumentError
from agenttrace.evaluation.scorer_specs import spec_name
from agenttrace.evaluation.scorers import resolve_scorers
from agenttrace.monitoring._quality import parse_window
from agenttrace.store import DuckDBStore
from agenttrace.store._monitors import SAMPLE_BUCKETS
from agenttrace.tracing.readback import current_store

__all__ = ["Alert", "add_monitor", "in_sample", "list_monitors", "parse_alert", "remove_monitor"]

_ALERT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(<=|>=|<|>)\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*$")


@dataclass(frozen=True, slots=True)
class Alert:
    """`correctness<0.8`: the condition that is a breach (a window whose value meets it)."""

    metric: str
    op: str
    threshold: float

    def breached(self, value: float) -> bool:
        return {
            "<": value < self.threshold,
            "<=": value <= self.threshold,
            ">": value > self.threshold,
            ">=": value >= self.threshold,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


def parse_alert(text: str) -> Alert:
    """'correctness<0.8' -> Alert; the metric is a scorer name, error_rate, latency_p50_ms or latency_p95_ms."""
    m = _ALERT.match(text)
    if not m:
        raise InvalidArgumentError(
            f"alert {text!r}: write METRIC<NUMBER (or <=, >, >=), like 'correctness<0.8' or 'error_rate>0.05'"
        )
    return Alert(m.group(1), m.group(2), float(m.group(3)))


def in_sample(trace_id: str, sample: float) -> bool:
    """Whether a trace is in a monitor's sample: the store's SQL test, in Python (reproducible by id)."""
    number = int.from_bytes(hashlib.md5(trace_id.encode()).digest(), "little")
    return number % SAMPLE_BUCKETS < round(sample * SAMPLE_BUCKETS)


def _store(store: DuckDBStore | None) -> DuckDBStore:
    return store if store is not None else current_store()


def add_monitor(
    agent: str,
    scorer: str,
    *,
    version: str | int | None = None,
    sample: float = 1.0,
    filter_string: str | None = None,
    alerts: Sequence[str] = (),
    alert_window: str = "1h",
    webhook: str | None = None,
    judge_model: str | None = None,
    since_ns: int | None = None,
    store: DuckDBStore | None = None,
) -> dict[str, Any]:
    """Register `scorer` to run on a sample of `agent`'s traces started from now (or `since_ns`).

    Returns the stored monitor (its `monitor_id` is what `remove_monitor` takes).
    """
    store = _store(store)
    if not isinstance(sample, int | float) or isinstance(sample, bool) or not 0 < sample <= 1:
        raise InvalidArgumentError(f"sample={sample!r}: give a fraction above 0 and at most 1, like 0.1")
    if "@" in agent or "/" in agent:
        raise InvalidArgumentError(f"agent {agent!r}: give the agent's name, and a version or alias with --version")
    store.get_agent_version(agent, None if version is None else str(version))  # unknown: lists what exists
    parsed = [parse_alert(a) for a in alerts]
    parse_window(alert_window)
    if webhook is not None and not re.match(r"^https?://", webhook):
        raise InvalidArgumentError(f"webhook {webhook!r}: give an http:// or https:// URL")
    _, wiring = resolve_scorers([scorer], store=None, judge_model=judge_model)  # builds it: refuses a bad spec
    wiring.close()
    name = spec_name(scorer)
    metrics = {name, "error_rate", "latency_p50_ms", "latency_p95_ms"}
    for alert in parsed:
        if alert.metric not in metrics:
            raise InvalidArgumentError(f"alert {alert}: {alert.metric!r} is none of {', '.join(sorted(metrics))}")
    now = time.time_ns()
    monitor = {
        "monitor_id": uuid.uuid4().hex[:12],
        "agent_name": agent,
        "agent_version": None if version is None else str(version),
        "scorer": scorer,
        "scorer_name": name,
        "sample": float(sample),
        "filter": filter_string or None,
        "alerts": [{"metric": a.metric, "op": a.op, "threshold": a.threshold, "window": alert_window} for a in parsed],
        "webhook": webhook,
        "judge_model": judge_model,
        "since_ns": now if since_ns is None else int(since_ns),
        "created_ns": now,
    }
    store.add_monitor(monitor)  # a filter that does not parse is refused here
    return store.get_monitor(str(monitor["monitor_id"]))


def list_monitors(agent: str | None = None, store: DuckDBStore | None = None) -> list[dict[str, Any]]:
    """Monitors (all, or one agent's), oldest first, each with how many traces it has scored."""
    return _store(store).list_monitors(agent)


def remove_monitor(ref: str, store: DuckDBStore | None = None) -> str:
    """Remove a monitor by id or unique id prefix; its scores stay on the traces."""
    return _store(store).remove_monitor(ref)
