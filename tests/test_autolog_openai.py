"""OpenAI auto-tracing through the real `openai` client against a local OpenAI-compatible stub."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import openai
import pytest

import agenttrace
from agenttrace.tracing.autolog_openai import is_instrumented
from tests.conftest import only_trace, shape
from tests.judge_stub import StubFailure, StubReply
from tests.openai_stub import OpenAIStub

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello"}]
# The same messages in the one stored shape every instrumentation's LLM spans take.
STORED_MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
    {"role": "user", "parts": [{"type": "text", "content": "say hello"}]},
]


def _reply(finish_reason: str | None = "stop") -> list[dict]:
    message = {"role": "assistant", "parts": [{"type": "text", "content": "hello there friend"}]}
    return [{**message, "finish_reason": finish_reason} if finish_reason else message]


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    agenttrace.autolog.openai()
    with OpenAIStub(responder=lambda request: StubReply("hello there friend", prompt_tokens=7)) as s:
        yield s
    agenttrace.autolog.openai(disable=True)


def _client(stub: OpenAIStub) -> openai.OpenAI:
    return openai.OpenAI(base_url=stub.base_url, api_key="test", max_retries=0)


def _llm_span():
    (span,) = only_trace().spans_of_type("LLM")
    return span


def test_chat_completion_nested_under_the_current_span(stub: OpenAIStub) -> None:
    @agenttrace.trace(span_type="AGENT")
    def agent() -> str:
        reply = _client(stub).chat.completions.create(model="gpt-x", messages=MESSAGES, temperature=0.2)
        return reply.choices[0].message.content

    assert agent() == "hello there friend"
    trace = only_trace()
    assert shape(trace) == [(0, "agent", "AGENT"), (1, "chat gpt-x", "LLM")]
    span = trace.spans_of_type("LLM")[0]
    assert span.inputs == STORED_MESSAGES
    assert span.outputs == _reply()
    assert (span.model, span.input_tokens, span.output_tokens) == ("gpt-x", 7, 3)
    a = span.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.response.finish_reasons"] == ["stop"] and a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.response.id"] == "chatcmpl-stub-1"
    assert span.duration_ms > 0 and trace.info.total_tokens == 10


def test_streamed_chat_is_assembled(stub: OpenAIStub) -> None:
    stream = _client(stub).chat.completions.create(
        model="gpt-x", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == "hello there friend"
    span = _llm_span()
    assert span.outputs == _reply()
    assert (span.input_tokens, span.output_tokens) == (7, 3)
    assert span.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert span.attributes["gen_ai.request.stream"] is True


def test_stream_closed_early_in_a_with_block(stub: OpenAIStub) -> None:
    with _client(stub).chat.completions.create(model="gpt-x", messages=MESSAGES, stream=True) as stream:
        for _chunk in stream:
            break
    span = _llm_span()
    assert span.status == "OK" and span.outputs[0]["role"] == "assistant"


def test_async_chat_and_async_stream(stub: OpenAIStub) -> None:
    async def main() -> tuple[str, str]:
        client = openai.AsyncOpenAI(base_url=stub.base_url, api_key="test", max_retries=0)
        reply = await client.chat.completions.create(model="m-async", messages=MESSAGES)
        stream = await client.chat.completions.create(model="m-async", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return reply.choices[0].message.content, text

    @agenttrace.trace(span_type="AGENT")
    def agent() -> tuple[str, str]:
        return asyncio.run(main())

    assert agent() == ("hello there friend", "hello there friend")
    trace = only_trace()
    assert shape(trace) == [(0, "agent", "AGENT"), (1, "chat m-async", "LLM"), (1, "chat m-async", "LLM")]
    texts = [s.outputs[0]["parts"][0]["content"] for s in trace.spans_of_type("LLM")]
    assert texts == ["hello there friend"] * 2


def test_responses_api_plain_and_streamed(stub: OpenAIStub) -> None:
    client = _client(stub)

    @agenttrace.trace(span_type="AGENT")
    def agent() -> str:
        reply = client.responses.create(model="gpt-r", input="say hello")
        events = list(client.responses.create(model="gpt-r", input="again", stream=True))
        assert events[-1].type == "response.completed"
        return reply.output_text

    assert agent() == "hello there friend"
    spans = only_trace().spans_of_type("LLM")
    assert [s.outputs[0]["parts"] for s in spans] == [[{"type": "text", "content": "hello there friend"}]] * 2
    assert {(s.model, s.input_tokens, s.output_tokens) for s in spans} == {("gpt-r", 7, 3)}
    assert spans[0].inputs == [{"role": "user", "parts": [{"type": "text", "content": "say hello"}]}]


def test_embeddings(stub: OpenAIStub) -> None:
    result = _client(stub).embeddings.create(model="emb-1", input=["a b", "c"])
    assert len(result.data) == 2
    (span,) = only_trace().spans_of_type("EMBEDDING")
    assert span.name == "embeddings emb-1" and span.outputs == {"embeddings": 2, "dimensions": 3}
    assert span.input_tokens == 3


def test_api_errors_mark_the_span_and_propagate(stub: OpenAIStub) -> None:
    stub.responder = lambda request: StubFailure(400, "bad model")
    with pytest.raises(openai.BadRequestError):
        _client(stub).chat.completions.create(model="nope", messages=MESSAGES)
    span = _llm_span()
    assert span.status == "ERROR" and "BadRequestError" in span.status_message
    assert [e["name"] for e in span.events] == ["exception"]


def test_instrumenting_twice_wraps_once_and_disable_restores() -> None:
    from openai.resources.chat.completions import Completions

    original = Completions.create
    agenttrace.autolog.openai()
    wrapped = Completions.create
    agenttrace.autolog.openai()
    assert Completions.create is wrapped and wrapped is not original and is_instrumented()
    agenttrace.autolog.openai(disable=True)
    assert Completions.create is original and not is_instrumented()
    agenttrace.autolog.openai(disable=True)  # harmless
    assert Completions.create is original


def test_configure_autolog_and_tracing_off() -> None:
    with OpenAIStub() as stub:
        agenttrace.configure(autolog=["openai"])
        try:
            assert is_instrumented()
            agenttrace.configure(enabled=False)
            reply = _client(stub).chat.completions.create(model="m", messages=MESSAGES)
            assert "value" in json.loads(reply.choices[0].message.content)
            assert agenttrace.search_traces().empty  # instrumented, but tracing is off: nothing recorded
        finally:
            agenttrace.autolog.openai(disable=True)
    with pytest.raises(agenttrace.errors.ConfigError, match="autolog"):
        agenttrace.configure(autolog=["anthropic"])


def test_a_tool_loop_with_the_sdks_own_messages_keeps_every_part(stub: OpenAIStub) -> None:
    from openai.types.chat import ChatCompletionMessage
    from openai.types.chat.chat_completion_message_tool_call import ChatCompletionMessageToolCall, Function

    call = ChatCompletionMessageToolCall(
        id="call_1", type="function", function=Function(name="add", arguments='{"a":1}')
    )
    reply = ChatCompletionMessage(role="assistant", content=None, tool_calls=[call])  # passed back as the SDK gave it
    conversation = [
        {"role": "user", "content": "1+1?"},
        reply,
        {"role": "tool", "tool_call_id": "call_1", "content": "2"},
    ]
    _client(stub).chat.completions.create(model="gpt-x", messages=conversation)
    assert _llm_span().inputs == [
        {"role": "user", "parts": [{"type": "text", "content": "1+1?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "add", "arguments": {"a": 1}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "2"}]},
    ]
