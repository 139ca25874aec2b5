"""`agenttrace serve`: a registered version behind real uvicorn on 127.0.0.1, every request a trace.

One server per agent kind for the module (sync, async, generator, async generator); each test's
traces land in its own store because the tracing runtime is per test (conftest) and the servers
trace through whichever runtime is current.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import agenttrace
from agenttrace.errors import AgentNotFoundError, TraceNotFoundError
from agenttrace.records import Trace
from agenttrace.serving import AgentHolder, ServedAgent, create_serving_app
from agenttrace.store import DuckDBStore, _connection
from agenttrace.tracing import runtime
from tests.server_harness import http

# The agents live in a one-file module written for the module: the registry fingerprints a target's
# whole package when it registers and loads it, and the tests package is large.
AGENTS = """
import asyncio
import threading
from typing import Any

RELEASE = threading.Event()  # a "hang" request waits on it; set at the end of the module
RELEASE_V1 = threading.Event()


class Unserialisable:
    def __repr__(self) -> str:
        return "<Unserialisable thing>"


def answer(question: str, n: int = 1, config: dict[str, Any] | None = None) -> dict[str, Any]:
    if question == "note":
        import agenttrace

        agenttrace.update_current_trace(metadata={"noted": "by the agent"}, tags={"topic": "notes"})
        return {"answer": "noted"}
    if question == "boom":
        raise ValueError("a detail the client must not see")
    if question == "hang":
        RELEASE.wait(30)
        return {"answer": "late"}
    return {"answer": question * n, "model": (config or {}).get("model"), "odd": Unserialisable()}


async def async_answer(question: str) -> str:
    await asyncio.sleep(0)
    return question.upper()


def words(text: str):
    for word in text.split():
        if word == "boom":
            raise RuntimeError("broken stream")
        yield word


async def async_words(text: str):
    for word in text.split():
        await asyncio.sleep(0)
        yield word


def v1(question: str) -> str:
    RELEASE_V1.wait(10)
    return "one"


def v2(question: str) -> str:
    return "two"
"""


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("serve_agents")
    (folder / "serve_agents_mod.py").write_text(AGENTS)
    sys.path.insert(0, str(folder))
    import serve_agents_mod  # type: ignore[import-not-found]

    yield serve_agents_mod
    serve_agents_mod.RELEASE.set()
    serve_agents_mod.RELEASE_V1.set()
    sys.path.remove(str(folder))


class _Serving:
    """create_serving_app + uvicorn in a daemon thread on an ephemeral port."""

    def __init__(self, app: Any) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, agents: Any) -> Iterator[dict[str, str]]:
    runtime.reset()
    agenttrace.configure(store=str(tmp_path_factory.mktemp("serve") / "registry.duckdb"), schedule_delay_ms=50)
    agenttrace.register_agent("bot", agents.answer, config={"model": "m-1"})
    agenttrace.set_alias("bot", "champion", 1)
    for name, fn in (("abot", agents.async_answer), ("words", agents.words), ("awords", agents.async_words)):
        agenttrace.register_agent(name, fn)
    running = {
        "bot": _Serving(create_serving_app(AgentHolder(ServedAgent.load("bot@champion")), timeout_s=1.0)),
        **{n: _Serving(create_serving_app(AgentHolder(ServedAgent.load(n)))) for n in ("abot", "words", "awords")},
        "auth": _Serving(create_serving_app(AgentHolder(ServedAgent.load("bot/1")), auth_token="s3cret")),
        "allowed": _Serving(
            create_serving_app(AgentHolder(ServedAgent.load("bot/1")), allowed_hosts=("bot.internal",))
        ),
        "small": _Serving(create_serving_app(AgentHolder(ServedAgent.load("bot/1")), max_body_bytes=1024)),
    }
    yield {name: s.url for name, s in running.items()}
    agents.RELEASE.set()
    for s in running.values():
        s.stop()
    runtime.reset()
    _connection.forget_prepared()


def post(url: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, got, raw = http(url, body, {"Content-Type": "application/json", **(headers or {})})
    return status, got, json.loads(raw) if raw.startswith(b"{") else raw


def stored(trace_id: str) -> Trace:
    """The request's trace once it is stored: the root span is recorded after the answer is sent."""
    deadline = time.monotonic() + 10
    while True:
        agenttrace.flush()
        try:
            trace = agenttrace.get_trace(trace_id)
        except TraceNotFoundError:
            trace = None
        if trace is not None and trace.info.status != "IN_PROGRESS" or time.monotonic() > deadline:
            return trace if trace is not None else agenttrace.get_trace(trace_id)
        time.sleep(0.02)


