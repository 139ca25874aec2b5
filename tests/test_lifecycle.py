"""The traced process loses nothing silently: fork, multiprocessing, exit timing, SIGTERM.

Each case runs a real program in a subprocess (it must fork, exit, or die), then reads the store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork and POSIX signals")

_PRELUDE = """
import os, sys, time
import agenttrace
from agenttrace.tracing import runtime
agenttrace.configure(store=sys.argv[1], schedule_delay_ms=50)

@agenttrace.trace
def step(x):
    return x
"""


def _program(body: str) -> str:
    return _PRELUDE + textwrap.dedent(body)


def _run(body: str, store: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _program(body), str(store), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def _scan(store: Path) -> dict[str, int]:
    """Open the store as a new process would and read every table whole; rows per table."""
    con = duckdb.connect(str(store))
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return {t: con.execute(f'SELECT * FROM "{t}"').to_arrow_table().num_rows for t in tables}
    finally:
        con.close()


def test_forked_child_exits_cleanly_and_stores_its_own_spans(store_path: Path) -> None:
    # The parent holds the store open (written 50 ms ago) when it forks; the child traces and exits.
    result = _run(
        """
        for i in range(100):
            step(i)
        runtime.flush()
        pid = os.fork()
        if pid == 0:
            for i in range(40):
                step(-i)
            sys.exit(0)
        for i in range(30):
            step(1000 + i)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        """,
        store_path,
    )
    assert result.returncode == 0, result.stderr
    assert "child 0" in result.stdout, result.stderr  # not -11 (SIGSEGV) nor a hang on an inherited lock
    assert _scan(store_path)["spans"] == 170


def test_fork_during_writes_keeps_the_store_readable(store_path: Path) -> None:
    # Forks while the exporter is writing: the child never sees a half-done write or the parent's lock.
    result = _run(
        """
        children = []
        for round in range(6):
            for i in range(300):
                step(i)
            pid = os.fork()
            if pid == 0:
                for i in range(20):
                    step(i)
                sys.exit(0)
            children.append(pid)
        print([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children])
        """,
        store_path,
        # Seven processes take turns at one file here; on a busy machine a child's exit may wait
        # for its turn longer than the default exit wait (it would then report the loss).
        env={"AGENTTRACE_EXIT_TIMEOUT_S": "60"},
    )
    assert result.returncode == 0, result.stderr
    assert "[0, 0, 0, 0, 0, 0]" in result.stdout, result.stdout + result.stderr
    assert _scan(store_path)["spans"] == 6 * 300 + 6 * 20


_MP_BODY = """
import multiprocessing as mp

def work(n):
    for i in range(n):
        step(i)
    return n

