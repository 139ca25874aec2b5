"""The scoring loop: claim a batch of a monitor's unscored traces, score it, store the results.

Scorers are built by the evaluation engine's `resolve_scorers`, so a judge here runs through
the same client as in `evaluate`: replies cached in the store's judge cache, one adaptive limiter
per endpoint, retries with backoff, every call recorded as an EVALUATOR trace.

What a failure does:
- a scorer raising on one trace is that trace's result (an assessment with `error`), and the
  loop goes on;
- a judge endpoint that cannot be reached (connection, timeout, 429, 5xx after the client's own
  retries) is not the trace's fault: the batch's unscored claims are given back, and the monitor
  waits (doubling from 1 s to 60 s) before trying again with `follow`, or is left for the next
  run without it. Nothing is scored twice (see store/_monitors.py).
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agenttrace.evaluation.scorers import resolve_scorers, scoring_context
from agenttrace.monitoring._alerts import Breach, check_alerts
from agenttrace.records import Assessment, Trace
from agenttrace.registry._versions import get_agent_version
from agenttrace.scoring import SCORER_ARGUMENTS, Scorer, normalize_result
from agenttrace.store import DuckDBStore
from agenttrace.tracing.readback import current_store
from agenttrace.tracing.runtime import flush
from evaluators.judges import Judge, JudgeError

logger = logging.getLogger("agenttrace")

__all__ = ["MonitorRunReport", "run_monitors"]

_BACKOFF_START_S = 1.0
_BACKOFF_MAX_S = 60.0


@dataclass
class MonitorRunReport:
    """What one `run_monitors` call did: traces scored (and with errors) per monitor, deferrals, breaches."""

    scored: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)  # monitor id -> why its work was left
    breaches: list[Breach] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.scored.values())


def _transient(exc: BaseException) -> bool:
    """A judge failure that says the endpoint is unavailable, not that the trace is unscorable."""
    if not isinstance(exc, JudgeError):
        return False
    reason = exc.reason or ""
    return reason in ("connection", "timeout", "http_429") or reason.startswith("http_5")


def _wanted(scorer: Scorer) -> tuple[str, ...]:
    """The record arguments a scorer reads, so a whole trace is loaded only for scorers that ask."""
    names = getattr(scorer, "_names", None)
    if isinstance(names, tuple):
        return names
    score = getattr(scorer, "score", None)
    if score is None:
        return SCORER_ARGUMENTS
    params = inspect.signature(score).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return SCORER_ARGUMENTS
    return tuple(n for n in SCORER_ARGUMENTS if n in params)


class _EndpointDown(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _MonitorWork:
    """One monitor's scorer, built once per run, and how it scores a claimed batch."""

    def __init__(
        self,
        store: DuckDBStore,
        monitor: dict[str, Any],
        owner: str,
        concurrency: int,
        judge_options: Mapping[str, Any] | None,
        batch: int | None = None,
    ) -> None:
        self.store = store
        self.monitor = monitor
        self.owner = owner
        self.concurrency = concurrency
        scorers, self.wiring = resolve_scorers(
            [monitor["scorer"]], store=store, judge_model=monitor.get("judge_model"), concurrency=concurrency,
            judge_options=judge_options,
        )  # fmt: skip
        self.scorer: Scorer = scorers[0]
        self.is_judge = isinstance(self.scorer, Judge)
        self.needs_trace = "trace" in _wanted(self.scorer)
        self.source_type = "LLM_JUDGE" if self.is_judge else "CODE"
        self.model = self.scorer.client.model if isinstance(self.scorer, Judge) else None
        self.pause_until = 0.0
        self.backoff = _BACKOFF_START_S
        self.source_id = f"monitor:{monitor['monitor_id']}"
        self.meta = {"monitor_id": monitor["monitor_id"], "scorer": monitor["scorer"]}
        if self.model:
            self.meta["model"] = self.model
        self.now_ns = time.time_ns()
        # Traces claimed at once: a judge's batch is small, so a claim never outlives its lease
        # while the endpoint is slow; a code scorer's is large, so claims are few.
        self.batch = batch or (max(50, 10 * concurrency) if self.is_judge else 5000)

    def version(self) -> str | None:
        """The version the monitor watches, re-resolved each pass so an alias that moves is followed."""
        ref = self.monitor.get("agent_version")
        if ref is None:
            return None
        return str(get_agent_version(self.monitor["agent_name"], ref).version)

    def score_batch(self, rows: list[dict[str, Any]]) -> tuple[list[Assessment], int]:
        """Assessments for the rows; raises _EndpointDown (after handing back what it did not score)."""
        done: list[Assessment] = []
        errors = 0
        self.now_ns = time.time_ns()  # one stamp per batch
        try:
            if self.is_judge and self.concurrency > 1 and len(rows) > 1:
                with ThreadPoolExecutor(self.concurrency, thread_name_prefix="agenttrace-monitor") as pool:
                    results = list(pool.map(self._score_one, rows))
            else:
                results = [self._score_one(row) for row in rows]
        except _EndpointDown:
            raise
        for cells in results:
            for assessment in cells:
                errors += assessment.error is not None
                done.append(assessment)
        return done, errors

    def _score_one(self, row: dict[str, Any]) -> list[Assessment]:
        trace: Trace | None = self.store.get_trace(row["trace_id"]) if self.needs_trace else None
        # Only a judge reads the scoring context (its call's trace points back at the scored trace).
        token = scoring_context.set(
            {"monitor_id": self.monitor["monitor_id"], "scored_trace_id": row["trace_id"]}
        ) if self.is_judge else None  # fmt: skip
        try:
            result = self.scorer(
                inputs=row["inputs"], outputs=row["outputs"], expectations=row["expectations"], trace=trace
            )
            scores = [(s.name or self.scorer.name, s.value, s.rationale, s.label, s.metadata, s.error)
                      for s in normalize_result(self.scorer.name, result)]  # fmt: skip
        except Exception as exc:
            if _transient(exc):
                raise _EndpointDown(exc) from exc
            scores = [(self.scorer.name, None, None, None, {}, f"{type(exc).__name__}: {exc}")]
        finally:
            if token is not None:
                scoring_context.reset(token)
        out = []
        for name, value, rationale, label, metadata, error in scores:
            meta = {**metadata, **self.meta} if metadata else dict(self.meta)
            if label is not None:
                meta["label"] = str(label)
            out.append(Assessment(
                assessment_id=os.urandom(16).hex(), trace_id=row["trace_id"], name=name, kind="feedback",
                value=value, rationale=None if rationale is None else str(rationale), source_type=self.source_type,
                source_id=self.source_id, span_id=None, metadata=meta, error=error, eval_run_id=None,
                created_ns=self.now_ns,
            ))  # fmt: skip
        return out

    def close(self) -> None:
        self.wiring.close()


