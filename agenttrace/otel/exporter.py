"""The store exporter and the counting gate in front of OpenTelemetry's BatchSpanProcessor.

`StoreSpanExporter` is a plain `SpanExporter`: OpenTelemetry's own `BatchSpanProcessor` calls it
on its worker thread with a batch; it appends the batch in one transaction and returns a result
instead of raising. `CountingBatchProcessor` wraps that processor so nothing is dropped silently:
it knows how many spans are pending (ended but not yet exported), refuses new ones itself when the
bound is reached, and counts them, so the count is exact and can be shown.

Time bounds what a crash can lose: a span waits at most about `flush_interval_s` before its write
starts (the processor hands spans over within a quarter of it, and the exporter writes rows held for
half of it, on a timer of its own when no more spans come), so kill -9 loses about that much. A
store another process keeps locked costs no span: the exporter keeps its rows and tries again at the
next batch, deadline or flush, while the gate in front bounds (and counts) what waits. After a fork
both reset to the child's own counts and rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agenttrace import _forks
from agenttrace.errors import BatchRejectedError, StoreError, StoreLockedError
from agenttrace.otel.convert import spans_to_rows
from agenttrace.store import DuckDBStore

logger = logging.getLogger("agenttrace")


class StoreSpanExporter(SpanExporter):
    """Writes finished spans to a DuckDBStore, in large transactions.

    Called by BatchSpanProcessor on its worker thread with small batches of spans; it
    converts them to rows at once (freeing the span objects, which are costly for the garbage
    collector to keep) and writes when `write_batch` rows are waiting, when the oldest row has
    waited half of `flush_interval_s`, or on force_flush/shutdown. Not sooner (a lull used to write
    at once): a transaction costs about 12 ms before its first row (DuckDB plans the insert and the
    trace upsert, and commits), which a batch of 50 rows pays at 240 us a row and one of 1,000 at
    12. Never raises: a failed write is logged (the first time at WARNING) and its spans counted
    in `failed`; rows the store could not take only because another process holds its lock are
    kept (`held`) and written at the next attempt.
    """

    def __init__(
        self,
        store: DuckDBStore,
        *,
        write_batch: int,
        experiment: str | None = None,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self.experiment = experiment  # for spans whose resource names none (other instrumentation)
        self.write_batch = write_batch
        self.max_hold_s = flush_interval_s / 2
        self.exported = 0
        self.failed = 0
        self._rows: list[dict[str, Any]] = []
        self._oldest = 0.0  # when the oldest row in _rows arrived (monotonic)
        self._warned = False
        self._warned_locked = False
        self._lock = threading.Lock()  # held while rows are turned into Arrow and written
        self._fork_locked = False
        # Writes rows that come due while no span arrives: OpenTelemetry's processor calls `export`
        # only when it has spans, so without this a program gone quiet would keep its last rows.
        self._timer: threading.Timer | None = None
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            rows = spans_to_rows(spans, self.experiment)
        except Exception as exc:
            return self._fail(len(spans), exc)
        now = time.monotonic()
        with self._lock:
            if not self._rows:
                self._oldest = now
            self._rows.extend(rows)
            due = len(self._rows) >= self.write_batch or now - self._oldest >= self.max_hold_s
            if not due:
                self._arm(self._oldest + self.max_hold_s - now)
        return self._write() if due else SpanExportResult.SUCCESS

    def _arm(self, delay_s: float) -> None:
        """Make sure held rows are written `delay_s` from now at the latest (call with the lock held)."""
        if self._timer is None and not self._closed:
            self._timer = threading.Timer(max(delay_s, 0.0), self._on_deadline)
            self._timer.daemon = True
            self._timer.name = "agenttrace-store-deadline"
            self._timer.start()

    def _on_deadline(self) -> None:
        with self._lock:
            self._timer = None
            if not self._rows or self._closed:
                return
            wait = self._oldest + self.max_hold_s - time.monotonic()
            if wait > 0:  # written and refilled since this was armed: wait for the new oldest row
                self._arm(wait)
                return
        self._write()
        with self._lock:
            if self._rows:  # kept (the store is locked by another process): try again later
                self._arm(self.max_hold_s)

    @property
    def held(self) -> int:
        """Rows converted but not written yet (waiting for a full batch, or for a locked store)."""
        return len(self._rows)

    def _write(self) -> SpanExportResult:
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                return SpanExportResult.SUCCESS
            try:
                return self._append(rows)
            except StoreLockedError as exc:
                # Another process holds the file: keep the rows (the gate in front bounds them).
                self._rows[:0] = rows
                if not self._warned_locked:
                    self._warned_locked = True
                    logger.warning(
                        "agenttrace: %s; %d spans are kept and written when it is free", exc, len(self._rows)
                    )
                return SpanExportResult.FAILURE

    def before_fork(self) -> None:
        """Wait for a write in progress (Arrow and DuckDB locks must not be copied mid-use)."""
        self._fork_locked = self._lock.acquire(timeout=_forks.FORK_WAIT_S)

    def after_fork_in_parent(self) -> None:
        if self._fork_locked:
            self._fork_locked = False
            self._lock.release()

    def at_fork_child(self) -> None:
        """Start the child with no rows and no counts: the parent writes what it held."""
        self._lock = threading.Lock()  # a lock the parent's worker held at the fork stays held
        self._timer = None  # the parent's timer thread does not exist here
        self._rows = []
        self.exported = self.failed = 0

    def _append(self, rows: list[dict[str, Any]], whole: bool = True) -> SpanExportResult:
        """Append rows; when the store refuses a batch, halve it until the bad rows stand alone.

        So one span the store cannot take costs that span, not the thousands written with it.
        A store that refuses everything (gone, locked) is found at the first single row's failure
        cost of log2(batch) extra attempts.
        """
        try:
            self.store.append_spans(rows)
        except StoreLockedError as exc:
            if whole:
                raise  # not the rows' fault: _write keeps them
            return self._fail(len(rows), exc)  # part of a batch already half written: no duplicates
        except StoreError as exc:
            if len(rows) == 1 or not _row_level(exc):
                return self._fail(len(rows), exc)
            middle = len(rows) // 2
            first, second = self._append(rows[:middle], False), self._append(rows[middle:], False)
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
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

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

    With `max_wait_s` (the store's processor: `flush_interval_s`), it also keeps the writer ahead of
    a busy program. Every MARK_EVERY spans it notes the time; when the oldest span not yet written
    ended more than `max_wait_s` ago while the writer is making progress, the ending thread sleeps
    (giving the writer the interpreter) until the writer has caught up, in steps of at most
    BACKPRESSURE_STEP_S. So under load a crash loses about `max_wait_s` of work instead of a growing
    backlog. A writer that makes no progress (a locked store) never slows the program: then the
    queue bound applies.
    """

    MARK_EVERY = 256
    BACKPRESSURE_STEP_S = 0.1
    STUCK_S = 5.0  # a writer that wrote nothing for this long is waiting on the store, not slow

    def __init__(
        self,
        exporter: StoreSpanExporter,
        *,
        max_queue_size: int,
        export_batch_size: int,
        schedule_delay_ms: int,
        max_wait_s: float | None = None,
    ) -> None:
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.max_wait_s = max_wait_s
        self._marks: deque[tuple[int, float]] = deque()  # (spans ended, when), oldest first
        self._progress = (0, time.monotonic())  # (exporter.done, when it last moved)
        self.ended = 0
        self.dropped = 0
        self.failed_before = 0  # the exporter's failures before this process forked off
        self._failed_at_flush = 0  # the exporter's failures when flush last reported them
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
        if self.max_wait_s is not None and not self.ended % self.MARK_EVERY:
            self._keep_writer_ahead(self.max_wait_s)

    def _keep_writer_ahead(self, max_wait_s: float) -> None:
        now = time.monotonic()
        marks = self._marks
        marks.append((self.ended, now))
        done = self.exporter.done
        while marks and marks[0][0] <= done:
            marks.popleft()
        if done != self._progress[0]:
            self._progress = (done, now)
        if not marks or now - marks[0][1] <= max_wait_s or now - self._progress[1] > self.STUCK_S:
            return  # in time, or the writer is stuck (not slowed by us, the queue bound applies)
        target, until = marks[0][0], now + self.BACKPRESSURE_STEP_S
        while self.exporter.done < target and time.monotonic() < until and not self._closed:
            time.sleep(0.002)

    @property
    def pending(self) -> int:
        """Spans ended and accepted but not yet written or sent (nor counted failed)."""
        return max(self.ended - self.exporter.done, 0)

    @property
    def failed(self) -> int:
        """Spans the exporter finally could not write or send, in this process."""
        return self.exporter.failed - self.failed_before

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Hand over and write everything queued; False if a span failed since the last flush or is still held."""
        # The inner processor hands over what it queued; the exporter then writes what it holds.
        handed = self._inner.force_flush(timeout_millis)
        written = self.exporter.force_flush(timeout_millis)
        failed = self.exporter.failed
        clean = failed == self._failed_at_flush
        self._failed_at_flush = failed
        return handed and written and clean and not getattr(self.exporter, "held", 0)

    def at_fork_child(self) -> None:
        """The child counts only its own spans (OpenTelemetry's processor empties its own queue)."""
        reset = getattr(self.exporter, "at_fork_child", None)
        if reset is not None:
            reset()
        self.ended = self.exporter.done  # nothing of the parent's is pending here
        self.dropped = 0
        self._marks = deque()
        self._progress = (self.exporter.done, time.monotonic())
        self.failed_before = self._failed_at_flush = self.exporter.failed

    def shutdown(self) -> None:
        self._closed = True
        self._inner.shutdown()

    def before_fork(self) -> None:
        hook = getattr(self.exporter, "before_fork", None)
        if hook is not None:
            hook()

    def after_fork_in_parent(self) -> None:
        hook = getattr(self.exporter, "after_fork_in_parent", None)
        if hook is not None:
            hook()