if __name__ == "__main__":
    ctx = mp.get_context(sys.argv[2])
    procs = [ctx.Process(target=work, args=(25,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    with ctx.Pool(2) as pool:
        done = pool.map(work, [10, 10, 10])
    print("codes", [p.exitcode for p in procs], "pool", done)
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_children_store_their_spans(store_path: Path, method: str) -> None:
    # Process children leave through os._exit (fork) and Pool workers are terminated at the `with`'s end.
    script = store_path.parent / "mp_program.py"  # spawn re-imports the main module from a file
    script.write_text(_program(_MP_BODY))
    result = subprocess.run(
        [sys.executable, str(script), str(store_path), method], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert "codes [0, 0] pool [10, 10, 10]" in result.stdout, result.stdout + result.stderr
    assert _scan(store_path)["spans"] == 2 * 25 + 3 * 10, result.stderr


def test_exit_shortly_after_the_last_write_never_aborts(tmp_path: Path) -> None:
    # The closer releases the file IDLE_CLOSE_S after the last write; exits around then used to abort
    # (134), so the sweep straddles that moment.
    from agenttrace.store._connection import IDLE_CLOSE_S

    delays = [f"{IDLE_CLOSE_S + d:.2f}" for d in (-0.07, -0.04, -0.02, 0.0, 0.02, 0.05)]
    body = """
    for i in range(200):
        step(i)
    runtime.flush()
    time.sleep(float(sys.argv[2]))
    """
    procs = {
        d: subprocess.Popen(
            [sys.executable, "-c", _program(body), str(tmp_path / f"exit{d}.duckdb"), d],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for d in delays
    }
    for delay, proc in procs.items():
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"exit {delay}s after the last write: {proc.returncode} {err}"
        assert _scan(tmp_path / f"exit{delay}.duckdb")["spans"] == 200


_SIGTERM_WAIT = """
for i in range(int(sys.argv[2])):
    step(i)
print("ready", flush=True)
time.sleep(60)
"""


def _terminate(body: str, store: Path, *args: str) -> tuple[int, str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _program(body), str(store), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


def test_sigterm_with_the_default_action_writes_spans_then_terminates(store_path: Path) -> None:
    code, _, err = _terminate(_SIGTERM_WAIT, store_path, "500")
    assert code == -signal.SIGTERM, err  # still ended by SIGTERM, as without agenttrace
    assert _scan(store_path)["spans"] == 500


def test_sigterm_while_the_main_thread_cannot_run_handlers_still_writes_and_terminates(store_path: Path) -> None:
    # A Python handler runs on the main thread only. Here the main thread blocks SIGTERM and sleeps
    # in C, so the signal lands on another thread and the handler could run only after 60 s; the same
    # happens by chance to a Pool worker blocked waiting for a task when `with Pool()` terminates it.
    body = """
    import signal
    for i in range(300):
        step(i)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    print("ready", flush=True)
    time.sleep(60)
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", _program(body), str(store_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=40)  # well before the sleep ends
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("SIGTERM was left waiting for the blocked main thread")
    assert proc.returncode == -signal.SIGTERM, err
    assert _scan(store_path)["spans"] == 300


def test_sigterm_chains_to_the_programs_own_handler(store_path: Path) -> None:
    # The program's handler is set before tracing starts: ours writes the spans, then calls it.
    program = textwrap.dedent(
        """
        import signal, sys, time

        def graceful(signum, frame):
            print("graceful", runtime.get_runtime().store_processor.pending, flush=True)
            sys.exit(3)

        signal.signal(signal.SIGTERM, graceful)
        import agenttrace
        from agenttrace.tracing import runtime
        agenttrace.configure(store=sys.argv[1], schedule_delay_ms=50)

        @agenttrace.trace
        def step(x):
            return x
        """
    ) + textwrap.dedent(_SIGTERM_WAIT)
    proc = subprocess.Popen(
        [sys.executable, "-c", program, str(store_path), "400"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    # The program's handler ran after our flush (nothing pending then) and chose the exit status.
    assert proc.returncode == 3 and "graceful 0" in out, out + err
    assert _scan(store_path)["spans"] == 400


def test_sigterm_ignored_by_the_program_stays_ignored(store_path: Path) -> None:
    body = """
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for i in range(50):
        step(i)
    print("ready", flush=True)
    time.sleep(0.5)
    print("still running", flush=True)
    """
    code, out, err = _terminate(body, store_path)
    assert code == 0 and "still running" in out, out + err
    assert _scan(store_path)["spans"] == 50


def _hold_lock(store: Path) -> subprocess.Popen[str]:
    """Another process that keeps the store open (so locked) until its stdin closes."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()",
            str(store),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_locked_store_queues_spans_instead_of_turning_tracing_off(store_path: Path) -> None:
    import agenttrace
    from agenttrace.tracing import runtime

    locked = store_path.parent / "locked.duckdb"
    holder = _hold_lock(locked)  # a new file the other process creates and holds
    agenttrace.configure(store=str(locked), lock_timeout_s=60)
    try:

        @agenttrace.trace
        def step(x: int) -> int:
            return x

        # Returns while the file is still locked (with lock_timeout_s=60 a blocking open would
        # have waited for the lock and then turned tracing off).
        assert [step(i) for i in range(20)] == list(range(20))
        rt = runtime.get_runtime()
        assert rt.enabled and rt.tracer is not None
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(60)
    assert runtime.flush()
    assert rt.store is not None and rt.store.stats()["spans"] == 20
    assert rt.lost_spans() == (0, 0)


def test_a_program_gone_quiet_gets_its_last_spans_written_without_a_flush(store_path: Path) -> None:
    # OpenTelemetry's processor calls the exporter only when it has spans: rows held for a larger
    # batch must still be written within the flush interval when no further span comes.
    import time

    import agenttrace
    from agenttrace.tracing import runtime

    agenttrace.configure(store=str(store_path), flush_interval_s=0.2)

    @agenttrace.trace
    def step(x: int) -> int:
        return x

    step(1)
    exporter = runtime.get_runtime().store_processor.exporter  # type: ignore[union-attr]
    deadline = time.monotonic() + 30  # far above the 0.2 s interval: a slow machine, not a bound
    while exporter.exported == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert exporter.exported == 1 and exporter.held == 0  # written, and no flush was called


def test_a_corrupt_block_is_not_reported_as_a_lock(tmp_path: Path) -> None:
    from agenttrace.errors import StoreError, StoreLockedError
    from agenttrace.store import DuckDBStore

    path = tmp_path / "corrupt.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range AS i, range::VARCHAR AS s FROM range(300000)")
    con.close()
    with path.open("r+b") as fh:  # DuckDB says "... checksum ... in block at location 8192"
        fh.seek(8192)
        fh.write(b"\xff" * 12288)
    with pytest.raises(StoreError) as raised:
        DuckDBStore(path, lock_timeout_s=60).count_traces()
    assert not isinstance(raised.value, StoreLockedError)
    assert "Corrupt database file" in str(raised.value) and "locked" not in str(raised.value)


def test_otlp_failures_at_exit_are_not_called_store_failures(store_path: Path) -> None:
    # A collector that is down: every span is in the store, and the exit wait is bounded.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    body = """
    agenttrace.configure(otlp_endpoint=sys.argv[2], exit_timeout_s=1)
    for i in range(30):
        step(i)
    """
    result = _run(body, store_path, f"http://127.0.0.1:{port}")
    assert result.returncode == 0, result.stderr
    assert "meant for the OTLP collector" in result.stderr and "every span is in the store" in result.stderr
    assert "meant for store" not in result.stderr and "failed to store" not in result.stderr
    assert _scan(store_path)["spans"] == 30


def test_client_mode_exit_warning_names_the_server_not_status(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    body = """
    agenttrace.configure(uri=sys.argv[2], exit_timeout_s=0.5)
    for i in range(10):
        step(i)
    """
    result = _run(body, tmp_path / "unused.duckdb", f"http://127.0.0.1:{port}")
    assert result.returncode == 0, result.stderr
    assert f"meant for the server at http://127.0.0.1:{port}" in result.stderr, result.stderr
    assert "agenttrace status" not in result.stderr


def test_flush_reports_a_failed_export(store_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import agenttrace

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(400)  # not retryable: the batch is lost at once
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        agenttrace.configure(otlp_endpoint=f"http://127.0.0.1:{server.server_address[1]}/v1/traces")

        @agenttrace.trace
        def step(x: int) -> int:
            return x

        step(1)
        assert agenttrace.flush() is False  # the store has it, the collector refused it
        step(2)
        agenttrace.configure(otlp_endpoint=None)
        step(3)
        assert agenttrace.flush() is True
    finally:
        server.shutdown()
        server.server_close()


def test_status_in_client_mode_points_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from agenttrace.cli import cli

    monkeypatch.setenv("AGENTTRACE_URI", "http://127.0.0.1:9")
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 0, result.output
    assert "client mode" in result.output and "http://127.0.0.1:9" in result.output


def test_settings_for_time_bounds_are_checked() -> None:
    from agenttrace import config
    from agenttrace.errors import ConfigError

    assert config.resolve({"flush_interval_s": 0.2, "exit_timeout_s": 2}).flush_interval_s == 0.2
    with pytest.raises(ConfigError, match="flush_interval_s"):
        config.resolve({"flush_interval_s": 0})
    with pytest.raises(ConfigError, match="exit_timeout_s"):
        config.resolve({}, environ={"AGENTTRACE_EXIT_TIMEOUT_S": "-1"})


def test_forked_child_in_process_starts_with_its_own_counts(store_path: Path) -> None:
    # The same runtime object in the child: counts, queue and held rows are the child's alone.
    import agenttrace
    from agenttrace.tracing import runtime

    @agenttrace.trace
    def step(x: int) -> int:
        return x

    for i in range(10):
        step(i)
    rt = runtime.get_runtime()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        processor = rt.store_processor
        ok = processor is not None and processor.pending == 0 and processor.dropped == 0
        step(99)
        ok = ok and runtime.flush()
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert runtime.flush()
    assert rt.store is not None and rt.store.stats()["spans"] == 11
