"""Opening the store: the file is held only while batches are being written or a query runs.

DuckDB lets one process write a file, and that process excludes every other. So each query opens
the file, does its work and closes it; an open that meets another process's lock is retried with
a short growing sleep until `lock_timeout_s`. Writers may ask to *hold* the connection: during a
burst of batches it stays open (closing it checkpoints the file, which costs more than the write),
and a closer thread releases it once writes pause for IDLE_CLOSE_S or it has been held for
MAX_HOLD_S, so readers in other processes get in within their retry window. Inside one process, a lock serialises
the exporter thread and user queries, so DuckDB never sees two configurations of one file.
The first open in a process checks the file (magic bytes, schema version) read-only and only then
migrates, so a foreign file or a newer store is refused untouched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from agenttrace.errors import NotAStoreError, SchemaTooNewError, StoreError, StoreLockedError
from agenttrace.store import _encryption, _schema

_DUCKDB_MAGIC = b"DUCK"
IDLE_CLOSE_S = 0.25
MAX_HOLD_S = 2.0
_process_lock = threading.RLock()
_prepared: set[str] = set()


@dataclass(slots=True)
class _Held:
    con: duckdb.DuckDBPyConnection
    opened: float
    last_used: float


_held: dict[str, _Held] = {}
_cooldown_until: dict[str, float] = {}
_closer: threading.Thread | None = None
# After a hold reaches MAX_HOLD_S, the writer waits this long before holding again, so a reader
# in another process (retrying every few ms) is sure to get a turn.
COOLDOWN_S = 0.2


def _is_lock_error(exc: duckdb.Error) -> bool:
    return "lock" in str(exc).lower()


def _check_magic(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            header = fh.read(12)
    except OSError as exc:
        raise StoreError(f"cannot read store {path}: {exc.strerror}; check the path and its permissions") from exc
    if len(header) == 0:
        return  # an empty file: DuckDB initialises it
    if header[8:12] != _DUCKDB_MAGIC:
        raise NotAStoreError(
            f"{path} is not a DuckDB database file; point the store elsewhere "
            "(configure(store=...) or AGENTTRACE_STORE) - the file was left untouched"
        )


def _open(path: Path, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    while True:
        try:
            return _encryption.connect(path, read_only=read_only)
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                if "not a valid DuckDB database" in str(exc):
                    raise NotAStoreError(f"{path} is not a DuckDB database file; the file was left untouched") from exc
                raise StoreError(f"cannot open store {path}: {exc}") from exc
            if time.monotonic() >= deadline:
                raise StoreLockedError(
                    f"store {path} stayed locked by another process for {timeout_s:.0f}s ({exc}); "
                    "stop that process, use `agenttrace server` to share one store, or raise lock_timeout_s"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _prepare(path: Path, timeout_s: float) -> None:
    """Refuse foreign or newer files read-only, then create or migrate."""
    if path.exists():
        _check_magic(path)
        con = _open(path, read_only=True, timeout_s=timeout_s)
        try:
            version = _schema.current_version(con)
            if version > _schema.LATEST_VERSION:
                raise SchemaTooNewError(
                    f"store {path} has schema version {version}, newer than this agenttrace understands "
                    f"({_schema.LATEST_VERSION}); upgrade agenttrace - the file was left untouched"
                )
            if version == _schema.LATEST_VERSION:
                _check_columns(path, con)
                return
        finally:
            con.close()
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create folder for store {path}: {exc.strerror}") from exc
    con = _open(path, read_only=False, timeout_s=timeout_s)
    try:
        _schema.apply_pending(con, time.time_ns())
        _check_columns(path, con)
    except duckdb.Error as exc:
        raise StoreError(f"cannot initialise store {path}: {exc}") from exc
    finally:
        con.close()


def _check_columns(path: Path, con: duckdb.DuckDBPyConnection) -> None:
    problems = _schema.column_mismatches(con)
    if problems:
        raise StoreError(
            f"store {path} does not match the columns this agenttrace declares ({'; '.join(problems)}); "
            "a column was added to agenttrace.schema without a migration, or the file was changed by hand"
        )


@contextmanager
def connect(
    path: Path, *, read_only: bool, timeout_s: float, hold: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the store for one unit of work; with `hold`, keep it open for the next batch."""
    key = str(path.resolve())
    if hold:
        wait = _cooldown_until.get(key, 0.0) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    with _process_lock:
        held = _held.get(key)
        if held is not None:
            held.last_used = time.monotonic()
            yield held.con
            return
        if key not in _prepared or not path.exists():
            if read_only and not path.exists():
                raise StoreError(f"no store at {path}; run traced code first or point to the right file")
            _prepare(path, timeout_s)
            _prepared.add(key)
        con = _open(path, read_only=read_only and not hold, timeout_s=timeout_s)
        if hold:
            # One DuckDB thread for background writes: with two, DuckDB takes both cores of a
            # small machine from the traced program (measured: its loop ran at 36% vs 70%).
            con.execute("SET threads = 1")
            # Checkpoint only when the hold ends (MAX_HOLD_S bounds the WAL to seconds of writes),
            # not at every 16 MB too: a checkpoint rewrites the whole `traces` key index, so it
            # costs in proportion to the store (measured: 29 -> 20 us/span at 600,000 spans).
            con.execute("SET checkpoint_threshold = '1GB'")
            now = time.monotonic()
            _held[key] = _Held(con, now, now)
            _start_closer()
            yield con
            return
        try:
            yield con
        finally:
            con.close()


def _start_closer() -> None:
    global _closer
    if _closer is None:
        _closer = threading.Thread(target=_close_idle_loop, name="agenttrace-store-closer", daemon=True)
        _closer.start()


def _close_idle_loop() -> None:
    while True:
        time.sleep(IDLE_CLOSE_S / 4)
        with _process_lock:
            now = time.monotonic()
            for key, held in list(_held.items()):
                if now - held.opened >= MAX_HOLD_S:
                    _close_held(key)
                    _cooldown_until[key] = now + COOLDOWN_S
                elif now - held.last_used >= IDLE_CLOSE_S:
                    _close_held(key)
            if not _held:
                global _closer
                _closer = None  # under the lock: a hold taken after this starts a new closer
                return


def _close_held(key: str) -> None:
    held = _held.pop(key)
    try:
        held.con.close()
    except duckdb.Error:
        pass  # closing checkpoints; a failure leaves the WAL, which the next open replays


def release(path: Path | None = None) -> None:
    """Close held connections now (at shutdown, so the file is checkpointed and free)."""
    with _process_lock:
        for key in list(_held):
            if path is None or key == str(path.resolve()):
                _close_held(key)


def forget_prepared() -> None:
    """Forget which files were checked (tests replace files between cases)."""
    with _process_lock:
        release()
        _prepared.clear()
