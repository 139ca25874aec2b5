"""The metric buffer: log_metric appends to memory; batches reach the store through Arrow.

A training loop logs metrics far faster than a transaction per value allows, so `log_metric`
only validates and appends a tuple under a lock (about a microsecond). Buffered rows are written
as one Arrow batch per store when the buffer reaches FLUSH_ROWS (by the logging thread, which
gives back-pressure), every FLUSH_INTERVAL_S (by a daemon thread), when a run ends, before any
read of runs in this process, and at interpreter exit. A batch the store refuses to take is put
back at the front and retried, so a logged metric is never dropped; explicit flushes (end_run,
reads) raise the store's error, the background one logs it once.

The buffer belongs to the process that created it: a forked child starts with an empty one
(the parent still owns and writes the rows it had), and its own flusher thread.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import pyarrow as pa

from agenttrace import _forks
from agenttrace.errors import AgentTraceError
from agenttrace.store import DuckDBStore
from agenttrace.store._tracking import METRIC_SCHEMA

logger = logging.getLogger("agenttrace")

__all__ = ["FLUSH_INTERVAL_S", "FLUSH_ROWS", "MetricBuffer", "buffer_for", "flush_all"]

FLUSH_ROWS = 100_000
FLUSH_INTERVAL_S = 1.0

Row = tuple[str, str, float, int, int]


class MetricBuffer:
    """Metric rows waiting for one store; append from any thread."""

    __slots__ = ("store", "_rows", "_lock", "_write_lock")

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self._rows: list[Row] = []
        self._lock = threading.Lock()  # guards _rows
        self._write_lock = threading.Lock()  # one flush at a time, so batches keep their order

    def add(self, row: Row) -> None:
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= FLUSH_ROWS
        if full:
            self.flush()

    def add_many(self, rows: list[Row]) -> None:
        with self._lock:
            self._rows.extend(rows)
            full = len(self._rows) >= FLUSH_ROWS
        if full:
            self.flush()

    def __len__(self) -> int:
        return len(self._rows)

    def flush(self) -> int:
        """Write every buffered row; on failure they go back to the front and the error is raised."""
        with self._write_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            try:
                self.store.append_metrics(_to_arrow(rows))
            except BaseException:
                with self._lock:
                    self._rows[:0] = rows
                raise
            return len(rows)


def _to_arrow(rows: list[Row]) -> pa.Table:
    run_ids, keys, values, steps, stamps = zip(*rows, strict=True)
    return pa.Table.from_arrays(
        [
            pa.array(run_ids, pa.string()),
            pa.array(keys, pa.string()),
            pa.array(values, pa.float64()),
            pa.array(steps, pa.int64()),
            pa.array(stamps, pa.int64()),
        ],
        schema=METRIC_SCHEMA,
    )


_buffers: dict[str, MetricBuffer] = {}
_registry_lock = threading.Lock()
_flusher: threading.Thread | None = None
_owner_pid = os.getpid()
_wake = threading.Event()


def buffer_for(store: DuckDBStore) -> MetricBuffer:
    """The buffer of a store file in this process, created (with the flusher) on first use."""
    key = str(store.path)
    found = _buffers.get(key)
    if found is not None:
        return found
    global _flusher
    with _registry_lock:
        found = _buffers.get(key)
        if found is None:
            found = _buffers[key] = MetricBuffer(store)
        if _flusher is None:
            _flusher = threading.Thread(target=_flush_loop, name="agenttrace-metrics", daemon=True)
            _flusher.start()
    return found


def flush_all(raise_errors: bool = True) -> None:
    """Write what every buffer holds (before reads, at run end and exit)."""
    failure: BaseException | None = None
    for buffer in list(_buffers.values()):
        try:
            buffer.flush()
        except AgentTraceError as exc:
            failure = failure or exc
    if failure is not None and raise_errors:
        raise failure


def _flush_loop() -> None:
    warned = False
    while not _wake.wait(FLUSH_INTERVAL_S):
        for buffer in list(_buffers.values()):
            if not len(buffer):
                continue
            try:
                buffer.flush()
            except Exception as exc:  # kept in the buffer; the next flush retries
                if not warned:
                    logger.warning("agenttrace could not write metrics yet (kept, will retry): %s", exc)
                    warned = True


def _forget_in_child() -> None:
    global _flusher, _owner_pid, _registry_lock
    _buffers.clear()
    _flusher = None
    _owner_pid = os.getpid()
    _registry_lock = threading.Lock()


def buffered_rows() -> dict[str, Any]:
    """Rows waiting per store path (for tests and `status`)."""
    return {key: len(buffer) for key, buffer in _buffers.items()}


_forks.at_fork(after_in_child=_forget_in_child)  # the one fork mechanism (agenttrace._forks)
