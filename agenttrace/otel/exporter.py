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
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agenttrace.errors import BatchRejectedError, StoreError
from agenttrace.otel.convert import spans_to_rows
from agenttrace.store import DuckDBStore

logger = logging.getLogger("agenttrace")


class StoreSpanExporter(SpanExporter):
    """Writes finished spans to a DuckDBStore, in large transactions.

    Called by BatchSpanProcessor on its worker thread with batches of `receive_batch` spans; it
    converts them to rows at once (freeing the span objects, which are costly for the garbage
    collector to keep) and writes when `write_batch` rows are waiting, when a batch arrives short
    (the processor's queue ran dry: a lull), or on force_flush/shutdown. Never raises: a failed
    write is logged (the first time at WARNING) and its spans counted in `failed`.
    """

    def __init__(
        self, store: DuckDBStore, *, receive_batch: int, write_batch: int, experiment: str | None = None
    ) -> None:
        self.store = store
        self.experiment = experiment  # for spans whose resource names none (other instrumentation)
        self.receive_batch = receive_batch
        self.write_batch = write_batch
        self.exported = 0
        self.failed = 0
        self._rows: list[dict[str, Any]] = []
        self._warned = False
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            rows = spans_to_rows(spans, self.experiment)
        except Exception as exc:
            return self._fail(len(spans), exc)
        with self._lock:
            self._rows.extend(rows)
            due = len(self._rows) >= self.write_batch or len(spans) < self.receive_batch
        return self._write() if due else SpanExportResult.SUCCESS

    def _write(self) -> SpanExportResult:
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                return SpanExportResult.SUCCESS
            return self._append(rows)

    def _append(self, rows: list[dict[str, Any]]) -> SpanExportResult:
        """Append rows; when the store refuses a batch, halve it until the bad rows stand alone.

        So one span the store cannot take costs that span, not the thousands written with it.
        A store that refuses everything (gone, locked) is found at the first single row's failure
        cost of log2(batch) extra attempts.
        """
        try:
            self.store.append_spans(rows)
        except StoreError as exc:
            if len(rows) == 1 or not _row_level(exc):
                return self._fail(len(rows), exc)
            middle = len(rows) // 2
            first, second = self._append(rows[:middle]), self._append(rows[middle:])
            return first if first is SpanExportResult.FAILURE else second
        except Exception as exc:
            return self._fail(len(rows), exc)
        self.exported += len(rows)
        return SpanExportResult.SUCCESS

    def _fail(self, count: int, exc: Exception) -> SpanExportResult:
        self.failed += count
        log = logger.debug if self._warned else logger.warning
        self._warned = True
        log("agenttrace could not store %d spans in %s: %s", count, self.store.path, exc)
        return SpanExportResult.FAILURE

    @property
    def done(self) -> int:
        return self.exported + self.failed

    def shutdown(self) -> None:
        self._write()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._write() is SpanExportResult.SUCCESS


def _row_level(exc: StoreError) -> bool:
    """Whether a failed append may be the fault of some rows (bad values) rather than the store."""
    return isinstance(exc, BatchRejectedError)


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
        self._closed = False
        self._inner = BatchSpanProcessor(
            exporter,
            max_queue_size=max_queue_size,
            max_export_batch_size=export_batch_size,
            schedule_delay_millis=schedule_delay_ms,
        )

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._closed:
            # A span that outlived its runtime (configure() was called inside a traced call).
            self.dropped += 1
            if self.dropped == 1:
                logger.warning(
                    "agenttrace: span %r ended after tracing was reconfigured and was not stored; "
                    "call configure() before tracing starts, not inside a traced call",
                    span.name,
                )
            return
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
        # The inner processor hands over what it queued; the exporter then writes what it holds.
        return self._inner.force_flush(timeout_millis) and self.exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._closed = True
        self._inner.shutdown()
