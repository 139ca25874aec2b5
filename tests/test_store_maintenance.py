"""Store maintenance: real write errors reported as themselves, compact, check, retention."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from agenttrace import config
from agenttrace.cli import cli
from agenttrace.errors import ConfigError
from agenttrace.store import DuckDBStore, _connection
from tests.server_harness import CliServer, http_json

DAY_NS = 86_400 * 10**9


def _spans(prefix: int, n: int, start_ns: int, payload_bytes: int = 20) -> list[dict[str, Any]]:
    """n one-span traces; `payload_bytes` of random (incompressible) input each."""
    return [
        {"trace_id": f"{prefix:08x}{i:024x}", "span_id": f"{i:016x}", "name": "s", "span_type": "CHAIN",
         "status": "OK", "start_time_ns": start_ns + i, "end_time_ns": start_ns + i + 1, "duration_ms": 0.0,
         "root_rank": 2, "inputs": '"' + os.urandom(payload_bytes // 2).hex() + '"'}
        for i in range(n)
    ]  # fmt: skip


# A real failing write: the process may not grow any file past the limit, so DuckDB's write of
# the WAL fails with EFBIG exactly as it fails with ENOSPC on a full disk (checked by hand on a
# 3 MB tmpfs: same path, "No space left on device"). No root or mount needed.
_FULL_DISK = """
import os, resource, signal, sys, time
import duckdb
from agenttrace.store import DuckDBStore
def rows(k, n):
    return [{"trace_id": f"{k:08x}{i:024x}", "span_id": f"{i:016x}", "name": "s", "span_type": "CHAIN",
             "status": "OK", "start_time_ns": 1000 + i, "end_time_ns": 2000 + i, "duration_ms": 0.0,
             "root_rank": 2, "inputs": '"' + os.urandom(500).hex() + '"'} for i in range(n)]
folder, stores = sys.argv[1], {}
for case in ("writer", "delete_before", "migrations"):
    path = os.path.join(folder, case + ".duckdb")
    stores[case] = store = DuckDBStore(path)
    if case == "migrations":
        duckdb.connect(path).close()  # an empty database file: every migration still to run
        continue
    store.initialise()
    if case == "delete_before":
        store.append_spans(rows(0, 300))
    store.release()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
for case, store in stores.items():
    try:
        if case == "writer":
            store.append_spans(rows(1, 300))
        elif case == "delete_before":
            store.delete_traces_before(time.time_ns())
        else:
            store.initialise()
        print(case, "no error")
    except Exception as exc:
        print(case, f"{type(exc).__name__}: {exc}")
sys.stdout.flush()
os._exit(0)  # the stores are broken on purpose: skip closing them at exit
"""


def test_a_failed_write_reports_its_real_cause_not_the_rollback(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path)], capture_output=True, text=True, timeout=120
    ).stdout
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert set(lines) == {"writer", "delete_before", "migrations"}, out
    for case, message in lines.items():  # the span writer, delete_before and the migration runner
        assert message.startswith("StoreError") and "File too large" in message, (case, message)
        assert "cannot rollback" not in message


def test_compact_gives_the_space_of_deleted_traces_back(store_path: Path) -> None:
    store = DuckDBStore(store_path)
    now = time.time_ns()
    for k in range(4):
        store.append_spans(_spans(k, 500, now - 30 * DAY_NS, payload_bytes=2000))
    store.append_spans(_spans(9, 5, now))
    store.release()
    assert store.delete_traces_before(now - DAY_NS) == 2000
    store.release()
    kept = store.search_traces(max_results=100)
    before = store_path.stat().st_size
    result = CliRunner().invoke(cli, ["store", "compact", "--store", str(store_path)])
    assert result.exit_code == 0, result.output
    after = store_path.stat().st_size
    assert after < before / 2, (before, after)  # ~4 MB of payloads deleted: the file no longer holds them
    assert store.search_traces(max_results=100).equals(kept)


def test_check_reads_every_table_and_finds_what_disagrees(store_path: Path) -> None:
    store = DuckDBStore(store_path)
    store.append_spans(_spans(1, 3, time.time_ns()))
    store.release()
    clean = CliRunner().invoke(cli, ["store", "check", "--store", str(store_path)])
    assert clean.exit_code == 0 and "spans: 3 rows read" in clean.output and "0 problem(s)" in clean.output
    _connection.forget_prepared()
    con = duckdb.connect(str(store_path))  # damage by hand: a span without its trace, a trace miscounted
    con.execute("DELETE FROM traces WHERE trace_id = (SELECT min(trace_id) FROM traces)")
    con.execute("UPDATE traces SET span_count = 7 WHERE trace_id = (SELECT max(trace_id) FROM traces)")
    con.close()
    damaged = CliRunner().invoke(cli, ["store", "check", "--store", str(store_path), "--json"])
    assert damaged.exit_code == 1
    assert '"problems": ["1 spans whose trace has no traces row", "1 traces whose span_count' in damaged.output


def test_the_retention_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.resolve(environ={"AGENTTRACE_RETENTION": "30d"}).retention == 30 * 86_400
    assert config.resolve({"retention": "12h"}).retention == 12 * 3600
    assert config.resolve(environ={"AGENTTRACE_RETENTION": "off"}).retention is None
    for bad in ("soon", "-1d", "0"):
        with pytest.raises(ConfigError, match="(?i)retention"):
            config.resolve(environ={"AGENTTRACE_RETENTION": bad})


def test_the_server_applies_retention(store_path: Path) -> None:
    store = DuckDBStore(store_path)
    now = time.time_ns()
    store.append_spans(_spans(1, 3, now - 40 * DAY_NS))  # older than the retention
    store.append_spans(_spans(2, 2, now - 1 * DAY_NS))
    store.release()
    _connection.forget_prepared()
    args = ("--store", str(store_path), "--ingest-workers", "0")
    with CliServer(*args, env={"AGENTTRACE_RETENTION": "30d"}) as srv:
        for _ in range(300):
            status, listed = http_json(srv.url + "/api/traces")
            if status == 200 and listed["count"] == 2:
                break
            time.sleep(0.05)
        assert sorted(t["trace_id"][:8] for t in listed["traces"]) == ["00000002", "00000002"]
