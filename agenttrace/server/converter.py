"""Turning OTLP bodies into Arrow batches, in this process or in worker processes.

Decoding and converting a request is Python work (about 15 us a span) that holds the interpreter
lock, so in one process it caps ingest at about one core. With workers, the server process only
reads bodies, hands them over and appends the tables that come back; a table travels as Arrow IPC
bytes, so nothing is pickled value by value. Workers are spawned, not forked: the server process
has threads (the writer, DuckDB's) that a fork would copy in an unknown state. Workers ignore
SIGINT and SIGTERM: Ctrl-C or a service manager signals the whole process group, and the server
stops its workers itself once the requests in flight are answered. A worker whose server died
without stopping it (killed, out of memory) notices within a second and exits.

If a worker dies, the pool is replaced and the request that met the broken pool is converted on
the new one. A body during which converters die twice in a row gets a retryable 503
(`ConverterUnavailable`), never a try in the server process, where a body that kills its
converter would take the server down with it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pyarrow as pa

from agenttrace.otel.ingest import IngestResult, convert_body
from agenttrace.store import DuckDBStore

__all__ = ["BodyConverter", "ConverterUnavailable"]

logger = logging.getLogger("agenttrace")
_START_TIMEOUT_S = 60.0  # spawning imports agenttrace: about a second, far more on a crowded machine


def _to_table(result: IngestResult) -> tuple[pa.Table | None, IngestResult]:
    table = DuckDBStore.batch_table(result.rows) if result.accepted else None
    result.rows = []  # the table holds them now
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


class ConverterUnavailable(Exception):
    """The converter process died converting this request; the sender should retry it."""


_started: Any = None  # in a worker: its pool's start barrier (see `_ready`)


def _init_worker(server_pid: int, started: Any) -> None:
    global _started
    _started = started
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_server, args=(server_pid,), name="agenttrace-server-watch", daemon=True).start()


def _exit_with_server(server_pid: int) -> None:
    # Ignoring SIGTERM means nothing else would end a worker whose server was killed outright.
    while True:
        time.sleep(1.0)
        if os.getppid() != server_pid:
            os._exit(0)


def _ready() -> None:
    """Submitted once per worker at start. Each waits at the barrier for the others, so every worker
    takes exactly one (a worker that finished starting first would otherwise take them all) and
    `wait_ready` returns when all of them can convert."""
    try:
        _started.wait(_START_TIMEOUT_S)
    except threading.BrokenBarrierError:
        pass  # a worker did not start: the first request renews the pool


class BodyConverter:
    """Converts bodies in-process (`workers=0`) or on a pool of `workers` processes."""

    def __init__(self, max_value_bytes: int, workers: int = 0) -> None:
        self.max_value_bytes = max_value_bytes
        self.workers = workers
        self.renewed = 0  # pools replaced after a worker died, for the health endpoint
        self._lock = threading.Lock()
        self._starting: list[Future[None]] = []  # one `_ready` per worker of the newest pool
        self._pool = self._new_pool() if workers > 0 else None

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(os.getpid(), context.Barrier(self.workers)),
        )
        self._starting = [pool.submit(_ready) for _ in range(self.workers)]
        return pool

    def wait_ready(self, timeout_s: float = _START_TIMEOUT_S) -> None:
        """Wait until the workers have started (spawning imports agenttrace: about a second each),
        so that the server answers its first request at full speed; a worker that fails to start is
        left to the first request, which renews the pool."""
        for started in self._starting:
            try:
                started.result(timeout_s)
            except Exception as exc:  # BrokenProcessPool, or a timeout on a crowded machine
                logger.warning("agenttrace server: a converter process did not start: %r", exc)
                return

    def _renew(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._pool is broken:  # the first request to find it broken replaces it, once
                logger.warning("agenttrace server: a converter process died; starting a new one")
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                self.renewed += 1
            return self._pool

    async def convert(self, body: bytes, is_json: bool) -> tuple[pa.Table | None, IngestResult]:
        """(the accepted spans as a batch table, or None; what was accepted, rejected or cut)."""
        if self._pool is None:
            return _to_table(convert_body(body, is_json, self.max_value_bytes))
        return await asyncio.get_running_loop().run_in_executor(None, self.convert_blocking, body, is_json)

    def convert_blocking(self, body: bytes, is_json: bool) -> tuple[pa.Table | None, IngestResult]:
        """`convert` for threads (gRPC's), waiting for the converter process."""
        pool = self._pool
        if pool is None:
            return _to_table(convert_body(body, is_json, self.max_value_bytes))
        for _ in range(2):  # the pool may have broken before this body reached it: one more try
            if pool is None:
                raise ConverterUnavailable("the server is shutting down; retry against its next start")
            try:
                ipc, result = pool.submit(_convert_to_ipc, body, is_json, self.max_value_bytes).result()
            except BrokenProcessPool:
                pool = self._renew(pool)
                continue
            return (None if ipc is None else pa.ipc.open_stream(ipc).read_all()), result
        raise ConverterUnavailable("converter processes died twice converting this request; retry it")

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