def test_invocations_answer_and_the_request_is_one_stamped_trace(servers: dict[str, str]) -> None:
    headers = {"x-request-id": "req-42", "x-session-id": "s-1", "x-user-id": "u-7"}
    status, got, body = post(servers["bot"] + "/invocations", {"question": "hi", "n": 2}, headers)
    assert status == 200
    assert body["outputs"] == {"answer": "hihi", "model": "m-1", "odd": "<Unserialisable thing>"}
    assert body["agent_version"] == "bot/1"
    assert got["x-request-id"] == "req-42" and got["x-trace-id"] == body["trace_id"]
    trace = stored(body["trace_id"])
    tree = [(d, s.name, s.span_type) for d, s in trace.walk()]
    assert tree == [(0, "bot", "AGENT")]  # the request and the agent's call are one span
    info = trace.info
    assert (info.status, info.session_id, info.user_id) == ("OK", "s-1", "u-7")
    assert info.metadata["request_id"] == "req-42"
    assert (info.agent_name, info.agent_version) == ("bot", "1")
    assert info.inputs == {"question": "hi", "n": 2} and info.outputs["answer"] == "hihi"
    assert trace.spans[0].attributes["http.response.status_code"] == 200


def test_what_the_agent_notes_on_its_trace_is_kept_beside_the_requests_facts(servers: dict[str, str]) -> None:
    status, _, body = post(servers["bot"] + "/invocations", {"question": "note"}, {"x-request-id": "req-note"})
    assert status == 200
    info = stored(body["trace_id"]).info
    assert info.metadata == {"request_id": "req-note", "noted": "by the agent"}
    assert info.tags == {"topic": "notes"} and info.agent_version == "1"


def test_inputs_wrapper_and_a_generated_request_id(servers: dict[str, str]) -> None:
    status, got, body = post(servers["bot"] + "/invocations", {"inputs": {"question": "ab"}})
    assert status == 200 and body["outputs"]["answer"] == "ab"
    assert len(got["x-request-id"]) == 32
    assert stored(body["trace_id"]).info.metadata["request_id"] == got["x-request-id"]


def test_traceparent_continues_the_callers_trace(servers: dict[str, str]) -> None:
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{caller_trace}-{caller_span}-01"}
    status, _, body = post(servers["bot"] + "/invocations", {"question": "x"}, headers)
    assert status == 200 and body["trace_id"] == caller_trace
    root = next(s for s in stored(caller_trace).spans if s.name == "bot")
    assert root.parent_span_id == caller_span


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"not json", "not JSON"),
        ([1, 2], "JSON object"),
        ({"question": 3}, "question: Input should be a valid string"),
        ({"question": "x", "nope": 1}, "nope: not a parameter of the agent"),
        ({}, "question: Field required"),
    ],
)
def test_a_body_that_does_not_fit_is_400_with_a_message(servers: dict[str, str], payload: Any, says: str) -> None:
    status, _, body = post(servers["bot"] + "/invocations", payload)
    assert status == 400 and says in body["error"], body
    assert "question, n?" in body["error"] or "not JSON" in body["error"]


