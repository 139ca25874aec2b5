"""agenttrace.span(), the current-span helpers and update_current_trace."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import agenttrace
from tests.conftest import only_trace, shape


def test_span_block_records_inputs_outputs_attributes_and_events() -> None:
    with agenttrace.span("retrieve", span_type="RETRIEVER", inputs={"query": "q"}) as s:
        s.set_outputs([{"id": "doc-1", "score": 0.9}])
        s.set_attributes({"k": 3, "index": "main", "filters": {"lang": "en"}})
        s.add_event("cache_miss", {"key": "q"})
        span_id, trace_id = s.span_id, s.trace_id
    root = only_trace().root
    assert (root.span_id, root.trace_id) == (span_id, trace_id)
    assert root.span_type == "RETRIEVER" and root.inputs == {"query": "q"}
    assert root.outputs == [{"id": "doc-1", "score": 0.9}]
    assert root.attributes["k"] == 3 and root.attributes["index"] == "main"
    assert root.attributes["filters"] == '{"lang":"en"}'  # non-OTel values travel as JSON text
    assert [e["name"] for e in root.events] == ["cache_miss"]


def test_async_with_and_nesting_under_a_decorated_function() -> None:
    @agenttrace.trace(span_type="AGENT")
    async def agent():
        async with agenttrace.span("plan", span_type="CHAIN") as s:
            s.set_outputs("steps")
        return "done"

    assert asyncio.run(agent()) == "done"
    trace = only_trace()
    assert shape(trace) == [(0, "agent", "AGENT"), (1, "plan", "CHAIN")]


def test_exception_in_block_marks_error_and_propagates() -> None:
    with pytest.raises(ZeroDivisionError):
        with agenttrace.span("divide"):
            1 / 0  # noqa: B018
    root = only_trace().root
    assert root.status == "ERROR" and root.events[0]["attributes"]["exception.type"] == "ZeroDivisionError"


def test_current_span_and_trace_id() -> None:
    assert agenttrace.get_current_span() is None and agenttrace.get_current_trace_id() is None

    @agenttrace.trace
    def inner():
        current = agenttrace.get_current_span()
        current.set_attributes(
            {"gen_ai.request.model": "m-1", "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 5}
        )
        return agenttrace.get_current_trace_id(), current.span_id

    trace_id, span_id = inner()
    trace = only_trace()
    assert trace.trace_id == trace_id and trace.root.span_id == span_id
    assert (trace.root.model, trace.root.input_tokens, trace.root.output_tokens) == ("m-1", 7, 5)
    assert (trace.info.input_tokens, trace.info.output_tokens, trace.info.total_tokens) == (7, 5, 12)


def test_update_current_trace_merges_from_any_depth() -> None:
    @agenttrace.trace
    def child():
        agenttrace.update_current_trace(tags={"env": "prod"}, metadata={"attempt": 2}, user_id="u-9")

    @agenttrace.trace
    def root():
        agenttrace.update_current_trace(tags={"team": "search"}, session_id="s-1")
        child()

    root()
    frame = agenttrace.search_traces()
    row = frame.iloc[0]
    assert row.tags == {"team": "search", "env": "prod"}
    assert row.metadata == {"attempt": 2}
    assert (row.session_id, row.user_id) == ("s-1", "u-9")


def test_update_current_trace_outside_a_trace_warns(caplog: pytest.LogCaptureFixture) -> None:
    agenttrace.update_current_trace(tags={"x": "y"})
    assert "outside a trace" in caplog.text


def test_reusing_an_open_span_object_is_refused_and_leaks_no_context() -> None:
    step = agenttrace.span("step")
    with pytest.raises(RuntimeError, match="already open"):
        with step:
            with step:
                pass
    assert agenttrace.get_current_span() is None
    assert only_trace().root.status == "ERROR"


def test_inputs_that_cannot_be_printed_still_trace() -> None:
    with agenttrace.span("big", inputs={"n": 10**5000}) as s:
        s.set_outputs(10**5000)
    root = only_trace().root
    assert (root.inputs, root.outputs) == ("<unserializable dict: ValueError>", "<unserializable int: ValueError>")


def test_payload_keys_set_as_attributes_are_serialised_like_outputs() -> None:
    # The store trusts our payload attributes to be JSON; a plain string set through set_attributes
    # is a value like set_outputs takes, not text to be stored as if it were JSON.
    with agenttrace.span("step") as s:
        s.set_attributes({"agenttrace.outputs": "plain text, not JSON", "agenttrace.inputs": {"q": 1}, "k": 2})
    trace = only_trace()
    span = trace.spans[0]
    assert (span.inputs, span.outputs, span.attributes) == ({"q": 1}, "plain text, not JSON", {"k": 2})


def test_leave_restores_the_context_at_once_and_records_the_span_once_when_called() -> None:
    # What `agenttrace serve` does: answer first, store the request's span after.
    import time

    from opentelemetry import trace as otel_trace

    from agenttrace.tracing.spans import span

    result = {"answer": "first"}
    root = span("request", span_type="AGENT", inputs={"q": "x"})
    with root as live:
        trace_id = live.trace_id
        record = root.leave(result)
        left_at = time.time_ns()
        assert not otel_trace.get_current_span().get_span_context().is_valid  # the context is back
    result["answer"] = "changed after the answer"  # what was returned is what is stored
    time.sleep(0.05)
    record({"http.response.status_code": 200})
    record({"http.response.status_code": 500})  # a second call does nothing
    stored = only_trace()
    assert stored.info.trace_id == trace_id and shape(stored) == [(0, "request", "AGENT")]
    assert stored.root.outputs == {"answer": "first"} and stored.root.attributes["http.response.status_code"] == 200
    assert stored.root.end_time_ns <= left_at  # ended when it was left, not when it was recorded


def test_sampled_out_span_block_serialises_nothing() -> None:
    class Counting:
        calls = 0

        def __repr__(self) -> str:
            Counting.calls += 1
            return "counted"

    agenttrace.configure(sample_rate=0.0)
    with agenttrace.span("dropped", inputs={"x": Counting()}) as s:
        s.set_outputs(Counting())
        s.set_attributes({"blob": Counting()})
    assert Counting.calls == 0


@pytest.mark.parametrize(
    ("settings", "stored_outputs"),
    [
        ({}, {"answer": "first", "secret": "s"}),
        ({"redact": ["secret"]}, {"answer": "first", "secret": "[REDACTED]"}),
    ],
)
def test_leave_reuses_the_answers_json_only_where_the_tracer_would_store_the_same(
    tmp_path: Any, settings: dict[str, Any], stored_outputs: Any
) -> None:
    # `agenttrace serve` has the answer's JSON (whole, unredacted) already; a redacting tracer must
    # still store its own redacted text, never the answer's.
    import agenttrace
    from agenttrace.tracing.serialize import Serializer
    from agenttrace.tracing.spans import span

    agenttrace.configure(
        store=str(tmp_path / "leave.duckdb"), raise_internal_errors=True, schedule_delay_ms=50, **settings
    )
    result = {"answer": "first", "secret": "s"}
    root = span("request", span_type="AGENT")
    with root:
        record = root.leave(result, Serializer(max_bytes=1 << 62).to_json(result))
    record({})
    assert only_trace().root.outputs == stored_outputs


def test_a_given_json_over_the_payload_cap_is_cut_as_the_tracer_cuts_it() -> None:
    from agenttrace.tracing.serialize import TRUNCATED_KEY, Serializer

    value = {"text": "x" * 5000}
    whole = Serializer(max_bytes=1 << 62).to_json(value)
    capped = Serializer(max_bytes=1000)
    assert capped.to_json_given(value, whole) == capped.to_json(value)
    assert TRUNCATED_KEY in capped.to_json_given(value, whole)
    assert Serializer(max_bytes=10_000).to_json_given(value, whole) is whole  # under the cap: reused as is
