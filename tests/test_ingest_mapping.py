"""Ingest mapping: spans of other instrumentations land in our columns, every attribute kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agenttrace.otel.ingest import decode_json, decode_protobuf, request_to_rows
from agenttrace.store import DuckDBStore
from tests.otlp_builders import make_request, make_span, new_ids

# (case, attributes, events, expected facts of the stored span)
CASES: list[tuple[str, dict[str, Any], list, dict[str, Any]]] = [
    (
        "openinference llm",
        {"openinference.span.kind": "LLM", "input.value": '{"messages": [{"role": "user", "content": "hi"}]}',
         "input.mime_type": "application/json", "output.value": "hello there", "output.mime_type": "text/plain",
         "llm.model_name": "gpt-4o", "llm.token_count.prompt": 12, "llm.token_count.completion": 4,
         "session.id": "sess-1", "user.id": "ana", "tag.tags": ["prod", "team:core"],
         "metadata": '{"region": "eu"}'},
        [],
        {"span_type": "LLM", "inputs": [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}],
         "outputs": [{"role": "assistant", "parts": [{"type": "text", "content": "hello there"}]}],
         "model": "gpt-4o", "input_tokens": 12, "output_tokens": 4, "session_id": "sess-1", "user_id": "ana",
         "tags": {"prod": "", "team": "core"}, "metadata": {"region": "eu"}},
    ),
    (
        "openinference retriever, text input that is not json",
        {"openinference.span.kind": "RETRIEVER", "input.value": "{not json", "retrieval.documents.0.document.id": "d1"},
        [],
        {"span_type": "RETRIEVER", "inputs": "{not json", "outputs": [{"id": "d1"}]},
    ),
    (
        # JavaScript's JSON.stringify writes a lone surrogate escape for a string cut inside an emoji;
        # the store refuses it, so the half is replaced and the structure kept.
        "json with lone surrogate escapes",
        {"openinference.span.kind": "CHAIN", "input.value": '{"q": "abc\\ud83d"}',
         "input.mime_type": "application/json", "output.value": '[1e400]', "output.mime_type": "application/json",
         "metadata": '{"k": "\\udfff"}'},
        [],
        {"span_type": "CHAIN", "inputs": {"q": "abc?"}, "metadata": {"k": "?"}},
    ),
    (
        "genai current conventions",
        {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4.1",
         "gen_ai.response.model": "gpt-4.1-2025", "gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 7,
         "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "2+2?"}]}]',
         "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "4"}]}]',
         "gen_ai.conversation.id": "conv-9", "gen_ai.agent.name": "math-bot"},
        [],
        {"span_type": "LLM", "model": "gpt-4.1", "input_tokens": 30, "output_tokens": 7, "session_id": "conv-9",
         "inputs": [{"role": "user", "parts": [{"type": "text", "content": "2+2?"}]}],
         "outputs": [{"role": "assistant", "parts": [{"type": "text", "content": "4"}]}], "agent_name": "math-bot"},
    ),
    (
        "genai older indexed prompt attributes",
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-3.5-turbo", "gen_ai.usage.prompt_tokens": 9,
         "gen_ai.usage.completion_tokens": 2, "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "be brief",
         "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "hi", "gen_ai.completion.0.role": "assistant",
         "gen_ai.completion.0.content": "hey", "gen_ai.completion.0.finish_reason": "stop"},
        [],
        {"span_type": "LLM", "model": "gpt-3.5-turbo", "input_tokens": 9, "output_tokens": 2,
         "inputs": [{"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
                    {"role": "user", "parts": [{"type": "text", "content": "hi"}]}],
         "outputs": [{"role": "assistant", "parts": [{"type": "text", "content": "hey"}], "finish_reason": "stop"}],
         "provider": "openai"},
    ),
    (
        "genai older prompt and completion events",
        {"gen_ai.operation.name": "text_completion", "gen_ai.request.model": "m"},
        [("gen_ai.content.prompt", {"gen_ai.prompt": "tell a joke"}),
         ("gen_ai.content.completion", {"gen_ai.completion": "no"})],
        {"span_type": "LLM", "inputs": [{"role": "user", "parts": [{"type": "text", "content": "tell a joke"}]}],
         "outputs": [{"role": "assistant", "parts": [{"type": "text", "content": "no"}]}]},
    ),
    (
        "genai per-message events",
        {"gen_ai.operation.name": "chat"},
        [("gen_ai.system.message", {"content": "sys"}), ("gen_ai.user.message", {"content": "q"}),
         ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": '{"content": "a"}'})],
        {"span_type": "LLM", "inputs": [{"role": "system", "parts": [{"type": "text", "content": "sys"}]},
                                        {"role": "user", "parts": [{"type": "text", "content": "q"}]}],
         "outputs": [{"role": "assistant", "parts": [{"type": "text", "content": "a"}], "finish_reason": "stop"}]},
    ),
    (
        "openllmetry workflow",
        {"traceloop.span.kind": "workflow", "traceloop.entity.name": "plan",
         "traceloop.entity.input": '{"inputs": {"goal": "x"}}', "traceloop.entity.output": '{"outputs": 1}'},
        [],
        {"span_type": "CHAIN", "inputs": {"inputs": {"goal": "x"}}, "outputs": {"outputs": 1}},
    ),
    (
        "openllmetry llm with llm.usage",
        {"llm.request.type": "chat", "gen_ai.request.model": "claude", "llm.usage.prompt_tokens": 5,
         "llm.usage.completion_tokens": 6, "llm.usage.total_tokens": 11},
        [],
        {"span_type": "LLM", "model": "claude", "input_tokens": 5, "output_tokens": 6},
    ),
    (
        "openllmetry tool", {"traceloop.span.kind": "tool"}, [], {"span_type": "TOOL"},
    ),
    (
        "plain http span", {"http.method": "GET", "http.status_code": 200}, [], {"span_type": "UNKNOWN"},
    ),
    (
        "our own exported span",
        {"agenttrace.span_type": "TOOL", "agenttrace.inputs": '{"city": "Oslo"}', "agenttrace.outputs": "21",
         "openinference.span.kind": "TOOL", "input.value": '{"city": "Oslo"}', "agenttrace.trace.tags": '{"env": "t"}'},
        [],
        {"span_type": "TOOL", "inputs": {"city": "Oslo"}, "outputs": 21, "tags": {"env": "t"}},
    ),
]  # fmt: skip


def _store_one(tmp_path: Path, attributes: dict[str, Any], events: list) -> tuple[Any, Any]:
    trace_id, span_id = new_ids()
    request = make_request([make_span("step", trace_id, span_id, attributes=attributes, events=events)])
    result = request_to_rows(decode_protobuf(request.SerializeToString()))
    assert (result.accepted, result.rejected) == (1, 0)
    store = DuckDBStore(tmp_path / "ingest.duckdb")
    store.append_new_spans(result.rows)
    trace = store.get_trace(trace_id.hex())
    return trace, trace.spans[0]


@pytest.mark.parametrize(("case", "attributes", "events", "expected"), CASES, ids=[c[0] for c in CASES])
def test_conventions_fill_our_columns(
    tmp_path: Path, case: str, attributes: dict, events: list, expected: dict
) -> None:
    trace, span = _store_one(tmp_path, attributes, events)
    for column in ("span_type", "inputs", "outputs", "model", "provider", "input_tokens", "output_tokens"):
        if column in expected:
            assert getattr(span, column) == expected[column], column
    for column in ("session_id", "user_id", "tags", "metadata"):
        if column in expected:
            assert getattr(trace.info, column) == expected[column], column
    # Every original attribute is kept (ours are in their own columns, as for traced spans), but for
    # the copies of ours that our own export adds for other tools: a payload is stored once.
    copies = {"input.value"} if "agenttrace.inputs" in attributes else set()
    kept = {k: v for k, v in attributes.items() if not k.startswith("agenttrace.") and k not in copies}
    assert not copies & set(span.attributes)
    assert {k: span.attributes[k] for k in kept} == kept
    assert [e["name"] for e in span.events] == [name for name, _ in events]


def test_a_whole_foreign_trace(tmp_path: Path) -> None:
    trace_id, root_id = new_ids()
    _, child_id = new_ids()
    _, grandchild_id = new_ids()
    spans = [
        make_span("agent run", trace_id, root_id, attributes={"openinference.span.kind": "AGENT",
                  "input.value": "what is 2+2?", "output.value": "4"}, duration_ns=9_000_000),
        make_span("search", trace_id, child_id, root_id, attributes={"openinference.span.kind": "TOOL"},
                  start=1_700_000_000_000_001_000),
        make_span("chat", trace_id, grandchild_id, child_id, error="RateLimitError: slow down",
                  attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3},
                  start=1_700_000_000_000_002_000),
    ]  # fmt: skip
    request = make_request(spans, resource={"service.name": "ts-agent", "openinference.project.name": "proj-x"})
    store = DuckDBStore(tmp_path / "ingest.duckdb")
    store.append_new_spans(request_to_rows(request).rows)
    trace = store.get_trace(trace_id.hex())
    assert [(d, s.name, s.span_type, s.status) for d, s in trace.walk()] == [
        (0, "agent run", "AGENT", "OK"), (1, "search", "TOOL", "OK"), (2, "chat", "LLM", "ERROR"),
    ]  # fmt: skip
    info = trace.info
    assert (info.name, info.status, info.inputs, info.outputs) == ("agent run", "OK", "what is 2+2?", "4")
    assert info.experiment == "proj-x" and info.span_count == 3 and info.input_tokens == 3
    assert trace.spans_of_type("LLM")[0].status_message == "RateLimitError: slow down"


def test_json_body_with_hex_ids(tmp_path: Path) -> None:
    trace_id, span_id = new_ids()
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js-app"}}]},
            "scopeSpans": [{"scope": {"name": "js"}, "spans": [{
                "traceId": trace_id.hex(), "spanId": span_id.hex(), "name": "GET /", "kind": 2,
                "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000000001000000,
                "attributes": [{"key": "input.value", "value": {"stringValue": "q"}},
                               {"key": "n", "value": {"intValue": "7"}},
                               {"key": "arr", "value": {"arrayValue": {"values": [{"doubleValue": 1.5}]}}}],
                "status": {"code": 2, "message": "bad"}, "futureField": {"ignored": True},
            }]}],
        }]
    }  # fmt: skip
    result = request_to_rows(decode_json(json.dumps(body).encode()))
    assert result.accepted == 1
    store = DuckDBStore(tmp_path / "ingest.duckdb")
    store.append_new_spans(result.rows)
    span = store.get_trace(trace_id.hex()).spans[0]
    assert (span.span_id, span.name, span.status, span.inputs) == (span_id.hex(), "GET /", "ERROR", "q")
    assert span.attributes["n"] == 7 and span.attributes["arr"] == [1.5]
    assert span.duration_ms == 1.0


def test_spans_without_valid_ids_are_rejected_alone() -> None:
    trace_id, span_id = new_ids()
    spans = [
        make_span("good", trace_id, span_id),
        make_span("no trace id", b"", span_id),
        make_span("zero span id", trace_id, bytes(8)),
        make_span("short parent", trace_id, new_ids()[1], parent=b"\x01\x02"),
        make_span("past 2262", trace_id, new_ids()[1], start=2**63),
    ]
    result = request_to_rows(make_request(spans))
    assert (result.accepted, result.rejected) == (1, 4)
    assert [r["name"] for r in result.rows] == ["good"]
    for named in ("trace_id", "span_id", "parent_span_id", "2262"):
        assert named in result.message()


def test_every_value_kind_is_decoded_and_an_empty_string_stays_a_string() -> None:
    # Strings are read without asking which kind a value is (a oneof's unset string reads as ""),
    # so "", 0, False and an unset value are the cases that must not be mistaken for each other.
    from opentelemetry.proto.common.v1 import common_pb2

    trace_id, span_id = new_ids()
    span = make_span("kinds", trace_id, span_id, attributes={
        "empty": "", "text": "t", "zero": 0, "no": False, "half": 0.5, "raw": b"\x01\xff",
        "list": ["", 0, "a"], "map": {"inner": "", "n": 1},
    })  # fmt: skip
    span.attributes.add(key="unset", value=common_pb2.AnyValue())
    attributes = json.loads(request_to_rows(make_request([span])).rows[0]["attributes"])
    assert attributes == {
        "empty": "", "text": "t", "zero": 0, "no": False, "half": 0.5, "raw": "01ff",
        "list": ["", 0, "a"], "map": {"inner": "", "n": 1}, "unset": None,
    }  # fmt: skip


def test_huge_values_are_cut_and_reported() -> None:
    trace_id, span_id = new_ids()
    big = "x" * 3_000_000
    result = request_to_rows(make_request([make_span("big", trace_id, span_id, attributes={"blob": big})]))
    stored = json.loads(result.rows[0]["attributes"])["blob"]
    assert len(stored) < 200_000 and "cut at ingest" in stored
    assert result.truncated == 1 and "cut to a preview" in result.message()


def test_resent_spans_are_stored_once(tmp_path: Path) -> None:
    trace_id, span_id = new_ids()
    _, other_id = new_ids()
    request = make_request([make_span("a", trace_id, span_id), make_span("b", trace_id, other_id, span_id)])
    store = DuckDBStore(tmp_path / "ingest.duckdb")
    rows = request_to_rows(request).rows
    assert store.append_new_spans(rows) == 2
    assert store.append_new_spans(rows) == 0
    assert store.append_new_spans(rows + rows) == 0
    assert store.get_trace(trace_id.hex()).info.span_count == 2
    assert store.stats()["spans"] == 2
