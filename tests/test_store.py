"""The DuckDB store: schema, refusals that leave files untouched, locking between processes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import pytest

import agenttrace
from agenttrace.errors import NotAStoreError, SchemaTooNewError, StoreLockedError, TraceNotFoundError
from agenttrace.store import LATEST_VERSION, DuckDBStore, _connection
from agenttrace.tracing import runtime


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_new_store_has_tables_and_recorded_migrations(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    DuckDBStore(path).initialise()
    _connection.release()
    con = duckdb.connect(str(path), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"traces", "spans", "assessments", "experiments", "schema_migrations"} <= tables
    assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == LATEST_VERSION
    con.close()


def test_a_file_that_is_not_duckdb_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("these are my notes, not a database\n")
    before = _digest(path)
    with pytest.raises(NotAStoreError, match="not a DuckDB database file"):
        DuckDBStore(path).search_traces()
    assert _digest(path) == before


def test_a_store_from_a_newer_schema_is_refused_untouched(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "future.duckdb"
    DuckDBStore(path).initialise()
    _connection.release()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES (999, '999_from_the_future', 0)")
    con.close()
    _connection.forget_prepared()
    before = _digest(path)
    with pytest.raises(SchemaTooNewError, match="schema version 999.*upgrade agenttrace"):
        DuckDBStore(path).search_traces()

    # Tracing into it turns itself off with one warning; the program runs on.
    agenttrace.configure(store=str(path))

    @agenttrace.trace
    def still_works(x):
        return x * 2

    assert still_works(21) == 42
    runtime.reset()
    assert "tracing is off" in caplog.text and "999" in caplog.text
    assert _digest(path) == before


def test_a_file_swapped_in_by_another_process_is_checked_again(tmp_path: Path) -> None:
    # This process checked the store once; then a restore elsewhere swaps in a newer store (a new
    # file at the same path). It must be refused, not read or written as if it were the old one.
    path = tmp_path / "swapped.duckdb"
    store = DuckDBStore(path)
    store.initialise()
    assert store.count_traces() == 0
    _connection.release()
    newer = tmp_path / "newer.duckdb"
    con = duckdb.connect(str(newer))
    con.execute(f"ATTACH '{path}' AS old (READ_ONLY)")
    con.execute("COPY FROM DATABASE old TO newer")
    con.execute("INSERT INTO newer.schema_migrations VALUES (999, '999_from_the_future', 0)")
    con.close()
    os.replace(newer, path)
    with pytest.raises(SchemaTooNewError, match="schema version 999"):
        store.count_traces()


def test_unknown_trace_id_is_a_clear_error() -> None:
    with pytest.raises(TraceNotFoundError, match="no trace with id 'abc'"):
        agenttrace.get_trace("abc")


def test_feedback_and_expectations_are_stored_on_the_trace() -> None:
    @agenttrace.trace
    def answer(q):
        return "Paris"

    answer("capital of France?")
    trace_id = agenttrace.search_traces().trace_id[0]
    agenttrace.log_feedback(trace_id, "correct", True, rationale="matches", source="llm_judge:gpt-x")
    agenttrace.log_expectation(trace_id, "expected_answer", "Paris")
    kinds = {(a.kind, a.name, a.value, a.source_type, a.source_id) for a in agenttrace.get_trace(trace_id).assessments}
    assert kinds == {
        ("feedback", "correct", True, "LLM_JUDGE", "gpt-x"),
        ("expectation", "expected_answer", "Paris", "HUMAN", None),
    }
    with pytest.raises(TraceNotFoundError):
        agenttrace.log_feedback("0" * 32, "correct", True)
    with pytest.raises(ValueError, match="human, code or llm_judge"):
        agenttrace.log_feedback(trace_id, "x", 1, source="robot")


_HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_store_is_retried_then_read(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    DuckDBStore(path).initialise()
    _connection.release()
    holder = _hold_lock(path, 0.8)
    started = time.monotonic()
    assert DuckDBStore(path, lock_timeout_s=10).count_traces() == 0
    assert 0.3 < time.monotonic() - started < 8
    holder.wait()


def test_a_lock_held_past_the_timeout_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "busy.duckdb"
    DuckDBStore(path).initialise()
    _connection.release()
    holder = _hold_lock(path, 3)
    with pytest.raises(StoreLockedError, match="stayed locked by another process") as raised:
        DuckDBStore(path, lock_timeout_s=0.3).count_traces()
    assert "could not ask" not in str(raised.value)  # it rang: the holder (not agenttrace) did not listen
    holder.kill()
    holder.wait()


def test_a_reader_that_cannot_ring_says_why_the_holder_did_not_let_go(tmp_path: Path) -> None:
    path = tmp_path / "busy.duckdb"
    DuckDBStore(path).initialise()
    _connection.release()
    (tmp_path / "busy.duckdb.wait").symlink_to(tmp_path / "missing" / "bell")  # a bell it cannot write
    holder = _hold_lock(path, 3)
    with pytest.raises(StoreLockedError, match="could not ask the holder to let go") as raised:
        DuckDBStore(path, lock_timeout_s=0.3).count_traces()
    assert "raise lock_timeout_s" in str(raised.value)
    holder.kill()
    holder.wait()


_LONG_HOLDER = textwrap.dedent(
    """
    import sys, time, agenttrace
    from agenttrace.store import _connection
    _connection.IDLE_CLOSE_S = _connection.MAX_HOLD_S = 600.0  # only a ring can end this hold
    agenttrace.configure(store=sys.argv[1], schedule_delay_ms=20)

    @agenttrace.trace
    def step(i):
        return i

    for i in range(50):
        step(i)
    agenttrace.flush()  # written through a held connection: the file stays locked
    print("held", flush=True)
    sys.stdin.readline()
    for i in range(25):
        step(i)
    agenttrace.flush()  # holds the file again once the reader is done
    print("wrote", flush=True)
    """
)


def test_a_process_holding_the_store_lets_go_when_another_rings(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", _LONG_HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        # Without the bell this open would wait for the 600 s hold and fail at its own timeout.
        assert DuckDBStore(path, lock_timeout_s=60).count_traces() == 50
        assert (tmp_path / "held.duckdb.wait").exists()
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "wrote"
        _connection.forget_prepared()
        assert DuckDBStore(path, lock_timeout_s=60).count_traces() == 75
    finally:
        holder.kill()
        holder.wait()


_AGENT = textwrap.dedent(
    """
    import sys, time, agenttrace
    agenttrace.configure(store=sys.argv[1], schedule_delay_ms=20)

    @agenttrace.trace
    def step(i):
        return i

    end = time.monotonic() + float(sys.argv[2])
    i = 0
    while time.monotonic() < end:
        step(i)
        i += 1
        if i % 200 == 0:
            time.sleep(0.001)
    agenttrace.flush()
    print(i, flush=True)
    """
)


def test_cli_reads_while_another_process_is_tracing(tmp_path: Path) -> None:
    path = tmp_path / "live.duckdb"
    agent = subprocess.Popen([sys.executable, "-c", _AGENT, str(path), "5"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    seen = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-m", "agenttrace", "status", "--store", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        seen.append(int(out.stdout.split("traces: ")[1].split()[0]))
        time.sleep(0.3)
    total = int(agent.communicate(timeout=60)[0])
    assert seen == sorted(seen) and seen[-1] > 0
    _connection.forget_prepared()
    assert DuckDBStore(path).count_traces() == total


def test_spans_still_queued_at_exit_are_written(tmp_path: Path) -> None:
    path = tmp_path / "exit.duckdb"
    script = textwrap.dedent(
        """
        import sys, agenttrace
        agenttrace.configure(store=sys.argv[1], schedule_delay_ms=60_000)  # nothing leaves before exit

        @agenttrace.trace
        def step(i):
            return i

        for i in range(3000):
            step(i)
        """
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    _connection.forget_prepared()
    assert DuckDBStore(path).count_traces() == 3000


def test_ctrl_c_during_a_store_query_is_a_keyboard_interrupt(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "ctrlc.duckdb")
    store.initialise()
    # Seconds long, not endless: if Ctrl-C missed the query, the test fails instead of hanging.
    long_query = "SELECT count(*) FROM range(1500000000) WHERE range % 7 = 3"
    # A shell's background job may start with SIGINT ignored: this test wants Python's own handler.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):  # not DuckDB's RuntimeError("Query interrupted")
            store._run(True, lambda con: con.execute(long_query).fetchall())
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)


def _one_span_traces(count: int, prefix: str = "") -> list[dict[str, object]]:
    """Batch rows of `count` one-span traces, ids starting with `prefix` (hex)."""
    from agenttrace.otel.convert import span_row

    width = 32 - len(prefix)
    return [
        span_row(
            trace_id=f"{prefix}{i:0{width}x}",
            span_id=f"{i + 1:016x}",
            parent_span_id=None,
            name="s",
            error=False,
            status_message=None,
            start_time_ns=1,
            end_time_ns=2,
            attributes={},
            events=[],
            resource="{}",
            scope=None,
            root_rank=2,
            experiment="Default",
            trusted=True,
        )  # fmt: skip
        for i in range(count)
    ]


def test_writes_a_few_seconds_apart_share_one_hold_and_one_checkpoint(tmp_path: Path) -> None:
    # A checkpoint costs in proportion to the store, so a writer that pauses for less than
    # IDLE_CLOSE_S keeps its connection (one checkpoint at the end), and the WAL is bounded by size.
    path = tmp_path / "held.duckdb"
    store = DuckDBStore(path)
    store.append_spans(_one_span_traces(10, "a"))
    key = str(path.resolve())
    held = _connection._state.held[key]
    time.sleep(2.0)  # longer than the 1.5 s after which the connection used to be closed
    store.append_spans(_one_span_traces(10, "b"))
    assert _connection._state.held.get(key) is held  # the same hold: no checkpoint in between
    # The WAL bound is set on the held connection (compared as DuckDB prints it back).
    bound = duckdb.connect()
    bound.execute(f"SET checkpoint_threshold = '{_connection.WAL_CHECKPOINT_AT}'")
    query = "SELECT current_setting('checkpoint_threshold')"
    assert held.con.execute(query).fetchone() == bound.execute(query).fetchone() != ("16.0 MiB",)
    _connection.release()
    assert key not in _connection._state.held and store.count_traces() == 20


def test_a_writer_with_much_in_its_wal_lets_go_in_a_short_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A heavy writer checkpoints in its lulls rather than inside its next busy stretch; a light
    # one (little in the WAL) keeps its hold through the same pause.
    monkeypatch.setattr(_connection, "LULL_S", 0.3)
    rows = _one_span_traces(2000)
    for name, wal_bytes, released in (("light", 1 << 40, False), ("heavy", 1, True)):
        monkeypatch.setattr(_connection, "LULL_WAL_BYTES", wal_bytes)
        path = tmp_path / f"{name}.duckdb"
        store = DuckDBStore(path)
        store.append_spans(rows)
        time.sleep(2.0)  # a pause well past LULL_S (the closer looks every 60 ms), short of IDLE_CLOSE_S
        assert (str(path.resolve()) not in _connection._state.held) is released, name
        _connection.release()
        assert store.count_traces() == 2000
