"""Many processes, one store: client mode (AGENTTRACE_URI), gRPC ingest, nothing lost or doubled."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

import agenttrace
from agenttrace.errors import ConfigError, FilterError, TraceNotFoundError
from agenttrace.server.grpc_ingest import start_grpc_server
from agenttrace.server.writer import SpanWriter
from agenttrace.store import DuckDBStore
from agenttrace.tracing import runtime
from tests.server_harness import ServerThread, http_json

ROOT = Path(__file__).resolve().parent.parent

_CLIENT = textwrap.dedent(
    """
    import sys
    import agenttrace

    @agenttrace.trace(span_type="TOOL")
    def step(i):
        return i

    @agenttrace.trace(span_type="AGENT")
    def run(k):
        agenttrace.update_current_trace(tags={"proc": sys.argv[2]})
        for i in range(49):
            step(i)

    for k in range(int(sys.argv[1]) // 50):
        run(k)
    assert agenttrace.flush(60_000)
    """
)


@agenttrace.trace(span_type="AGENT")
def _agent(x: int) -> int:
    with agenttrace.span("inner", span_type="LLM") as s:
        s.set_attributes({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 2})
    return x + 1


def test_four_processes_5000_spans_each_store_exactly_20000(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "shared.duckdb") as srv:
        env = {**os.environ, "AGENTTRACE_URI": srv.url, "AGENTTRACE_RAISE_INTERNAL_ERRORS": "true",
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _CLIENT, "5000", str(n)],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for n in range(4)
        ]
        for p in procs:
            _, err = p.communicate(timeout=180)
            assert p.returncode == 0, err
            assert "lost" not in err, err
        health = http_json(srv.url + "/api/health")[1]["otlp"]
        assert (health["stored"], health["duplicates"], health["failed"]) == (20_000, 0, 0)
        for n in range(4):
            found = http_json(srv.url + f"/api/traces?max_results=1000&filter=tags.proc%20%3D%20%27{n}%27")[1]
            assert found["count"] == 100 and {t["span_count"] for t in found["traces"]} == {50}
    assert not (tmp_path / "agenttrace.duckdb").exists()  # client mode never opened a file
    stats = DuckDBStore(tmp_path / "shared.duckdb").stats()
    assert (stats["spans"], stats["traces"]) == (20_000, 400)


def test_client_mode_in_process(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "srv.duckdb", auth_token="tkn") as srv:
        agenttrace.configure(uri=srv.url, auth_token="tkn")
        assert [_agent(i) for i in range(3)] == [1, 2, 3]
        assert agenttrace.flush()
        found = http_json(srv.url + "/api/traces", token="tkn")[1]
        assert found["count"] == 3 and {t["input_tokens"] for t in found["traces"]} == {2}
        assert runtime.get_runtime().lost_spans() == (0, 0)
        # Reads and notes in client mode go to the server, in the shapes a local store gives.
        assert _agent(10) == 11  # read-your-writes: the search flushes this span to the server first
        frame = agenttrace.search_traces(order_by="start_time DESC")
        # The same rows, columns and dtypes as a search of the server's file itself.
        direct = DuckDBStore(tmp_path / "srv.duckdb").search_traces(None, None, "start_time DESC", 100)
        assert len(frame) == 4
        assert frame.dtypes.to_dict() == direct.dtypes.to_dict()
        assert frame.to_dict(orient="records") == direct.to_dict(orient="records")
        newest = frame.iloc[0]
        assert newest["inputs"] == {"x": 10} and newest["outputs"] == 11
        trace = agenttrace.get_trace(newest["trace_id"])
        assert [(s.name, s.span_type) for s in trace] == [("_agent", "AGENT"), ("inner", "LLM")]
        assert trace.root.inputs == {"x": 10} and trace.root.outputs == 11
        note = agenttrace.log_feedback(newest["trace_id"], "helpful", True, rationale="ok", source="human:ana")
        assert (note.kind, note.source_type, note.source_id, note.value) == ("feedback", "HUMAN", "ana", True)
        assert [a.name for a in agenttrace.get_trace(newest["trace_id"]).assessments] == ["helpful"]
        # Values the local store takes (NaN, a date) are accepted too; JSON has no NaN, so REST gives None.
        odd = agenttrace.log_feedback(newest["trace_id"], "score", float("nan"), metadata={"day": date(2026, 1, 2)})
        stored = {a.name: a for a in agenttrace.get_trace(newest["trace_id"]).assessments}["score"]
        assert (odd.value, odd.metadata) == (None, {"day": "2026-01-02"})
        assert (stored.value, stored.metadata) == (None, {"day": "2026-01-02"})
        with pytest.raises(TraceNotFoundError, match="0" * 32):
            agenttrace.get_trace("0" * 32)
        for odd_id in ("", "x?y", "a/b"):  # ids are sent as one path segment, never as a query or a route
            with pytest.raises(TraceNotFoundError):
                agenttrace.get_trace(odd_id)
        with pytest.raises(ValueError, match="at most 10,000 through the server"):
            agenttrace.search_traces(max_results=10_001)
        with pytest.raises(FilterError, match="nope"):
            agenttrace.search_traces("nope = 1")
        with pytest.raises(ConfigError, match=r"client mode\) and has no store file for datasets"):
            agenttrace.load_dataset("qa")
        # A wrong token: the server refuses, tracing goes on, the failures are counted.
        agenttrace.configure(auth_token="wrong")
        assert _agent(1) == 2
        agenttrace.flush()
        assert runtime.get_runtime().lost_spans() == (0, 2)
        with pytest.raises(ConfigError, match="refused the token"):
            agenttrace.search_traces()


def test_grpc_ingest_from_the_standard_exporter(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "grpc.duckdb")
    store.initialise()
    writer = SpanWriter(store)
    server, port = start_grpc_server(
        writer, "127.0.0.1", 0, auth_token="g", max_body_bytes=4 << 20, max_value_bytes=1 << 20
    )
    try:
        agenttrace.configure(
            store=None, otlp_endpoint=f"http://127.0.0.1:{port}", otlp_protocol="grpc",
            otlp_headers={"Authorization": "Bearer g"},
        )  # fmt: skip
        for i in range(5):
            _agent(i)
        assert agenttrace.flush()
        assert writer.stats()["stored"] == 10
    finally:
        runtime.reset()
        server.stop(grace=None)
        writer.close()
    frame = store.search_traces()
    assert len(frame) == 5 and set(frame.name) == {"_agent"} and set(frame.span_count) == {2}
