"""Backup, restore, check, compact and re-keying: whole-file work on a store.

Nothing is ever written over a store or a backup in place: each operation builds a new file
beside its target, checks it, and only then renames it over the target. A crash or a failed check
leaves the target as it was and at worst a stray temporary file.

Backup is a checkpointed copy, not `EXPORT DATABASE` to Parquet. Holding the store's shared lock
(so no writer is mid-transaction), it copies the file's bytes and those of its WAL; then, with the
store free again, it opens the copy, which replays the WAL and is checkpointed into one file, reads
every row of it (DuckDB checks each block's checksum) and compares the row counts taken under the
lock. So writers wait only for a file copy, and the snapshot is one consistent state. The copy also
keeps what Parquet would lose: the encryption (a backup of an encrypted store is encrypted with the
same key, where Parquet would be plain text), keys, constraints and sequences exactly; it is
restored the same way and `check` reads it like any store. Its price: it is readable by DuckDB
versions that read this storage format (every later one does), and it is not compacted.

Restore stages the backup's bytes the same way, while holding the store's exclusive lock from the
"is the store newer than the backup?" check until the rename. Compact, encrypt, decrypt and rekey
rewrite the store with `COPY FROM DATABASE` into a fresh file (which is what gives space back or
changes the key), verify every table's row count and row hashes against the source, and swap, all
under the store's exclusive lock, so no write can land in the old file once the copy has begun;
writers in other processes wait for the whole rewrite.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb

from agenttrace.errors import SchemaTooNewError, StoreError
from agenttrace.store import _connection, _encryption, _schema

__all__ = ["RetentionSchedule", "backup", "check", "restore", "rewrite_in_place", "unique_backup_path"]

logger = logging.getLogger("agenttrace")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _attach_retrying(
    con: duckdb.DuckDBPyConnection, path: Path, alias: str, key: str | None, read_only: bool, timeout_s: float
) -> None:
    """Attach, waiting for another process's lock as a store open does."""
    try:
        _connection.retry_while_locked(
            path, timeout_s, lambda: _encryption.attach(con, path, alias, key, read_only),
            "try again when it pauses, or raise lock_timeout_s",
        )  # fmt: skip
    except duckdb.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc


def _tables(con: duckdb.DuckDBPyConnection, alias: str) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND NOT temporary ORDER BY table_name", [alias]
    ).fetchall()
    return [r[0] for r in rows]


def fingerprint(con: duckdb.DuckDBPyConnection, alias: str) -> dict[str, tuple[int, int]]:
    """Per table: (rows, XOR of every row's hash). Reads every column of every row."""
    result = {}
    for table in _tables(con, alias):
        row = con.execute(
            f"SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM {alias}.{_quote_ident(table)} AS t"
        ).fetchone()
        result[table] = (int(row[0]), int(row[1])) if row else (0, 0)
    return result


def latest_write_ns(con: duckdb.DuckDBPyConnection, alias: str) -> int:
    """The newest time recorded anywhere in the store: every BIGINT column named *_ns, every table."""
    columns = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = ? "
        "AND data_type = 'BIGINT' AND column_name LIKE '%\\_ns' ESCAPE '\\'",
        [alias],
    ).fetchall()
    latest = 0
    for table, column in columns:
        row = con.execute(f"SELECT max({_quote_ident(column)}) FROM {alias}.{_quote_ident(table)}").fetchone()
        if row and row[0] is not None:
            latest = max(latest, int(row[0]))
    return latest


def _schema_version(con: duckdb.DuckDBPyConnection, alias: str) -> int:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = 'schema_migrations'", [alias]
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = con.execute(f"SELECT coalesce(max(version), 0) FROM {alias}.schema_migrations").fetchone()
    return int(row[0]) if row else 0


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    for stale in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


@contextlib.contextmanager
def _exclusive(paths: list[Path]) -> Iterator[None]:
    """Keep this process's own connections off the files for the whole operation."""
    # The connection layer's per-process lock: threads of this process (a server's writer) wait
    # instead of opening the file, which DuckDB's file lock would not stop within one process.
    with _connection._state.lock:
        for path in paths:
            _connection.release(path)
        try:
            yield
        finally:
            _connection.forget_prepared()  # a swapped file may have another schema version: check it again


def _tmp_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{os.getpid()}")


def _swap(tmp: Path, target: Path) -> None:
    """Rename the finished file over the target, durably."""
    _fsync(tmp)
    _remove(target.with_name(target.name + ".wal"))  # a WAL beside the target belongs to the old file
    os.replace(tmp, target)
    with contextlib.suppress(OSError):
        _fsync(target.parent)


