"""The process-wide tracing runtime: settings, our provider, the store pipeline, the error guard.

Built lazily at the first traced call (never at import) or by `configure()`. A store that cannot
be opened turns tracing off with one warning; the program runs on untraced. A store another
process holds locked does not: the first traced call never waits for it (one attempt, then the
exporter's worker retries while spans queue, bounded and counted). Exit, SIGTERM and the end of a
multiprocessing child shut the runtime down within `exit_timeout_s` (`lifecycle`): what was not
written or sent by then is counted, named by destination, and recorded in the store. `guard()` is the one
place internal errors go: logged once per site and counted in production, re-raised when the
setting `raise_internal_errors` is on (the test suite turns it on).
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SDKTracer
from opentelemetry.trace import Tracer

from agenttrace import config
from agenttrace.errors import AgentTraceError, StoreLockedError
from agenttrace.otel import conventions as cv
from agenttrace.otel.collector import TraceCollector
from agenttrace.otel.exporter import CountingBatchProcessor, StoreSpanExporter
from agenttrace.otel.otlp_export import remote_exporters
from agenttrace.otel.provider import (
    TRACER_NAME,
    TRACER_VERSION,
    ReservableIds,
    attach_to_global,
    build_provider,
    detach_from_global,
)
from agenttrace.store import DuckDBStore, _connection
from agenttrace.tracing import lifecycle
from agenttrace.tracing.deferred import DeferredRoot
from agenttrace.tracing.serialize import Serializer

logger = logging.getLogger("agenttrace")

__all__ = ["Runtime", "configure", "flush", "get_runtime", "internal_error", "internal_error_counts", "reset"]


class Runtime:
    """Everything one configuration of tracing needs; replaced whole by configure()."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.serializer = Serializer(settings.max_payload_bytes, settings.redact)
        self.store: DuckDBStore | None = None
        self.store_processor: CountingBatchProcessor | None = None
        self.remote_processors: list[CountingBatchProcessor] = []  # OTLP export and client mode
        self.provider: TracerProvider | None = None
        # A local root the SDK makes only when it must (`DeferredRoot`), or None where roots cannot
        # wait: a sampler decides at the start, and OTEL_SDK_DISABLED gives OpenTelemetry's no-op tracer.
        self.deferred_root: Callable[[str, Context, dict[str, Any]], DeferredRoot] | None = None
        self.tracer: Tracer | None = None
        self.enabled = settings.enabled
        self._collector: TraceCollector | None = None
        self._global_processors: list[SpanProcessor] = []
        if self.enabled:
            try:
                self._build()
            except Exception as exc:  # whatever fails here, the traced program runs on untraced
                self.enabled = False
                logger.warning("agenttrace tracing is off: %s", exc)

    def _build(self) -> None:
        processors: list[SpanProcessor] = []
        # Client mode (`uri`) sends spans to `agenttrace server` instead of opening the file.
        # The processors wake four times per flush interval, so no span waits longer than it.
        delay_ms = max(1, min(self.settings.schedule_delay_ms, int(self.settings.flush_interval_s * 250)))
        if self.settings.store is not None and self.settings.uri is None:
            store = DuckDBStore(
                self.settings.store, lock_timeout_s=self.settings.lock_timeout_s, settings=self.settings
            )
            try:
                # One attempt: a foreign or newer file is refused now, a locked one is retried later.
                DuckDBStore(store.path, lock_timeout_s=0, settings=self.settings).initialise()
            except StoreLockedError as exc:
                # Not a warning: another agenttrace process holds the file between its writes (up to a
                # minute), and our writer rings it when it has spans; a store that stays locked is
                # warned about at exit, with the spans it kept from us.
                logger.info("agenttrace: %s; spans are queued and written once the store is free", exc)
            self.store = store
            # Spans leave the processor's queue in small batches (span objects are costly to keep),
            # and reach DuckDB in large ones (each transaction has a fixed cost).
            receive = min(RECEIVE_BATCH, self.settings.export_batch_size)
            self.store_processor = CountingBatchProcessor(
                StoreSpanExporter(
                    store,
                    write_batch=self.settings.export_batch_size,
                    experiment=self.settings.experiment,
                    flush_interval_s=self.settings.flush_interval_s,
                ),
                max_queue_size=self.settings.max_queue_size,
                export_batch_size=receive,
                schedule_delay_ms=delay_ms,
                max_wait_s=self.settings.flush_interval_s,
            )
            processors.append(self.store_processor)
        for exporter, batch_size in remote_exporters(self.settings):
            remote = CountingBatchProcessor(
                exporter,  # type: ignore[arg-type]  # counts like StoreSpanExporter: exported, failed, done
                max_queue_size=self.settings.max_queue_size,
                export_batch_size=batch_size,
                schedule_delay_ms=delay_ms,
            )
            self.remote_processors.append(remote)
            processors.append(remote)
        # The experiment is fixed for a runtime, so it rides on the resource, not on every span.
        resource = {cv.EXPERIMENT: self.settings.experiment}
        if self.settings.service_name:  # else OpenTelemetry's own default (OTEL_SERVICE_NAME, unknown_service)
            resource["service.name"] = self.settings.service_name
        # OpenTelemetry's limits from the environment, except on the length of a value: our payloads
        # are JSON text, which a cut would make unreadable (and the store refuses such a span), and
        # `max_payload_bytes` caps them as JSON already. Built here: a bad variable turns tracing off.
        unlimited = SpanLimits.UNSET
        limits = SpanLimits(max_span_attribute_length=unlimited, max_attribute_length=unlimited)
        ids = ReservableIds()
        self.provider = build_provider(self.settings.sample_rate, processors, resource, limits, ids)
        self.tracer = self.provider.get_tracer(TRACER_NAME, TRACER_VERSION)
        if self.settings.sample_rate >= 1.0 and isinstance(self.tracer, SDKTracer):
            self.deferred_root = functools.partial(DeferredRoot, self.tracer, ids, limits)
        if self.settings.capture_global:
            self._global_processors = processors
            attach_to_global(processors)
        if self.settings.autolog:
            from agenttrace.tracing.autolog_openai import instrument  # the only integration so far

            instrument()

    def collector(self) -> TraceCollector | None:
        """The in-memory collector of watched traces, added to our provider on first use."""
        if self.provider is None:
            return None
        with _lock:
            if self._collector is None:
                self._collector = TraceCollector(self.settings.experiment)
                self.provider.add_span_processor(self._collector)
        return self._collector

    def flush(self, timeout_ms: int = 30_000) -> bool:
        """Write and send every span queued; False if any of it failed, is still held, or time ran out."""
        if self.provider is None:
            return True
        return self.provider.force_flush(timeout_ms)

    def processors(self) -> list[CountingBatchProcessor]:
        return [p for p in (self.store_processor, *self.remote_processors) if p is not None]

    def lost_spans(self) -> tuple[int, int]:
        """(dropped at the queue bound, failed to store or send) since this runtime started."""
        counted = self.processors()
        return sum(p.dropped for p in counted), sum(p.failed for p in counted)

    def flush_for_exit(self) -> bool:
        """Flush on a thread of its own, waiting at most `exit_timeout_s`; whether it finished.

        Its own thread, because the caller may be a signal handler that interrupted code holding a
        lock the flush needs: then the wait ends at the timeout instead of never.
        """
        if self.provider is None:
            return True
        done = threading.Event()

        def work() -> None:
            try:
                self.flush(int(self.settings.exit_timeout_s * 1000))
            finally:
                done.set()

        threading.Thread(target=work, name="agenttrace-exit-flush", daemon=True).start()
        return done.wait(self.settings.exit_timeout_s)

    def before_fork(self) -> None:
        """Let a write in progress finish, so the child copies no lock held mid-write."""
        for processor in self.processors():
            processor.before_fork()

    def after_fork_in_parent(self) -> None:
        for processor in self.processors():
            processor.after_fork_in_parent()

    def at_fork_child(self) -> None:
        """Forget the parent's counts and queued spans; this child writes its own."""
        for processor in self.processors():
            processor.at_fork_child()

    def shutdown(self, exiting: bool = False) -> None:
        """Write what is queued and stop; `exiting`: the process ends, so every wait is bounded."""
        if self.provider is None:
            return
        detach_from_global(self._global_processors)
        started = time.monotonic()
        if exiting and not self.flush_for_exit():
            _connection.abandon_lock_waits()  # a write waiting on another process's lock gives up
        provider, self.provider = self.provider, None
        if exiting:
            _bounded(provider.shutdown, max(self.settings.exit_timeout_s - (time.monotonic() - started), 0.1))
        else:
            provider.force_flush()
            provider.shutdown()
        self._release(exiting)
        # Counted last, so a write that finished during the waits above is not reported lost.
        self._report_losses({id(p): p.pending for p in self.processors()})
        self._release(exiting)  # again: recording the counts reopened the store (or used a hold left open)

    def _release(self, exiting: bool) -> None:
        if self.store is None:
            return
        if exiting:  # a write already running is let finish (one batch); a wait for a lock is not
            _connection.release(self.store.path, wait_s=2.0)
        else:
            self.store.release()

    def _report_losses(self, unwritten: dict[int, int]) -> None:
        """Warn about every span not stored or sent, per destination, and record it in the store."""
        local, any_lost = (0, 0, 0), False
        for processor in self.processors():
            lost = (processor.dropped, processor.failed, unwritten.get(id(processor), 0))
            if not any(lost):
                continue
            any_lost = True
            if processor is self.store_processor:
                local = lost
                where = f"store {self.store.path if self.store else ''}"
                hint = "see `agenttrace status`"
            elif self.settings.uri is not None and processor is self.remote_processors[0]:
                where = f"the server at {self.settings.uri}"
                hint = "the server did not take them: check that it runs (GET /health) and read its log"
            else:
                where = f"the OTLP collector at {self.settings.otlp_endpoint}"
                hint = "the collector did not take them" + (
                    "; every span is in the store, so nothing is lost there" if self.store_processor else ""
                )
            logger.warning(
                "agenttrace lost %d spans meant for %s (%d dropped at the queue bound, %d failed, "
                "%d still pending when tracing stopped, exit_timeout_s=%g); %s",
                sum(lost), where, *lost, self.settings.exit_timeout_s, hint,
            )  # fmt: skip
        if self.store is None or not any_lost:
            return
        remote = [p for p in self.remote_processors if self.settings.uri is None]
        otlp = (
            sum(p.dropped for p in remote),
            sum(p.failed + unwritten.get(id(p), 0) for p in remote),
        )
        try:
            for name, count in (
                ("dropped_spans", local[0]),
                ("failed_spans", local[1] + local[2]),
                ("otlp_dropped_spans", otlp[0]),
                ("otlp_failed_spans", otlp[1]),
            ):
                self.store.add_counter(name, count)  # zero too: `status` shows every count it knows
        except AgentTraceError:
            pass  # the store is what failed; the warning above is all we can do


