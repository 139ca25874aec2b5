"""OTLP export: our spans reach a real OTLP/HTTP or gRPC receiver on 127.0.0.1, with the conventions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agenttrace
from agenttrace import config
from agenttrace.errors import ConfigError
from agenttrace.otel.otlp_export import traces_url, with_conventions
from agenttrace.tracing import runtime
from tests.otlp_receivers import GrpcReceiver, HttpReceiver


@agenttrace.trace(span_type="TOOL")
def lookup(city: str) -> dict:
    return {"city": city, "temp": 21}


@agenttrace.trace(span_type="AGENT")
def agent(question: str) -> str:
    agenttrace.update_current_trace(tags={"env": "test"}, session_id="s-1", user_id="u-1")
    lookup("Paris")
    with agenttrace.span("call_llm", span_type="LLM", inputs={"q": question}) as s:
        s.set_attributes({"gen_ai.request.model": "gpt-x", "gen_ai.usage.input_tokens": 12,
                          "gen_ai.usage.output_tokens": 3})  # fmt: skip
        s.set_outputs("sunny")
    return "sunny"


@agenttrace.trace(span_type="CHAIN")
def broken() -> None:
    raise ValueError("boom")


def _assert_exported(spans: list, protocol_name: str) -> None:
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"agent", "lookup", "call_llm"}, protocol_name
    root, tool, llm = by_name["agent"], by_name["lookup"], by_name["call_llm"]
    # Parent links and one trace.
    assert root.span.parent_span_id == b""
    assert tool.span.parent_span_id == root.span.span_id
    assert llm.span.parent_span_id == root.span.span_id
    assert {s.span.trace_id for s in spans} == {root.span.trace_id}
    # OpenInference and GenAI conventions, our own attributes kept.
    a = root.attributes
    assert a["openinference.span.kind"] == "AGENT"
    assert a["gen_ai.operation.name"] == "invoke_agent"
    assert json.loads(a["input.value"]) == {"question": "weather?"}
    assert a["input.mime_type"] == "application/json"
    assert json.loads(a["output.value"]) == "sunny"
    assert a["session.id"] == "s-1" and a["user.id"] == "u-1" and a["gen_ai.conversation.id"] == "s-1"
    assert a["tag.tags"] == ["env:test"]
    assert a["agenttrace.span_type"] == "AGENT"
    t = tool.attributes
    assert t["openinference.span.kind"] == "TOOL" and t["gen_ai.operation.name"] == "execute_tool"
    m = llm.attributes
    assert m["openinference.span.kind"] == "LLM" and m["gen_ai.operation.name"] == "chat"
    assert m["llm.model_name"] == "gpt-x" and m["gen_ai.request.model"] == "gpt-x"
    assert (m["llm.token_count.prompt"], m["llm.token_count.completion"], m["llm.token_count.total"]) == (
        12,
        3,
        15,
    )
    assert root.resource["openinference.project.name"] == "Default"
    assert root.scope == "agenttrace"


def test_http_export_alone_with_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    with HttpReceiver() as rx:
        agenttrace.configure(store=None, otlp_endpoint=rx.endpoint, otlp_headers={"x-mlflow-experiment-id": "7"})
        assert agent("weather?") == "sunny"
        agenttrace.flush()
        spans = rx.wait_for(3)
        _assert_exported(spans, "http")
        assert rx.headers[0]["x-mlflow-experiment-id"] == "7"
        assert rx.headers[0]["content-type"] == "application/x-protobuf"
    assert not Path("agenttrace.duckdb").exists()


def test_grpc_export_beside_the_store(store_path: Path) -> None:
    with GrpcReceiver() as rx:
        agenttrace.configure(
            store=str(store_path),
            otlp_endpoint=rx.endpoint,
            otlp_protocol="grpc",
            otlp_headers="Api-Key=s%20cret",
        )
        agent("weather?")
        agenttrace.flush()
        _assert_exported(rx.wait_for(3), "grpc")
        assert rx.headers[0]["api-key"] == "s cret"
    stored = agenttrace.search_traces()
    assert list(stored.name) == ["agent"] and stored.span_count[0] == 3


def test_error_status_and_exception_event_are_exported() -> None:
    with HttpReceiver() as rx:
        agenttrace.configure(store=None, otlp_endpoint=rx.endpoint)
        with pytest.raises(ValueError):
            broken()
        agenttrace.flush()
        (span,) = rx.wait_for(1)
    assert span.span.status.code == 2  # STATUS_CODE_ERROR
    assert "ValueError: boom" in span.span.status.message
    assert [e.name for e in span.span.events] == ["exception"]


def test_standard_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    with HttpReceiver() as rx:
        base = rx.endpoint.removesuffix("/v1/traces")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)  # the signal path is appended
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc,x-a=1")
        runtime.reset()
        agenttrace.configure(store=None)
        lookup("Oslo")
        agenttrace.flush()
        (span,) = rx.wait_for(1)
        assert span.name == "lookup"
        assert rx.headers[0]["authorization"] == "Bearer abc" and rx.headers[0]["x-a"] == "1"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318"}, ("http://h:4318/v1/traces", "http/protobuf")),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318/b/"}, ("http://h:4318/b/v1/traces", "http/protobuf")),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
         ("http://h:4317", "grpc")),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"},
         ("http://t/x", "http/protobuf")),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x", "AGENTTRACE_OTLP_ENDPOINT": "http://mine:1/v1/traces"},
         ("http://mine:1/v1/traces", "http/protobuf")),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
         (None, "grpc")),
        ({}, (None, "http/protobuf")),
    ],
)  # fmt: skip
def test_endpoint_precedence(environ: dict[str, str], expected: tuple) -> None:
    s = config.resolve(environ=environ)
    assert (s.otlp_endpoint, s.otlp_protocol) == expected


def test_argument_beats_environment() -> None:
    s = config.resolve({"otlp_endpoint": "http://arg:1"}, environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:2"})
    assert s.otlp_endpoint == "http://arg:1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"otlp_protocol": "http/json"}, "otlp_protocol"),
        ({"otlp_headers": "novalue"}, "not key=value"),
        ({"otlp_headers": 3}, "otlp_headers"),
        ({"uri": "127.0.0.1:6060"}, "uri must be"),
    ],
)
def test_bad_settings_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        agenttrace.configure(**overrides)


def test_traces_url() -> None:
    assert traces_url("http://h:4318", "http/protobuf") == "http://h:4318/v1/traces"
    assert traces_url("http://h:6006/v1/traces", "http/protobuf") == "http://h:6006/v1/traces"
    assert traces_url("https://l/api/public/otel/v1/traces", "http/protobuf") == "https://l/api/public/otel/v1/traces"
    with pytest.raises(ConfigError, match="not an http"):
        traces_url("h:4318", "http/protobuf")


def test_conventions_never_replace_what_the_span_has() -> None:
    out = with_conventions({"agenttrace.span_type": "PARSER", "openinference.span.kind": "CHAIN",
                            "llm.model_name": "m", "llm.token_count.prompt": 2})  # fmt: skip
    assert out["openinference.span.kind"] == "CHAIN"
    assert out["gen_ai.request.model"] == "m" and out["gen_ai.usage.input_tokens"] == 2
    assert "gen_ai.operation.name" not in out


def test_collector_down_costs_nothing_and_failures_are_counted(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # the exporter's own retry budget, in seconds
    with HttpReceiver() as rx:
        dead = rx.endpoint
    # Nothing listens there now: the exporter's retries happen on the batch thread, not ours.
    agenttrace.configure(store=str(store_path), otlp_endpoint=dead)
    import time

    start = time.perf_counter()
    for _ in range(200):
        lookup("x")
    assert time.perf_counter() - start < 20.0  # a retry on our thread would cost 1 s per call: 200 s
    agenttrace.flush(timeout_ms=15_000)
    rt = runtime.get_runtime()
    dropped, failed = rt.lost_spans()
    assert failed == 200 and dropped == 0
    assert len(agenttrace.search_traces(max_results=500)) == 200  # the store got every span anyway
    runtime.reset()
    from agenttrace.store import DuckDBStore

    stats = DuckDBStore(store_path).stats()
    assert (stats["failed_spans"], stats["otlp_failed_spans"]) == (0, 200)
