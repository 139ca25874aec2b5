"""The server's one writer: requests hand their columns over and wait; batches are group-committed.

Every OTLP request (HTTP or gRPC) decodes on its own thread or task, then `submit`s its columns
and waits for the returned future. One thread drains whatever has queued up, appends it in one
transaction (skipping spans already stored, so a re-sent request is stored once) and resolves
every waiting request's future. A request is answered only after its spans are in the file, so
a success tells the sender nothing can be lost any more. When more than `max_pending_spans` wait,
`submit` refuses at once (`Overloaded`), which the surfaces answer with 503 / RESOURCE_EXHAUSTED,
both of which OTLP senders retry.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from agenttrace.store import DuckDBStore

__all__ = ["Overloaded", "SpanWriter"]

logger = logging.getLogger("agenttrace")
_STOP = object()


class Overloaded(Exception):
    """Too many spans are waiting for the store; the sender should retry later."""


class SpanWriter:
    """Group-commits submitted span columns to the store on one thread (see the module docstring)."""

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

    def submit(self, columns: dict[str, list[Any]]) -> Future[int]:
        """Queue a request's spans; the future resolves once they are stored (or fails)."""
        n = len(columns["trace_id"])
        with self._lock:
            if self._closed:
                raise Overloaded("the server is shutting down; retry against its next start")
            if self.pending + n > self.max_pending_spans and self.pending:
                self.overloaded += n
                raise Overloaded(f"{self.pending} spans are waiting for the store; retry shortly")
            self.pending += n
        future: Future[int] = Future()
        self._queue.put((columns, future))
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
            size = len(item[0]["trace_id"])
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
                size += len(more[0]["trace_id"])
            self._write(items)
            if stop:
                return

    def _write(self, items: Sequence[tuple[dict[str, list[Any]], Future[int]]]) -> None:
        try:
            self._append([columns for columns, _ in items])
            outcomes: list[BaseException | None] = [None] * len(items)
        except Exception as exc:
            if len(items) == 1:
                outcomes = [exc]
            else:  # one bad request must not fail the others: write them one by one
                outcomes = []
                for columns, _ in items:
                    try:
                        self._append([columns])
                        outcomes.append(None)
                    except Exception as one:
                        outcomes.append(one)
        for (columns, future), outcome in zip(items, outcomes, strict=True):
            n = len(columns["trace_id"])
            with self._lock:
                self.pending -= n
                if outcome is not None:
                    self.failed += n
            if outcome is None:
                future.set_result(n)
            else:
                logger.warning("agenttrace server could not store %d spans: %s", n, outcome)
                future.set_exception(outcome)

    def _append(self, batches: Sequence[dict[str, list[Any]]]) -> None:
        merged = batches[0] if len(batches) == 1 else {k: [v for b in batches for v in b[k]] for k in batches[0]}
        total = len(merged["trace_id"])
        new = self.store.append_new_spans(merged)
        with self._lock:
            self.stored += new
            self.duplicates += total - new
