"""The server's one writer: requests hand their spans over and wait; batches are group-committed.

Every OTLP request (HTTP or gRPC) is converted to an Arrow table (on its own thread or task, or in
a converter process), then `submit`ted; the request waits for the returned future. One thread
drains whatever has queued up, appends it in one transaction (skipping spans already stored, so a
re-sent request is stored once) and resolves every waiting request's future. A request is answered
only after its spans are in the file, so a success tells the sender nothing can be lost any more.
When more than `max_pending_spans` wait, `submit` refuses at once (`Overloaded`), which the
surfaces answer with 503 / RESOURCE_EXHAUSTED, both of which OTLP senders retry.

Spans the store refuses on their values (`BatchRejectedError`) are a different matter: sending
them again cannot help, so they are not an error of the request. The request's batch is halved
until the refused spans stand alone, the others are stored, and the future's `Stored` says how
many were refused and why; the surfaces answer 400 when all were, else a partial success.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple

import pyarrow as pa

from agenttrace.errors import BatchRejectedError
from agenttrace.store import DuckDBStore

__all__ = ["Overloaded", "SpanWriter", "Stored"]

logger = logging.getLogger("agenttrace")
_STOP = object()


class Overloaded(Exception):
    """Too many spans are waiting for the store; the sender should retry later."""


class Stored(NamedTuple):
    """What became of a submitted batch: every span stored except `refused` ones (with the reason)."""

    refused: int = 0
    reason: str = ""


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

    def submit(self, batch: pa.Table) -> Future[Stored]:
        """Queue a request's spans (a `DuckDBStore.batch_table`); the future resolves once they are stored."""
        n = batch.num_rows
        with self._lock:
            if self._closed:
                raise Overloaded("the server is shutting down; retry against its next start")
            if self.pending + n > self.max_pending_spans and self.pending:
                self.overloaded += n
                raise Overloaded(f"{self.pending} spans are waiting for the store; retry shortly")
            self.pending += n
        future: Future[Stored] = Future()
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

    def _write(self, items: Sequence[tuple[pa.Table, Future[Stored]]]) -> None:
        outcomes: list[Stored | BaseException]
        try:
            self._append([batch for batch, _ in items])
            outcomes = [Stored()] * len(items)
        except Exception as exc:
            if len(items) == 1 and not isinstance(exc, BatchRejectedError):
                outcomes = [exc]
            else:  # one bad request (or span) must not fail the others: write them one by one
                outcomes = [self._append_alone(batch) for batch, _ in items]
        for (batch, future), outcome in zip(items, outcomes, strict=True):
            n = batch.num_rows
            with self._lock:
                self.pending -= n
                if isinstance(outcome, BaseException):
                    self.failed += n
            if isinstance(outcome, BaseException):
                logger.warning("agenttrace server could not store %d spans: %s", n, outcome)
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _append_alone(self, batch: pa.Table) -> Stored | BaseException:
        """Append one request's batch; spans the store refuses on their values are left out and counted.

        Halving finds them at log2(batch) extra appends each, so one bad span costs itself only.
        """
        try:
            self._append([batch])
            return Stored()
        except BatchRejectedError as exc:
            if batch.num_rows == 1:
                return Stored(1, str(exc))
            middle = batch.num_rows // 2
            first, second = self._append_alone(batch.slice(0, middle)), self._append_alone(batch.slice(middle))
            for part in (first, second):
                if isinstance(part, BaseException):
                    return part  # the store itself failed: the sender retries, stored spans are skipped
            assert isinstance(first, Stored) and isinstance(second, Stored)
            return Stored(first.refused + second.refused, first.reason or second.reason)
        except Exception as exc:
            return exc

    def _append(self, batches: Sequence[pa.Table]) -> None:
        merged = batches[0] if len(batches) == 1 else pa.concat_tables(batches)
        total = merged.num_rows
        new = self.store.append_new_spans(merged)
        with self._lock:
            self.stored += new
            self.duplicates += total - new