def _pass(work: _MonitorWork, report: MonitorRunReport, lease_s: float) -> int:
    """Score claimed batches of one monitor until its backlog is empty; traces scored."""
    monitor_id = work.monitor["monitor_id"]
    scorer_name = work.monitor["scorer_name"]
    version = work.version()
    total = 0
    while True:
        rows = work.store.claim_monitor_work(work.monitor, version, work.owner, lease_s, work.batch)
        if not rows:
            return total
        try:
            assessments, errors = work.score_batch(rows)
        except _EndpointDown as down:
            work.store.release_monitor_work(scorer_name, work.owner, [r["trace_id"] for r in rows])
            report.deferred[monitor_id] = f"judge endpoint unavailable: {down.cause}"
            work.pause_until = time.monotonic() + work.backoff
            logger.warning(
                "monitor %s: judge endpoint unavailable, retrying in %.0f s (%s)", monitor_id, work.backoff, down
            )
            work.backoff = min(work.backoff * 2, _BACKOFF_MAX_S)
            return total
        except BaseException:  # Ctrl-C or SIGTERM mid-batch: hand the claims back, not after a 10-minute lease
            try:
                work.store.release_monitor_work(scorer_name, work.owner, [r["trace_id"] for r in rows])
            except Exception as exc:  # never in place of the interrupt: the lease frees them later
                logger.warning("monitor %s: could not hand back %d claims: %s", monitor_id, len(rows), exc)
            raise
        kept = work.store.finish_monitor_work(scorer_name, work.owner, assessments)
        work.backoff = _BACKOFF_START_S
        report.deferred.pop(monitor_id, None)
        report.scored[monitor_id] = report.scored.get(monitor_id, 0) + kept
        report.errors[monitor_id] = report.errors.get(monitor_id, 0) + errors
        total += kept


def run_monitors(
    monitors: Iterable[str] | None = None,
    *,
    follow: bool = False,
    batch: int | None = None,
    poll_s: float = 5.0,
    lease_s: float = 600.0,
    concurrency: int = 8,
    judge_options: Mapping[str, Any] | None = None,
    store: DuckDBStore | None = None,
    notify: Callable[[Breach], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> MonitorRunReport:
    """Score every monitor's backlog once (or, with `follow`, keep scoring new traces until stopped).

    Args:
        monitors: monitor ids (or unique prefixes); None: every monitor (re-read each pass with follow).
        batch: traces claimed per transaction (default: 5,000 for code scorers, 10 per concurrent
            call for judges).
        poll_s: with follow, the wait after a pass that found nothing to do.
        lease_s: a claim older than this (its process died) is taken back by the next claimer.
        concurrency: judge calls in flight at once per monitor.
        judge_options: timeout, max_retries, temperature for judges, as `evaluate` takes them.
        notify: called with each alert breach found after a pass (printing, webhooks).
        should_stop: polled between passes with follow (Ctrl-C also stops).

    Returns:
        A MonitorRunReport; its `breaches` are the alert windows found breached.
    """
    store = store if store is not None else current_store()
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    wanted = None if monitors is None else [store.get_monitor(ref)["monitor_id"] for ref in monitors]
    report = MonitorRunReport()
    works: dict[str, _MonitorWork] = {}
    started = time.perf_counter()
    seen: set[tuple[Any, ...]] = set()
    try:
        while True:
            current = [m for m in store.list_monitors() if wanted is None or m["monitor_id"] in wanted]
            did = 0
            for monitor in current:
                work = works.get(monitor["monitor_id"])
                if work is None:
                    work = _MonitorWork(store, monitor, owner, concurrency, judge_options, batch)
                    works[monitor["monitor_id"]] = work
                if time.monotonic() < work.pause_until:
                    continue
                did += _pass(work, report, lease_s)
            for breach in check_alerts(store, current):
                key = (breach.monitor_id, breach.agent_version, breach.window_start, breach.metric)
                if key in seen:
                    continue  # with follow, a breach is reported once per window
                seen.add(key)
                report.breaches.append(breach)
                if notify is not None:
                    notify(breach)
            if not follow or (should_stop is not None and should_stop()):
                break
            if did == 0:
                waits = [w.pause_until - time.monotonic() for w in works.values() if w.pause_until > time.monotonic()]
                time.sleep(min([poll_s, *waits]) if waits else poll_s)
    finally:
        for work in works.values():
            try:
                work.close()
            except Exception as exc:  # the judge cache flush failed: the scores are stored already
                logger.warning("agenttrace monitor clean-up failed: %s", exc)
        flush()  # judge calls' EVALUATOR traces
        report.elapsed_s = time.perf_counter() - started
    return report
