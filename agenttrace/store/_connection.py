"""Opening the store: the file is held only while batches are being written or a query runs.

DuckDB lets one process write a file, and that process excludes every other. So each query opens
the file, does its work and closes it; an open that meets another process's lock is retried with
a short growing sleep until `lock_timeout_s`. Writers may ask to *hold* the connection: while
batches keep coming it stays open (closing it checkpoints the file, which costs more than the write
and grows with the store), and a closer thread releases it once writes pause for IDLE_CLOSE_S (LULL_S
when the WAL holds much), or
at once when another process rings, or after MAX_HOLD_S in any case. Ringing: an open that meets
another process's lock touches `<store>.wait`; the holder's closer sees the file's time differ
from what it was when the hold began within _CLOSER_TICK_S and lets go, so a reader waits for one checkpoint,
not for the hold to run out (MAX_HOLD_S still bounds the wait of a reader that cannot ring: an
older agenttrace, or a folder it may not write). Inside one process, a lock serialises the
exporter thread and user queries, so DuckDB never sees two configurations of one file.
The first open in a process checks the file (magic bytes, schema version) read-only and only then
migrates, so a foreign file or a newer store is refused untouched.

Everything the process holds (held connections, the lock, the closer thread) is one `_Connections`
object that knows its pid. Before a fork the parent takes the lock (so no write is half done) and
closes what it holds, so the child inherits no DuckDB connection: closing one there would join
threads that exist only in the parent (SIGSEGV at exit), and writing through it would bypass the file
lock. The child starts with a fresh object. At shutdown the closer thread is stopped and joined, so
no thread of ours still references a connection while the interpreter tears down (DuckDB aborts the
process if a database is destroyed from a thread that outlives finalisation).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

from agenttrace import _forks
from agenttrace.errors import NotAStoreError, SchemaTooNewError, StoreError, StoreLockedError
from agenttrace.store import _encryption, _schema

T = TypeVar("T")
_DUCKDB_MAGIC = b"DUCK"
# A checkpoint rewrites the `traces` key index, so it costs in proportion to the store: after a
# 1,000-span batch about 0.2 s at 200,000 traces, 0.45-0.9 s at a million (benchmarks/checkpoint_cost.py).
# Another agenttrace process gets in by ringing, within one checkpoint, however long the hold, so
# holds are long: writes that pause for less than IDLE_CLOSE_S share one hold, and one checkpoint a
# minute at most is paid under steady writes (with 1.5 s and 5 s, a program writing 20 traces a
# second into a store of a million traces paid 12 checkpoints a minute and twice the CPU per call).
# MAX_HOLD_S also bounds the wait of a reader that cannot ring; the WAL is bounded by size (below).
IDLE_CLOSE_S = 10.0
MAX_HOLD_S = 60.0
# A writer that has put this much in the WAL lets go in a pause of LULL_S already (see _idle_enough).
LULL_S = 1.5
LULL_WAL_BYTES = 16 << 20
WAL_CHECKPOINT_AT = "128MB"  # DuckDB's checkpoint_threshold on a held connection (see `connect`)
# After a hold ends for a waiting process, the writer waits this long before holding again, so
# that process (retrying every few ms) is sure to get a turn.
COOLDOWN_S = 0.2
_BELL_SUFFIX = ".wait"  # `<store>.wait`: touched by a process waiting for the file's lock
_CLOSER_TICK_S = 0.06  # how often the closer looks at the clock and the bell
_CLOSER_JOIN_S = 1.5  # how long a release waits for the stopped closer thread to end
# Files checked (magic, schema version, columns) in this process, by path and inode: a file swapped
# in by another process (`agenttrace store restore`, `encrypt`, `rekey`) is a new inode, checked again.
_prepared: set[str] = set()
# DuckDB's own words for a file another process holds; nothing else is a lock (a path or a corrupt
# block merely containing "lock" is not).
_LOCK_MESSAGES = ("could not set lock on file", "conflicting lock is held")


@dataclass(slots=True)
class _Held:
    con: duckdb.DuckDBPyConnection
    opened: float
    last_used: float
    bell: int | None  # the bell file's time when the hold began (None: no bell yet); a change is a ring


class _Connections:
    """The connections one process holds, the lock that serialises them and their closer thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.held: dict[str, _Held] = {}
        self.cooldown_until: dict[str, float] = {}
        self.closer: threading.Thread | None = None
        self.closer_stop = threading.Event()  # set by release(): the closer ends now
        self.abandon = threading.Event()  # set at exit: opens waiting for a lock give up
        self.forking = False  # the before-fork hook took the lock