def test_a_body_over_the_limit_is_413_whether_its_length_is_declared_or_chunked(servers: dict[str, str]) -> None:
    import http.client
    from urllib.parse import urlsplit

    url = servers["small"] + "/invocations"
    assert post(url, {"question": "x" * 900})[0] == 200  # under the 1,024 bytes
    status, _, body = post(url, {"question": "x" * 2000})
    assert status == 413 and "--max-body-mb" in body["error"] and body["error_type"] == "BodyTooLarge"
    # No Content-Length: the body arrives in chunks and is refused once past the limit.
    where = urlsplit(url)
    con = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    chunks = (b'{"question": "' + b"y" * 600, b"y" * 600, b"y" * 600 + b'"}')
    con.request(
        "POST", where.path, body=iter(chunks), headers={"Content-Type": "application/json"}, encode_chunked=True
    )
    answer = con.getresponse()
    assert answer.status == 413 and b"over the server's limit of 1,024 bytes" in answer.read()
    con.close()
    assert post(url, {"question": "ok"})[0] == 200  # still serving


def test_an_agent_that_raises_is_500_with_type_and_trace_id_and_no_stack(servers: dict[str, str]) -> None:
    headers = {"x-request-id": "req-boom", "x-session-id": "s-9"}
    status, _, body = post(servers["bot"] + "/invocations", {"question": "boom"}, headers)
    assert status == 500 and body["error_type"] == "ValueError"
    assert "detail the client" not in json.dumps(body) and "Traceback" not in json.dumps(body)
    trace = stored(body["trace_id"])
    assert trace.info.status == "ERROR"
    # A failed request's trace carries the request's facts as a successful one does.
    assert (trace.info.agent_name, trace.info.agent_version, trace.info.session_id) == ("bot", "1", "s-9")
    assert trace.info.metadata["request_id"] == "req-boom"
    assert trace.spans[0].attributes["http.response.status_code"] == 500
    events = [e for s in trace.spans for e in s.events if e["name"] == "exception"]
    assert any("Traceback" in e["attributes"].get("exception.stacktrace", "") for e in events)
    assert post(servers["bot"] + "/invocations", {"question": "ok"})[0] == 200  # still up


def test_a_hanging_agent_times_out_with_504_and_others_are_served_meanwhile(servers: dict[str, str]) -> None:
    results: dict[str, Any] = {}

    def hang() -> None:
        results["hang"] = post(servers["bot"] + "/invocations", {"question": "hang"})

    slow = threading.Thread(target=hang)
    slow.start()
    time.sleep(0.1)
    status, _, body = post(servers["bot"] + "/invocations", {"question": "quick"})
    assert status == 200 and body["outputs"]["answer"] == "quick" and slow.is_alive()
    slow.join(10)
    status, _, body = results["hang"]
    assert status == 504 and body["error_type"] == "TimeoutError" and "1 s" in body["error"]
    trace = stored(body["trace_id"])
    assert trace.info.status == "ERROR" and trace.spans[0].attributes["http.response.status_code"] == 504


def test_async_agent(servers: dict[str, str]) -> None:
    status, _, body = post(servers["abot"] + "/invocations", {"question": "hey"})
    assert status == 200 and body["outputs"] == "HEY"
    assert [(s.name, s.span_type) for s in stored(body["trace_id"]).spans] == [("abot", "AGENT")]


def _events(raw: bytes) -> list[tuple[str | None, Any]]:
    out = []
    for block in raw.decode().strip().split("\n\n"):
        name, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        out.append((name, data))
    return out


@pytest.mark.parametrize("agent", ["words", "awords"])
def test_generator_agents_stream_server_sent_events_in_one_trace(servers: dict[str, str], agent: str) -> None:
    status, headers, raw = http(servers[agent] + "/invocations/stream", json.dumps({"text": "a b c"}).encode())
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = _events(raw)
    assert [e for e, _ in events] == ["start", None, None, None, "end"]
    assert [d for e, d in events if e is None] == ["a", "b", "c"]
    trace = stored(events[0][1]["trace_id"])
    assert [(d, s.name) for d, s in trace.walk()] == [(0, agent)]
    assert trace.info.outputs == ["a", "b", "c"] and trace.spans[0].attributes["http.route"] == "/invocations/stream"
    assert trace.info.agent_name == agent and len(trace.info.metadata["request_id"]) == 32
    status, _, body = post(servers[agent] + "/invocations", {"text": "x y"})  # collected in one answer
    assert status == 200 and body["outputs"] == ["x", "y"]


