"""The process-wide tracing runtime: settings, our provider, the store pipeline, the error guard.

Built lazily at the first traced call (never at import) or by `configure()`. A store that cannot
be opened turns tracing off with one warning; the program runs on untraced. `guard()` is the one
place internal errors go: logged once per site and counted in production, re-raised when the
setting `raise_internal_errors` is on (the test suite turns it on).
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import Counter
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer

from agenttrace import config
from agenttrace.errors import AgentTraceError
from agenttrace.otel import conventions as cv
from agenttrace.otel.collector import TraceCollector
from agenttrace.otel.exporter import CountingBatchProcessor, StoreSpanExporter
from agenttrace.otel.otlp_export import remote_exporters
from agenttrace.otel.provider import attach_to_global, build_provider, detach_from_global
from agenttrace.store import DuckDBStore
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
        if self.settings.store is not None and self.settings.uri is None:
            store = DuckDBStore(self.settings.store, lock_timeout_s=self.settings.lock_timeout_s)
            store.initialise()
            self.store = store
            # Spans leave the processor's queue in small batches (span objects are costly to keep),
            # and reach DuckDB in large ones (each transaction has a fixed cost).
            receive = min(RECEIVE_BATCH, self.settings.export_batch_size)
            self.store_processor = CountingBatchProcessor(
                StoreSpanExporter(
                    store,
                    receive_batch=receive,
                    write_batch=self.settings.export_batch_size,
                    experiment=self.settings.experiment,
                ),
                max_queue_size=self.settings.max_queue_size,
                export_batch_size=receive,
                schedule_delay_ms=self.settings.schedule_delay_ms,
            )
            processors.append(self.store_processor)
        for exporter, batch_size in remote_exporters(self.settings):
            remote = CountingBatchProcessor(
                exporter,  # type: ignore[arg-type]  # counts like StoreSpanExporter: exported, failed, done
                max_queue_size=self.settings.max_queue_size,
                export_batch_size=batch_size,
                schedule_delay_ms=self.settings.schedule_delay_ms,
            )
            self.remote_processors.append(remote)
            processors.append(remote)
        # The experiment is fixed for a runtime, so it rides on the resource, not on every span.
        resource = {cv.EXPERIMENT: self.settings.experiment}
        if self.settings.service_name:  # else OpenTelemetry's own default (OTEL_SERVICE_NAME, unknown_service)
            resource["service.name"] = self.settings.service_name
        self.provider = build_provider(self.settings.sample_rate, processors, resource)
        self.tracer = self.provider.get_tracer("agenttrace")
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
        if self.provider is None:
            return True
        return self.provider.force_flush(timeout_ms)

    def lost_spans(self) -> tuple[int, int]:
        """(dropped at the queue bound, failed to store) since this runtime started."""
        counted = [p for p in (self.store_processor, *self.remote_processors) if p is not None]
        return sum(p.dropped for p in counted), sum(p.exporter.failed for p in counted)

    def shutdown(self) -> None:
        if self.provider is None:
            return
        detach_from_global(self._global_processors)
        self.flush()
        self._report_losses()
        self.provider.shutdown()
        self.provider = None
        if self.store is not None:
            self.store.release()

    def _report_losses(self) -> None:
        dropped, failed = self.lost_spans()
        if not (dropped or failed):
            return
        logger.warning(
            "agenttrace lost %d spans (%d dropped at the queue bound, %d failed to store); "
            "see `agenttrace status`", dropped + failed, dropped, failed,
        )  # fmt: skip
        if self.store is not None:
            store = self.store_processor
            local = (store.dropped, store.exporter.failed) if store is not None else (0, 0)
            try:
                self.store.add_counter("dropped_spans", local[0])
                self.store.add_counter("failed_spans", local[1])
                # Spans the OTLP export lost (they may still be in this store): counted apart.
                self.store.add_counter("otlp_dropped_spans", dropped - local[0])
                self.store.add_counter("otlp_failed_spans", failed - local[1])
            except AgentTraceError:
                pass  # the store is what failed; the warning above is all we can do


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
    """Write every span still queued; returns False if the timeout passed first."""
    rt = _runtime
    return True if rt is None else rt.flush(timeout_ms)


def _at_exit() -> None:
    rt = _runtime
    if rt is not None:
        rt.shutdown()


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