def _check_same(found: dict[str, tuple[int, int]], expected: dict[str, Any], target: Path, rows_only: bool) -> None:
    def seen(t: str, v: dict[str, Any]) -> Any:
        value = v.get(t)
        return value[0] if rows_only and value is not None else value

    differing = sorted(t for t in set(found) | set(expected) if seen(t, found) != seen(t, expected))
    if differing:
        raise StoreError(f"the copy for {target} differs from its source in {', '.join(differing)}; kept the old")


def _copy_verified(
    con: duckdb.DuckDBPyConnection, source_alias: str, target: Path, key: str | None
) -> dict[str, tuple[int, int]]:
    """Rewrite the attached source into a new file beside `target` (compact), verify it, rename it over `target`."""
    tmp = _tmp_beside(target)
    _remove(tmp)
    try:
        _encryption.attach(con, tmp, "fresh", key, read_only=False)
        con.execute(f"COPY FROM DATABASE {source_alias} TO fresh")
        con.execute("DETACH fresh")  # checkpoints: the copy is whole on disk, with no WAL
        expected = fingerprint(con, source_alias)
        _encryption.attach(con, tmp, "fresh", key, read_only=True)
        try:
            found = fingerprint(con, "fresh")
        finally:
            con.execute("DETACH fresh")
        _check_same(found, expected, target, rows_only=False)
        _swap(tmp, target)
        return expected
    finally:
        _remove(tmp)


def _stage_bytes(source: Path, target: Path) -> Path:
    """The source file's bytes (and its WAL's) beside `target`; the caller holds the source's lock."""
    tmp = _tmp_beside(target)
    _remove(tmp)
    shutil.copyfile(source, tmp)
    wal = source.with_name(source.name + ".wal")
    if wal.exists():  # writes not yet checkpointed: the copy replays them when it is opened
        shutil.copyfile(wal, tmp.with_name(tmp.name + ".wal"))
    return tmp


def _finish_staged(
    con: duckdb.DuckDBPyConnection, tmp: Path, key: str | None, rows: dict[str, int], target: Path
) -> dict[str, tuple[int, int]]:
    """Open the staged copy (replaying its WAL), checkpoint it, read every row, compare the row counts."""
    _encryption.attach(con, tmp, "fresh", key, read_only=False)
    try:
        con.execute("CHECKPOINT fresh")
        found = fingerprint(con, "fresh")  # reads every block, so DuckDB checks every block's checksum
    finally:
        con.execute("DETACH fresh")
    _check_same(found, {t: (n, 0) for t, n in rows.items()}, target, rows_only=True)
    return found


def _row_counts(con: duckdb.DuckDBPyConnection, alias: str) -> dict[str, int]:
    counts = {}
    for table in _tables(con, alias):
        row = con.execute(f"SELECT count(*) FROM {alias}.{_quote_ident(table)}").fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def _memory(*keys: str | None) -> duckdb.DuckDBPyConnection:
    return _encryption.memory_connection(load_httpfs=any(k is not None for k in keys))