def test_a_stream_that_fails_ends_with_an_error_event(servers: dict[str, str]) -> None:
    status, _, raw = http(servers["words"] + "/invocations/stream", json.dumps({"text": "a boom"}).encode())
    events = _events(raw)
    assert status == 200 and [e for e, _ in events] == ["start", None, "error"]
    assert events[-1][1]["error_type"] == "RuntimeError"
    assert stored(events[0][1]["trace_id"]).info.status == "ERROR"


def test_streaming_a_plain_agent_is_400(servers: dict[str, str]) -> None:
    status, _, body = post(servers["bot"] + "/invocations/stream", {"question": "x"})
    assert status == 400 and "not a generator agent" in body["error"]


def test_health_version_and_openapi_with_the_agents_parameters(servers: dict[str, str]) -> None:
    assert json.loads(http(servers["bot"] + "/health")[2]) == {"status": "ok", "agent_version": "bot/1"}
    version = json.loads(http(servers["bot"] + "/version")[2])
    got = (version["agent"], version["version"], version["alias"], version["ref"])
    assert got == ("bot", 1, "champion", "bot@champion")
    spec = json.loads(http(servers["bot"] + "/openapi.json")[2])
    schema = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["question"]
    assert set(schema["properties"]) == {"question", "n"}  # config is bound by the registry, not sent
    assert schema["properties"]["n"]["type"] == "integer"


def test_auth_token_is_required_when_set(servers: dict[str, str]) -> None:
    assert post(servers["auth"] + "/invocations", {"question": "x"})[0] == 401
    ok = post(servers["auth"] + "/invocations", {"question": "x"}, {"Authorization": "Bearer s3cret"})
    assert ok[0] == 200


def test_a_request_through_a_rebinding_name_is_403_and_allowed_names_are_served(servers: dict[str, str]) -> None:
    assert post(servers["bot"] + "/invocations", {"question": "x"}, {"Host": "evil.example"})[0] == 403
    assert post(servers["bot"] + "/invocations", {"question": "x"}, {"Host": "localhost:1"})[0] == 200
    assert post(servers["allowed"] + "/invocations", {"question": "x"}, {"Host": "bot.internal"})[0] == 200
    assert post(servers["allowed"] + "/invocations", {"question": "x"}, {"Host": "other.internal"})[0] == 403


@pytest.mark.parametrize(
    ("ref", "lists"),
    [("nobody@champion", "bot"), ("bot/9", "1"), ("bot@missing", "champion")],
)
def test_unknown_agent_version_or_alias_is_a_clear_error(agents: Any, ref: str, lists: str) -> None:
    agenttrace.register_agent("bot", agents.answer)
    agenttrace.set_alias("bot", "champion", 1)
    with pytest.raises(AgentNotFoundError) as caught:
        ServedAgent.load(ref)
    assert lists in str(caught.value)


def test_follow_alias_swaps_between_requests_and_in_flight_ones_finish_on_the_old(agents: Any) -> None:
    agenttrace.register_agent("flip", agents.v1)
    agenttrace.register_agent("flip", agents.v2)
    agenttrace.set_alias("flip", "live", 1)
    holder = AgentHolder(ServedAgent.load("flip@live"), follow_interval_s=3600)  # swapped by hand below
    serving = _Serving(create_serving_app(holder))
    try:
        results: dict[str, Any] = {}

        def call() -> None:
            results["a"] = post(serving.url + "/invocations", {"question": "q"})

        first = threading.Thread(target=call)
        first.start()
        time.sleep(0.2)
        agenttrace.set_alias("flip", "live", 2)
        assert holder.check_alias() is True
        status, _, body = post(serving.url + "/invocations", {"question": "q"})
        assert (status, body["outputs"], body["agent_version"]) == (200, "two", "flip/2")
        agents.RELEASE_V1.set()
        first.join(10)
        assert results["a"][2]["outputs"] == "one" and results["a"][2]["agent_version"] == "flip/1"
        assert json.loads(http(serving.url + "/version")[2])["version"] == 2
        assert holder.check_alias() is False  # nothing moved
    finally:
        agents.RELEASE_V1.set()
        serving.stop()


