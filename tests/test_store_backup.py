"""Backup and restore: a consistent snapshot taken while another process writes, restored row for row."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

import agenttrace
from agenttrace.cli import cli
from agenttrace.store import DuckDBStore, _connection, _maintenance

# Another process appending batches of whole traces (root span and child) until told to stop.
_WRITER = """
import sys, time
from pathlib import Path
from agenttrace.store import DuckDBStore
store, stop = DuckDBStore(sys.argv[1], lock_timeout_s=60), Path(sys.argv[2])
n = 0
while not stop.exists():
    now = time.time_ns()
    rows = []
    for t in range(20):
        trace_id = f"{n:016x}{t:016x}"
        for s, parent in ((1, None), (2, f"{1:016x}")):
            rows.append({"trace_id": trace_id, "span_id": f"{s:016x}", "parent_span_id": parent, "name": "w",
                         "span_type": "CHAIN", "status": "OK", "start_time_ns": now, "end_time_ns": now + 1,
                         "duration_ms": 0.0, "root_rank": 2 if parent is None else 0, "inputs": '"x"'})
    store.append_spans(rows)
    store.release()
    n += 1
    print(n, flush=True)
"""


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, read the way DuckDB returns them."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall() for t in tables}
    finally:
        con.close()


def _populate(evaluate_and_register: bool = False) -> None:
    @agenttrace.trace
    def answer(question: str) -> str:
        return question.upper()

    for q in ("a", "b"):
        answer(q)
    if evaluate_and_register:
        agenttrace.evaluate([{"inputs": {"question": "c"}}], answer, scorers=["no_error_spans"], progress=False)
        agenttrace.register_agent("bot", answer, config={"temperature": 0})
    agenttrace.flush()
    _connection.release()


def test_round_trip_backup_during_writes_restore_elsewhere_every_row_equal(store_path: Path, tmp_path: Path) -> None:
    _populate(evaluate_and_register=True)
    before = _rows(store_path)
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(store_path), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "1"  # writing has begun
        backup = tmp_path / "backups" / "b.duckdb"
        result = CliRunner().invoke(cli, ["store", "backup", str(backup), "--store", str(store_path)])
        assert result.exit_code == 0, result.output
    finally:
        stop.touch()
        writer.wait(60)
    assert writer.returncode == 0

    snapshot = _rows(backup)
    # Consistent: no batch half in the snapshot (each trace's span_count equals its spans), and
    # everything written before the backup, evaluation and registry included, is in it as it was.
    assert DuckDBStore(backup).check() == []
    for table in ("agents", "agent_versions", "eval_runs", "eval_records", "assessments", "datasets"):
        assert snapshot[table] == before[table] and before[table], table
    assert set(before["traces"]) <= set(snapshot["traces"])
    assert len(snapshot["traces"]) > len(before["traces"])  # and it caught the other process mid-run

    elsewhere = tmp_path / "elsewhere" / "restored.duckdb"  # a folder that does not exist yet
    result = CliRunner().invoke(cli, ["store", "restore", str(backup), "--store", str(elsewhere)])
    assert result.exit_code == 0, result.output
    assert _rows(elsewhere) == snapshot


def test_restore_refuses_to_drop_newer_writes_without_force(store_path: Path, tmp_path: Path) -> None:
    _populate()
    backup = tmp_path / "b.duckdb"
    DuckDBStore(store_path).backup(backup)
    time.sleep(0.01)

    @agenttrace.trace
    def later() -> None:
        pass

    later()
    agenttrace.flush()
    _connection.release()
    newer = _rows(store_path)
    refused = CliRunner().invoke(cli, ["store", "restore", str(backup), "--store", str(store_path)])
    assert refused.exit_code == 1 and "newer than the backup" in refused.output and "--force" in refused.output
    assert _rows(store_path) == newer
    forced = CliRunner().invoke(cli, ["store", "restore", str(backup), "--store", str(store_path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert _rows(store_path) == _rows(backup)


def test_restore_refuses_a_backup_from_a_newer_schema_or_not_a_store(store_path: Path, tmp_path: Path) -> None:
    _populate()
    backup = tmp_path / "b.duckdb"
    DuckDBStore(store_path).backup(backup)
    con = duckdb.connect(str(backup))
    con.execute("INSERT INTO schema_migrations VALUES (999, 'from_the_future', 0)")
    con.close()
    before = _rows(store_path)
    result = CliRunner().invoke(cli, ["store", "restore", str(backup), "--store", str(store_path), "--force"])
    assert result.exit_code == 1 and "schema version 999" in result.output
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).execute("CREATE TABLE t (x INTEGER)").close()
    result = CliRunner().invoke(cli, ["store", "restore", str(other), "--store", str(store_path), "--force"])
    assert result.exit_code == 1 and "holds no agenttrace store" in result.output
    assert _rows(store_path) == before


def test_backup_into_a_folder_and_over_an_existing_file(store_path: Path, tmp_path: Path) -> None:
    _populate()
    folder = tmp_path / "nightly"
    folder.mkdir()
    result = CliRunner().invoke(cli, ["store", "backup", str(folder), "--store", str(store_path)])
    assert result.exit_code == 0, result.output
    (made,) = folder.iterdir()
    assert made.name.startswith("traces-") and made.suffix == ".duckdb"
    again = CliRunner().invoke(cli, ["store", "backup", str(made), "--store", str(store_path)])
    assert again.exit_code == 2 and "--force" in again.output
    forced = CliRunner().invoke(cli, ["store", "backup", str(made), "--store", str(store_path), "--force"])
    assert forced.exit_code == 0, forced.output
    itself = CliRunner().invoke(cli, ["store", "backup", str(store_path), "--store", str(store_path), "--force"])
    assert itself.exit_code == 1 and "is the store itself" in itself.output


def test_a_copy_that_differs_from_its_source_is_never_swapped_in(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _populate()
    original = _rows(store_path)
    real = _maintenance.fingerprint

    def fingerprint_seeing_a_bad_copy(con: duckdb.DuckDBPyConnection, alias: str) -> dict[str, tuple[int, int]]:
        found = real(con, alias)
        if alias == "fresh":  # the verification read of the new file sees one value changed
            rows, digest = found["spans"]
            found["spans"] = (rows, digest ^ 1)
        return found

    monkeypatch.setattr(_maintenance, "fingerprint", fingerprint_seeing_a_bad_copy)
    result = CliRunner().invoke(cli, ["store", "compact", "--store", str(store_path)])
    assert result.exit_code == 1 and "differs from its source in spans" in result.output
    assert _rows(store_path) == original
    assert sorted(p.name for p in tmp_path.glob("*traces.duckdb*")) == ["traces.duckdb"]


def test_a_backup_keeps_writes_still_in_the_wal(store_path: Path, tmp_path: Path) -> None:
    _populate()
    # A process killed after its write: the rows are in the WAL only, not yet checkpointed into the file.
    killed = (
        "import os, sys, time\nfrom agenttrace.store import DuckDBStore\n"
        "now = time.time_ns()\n"
        "DuckDBStore(sys.argv[1]).append_spans([{'trace_id': 'f' * 32, 'span_id': 'e' * 16, 'name': 'last',"
        " 'span_type': 'CHAIN', 'status': 'OK', 'start_time_ns': now, 'end_time_ns': now, 'duration_ms': 0.0,"
        " 'root_rank': 2}])\nos._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", killed, str(store_path)], check=True, timeout=120)
    assert Path(f"{store_path}.wal").exists()
    backup = tmp_path / "b.duckdb"
    DuckDBStore(store_path).backup(backup)
    assert not Path(f"{backup}.wal").exists()  # one checkpointed file
    assert ("f" * 32,) in duckdb.connect(str(backup), read_only=True).execute("SELECT trace_id FROM traces").fetchall()
