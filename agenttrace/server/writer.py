"""The server's one writer: requests hand their spans over and wait; batches are group-committed.

Every OTLP request (HTTP or gRPC) is converted to an Arrow table (on its own thread or task, or in
a converter process), then `submit`ted; the request waits for the returned future. One thread
drains whatever has queued up, appends it in one transaction (skipping spans already stored, so a
re-sent request is stored once) and resolves every waiting request's future. A request is answered
only after its spans are in the file, so a success tells the sender nothing can be lost any more.
When more than `max_pending_spans` wait, `submit` refuses at once (`Overloaded`), which the
surfaces answer with 503 / RESOURCE_EXHAUSTED, both of which OTLP senders retry.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import pyarrow as pa

from agenttrace.store import DuckDBStore

__all__ = ["Overloaded", "SpanWriter"]

logger = logging.getLogger("agenttrace")
_STOP = object()


class Overloaded(Exception):
    """Too many spans are waiting for the store; the sender should retry later."""


class SpanWriter:
    """Group-commits submitted span batches to the store on one thread (see the module docstring)."""

    def __init__(self, store: DuckDBStore, *, max_pending_spans: int = 200_000, max_batch_spans: int = 50_000) -> None:
        self.store = store
        self.max_pending_spans = max_pending_spans
        self.max_batch_spans = max_batch_spans
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.pending = 0
        self.stored = 0
        self.duplicates = 0
        self.failed = 0
        self.overloaded = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="agenttrace-server-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: pa.Table) -> Future[int]:
        """Queue a request's spans (a `DuckDBStore.batch_table`); the future resolves once they are stored."""
        n = batch.num_rows
        with self._lock:
            if self._closed:
                raise Overloaded("the server is shutting down; retry against its next start")
            if self.pending + n > self.max_pending_spans and self.pending:
                self.overloaded += n
                raise Overloaded(f"{self.pending} spans are waiting for the store; retry shortly")
            self.pending += n
        future: Future[int] = Future()
        self._queue.put((batch, future))
        return future

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "pending": self.pending, "stored": self.stored, "duplicates": self.duplicates,
                "failed": self.failed, "refused_overloaded": self.overloaded,
            }  # fmt: skip

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        self.store.release()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            items = [item]
            size = item[0].num_rows
            stop = False
            while size < self.max_batch_spans:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                items.append(more)
                size += more[0].num_rows
            self._write(items)
            if stop:
                return

    def _write(self, items: Sequence[tuple[pa.Table, Future[int]]]) -> None:
        try:
            self._append([batch for batch, _ in items])
            outcomes: list[BaseException | None] = [None] * len(items)
        except Exception as exc:
            if len(items) == 1:
                outcomes = [exc]
            else:  # one bad request must not fail the others: write them one by one
                outcomes = []
                for batch, _ in items:
                    try:
                        self._append([batch])
                        outcomes.append(None)
                    except Exception as one:
                        outcomes.append(one)
        for (batch, future), outcome in zip(items, outcomes, strict=True):
            n = batch.num_rows
            with self._lock:
                self.pending -= n
                if outcome is not None:
                    self.failed += n
            if outcome is None:
                future.set_result(n)
            else:
                logger.warning("agenttrace server could not store %d spans: %s", n, outcome)
                future.set_exception(outcome)

    def _append(self, batches: Sequence[pa.Table]) -> None:
        merged = batches[0] if len(batches) == 1 else pa.concat_tables(batches)
        total = merged.num_rows
        new = self.store.append_new_spans(merged)
        with self._lock:
            self.stored += new
            self.duplicates += total - new
