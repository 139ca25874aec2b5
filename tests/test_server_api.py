"""The REST API, authentication, and the `agenttrace server` command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from agenttrace.server.auth import is_loopback, token_matches
from agenttrace.store import DuckDBStore
from tests.otlp_builders import make_request, make_span, new_ids
from tests.server_harness import CliServer, ServerThread, http, http_json

PB = {"Content-Type": "application/x-protobuf"}


def _send(url: str, name: str, attributes: dict, token: str | None = None) -> str:
    trace_id, span_id = new_ids()
    body = make_request([make_span(name, trace_id, span_id, attributes=attributes)]).SerializeToString()
    headers = {**PB, **({"Authorization": f"Bearer {token}"} if token else {})}
    assert http(url + "/v1/traces", body, headers)[0] == 200
    return trace_id.hex()


def test_list_search_get_and_feedback(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "api.duckdb") as srv:
        slow = _send(srv.url, "slow", {"openinference.span.kind": "AGENT", "session.id": "s-1"})
        _send(srv.url, "fast", {"openinference.span.kind": "CHAIN"})
        status, found = http_json(srv.url + "/api/traces?filter=" + quote("session_id = 's-1'"))
        assert status == 200 and [t["trace_id"] for t in found["traces"]] == [slow]
        status, found = http_json(srv.url + "/api/traces?filter=" + quote("span.type = 'CHAIN'"))
        assert [t["name"] for t in found["traces"]] == ["fast"]
        status, found = http_json(srv.url + "/api/traces?order_by=" + quote("name ASC") + "&max_results=1")
        assert [t["name"] for t in found["traces"]] == ["fast"]
        status, trace = http_json(f"{srv.url}/api/traces/{slow}")
        assert status == 200 and trace["spans"][0]["span_type"] == "AGENT"
        status, made = http_json(
            f"{srv.url}/api/traces/{slow}/feedback",
            {"name": "helpful", "value": False, "rationale": "missed it", "source": "human:ana"},
        )
        assert status == 201 and (made["source_type"], made["source_id"]) == ("HUMAN", "ana")
        status, _ = http_json(f"{srv.url}/api/traces/{slow}/expectations", {"name": "answer", "value": "42"})
        assert status == 201
        trace = http_json(f"{srv.url}/api/traces/{slow}")[1]
        assert {(a["name"], a["kind"]) for a in trace["assessments"]} == {
            ("helpful", "feedback"),
            ("answer", "expectation"),
        }


@pytest.mark.parametrize(
    ("path", "payload", "status", "says"),
    [
        ("/api/traces?filter=" + quote("nope = 1"), None, 400, "unknown field"),
        ("/api/traces?filter=" + quote("name = "), None, 400, "position"),
        ("/api/traces/0000/feedback", {"name": "x", "value": 1}, 404, "no trace"),
        ("/api/traces/0000", None, 404, "0000"),
        ("/api/traces?max_results=0", None, 422, "max_results"),
    ],
)
def test_api_errors(tmp_path: Path, path: str, payload: dict | None, status: int, says: str) -> None:
    with ServerThread(tmp_path / "api.duckdb") as srv:
        got, body = http_json(srv.url + path, payload)
        assert got == status
        assert says in str(body)


def test_bad_feedback_source_is_a_400(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "api.duckdb") as srv:
        trace_id = _send(srv.url, "t", {})
        got, body = http_json(f"{srv.url}/api/traces/{trace_id}/feedback", {"name": "x", "value": 1, "source": "bot"})
        assert got == 400 and "human, code or llm_judge" in body["error"]


def test_openapi_spec_lists_the_routes(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "api.duckdb") as srv:
        status, spec = http_json(srv.url + "/openapi.json")
        assert status == 200
        assert {"/v1/traces", "/api/health", "/api/traces", "/api/traces/{trace_id}",
                "/api/traces/{trace_id}/feedback"} <= set(spec["paths"])  # fmt: skip


def test_bearer_token_is_required_everywhere(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "auth.duckdb", auth_token="s3cret") as srv:
        body = make_request([make_span("x", *new_ids())]).SerializeToString()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            assert http(srv.url + "/v1/traces", body, {**PB, **headers})[0] == 401
            assert http(srv.url + "/api/health", None, headers)[0] == 401
        _send(srv.url, "ok", {}, token="s3cret")
        assert http_json(srv.url + "/api/health", token="s3cret")[1]["otlp"]["stored"] == 1


def test_token_and_loopback_checks() -> None:
    assert token_matches("Bearer abc", "abc") and token_matches(b"bearer abc", "abc")
    assert not token_matches("Bearer abcd", "abc") and not token_matches(None, "abc")
    assert not token_matches("Token abc", "abc") and not token_matches("Bearer", "abc")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("example.org")


def test_cli_refuses_a_public_bind_without_a_token(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agenttrace", "server", "--host", "0.0.0.0", "--store", str(tmp_path / "x.duckdb")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "--auth-token" in out.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_cli_server_runs_serves_and_stops_cleanly(tmp_path: Path) -> None:
    store = tmp_path / "cli.duckdb"
    with CliServer("--store", str(store), "--grpc-port", "0", env={"AGENTTRACE_AUTH_TOKEN": "tok"}) as srv:
        trace_id = _send(srv.url, "from-cli", {}, token="tok")
        assert http(srv.url + "/api/health")[0] == 401
        assert http_json(f"{srv.url}/api/traces/{trace_id}", token="tok")[0] == 200
        code, err = srv.stop()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: the exit is by that signal.
    assert code in (0, -15) and "Traceback" not in err, err
    from agenttrace.store import DuckDBStore

    assert DuckDBStore(store).get_trace(trace_id).spans[0].name == "from-cli"


def test_converter_processes_take_every_kind_of_body(tmp_path: Path) -> None:
    """With --ingest-workers, bodies are converted in other processes; answers and storage are the same."""
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

    store = tmp_path / "workers.duckdb"
    with CliServer("--store", str(store), "--ingest-workers", "2", "--grpc-port", "0") as srv:
        grpc_port = re.search(r"OTLP/gRPC on \S+:(\d+)", srv.proc.stdout.readline()).group(1)  # type: ignore[union-attr]
        grpc_id, grpc_span = new_ids()
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            TraceServiceStub(channel).Export(make_request([make_span("over-grpc", grpc_id, grpc_span)]), timeout=30)
        ids = [_send(srv.url, f"pb-{i}", {"openinference.span.kind": "TOOL", "input.value": f"q{i}"}) for i in range(6)]
        trace_id, span_id = new_ids()
        span = {"traceId": trace_id.hex(), "spanId": span_id.hex(), "name": "js", "startTimeUnixNano": "5",
                "endTimeUnixNano": "9"}  # fmt: skip
        as_json = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
        assert http(srv.url + "/v1/traces", as_json.encode(), {"Content-Type": "application/json"})[0] == 200
        status, _, body = http(srv.url + "/v1/traces", b"\x0a\xff\xff", PB)
        assert status == 400 and b"protobuf" in body  # the worker's IngestError comes back as a 400
        good_id, good_span = new_ids()
        partly = make_request([make_span("ok", good_id, good_span), make_span("no ids", b"", b"")])
        status, _, body = http(srv.url + "/v1/traces", partly.SerializeToString(), PB)
        answer = ExportTraceServiceResponse.FromString(body)
        assert status == 200 and answer.partial_success.rejected_spans == 1
        health = http_json(srv.url + "/api/health")[1]["otlp"]
        assert (health["stored"], health["spans_rejected"], health["bad_requests"]) == (9, 1, 1)
        assert http_json(f"{srv.url}/api/traces/{grpc_id.hex()}")[1]["spans"][0]["name"] == "over-grpc"
        status, trace = http_json(f"{srv.url}/api/traces/{ids[3]}")
        assert status == 200 and trace["spans"][0]["inputs"] == "q3"
        code, err = srv.stop()
    assert code in (0, -15) and "Traceback" not in err, err
    assert DuckDBStore(store).stats()["spans"] == 9


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the converter process through /proc")
def test_converter_processes_survive_ctrl_c_and_are_replaced_when_killed(tmp_path: Path) -> None:
    with CliServer("--store", str(tmp_path / "dead.duckdb"), "--ingest-workers", "1") as srv:
        _send(srv.url, "before", {})
        worker = _converter_pids(srv.proc.pid)
        assert len(worker) == 1
        # Ctrl-C reaches the whole process group: the converter ignores it, the server decides.
        os.kill(worker[0], signal.SIGINT)
        _send(srv.url, "after-ctrl-c", {})
        assert _converter_pids(srv.proc.pid) == worker
        # A converter that dies is replaced; the requests after it are converted by the new one.
        os.kill(worker[0], signal.SIGKILL)
        after = [_send(srv.url, f"after-{i}", {}) for i in range(3)]
        replacement = _converter_pids(srv.proc.pid)
        assert len(replacement) == 1 and replacement != worker
        health = http_json(srv.url + "/api/health")[1]["otlp"]
        assert (health["stored"], health["converter_restarts"]) == (5, 1)
        assert http_json(f"{srv.url}/api/traces/{after[-1]}")[1]["spans"][0]["name"] == "after-2"
        code, err = srv.stop()
    assert "a converter process died; starting a new one" in err and "Traceback" not in err, err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the converter process through /proc")
def test_converter_processes_end_with_a_killed_server(tmp_path: Path) -> None:
    srv = CliServer("--store", str(tmp_path / "killed.duckdb"), "--ingest-workers", "2").start()
    _send(srv.url, "one", {})
    workers = _converter_pids(srv.proc.pid)
    assert len(workers) == 2
    srv.proc.kill()  # no shutdown: the converters must notice by themselves
    srv.proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


def _converter_pids(server_pid: int) -> list[int]:
    return sorted(
        int(p.parent.name)
        for p in Path("/proc").glob("[0-9]*/cmdline")
        if _parent_of(p.parent) == server_pid and b"spawn_main" in _read(p)
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""  # the process ended meanwhile


def _parent_of(proc_dir: Path) -> int | None:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