def test_cli_serve_prints_the_url_and_a_curl_and_traces_into_the_store(tmp_path: Path) -> None:
    (tmp_path / "clibot.py").write_text("def reply(text: str) -> str:\n    return text[::-1]\n")
    store = tmp_path / "traces.duckdb"  # this test's own store: registered here, served by the CLI
    sys.path.insert(0, str(tmp_path))
    try:
        agenttrace.register_agent("clibot", "clibot:reply")
    finally:
        sys.path.remove(str(tmp_path))
    agenttrace.set_alias("clibot", "prod", 1)
    _connection.release()
    run = [sys.executable, "-m", "agenttrace"]
    proc = subprocess.Popen([*run, "serve", "clibot@prod", "--port", "0", "--store", str(store)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        first, second = proc.stdout.readline(), proc.stdout.readline()
        assert "clibot@prod (clibot/1) listening on http://127.0.0.1:" in first, (first, proc.stderr)
        url = first.split("listening on ")[1].strip()
        assert second.startswith(f"try: curl -s {url}/invocations") and '"text"' in second
        status, _, body = post(url + "/invocations", {"text": "abc"})
        assert (status, body["outputs"]) == (200, "cba")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert agenttrace.get_trace(body["trace_id"]).info.agent_name == "clibot"


def test_cli_serve_with_two_workers_traces_every_request_into_one_store(store_path: Path) -> None:
    work = store_path.parent
    (work / "whobot.py").write_text("import os\n\ndef who(text: str) -> dict:\n    return {'pid': os.getpid()}\n")
    sys.path.insert(0, str(work))
    try:
        agenttrace.register_agent("whobot", "whobot:who")
    finally:
        sys.path.remove(str(work))
    agenttrace.flush()
    _connection.release()
    command = [sys.executable, "-m", "agenttrace", "serve", "whobot", "--workers", "2", "--port", "0"]
    proc = subprocess.Popen([*command, "--store", str(store_path)], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    pids, trace_ids = set(), set()
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split("listening on ")[1].strip()
        deadline = time.monotonic() + 120
        # The workers start after the URL is out; go on until both have answered (new connections
        # each time, which the kernel hands to either worker).
        while (len(trace_ids) < 30 or len(pids) < 2) and time.monotonic() < deadline:
            try:
                status, _, body = post(url + "/invocations", {"text": "x"})
            except OSError:
                time.sleep(0.2)
                continue
            assert status == 200, body
            pids.add(body["outputs"]["pid"])
            trace_ids.add(body["trace_id"])
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert len(pids) == 2 and proc.pid not in pids  # both worker processes answered, not the supervisor
    _connection.forget_prepared()
    stored = DuckDBStore(store_path).search_traces("agent_name = 'whobot'", max_results=len(trace_ids) + 10)
    assert set(stored["trace_id"]) == trace_ids  # each worker wrote its own requests into the one file


def test_cli_serve_refuses_a_public_address_without_a_token_and_an_unknown_alias(tmp_path: Path, agents: Any) -> None:
    from click.testing import CliRunner

    from agenttrace.cli import cli

    result = CliRunner().invoke(cli, ["serve", "bot@x", "--host", "0.0.0.0", "--store", str(tmp_path / "s.duckdb")])
    assert result.exit_code == 2 and "--auth-token" in result.output
    agenttrace.register_agent("bot", agents.answer)
    result = CliRunner().invoke(cli, ["serve", "bot@nope", "--port", "0", "--store", str(tmp_path / "traces.duckdb")])
    assert result.exit_code == 1 and "nope" in result.output