def _bounded(work: Callable[[], Any], timeout_s: float) -> bool:
    """Run `work` on a daemon thread and wait at most `timeout_s`; whether it finished."""
    thread = threading.Thread(target=work, name="agenttrace-exit", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return not thread.is_alive()


RECEIVE_BATCH = 1024
_runtime: Runtime | None = None
_overrides: dict[str, Any] = {}
_lock = threading.Lock()
_atexit_registered = False
_error_counts: Counter[str] = Counter()


def get_runtime() -> Runtime:
    rt = _runtime
    if rt is not None:
        return rt
    try:
        return _install(dict(_overrides))
    except Exception as exc:  # a bad environment variable must not break the traced program
        logger.warning("agenttrace tracing is off: %s", exc)
        return _install(dict(_overrides), config.Settings(enabled=False))


def _install(overrides: dict[str, Any], settings: config.Settings | None = None) -> Runtime:
    global _runtime, _atexit_registered
    with _lock:
        if _runtime is not None:
            return _runtime
        _runtime = Runtime(settings or config.resolve(overrides))
        if not _atexit_registered:
            atexit.register(_at_exit)
            _atexit_registered = True
        if _runtime.provider is not None:
            lifecycle.install(lambda: _runtime)
        return _runtime


def configure(**settings: Any) -> Runtime:
    """Replace the runtime; arguments accumulate over earlier configure() calls."""
    config.resolve({**_overrides, **settings})  # validate before anything is replaced
    global _runtime
    with _lock:
        _overrides.update(settings)
        old, _runtime = _runtime, None
    if old is not None:
        old.shutdown()
    return _install(dict(_overrides))


def reset() -> None:
    """Shut the runtime down and forget configure() arguments (for tests and notebooks)."""
    global _runtime
    with _lock:
        old, _runtime = _runtime, None
        _overrides.clear()
    if old is not None:
        old.shutdown()


def flush(timeout_ms: int = 30_000) -> bool:
    """Write and send every span still queued; False if any failed, waits for the store, or timed out."""
    rt = _runtime
    return True if rt is None else rt.flush(timeout_ms)


def _at_exit() -> None:
    rt = _runtime
    if rt is not None:
        rt.shutdown(exiting=True)


def internal_error(site: str, exc: BaseException) -> None:
    """Log (once per site) and count an error inside tracing; re-raise under test settings."""
    _error_counts[site] += 1
    if _error_counts[site] == 1:
        logger.warning("agenttrace internal error in %s (tracing goes on untraced here): %r", site, exc)
    rt = _runtime
    if rt is not None and rt.settings.raise_internal_errors:
        raise exc


def internal_error_counts() -> dict[str, int]:
    return dict(_error_counts)