def unique_backup_path(folder: Path, store: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return folder / f"{store.stem}-{stamp}{store.suffix or '.duckdb'}"


def backup(store: Path, key: str | None, dest: Path, timeout_s: float) -> dict[str, tuple[int, int]]:
    """A consistent copy of `store` at `dest` (encrypted with the same key); per-table fingerprints.

    The store's shared lock is held only while its bytes are copied (writers wait that long); the
    copy is then opened, checkpointed and read in full without holding the store.
    """
    if not store.exists():
        raise StoreError(f"no store at {store}; nothing to back up")
    if dest.resolve() == store.resolve():
        raise StoreError(f"{dest} is the store itself; back it up to another file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(dest)
    try:
        with _exclusive([store]):
            con = _memory(key)
            try:
                _attach_retrying(con, store, "src", key, read_only=True, timeout_s=timeout_s)
                rows = _row_counts(con, "src")
                _stage_bytes(store, dest)
                con.execute("DETACH src")
            finally:
                con.close()
        con = _memory(key)
        try:
            found = _finish_staged(con, tmp, key, rows, dest)
        finally:
            con.close()
        _swap(tmp, dest)
        return found
    finally:
        _remove(tmp)


def rewrite_in_place(store: Path, old_key: str | None, new_key: str | None, timeout_s: float) -> dict[str, Any]:
    """Rewrite the store into a fresh file with `new_key` (None: plain): encrypt, decrypt, rekey, compact.

    The store's exclusive lock is held from before the copy until after the swap, so no write can
    land in the old file once copying has begun: writers wait (and retry) for the whole rewrite.
    """
    if not store.exists():
        raise StoreError(f"no store at {store}")
    before = store.stat().st_size
    with _exclusive([store]):
        con = _memory(old_key, new_key)
        try:
            _attach_retrying(con, store, "src", old_key, read_only=False, timeout_s=timeout_s)
            con.execute("CHECKPOINT src")
            tables = _copy_verified(con, "src", store, new_key)
        finally:
            con.close()
    _encryption.set_key(store, new_key)
    return {"tables": tables, "bytes_before": before, "bytes_after": store.stat().st_size}


def restore(source: Path, store: Path, key: str | None, force: bool, timeout_s: float) -> dict[str, tuple[int, int]]:
    """Replace `store` with the backup at `source`; refuse to drop newer writes unless `force`."""
    if not source.is_file():
        raise StoreError(f"no backup at {source}")
    if source.resolve() == store.resolve():
        raise StoreError(f"{source} is the store itself; restore from a backup file")
    store.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(store)
    with _exclusive([store]):
        con = _memory(key)
        try:
            _attach_retrying(con, source, "src", key, read_only=True, timeout_s=timeout_s)
            version = _schema_version(con, "src")
            if version > _schema.LATEST_VERSION:
                raise SchemaTooNewError(
                    f"backup {source} has schema version {version}, newer than this agenttrace understands "
                    f"({_schema.LATEST_VERSION}); upgrade agenttrace to restore it - nothing was replaced"
                )
            if version == 0:
                raise StoreError(f"{source} holds no agenttrace store (no schema_migrations table); nothing replaced")
            if store.exists():  # held (exclusively) from here to the swap: no write can slip in between
                _attach_retrying(con, store, "current", key, read_only=False, timeout_s=timeout_s)
                con.execute("CHECKPOINT current")
                backup_ns, current_ns = latest_write_ns(con, "src"), latest_write_ns(con, "current")
                if current_ns > backup_ns and not force:
                    raise StoreError(
                        f"store {store} has writes newer than the backup ({_when(current_ns)} vs {_when(backup_ns)}); "
                        "restoring would lose them - pass --force to replace it anyway"
                    )
            rows = _row_counts(con, "src")
            _stage_bytes(source, store)
            con.execute("DETACH src")
            found = _finish_staged(con, tmp, key, rows, store)
            _swap(tmp, store)
            return found
        finally:
            con.close()
            _remove(tmp)


def _when(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ns / 1e9))


# --- check: runs on an ordinary connection (the store's own open and migration checks come first) ---

# Facts that hold between tables in a sound store: (what is wrong, a query counting the rows where it is).
_CROSS_CHECKS: list[tuple[str, str]] = [
    ("spans whose trace has no traces row", "SELECT count(*) FROM spans s ANTI JOIN traces t USING (trace_id)"),
    (
        "traces whose span_count differs from their stored spans",
        "SELECT count(*) FROM traces t LEFT JOIN (SELECT trace_id, count(*) AS n FROM spans GROUP BY trace_id) s "
        "USING (trace_id) WHERE t.span_count <> coalesce(s.n, 0)",
    ),
    (
        "spans stored twice (same trace_id and span_id)",
        "SELECT count(*) FROM (SELECT 1 FROM spans GROUP BY trace_id, span_id HAVING count(*) > 1)",
    ),
]


def check(con: duckdb.DuckDBPyConnection, on_table: Callable[[str, int], None] | None = None) -> list[str]:
    """Read every row of every table and test the cross-table facts; the problems found (empty: sound)."""
    problems = [f"columns: {p}" for p in _schema.column_mismatches(con)]
    alias = con.execute("SELECT current_database()").fetchone()
    database = alias[0] if alias else "main"
    for table in _tables(con, database):
        try:
            row = con.execute(f"SELECT count(*), bit_xor(hash(t)) FROM {_quote_ident(table)} AS t").fetchone()
        except duckdb.Error as exc:
            problems.append(f"table {table} cannot be read: {exc}")
            continue
        if on_table is not None:
            on_table(table, int(row[0]) if row else 0)
    for what, sql in _CROSS_CHECKS:
        try:
            row = con.execute(sql).fetchone()
        except duckdb.Error as exc:
            problems.append(f"cannot check {what}: {exc}")
            continue
        if row and row[0]:
            problems.append(f"{row[0]} {what}")
    return problems


class RetentionSchedule:
    """A daemon thread deleting traces older than `max_age_s`: at once, then every `every_s` seconds.

    Started by `agenttrace server`; a failed pass (say, the file locked for longer than the lock
    timeout) is logged and tried again at the next one, never raised into the server.
    """

    def __init__(self, delete_older_than: Callable[[float], int], max_age_s: float, every_s: float) -> None:
        self._delete = delete_older_than
        self.max_age_s = max_age_s
        self.every_s = every_s
        self.passes = 0
        self.deleted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agenttrace-retention", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                count = self._delete(self.max_age_s)
                self.deleted += count
                if count:
                    logger.info("retention: deleted %d trace(s) older than %.0f s", count, self.max_age_s)
            except Exception as exc:  # the server keeps serving; the next pass tries again
                logger.warning("retention: could not delete old traces (%s); retrying in %.0f s", exc, self.every_s)
            self.passes += 1
            self._stop.wait(self.every_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