_state = _Connections()


def _is_lock_error(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return any(message in text for message in _LOCK_MESSAGES)


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


def retry_while_locked(path: Path, timeout_s: float, attempt: Callable[[], T], advice: str) -> T:
    """`attempt()`, retried with a short growing sleep while another process holds the file's lock.

    Any other DuckDB error is raised as it came; a lock that outlasts `timeout_s` (or the exit,
    which abandons lock waits) is a StoreLockedError ending with `advice`.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    rang = True  # until a ring fails: only then does the error say why the holder did not let go
    while True:
        try:
            return attempt()
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() >= deadline or _state.abandon.is_set():
                unheard = "" if rang else f"; {_unheard(path)}"
                raise StoreLockedError(
                    f"store {path} stayed locked by another process for {timeout_s:.0f}s ({exc}); {advice}{unheard}"
                ) from exc
            rang = _ring(path)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _open(path: Path, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    advice = "stop that process, use `agenttrace server` to share one store, or raise lock_timeout_s"
    try:
        return retry_while_locked(path, timeout_s, lambda: _encryption.connect(path, read_only=read_only), advice)
    except duckdb.Error as exc:
        if "not a valid DuckDB database" in str(exc):
            raise NotAStoreError(f"{path} is not a DuckDB database file; the file was left untouched") from exc
        raise StoreError(f"cannot open store {path}: {exc}") from exc


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
    state = _state
    if hold:
        wait = state.cooldown_until.get(key, 0.0) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    with state.lock:
        held = state.held.get(key)
        if held is not None:
            held.last_used = time.monotonic()
            yield held.con
            return
        checked = _file_identity(key)
        if checked is None or checked not in _prepared:
            if read_only and checked is None:
                raise StoreError(f"no store at {path}; run traced code first or point to the right file")
            _prepare(path, timeout_s)
            _prepared.add(_file_identity(key) or key)
        con = _open(path, read_only=read_only and not hold, timeout_s=timeout_s)
        if hold:
            # One DuckDB thread for background writes: with two, DuckDB takes both cores of a
            # small machine from the traced program (measured: its loop ran at 36% vs 70%).
            con.execute("SET threads = 1")
            # Checkpoint when the hold ends, or when the WAL passes 128 MB (about 400,000 small
            # spans: a server ingesting at full speed for ten seconds), not at every 16 MB: a
            # checkpoint rewrites the whole `traces` key index, so it costs in proportion to the store
            # (measured: 29 -> 20 us/span at 600,000 spans). The WAL bound also bounds what a long
            # hold keeps in memory and what the next open replays after a crash.
            con.execute(f"SET checkpoint_threshold = '{WAL_CHECKPOINT_AT}'")
            now = time.monotonic()
            state.held[key] = _Held(con, now, now, _bell_time(key))
            _start_closer(state)
            yield con
            return
        try:
            yield con
        finally:
            con.close()


def _start_closer(state: _Connections) -> None:
    if state.closer is None:
        state.closer_stop = threading.Event()
        state.closer = threading.Thread(
            target=_close_idle_loop, args=(state, state.closer_stop), name="agenttrace-store-closer", daemon=True
        )
        state.closer.start()


def _close_idle_loop(state: _Connections, stop: threading.Event) -> None:
    while not stop.wait(_CLOSER_TICK_S):
        with state.lock:
            if stop.is_set():
                return  # release() closed everything and let this closer go
            now = time.monotonic()
            # Keys only, never a _Held in a local: a reference left here would keep a connection
            # alive past shutdown while this daemon thread sleeps.
            for key in list(state.held):
                if now - state.held[key].opened >= MAX_HOLD_S or _bell_time(key) != state.held[key].bell:
                    _close_held(state, key)
                    state.cooldown_until[key] = now + COOLDOWN_S
                elif _idle_enough(now - state.held[key].last_used, key):
                    _close_held(state, key)
            if not state.held:
                state.closer = None  # under the lock: a hold taken after this starts a new closer
                return


def _idle_enough(idle_s: float, key: str) -> bool:
    """Whether a hold idle this long should end: after IDLE_CLOSE_S, or already after LULL_S when
    the WAL holds LULL_WAL_BYTES or more (a heavy writer checkpoints in its lulls, as when holds
    were short, rather than inside its next busy stretch at the WAL's size bound)."""
    if idle_s >= IDLE_CLOSE_S:
        return True
    if idle_s < LULL_S:
        return False
    try:
        return os.stat(key + ".wal").st_size >= LULL_WAL_BYTES
    except OSError:
        return False


def _file_identity(key: str) -> str | None:
    """`path:inode` of the file now, or None when there is no file."""
    try:
        return f"{key}:{os.stat(key).st_ino}"
    except OSError:
        return None


def _unheard(path: Path) -> str:
    return (
        f"this process could not ask the holder to let go (it may not write {_bell_of(path)}); an agenttrace "
        f"writer lets go {IDLE_CLOSE_S:g} s after its last write and after {MAX_HOLD_S:g} s at most, so raise "
        "lock_timeout_s or let this user write that folder"
    )


def _bell_of(path: Path) -> Path:
    return Path(str(path.resolve()) + _BELL_SUFFIX)  # the holder looks next to the resolved path


def _ring(path: Path) -> bool:
    """Ask the process holding `path` to let go (see the module docstring); False if we could not."""
    bell = _bell_of(path)
    try:
        os.utime(bell)
    except FileNotFoundError:
        try:
            bell.touch()
        except OSError:
            return False  # a folder we may not write: the holder lets go after MAX_HOLD_S anyway
    except OSError:
        return False  # another user's bell
    return True


def _bell_time(key: str) -> int | None:
    # Compared with itself only, never with our clock: a clock stepped back, or a file server's own
    # clock, would otherwise read as a ring at every tick (or never).
    try:
        return os.stat(key + _BELL_SUFFIX).st_mtime_ns
    except OSError:
        return None


def _close_held(state: _Connections, key: str) -> None:
    con = state.held.pop(key).con
    try:
        con.close()
    except duckdb.Error:
        pass  # closing checkpoints; a failure leaves the WAL, which the next open replays


def release(path: Path | None = None, *, wait_s: float | None = None) -> bool:
    """Close held connections now (at shutdown, so the file is checkpointed and free).

    With `wait_s`, give up after that long if another thread keeps the store busy (a write stuck
    on another process's lock at exit); returns whether the connections were released.
    """
    state = _state
    if not state.lock.acquire(timeout=-1 if wait_s is None else wait_s):
        # The process is exiting with a write still running on another thread: never let the
        # interpreter's teardown destroy a connection in use (DuckDB would abort the process).
        for held in list(state.held.values()):
            _leak(held.con)
        return False
    try:
        for key in list(state.held):
            if path is None or key == str(path.resolve()):
                _close_held(state, key)
        closer = state.closer if not state.held else None
        if closer is not None:
            state.closer = None
            state.closer_stop.set()
    finally:
        state.lock.release()
    if closer is not None and closer is not threading.current_thread():
        # Not longer: a caller that holds the lock (maintenance) has the closer wait on it.
        closer.join(_CLOSER_JOIN_S)
    return True


def abandon_lock_waits() -> None:
    """Make opens waiting for another process's lock give up now (the program is exiting)."""
    _state.abandon.set()


def forget_prepared() -> None:
    """Forget which files were checked (tests replace files between cases)."""
    with _state.lock:
        release()
        _prepared.clear()
        _state.abandon.clear()


def _before_fork() -> None:
    state = _state
    if state.pid != os.getpid() or not state.lock.acquire(timeout=_forks.FORK_WAIT_S):
        return
    state.forking = True
    for key in list(state.held):
        _close_held(state, key)


def _after_fork_in_parent() -> None:
    state = _state
    if state.forking:
        state.forking = False
        state.lock.release()


def _after_fork_in_child() -> None:
    global _state
    inherited, _state = _state, _Connections()
    # A DuckDB database must never be destroyed in a forked child: its destructor joins worker
    # threads that exist only in the parent (SIGSEGV). So the connections the parent could not close
    # before the fork (a write outlived FORK_WAIT_S) and DuckDB's module-level default connection
    # (made at `import duckdb`, destroyed when the interpreter clears modules) are leaked on purpose.
    for held in inherited.held.values():
        _leak(held.con)
    _leak(duckdb.default_connection())


def _leak(obj: object) -> None:
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


_forks.at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
