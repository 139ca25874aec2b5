"""The store exporter and the counting gate in front of OpenTelemetry's BatchSpanProcessor.

`StoreSpanExporter` is a plain `SpanExporter`: OpenTelemetry's own `BatchSpanProcessor` calls it
on its worker thread with a batch; it appends the batch in one transaction and returns a result
instead of raising. `CountingBatchProcessor` wraps that processor so nothing is dropped silently:
it knows how many spans are pending (ended but not yet exported), refuses new ones itself when the
bound is reached, and counts them, so the count is exact and can be shown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agenttrace.otel.convert import spans_to_columns
from agenttrace.store import DuckDBStore

logger = logging.getLogger("agenttrace")


class StoreSpanExporter(SpanExporter):
    """Writes batches of finished spans to a DuckDBStore.

    Called by BatchSpanProcessor on its worker thread, one batch at a time. Never raises: a failed
    batch is logged (the first time at WARNING) and its spans counted in `failed`.
    """

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self.exported = 0
        self.failed = 0
        self._warned = False
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.store.append_spans(spans_to_columns(spans))
        except Exception as exc:
            with self._lock:
                self.failed += len(spans)
            log = logger.debug if self._warned else logger.warning
            self._warned = True
            log("agenttrace could not store %d spans in %s: %s", len(spans), self.store.path, exc)
            return SpanExportResult.FAILURE
        with self._lock:
            self.exported += len(spans)
        return SpanExportResult.SUCCESS

    @property
    def done(self) -> int:
        return self.exported + self.failed

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class CountingBatchProcessor(SpanProcessor):
    """A BatchSpanProcessor behind a gate that counts what it cannot take.

    on_end runs on the user's thread: it compares spans ended against spans the exporter has
    finished with, and when `max_queue_size` are pending it drops the span itself and counts it,
    so the inner processor never discards one without our knowing.
    """

    def __init__(
        self, exporter: StoreSpanExporter, *, max_queue_size: int, export_batch_size: int, schedule_delay_ms: int
    ) -> None:
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.ended = 0
        self.dropped = 0
        self._inner = BatchSpanProcessor(
            exporter,
            max_queue_size=max_queue_size,
            max_export_batch_size=export_batch_size,
            schedule_delay_millis=schedule_delay_ms,
        )

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self.ended - self.exporter.done >= self.max_queue_size:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning(
                    "agenttrace export queue is full (%d spans pending); spans are being dropped and counted",
                    self.max_queue_size,
                )
            return
        self.ended += 1
        self._inner.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()
