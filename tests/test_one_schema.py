"""One span schema: a span is stored the same whichever way it arrives.

The same OpenTelemetry SDK spans (our decorator's, OpenInference's, OpenLLMetry's, GenAI old and
new, a stock SDK span) go through the local store exporter, through `agenttrace server` over
OTLP/HTTP and over OTLP/gRPC, and through the in-memory collector evaluation uses; the stored span
rows and trace summaries must be equal column by column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

import agenttrace
from agenttrace.otel.collector import spans_to_trace
from agenttrace.otel.exporter import StoreSpanExporter
from agenttrace.schema import SPAN_COLUMNS, TRACE_COLUMNS
from agenttrace.store import DuckDBStore, _schema
from tests.server_harness import CliServer, http

T0 = 1_800_000_000_000_000_000
RESOURCE = Resource({"service.name": "schema-test", "agenttrace.experiment": "Default"})
SCOPE = InstrumentationScope("their-instrumentation", "1.0")

# (trace, span, parent span, name, attributes, events, error); ids are small integers.
FOREIGN: list[tuple[int, int, int | None, str, dict[str, Any], list[tuple[str, dict[str, Any]]], str | None]] = [
    (1, 1, None, "agent run", {"openinference.span.kind": "AGENT", "input.value": "what is 2+2?",
     "output.value": "4", "session.id": "s-1", "user.id": "ana", "tag.tags": ["prod", "team:core"],
     "metadata": '{"region": "eu"}'}, [], None),
    (1, 2, 1, "ChatCompletion", {
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
        "gen_ai.request.model": "genai-model", "llm.usage.prompt_tokens": 99,
        "llm.token_count.prompt": 12, "llm.token_count.completion": 4,
        "input.value": '{"model": "gpt-4o", "messages": [{"role": "user", "content": "2+2?"}]}',
        "input.mime_type": "application/json",
        "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "be brief",
        "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": "2+2?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "add",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"a": 2, "b": 2}'},
     [], None),
    (1, 3, 1, "search", {"openinference.span.kind": "RETRIEVER", "input.value": "arithmetic",
     "retrieval.documents.0.document.id": "d1", "retrieval.documents.0.document.content": "2+2=4",
     "retrieval.documents.0.document.score": 0.9}, [], None),
    (2, 4, None, "openai.chat", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4.1",
        "gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 7, "gen_ai.conversation.id": "conv-9",
        "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
        "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "hey"}],'
                                  ' "finish_reason": "stop"}]'}, [], None),
    (2, 5, 4, "get_weather", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
     "gen_ai.tool.call.arguments": '{"city": "Oslo"}', "gen_ai.tool.call.result": '{"c": 3}'}, [], None),
    (3, 6, None, "openai.completion", {
        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-3.5-turbo", "gen_ai.usage.prompt_tokens": 9,
        "gen_ai.usage.completion_tokens": 2, "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "hey",
        "gen_ai.completion.0.finish_reason": "stop"}, [], None),
    (3, 7, 6, "chat events", {"gen_ai.operation.name": "chat"},
     [("gen_ai.system.message", {"content": "sys"}), ("gen_ai.user.message", {"content": "q"}),
      ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": '{"content": "a"}'})], None),
    (4, 8, None, "plan.workflow", {"traceloop.span.kind": "workflow", "traceloop.entity.name": "plan",
     "traceloop.entity.input": '{"goal": "x"}', "traceloop.entity.output": '{"steps": 2}'}, [], None),
    (4, 9, 8, "anthropic.chat", {"llm.request.type": "chat", "llm.request.model": "claude",
     "llm.usage.prompt_tokens": 5, "llm.usage.completion_tokens": 6}, [], "RateLimitError: slow down"),
    (5, 10, None, "GET /health", {"http.method": "GET", "http.status_code": 200, "net.peer.port": 8080},
     [("retry", {"attempt": 1})], None),
]  # fmt: skip


def _context(trace: int, span: int, remote: bool = False) -> SpanContext:
    return SpanContext(trace, span, is_remote=remote, trace_flags=TraceFlags(TraceFlags.SAMPLED))


def _foreign_spans() -> list[ReadableSpan]:
    spans = []
    for i, (trace, span, parent, name, attributes, events, error) in enumerate(FOREIGN):
        start = T0 + i * 1_000_000
        spans.append(
            ReadableSpan(
                name,
                _context(trace, span),
                None if parent is None else _context(trace, parent),
                RESOURCE,
                attributes,
                [Event(n, a, start + 1) for n, a in events],
                status=Status(StatusCode.ERROR, error) if error else Status(StatusCode.OK),
                start_time=start,
                end_time=start + 500_000 + i,
                instrumentation_scope=SCOPE,
            )  # fmt: skip
        )
    return spans


def _odd_spans() -> list[ReadableSpan]:
    """What senders get wrong or leave out: NaN values, a clock that went back, an unnamed scope,
    only Phoenix's project name, a token count no call has, a mapper-hostile attribute."""
    resource = Resource({"service.name": "odd", "openinference.project.name": "phoenix-proj"})
    start = T0 + 50_000_000
    return [
        ReadableSpan(
            "odd root", _context(6, 60), None, resource,
            {"score": float("nan"), "ratio": float("inf"), "openinference.span.kind": "PROMPT",
             "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 2**62,
             "llm.output_messages.0.message.tool_calls": 5},
            start_time=start, end_time=start - 1_000, instrumentation_scope=InstrumentationScope(""),
        ),
        ReadableSpan(
            "odd child", _context(6, 61), _context(6, 60), resource, {"llm.request.type": "embedding",
            "gen_ai.system": "openai", "traceloop.entity.input": "from traceloop"},
            [Event("gen_ai.user.message", {"content": "from the event"}, start + 2)],
            start_time=start + 1, end_time=start + 5, instrumentation_scope=SCOPE,
        ),
        ReadableSpan(
            "odd chat", _context(6, 62), _context(6, 60), resource, {"llm.request.type": "chat",
            "traceloop.entity.input": "from traceloop"},
            [Event("gen_ai.user.message", {"content": "from the event"}, start + 3)],
            start_time=start + 2, end_time=start + 6, instrumentation_scope=SCOPE,
        ),
    ]  # fmt: skip


