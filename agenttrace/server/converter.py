"""Turning OTLP/HTTP bodies into Arrow batches, in this process or in worker processes.

Decoding and converting a request is Python work (about 15 us a span) that holds the interpreter
lock, so in one process it caps ingest at about one core. With workers, the server process only
reads bodies, hands them over and appends the tables that come back; a table travels as Arrow IPC
bytes, so nothing is pickled value by value. Workers are spawned, not forked: the server process
has threads (the writer, DuckDB's) that a fork would copy in an unknown state. If a worker dies,
the pool is dropped with a warning and conversion goes on in this process.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pyarrow as pa

from agenttrace.otel.ingest import IngestResult, convert_body
from agenttrace.store import DuckDBStore

__all__ = ["BodyConverter"]

logger = logging.getLogger("agenttrace")


def _to_table(result: IngestResult) -> tuple[pa.Table | None, IngestResult]:
    table = DuckDBStore.batch_table(result.columns) if result.accepted else None
    result.columns = {}  # the table holds them now
    return table, result


def _convert_to_ipc(body: bytes, is_json: bool, max_value_bytes: int) -> tuple[bytes | None, IngestResult]:
    """Runs in a worker: the batch as Arrow IPC stream bytes, and the counts for partial_success."""
    table, result = _to_table(convert_body(body, is_json, max_value_bytes))
    if table is None:
        return None, result
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return sink.getvalue().to_pybytes(), result


def _ready() -> None:
    """Submitted once per worker at start, so the first request does not wait for a spawn."""


class BodyConverter:
    """Converts bodies in-process (`workers=0`) or on a pool of `workers` processes."""

    def __init__(self, max_value_bytes: int, workers: int = 0) -> None:
        self.max_value_bytes = max_value_bytes
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            for _ in range(workers):
                self._pool.submit(_ready)

    async def convert(self, body: bytes, is_json: bool) -> tuple[pa.Table | None, IngestResult]:
        """(the accepted spans as a batch table, or None; what was accepted, rejected or cut)."""
        pool = self._pool
        if pool is None:
            return _to_table(convert_body(body, is_json, self.max_value_bytes))
        try:
            ipc, result = await asyncio.get_running_loop().run_in_executor(
                pool, _convert_to_ipc, body, is_json, self.max_value_bytes
            )
        except BrokenProcessPool:
            logger.warning("agenttrace server: a converter process died; converting in the server process from now on")
            self._pool = None
            return _to_table(convert_body(body, is_json, self.max_value_bytes))
        return (None if ipc is None else pa.ipc.open_stream(ipc).read_all()), result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
