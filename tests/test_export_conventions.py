"""Export speaks the peers' richer attributes, and what comes back to our server is stored once."""

from __future__ import annotations

import json
from pathlib import Path

import agenttrace
from agenttrace.otel.otlp_export import with_conventions
from agenttrace.store import DuckDBStore
from tests.otlp_receivers import HttpReceiver
from tests.server_harness import ServerThread

CHAT_IN = [
    {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
    {"role": "user", "parts": [{"type": "text", "content": "weather in Oslo?"}]},
]
CHAT_OUT = [
    {"role": "assistant", "finish_reason": "tool_calls",
     "parts": [{"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Oslo"}}]},
]  # fmt: skip
DOCS = [{"id": "d1", "content": "Oslo is cold", "score": 0.75}, {"id": "d2", "content": "Snow", "metadata": {"p": 1}}]


@agenttrace.trace(span_type="RETRIEVER")
def retrieve(query: str) -> list[dict]:
    return DOCS


@agenttrace.trace(span_type="AGENT")
def agent(question: str) -> str:
    agenttrace.update_current_trace(tags={"env": "test"}, metadata={"team": "core"})
    retrieve(question)
    with agenttrace.span("llm", span_type="LLM", inputs=CHAT_IN) as s:
        s.set_outputs(CHAT_OUT)
    return "cold"


def test_llm_messages_and_documents_in_peer_conventions() -> None:
    out = with_conventions(
        {"agenttrace.span_type": "LLM", "agenttrace.inputs": json.dumps(CHAT_IN),
         "agenttrace.outputs": json.dumps(CHAT_OUT)}
    )  # fmt: skip
    assert json.loads(out["gen_ai.input.messages"]) == CHAT_IN
    assert out["llm.input_messages.0.message.role"] == "system"
    assert out["llm.input_messages.1.message.content"] == "weather in Oslo?"
    call = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert (out[f"{call}.id"], out[f"{call}.function.name"]) == ("c1", "weather")
    assert json.loads(out[f"{call}.function.arguments"]) == {"city": "Oslo"}
    docs = with_conventions({"agenttrace.span_type": "RETRIEVER", "agenttrace.outputs": json.dumps(DOCS)})
    assert docs["retrieval.documents.0.document.content"] == "Oslo is cold"
    assert docs["retrieval.documents.0.document.score"] == 0.75
    assert json.loads(docs["retrieval.documents.1.document.metadata"]) == {"p": 1}


def test_a_collector_receives_chat_documents_tags_and_the_service_name() -> None:
    with HttpReceiver() as rx:
        agenttrace.configure(store=None, otlp_endpoint=rx.endpoint, service_name="weather-agent")
        agent("weather?")
        agenttrace.flush()
        spans = {s.name: s for s in rx.wait_for(3)}
    llm, retriever, root = spans["llm"].attributes, spans["retrieve"].attributes, spans["agent"].attributes
    assert llm["llm.output_messages.0.message.tool_calls.0.tool_call.function.name"] == "weather"
    assert retriever["retrieval.documents.1.document.id"] == "d2"
    assert root["tag.tags"] == ["env:test"] and json.loads(root["metadata"]) == {"team": "core"}
    assert spans["agent"].resource["service.name"] == "weather-agent"


def _stored_attributes(store: DuckDBStore) -> dict[str, dict]:
    trace = store.get_trace(store.search_traces().trace_id.iloc[0])
    return {s.name: s for s in trace.spans}  # type: ignore[misc]


def test_client_mode_stores_each_payload_once(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "server.duckdb") as srv:
        agenttrace.configure(store=None, uri=srv.url)
        agent("weather?")
        agenttrace.flush()
        spans = _stored_attributes(srv.store)
    assert spans["llm"].inputs == CHAT_IN and spans["retrieve"].outputs == DOCS
    for span in spans.values():
        copies = [k for k in span.attributes if k.startswith(("input.", "output.", "llm.", "gen_ai.", "retrieval."))]
        assert copies == [], (span.name, copies)


def test_spans_exported_with_conventions_to_our_server_are_stored_once(tmp_path: Path) -> None:
    # A process pointing plain OTLP export (not client mode) at agenttrace server sends the copies;
    # the server recognises them as copies of our own attributes and keeps one.
    with ServerThread(tmp_path / "server.duckdb") as srv:
        agenttrace.configure(store=None, otlp_endpoint=srv.url + "/v1/traces")
        agent("weather?")
        agenttrace.flush()
        spans = _stored_attributes(srv.store)
    assert spans["llm"].inputs == CHAT_IN and spans["llm"].outputs == CHAT_OUT
    assert spans["retrieve"].outputs == DOCS
    for span in spans.values():
        copies = [k for k in span.attributes if k.startswith(("input.", "output.", "llm.", "retrieval.", "gen_ai.in",
                                                              "gen_ai.out"))]  # fmt: skip
        assert copies == [], (span.name, copies)
        # Small copies (the span kind, the model under its other name) stay as sent.
        assert span.attributes["openinference.span.kind"] == span.span_type


def test_service_name_reaches_the_stored_resource(store_path: Path) -> None:
    agenttrace.configure(store=str(store_path), service_name="svc-a")
    agent("weather?")
    trace = agenttrace.get_trace(agenttrace.search_traces().trace_id.iloc[0])
    assert {s.resource["service.name"] for s in trace.spans} == {"svc-a"}