def _our_spans(store: Path) -> list[ReadableSpan]:
    """Real spans of our decorator, span() and update_current_trace, as the SDK hands them on."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agenttrace.tracing.runtime import get_runtime

    agenttrace.configure(store=str(store), raise_internal_errors=True)
    memory = InMemorySpanExporter()
    get_runtime().provider.add_span_processor(SimpleSpanProcessor(memory))  # type: ignore[union-attr]

    @agenttrace.trace(span_type="TOOL")
    def lookup(city: str) -> dict[str, int]:
        return {"c": 3}

    @agenttrace.trace(span_type="AGENT", attributes={"team": "core"})
    def agent(question: str) -> str:
        agenttrace.update_current_trace(tags={"env": "test"}, metadata={"k": [1, 2]}, session_id="s-9", user_id="u")
        with agenttrace.span("think", span_type="LLM", inputs={"q": question}) as s:
            s.set_attributes({"gen_ai.request.model": "m-1", "gen_ai.usage.input_tokens": 3})
            s.set_outputs("ok")
        lookup("Oslo")
        raise_inside()
        return "done"

    @agenttrace.trace
    def raise_inside() -> None:
        try:
            raise ValueError("inner")
        except ValueError:
            pass

    agent("weather?")
    agenttrace.flush()
    return list(memory.get_finished_spans())


def _rows(path: Path) -> tuple[list[tuple], list[tuple]]:
    span_names = [c.name for c in SPAN_COLUMNS if c.stored]
    trace_names = [c.name for c in TRACE_COLUMNS]
    with duckdb.connect(str(path), read_only=True) as con:
        spans = con.execute(f"SELECT {', '.join(span_names)} FROM spans ORDER BY span_id").fetchall()
        traces = con.execute(f"SELECT {', '.join(trace_names)} FROM traces ORDER BY trace_id").fetchall()
    return spans, traces


def _stored_locally(path: Path, spans: list[ReadableSpan]) -> None:
    exporter = StoreSpanExporter(DuckDBStore(path), write_batch=4, experiment="Default")
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.force_flush()
    DuckDBStore(path).release()


def _stored_by_server(path: Path, spans: list[ReadableSpan]) -> None:
    with CliServer("--store", str(path), "--grpc-port", "0", "--ingest-workers", "0") as server:
        grpc_line = server.proc.stdout.readline()  # type: ignore[union-attr]
        grpc_port = int(re.search(r"OTLP/gRPC on \S+:(\d+)", grpc_line).group(1))  # type: ignore[union-attr]
        half = len(spans) // 2
        body = encode_spans(spans[:half]).SerializeToString()
        status, _, _ = http(server.url + "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
        assert status == 200
        exporter = GrpcExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
        assert exporter.export(spans[half:]) is SpanExportResult.SUCCESS
        exporter.shutdown()  # both answers come once the spans are stored


@pytest.fixture
def all_spans(tmp_path: Path) -> list[ReadableSpan]:
    ours = _our_spans(tmp_path / "made.duckdb")
    assert {s.name for s in ours} >= {"agent", "think", "lookup", "raise_inside"}
    return ours + _foreign_spans() + _odd_spans()


def test_every_path_stores_the_same_rows(all_spans: list[ReadableSpan], tmp_path: Path) -> None:
    _stored_locally(tmp_path / "local.duckdb", all_spans)
    _stored_by_server(tmp_path / "server.duckdb", all_spans)
    local_spans, local_traces = _rows(tmp_path / "local.duckdb")
    server_spans, server_traces = _rows(tmp_path / "server.duckdb")
    assert len(local_spans) == len(all_spans) and len(local_traces) == 7
    names = [c.name for c in SPAN_COLUMNS if c.stored]
    for local, served in zip(local_spans, server_spans, strict=True):
        for name, a, b in zip(names, local, served, strict=True):
            assert a == b, (local[names.index("name")], name)
    trace_names = [c.name for c in TRACE_COLUMNS]
    for local, served in zip(local_traces, server_traces, strict=True):
        for name, a, b in zip(trace_names, local, served, strict=True):
            assert a == b, (local[0], name)


def test_the_collector_folds_traces_as_the_store_does(all_spans: list[ReadableSpan], tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    _stored_locally(path, all_spans)
    store = DuckDBStore(path)
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in all_spans:
        by_trace.setdefault(span.context.trace_id, []).append(span)
    for trace_id, spans in by_trace.items():
        stored = store.get_trace(format(trace_id, "032x"))
        in_memory = spans_to_trace(spans)
        assert in_memory.info == stored.info
        assert sorted(in_memory.spans, key=lambda s: s.span_id) == sorted(stored.spans, key=lambda s: s.span_id)


def test_the_same_facts_are_read_from_each_convention(all_spans: list[ReadableSpan], tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    _stored_locally(path, all_spans)
    store = DuckDBStore(path)
    chat = store.get_trace(format(1, "032x"))
    llm = chat.spans_of_type("LLM")[0]
    # OpenInference wins over GenAI and OpenLLMetry names for the same fact.
    assert (llm.model, llm.provider, llm.input_tokens, llm.output_tokens) == ("gpt-4o", "openai", 12, 4)
    assert llm.inputs == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "2+2?"}]},
    ]
    assert llm.outputs == [
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "add",
                                         "arguments": {"a": 2, "b": 2}}]},
    ]  # fmt: skip
    assert chat.spans_of_type("RETRIEVER")[0].outputs == [{"id": "d1", "content": "2+2=4", "score": 0.9}]
    assert (chat.info.session_id, chat.info.user_id, chat.info.tags, chat.info.metadata) == (
        "s-1",
        "ana",
        {"prod": "", "team": "core"},
        {"region": "eu"},
    )
    genai = store.get_trace(format(2, "032x"))
    assert genai.info.session_id == "conv-9" and genai.root.outputs[0]["finish_reason"] == "stop"  # type: ignore[index,union-attr]
    tool = genai.spans_of_type("TOOL")[0]
    assert (tool.inputs, tool.outputs) == ({"city": "Oslo"}, {"c": 3})
    older = store.get_trace(format(3, "032x"))
    assert [s.inputs for s in older.spans_of_type("LLM")] == [
        [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}],
        [{"role": "system", "parts": [{"type": "text", "content": "sys"}]},
         {"role": "user", "parts": [{"type": "text", "content": "q"}]}],
    ]  # fmt: skip
    assert older.spans_of_type("LLM")[1].outputs == [
        {"role": "assistant", "parts": [{"type": "text", "content": "a"}], "finish_reason": "stop"}
    ]
    odd = store.get_trace(format(6, "032x"))
    root, child = odd.root, odd.spans_of_type("EMBEDDING")[0]
    assert root is not None and root.span_type == "LLM"  # an unknown OpenInference kind falls through
    assert (root.duration_ms, root.scope, root.input_tokens) == (0.0, None, None)
    assert root.attributes["score"] is None and odd.info.experiment == "phoenix-proj"
    assert child.span_type == "EMBEDDING"  # OpenLLMetry's explicit request type beats a bare provider
    # Deprecated GenAI events come before OpenLLMetry's own attribute.
    chat = next(s for s in odd.spans if s.name == "odd chat")
    assert chat.inputs == [{"role": "user", "parts": [{"type": "text", "content": "from the event"}]}]
    openllmetry = store.get_trace(format(4, "032x"))
    assert [(s.span_type, s.model, s.input_tokens) for s in openllmetry] == [
        ("CHAIN", None, None),
        ("LLM", "claude", 5),
    ]
    assert openllmetry.root.inputs == {"goal": "x"}  # type: ignore[union-attr]


def test_records_and_tables_match_the_declaration(tmp_path: Path) -> None:
    from dataclasses import fields

    from agenttrace.records import SpanRecord, TraceInfo

    stored = {c.name for c in SPAN_COLUMNS if c.stored}
    assert {f.name for f in fields(SpanRecord)} <= stored
    # Every stored column is read back on the record under its own name (duration_ms is derived).
    assert stored - {f.name for f in fields(SpanRecord)} == {"duration_ms"}  # a property of the record
    assert {f.name for f in fields(TraceInfo)} == {c.name for c in TRACE_COLUMNS if c.public}
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.initialise()
    with duckdb.connect(str(store.path), read_only=True) as con:
        assert _schema.column_mismatches(con) == []


@pytest.mark.parametrize("change", ["declared, not stored", "stored, not declared", "another type"])
def test_a_store_that_differs_from_the_declaration_is_refused(
    tmp_path: Path, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agenttrace.errors import StoreError
    from agenttrace.schema import Kind, SpanColumn
    from agenttrace.store import _connection

    path = tmp_path / "s.duckdb"
    DuckDBStore(path).initialise()
    _connection.release(path)
    _connection.forget_prepared()
    if change == "declared, not stored":
        monkeypatch.setattr("agenttrace.schema.SPAN_COLUMNS", (*SPAN_COLUMNS, SpanColumn("cost", Kind.FLOAT64)))
        expected = "table spans lacks declared columns cost"
    elif change == "stored, not declared":
        with duckdb.connect(str(path)) as con:
            con.execute("ALTER TABLE spans ADD COLUMN extra VARCHAR")
        expected = "table spans has undeclared columns extra"
    else:
        with duckdb.connect(str(path)) as con:
            con.execute("ALTER TABLE traces ALTER COLUMN user_id SET DATA TYPE BIGINT")
        expected = "user_id is BIGINT, declared VARCHAR"
    with pytest.raises(StoreError, match=expected):
        DuckDBStore(path).count_traces()


def test_a_spans_attributes_are_copied_alike_from_the_sdks_dict_and_through_its_public_view() -> None:
    # The exporter copies an ended SDK span's attributes from the dict the SDK keeps (its public
    # view locks per key); a span without that dict (a ReadableSpan made directly) takes the view.
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

    from agenttrace.otel.convert import _attributes_of

    given = {"a": 1, "b": "two", "c": [1.5, 2.5], "d": True}
    sdk_span = TracerProvider().get_tracer("t").start_span("s", attributes=given)
    sdk_span.end()
    copied = _attributes_of(sdk_span)
    assert copied == dict(sdk_span.attributes) == {**given, "c": (1.5, 2.5)}  # the SDK keeps sequences as tuples
    copied["a"] = 2
    assert sdk_span.attributes["a"] == 1  # a copy, not the span's own dict
    assert _attributes_of(ReadableSpan("plain", attributes=given)) == given
    assert _attributes_of(ReadableSpan("bare")) == {}
