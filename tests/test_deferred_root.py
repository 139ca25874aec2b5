"""A deferred local root (`span.of_checked(..., deferred=True)`, what `agenttrace serve` starts for a
request) is stored exactly as the same block traced with a span the SDK started at once."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags, TraceState

import agenttrace
from agenttrace.otel.provider import ReservableIds
from agenttrace.tracing.deferred import DeferredRoot
from agenttrace.tracing.runtime import get_runtime
from agenttrace.tracing.spans import checked_attributes, span

_CHANGES = ("trace_id", "span_id", "parent_span_id", "start_time_ns", "end_time_ns")


def _traced(
    block: Callable[[Any], None], deferred: bool, answer: Any = "done", first: dict[str, Any] | None = None
) -> str:
    """Run `block(live)` under a root like serve's; the root is left and recorded as serve does."""
    attributes = checked_attributes("AGENT", {"http.route": "/x", **(first or {})})
    root = span.of_checked("request", attributes, {"q": 1}, deferred=deferred)
    with root as live:
        block(live)
        record = root.leave(answer)
    record({"http.response.status_code": 200})
    assert live.trace_id is not None
    return live.trace_id


def _stored(trace_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The trace's spans (tree order) and summary without what differs between two runs."""
    agenttrace.flush()
    trace = agenttrace.get_trace(trace_id)
    spans = []
    for depth, s in trace.walk():
        row = {k: v for k, v in dataclasses.asdict(s).items() if k not in _CHANGES}
        for event in row["events"]:
            event.pop("timestamp_ns", None)
        spans.append({"depth": depth, **row})
    info = {k: v for k, v in dataclasses.asdict(trace.info).items() if not k.endswith(("_ns", "_ms", "trace_id"))}
    return spans, info


class _Ended(SpanProcessor):
    """What the provider's processors receive, as they receive it."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def _handed(trace_id: str, ended: _Ended) -> dict[str, Any]:
    """What a processor (the store's, OTLP export's) reads of the root, less what differs per run."""
    (root,) = [s for s in ended.spans if s.parent is None or s.parent.is_remote]
    assert f"{root.context.trace_id:032x}" == trace_id
    return {
        "name": root.name,
        "attributes": list(root.attributes.items()),
        "dropped": root.dropped_attributes,
        "events": [(e.name, dict(e.attributes)) for e in root.events],
        "links": [(link.context, dict(link.attributes or {})) for link in root.links],
        "status": (root.status.status_code, root.status.description),
        "kind": root.kind,
        "scope": root.instrumentation_scope,
        "resource": root.resource,
        "flags": root.context.trace_flags,
        "state": root.context.trace_state,
        "parent": root.parent,
    }


def _same_either_way(
    block: Callable[[Any], None], answer: Any = "done", first: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Run the block under a deferred root and under one started at once: the processors receive
    the same root, and the store keeps the same spans and trace."""
    handed, stored = [], []
    for deferred in (True, False):
        ended = _Ended()
        provider = get_runtime().provider
        assert provider is not None
        provider.add_span_processor(ended)
        trace_id = _traced(block, deferred, answer, first)
        handed.append(_handed(trace_id, ended))
        stored.append(_stored(trace_id))
        ended.spans.clear()  # a provider keeps its processors: this one only collects
    assert handed[0] == handed[1]
    assert stored[0] == stored[1]
    return stored[0][0]


def _child(live: Any) -> None:
    live.set_attributes({"first": 1, "second": 2})
    live.set_attributes({"first": 3})  # set again: it moves to the end, as in the SDK's attributes
    with agenttrace.span("step", span_type="TOOL", inputs={"a": 1}) as step:
        step.set_outputs([1, 2])
    agenttrace.update_current_trace(metadata={"who": "agent"}, tags={"t": "1"}, session_id="s1", user_id="u1")


def test_a_plain_root_is_stored_as_the_sdk_would_have_stored_it() -> None:
    spans = _same_either_way(_child)
    assert [(s["depth"], s["name"]) for s in spans] == [(0, "request"), (1, "step")]
    assert spans[0]["inputs"] == {"q": 1} and spans[0]["outputs"] == "done"
    assert spans[0]["attributes"]["http.response.status_code"] == 200


def _sdk_starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the spans the runtime's SDK tracer starts from now on (it still starts them)."""
    tracer = get_runtime().tracer
    started: list[str] = []
    start_span = tracer.start_span  # type: ignore[union-attr]

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        started.append(name)
        return start_span(name, *args, **kwargs)

    monkeypatch.setattr(tracer, "start_span", counting)
    return started


def test_a_plain_root_is_handed_over_without_the_sdk_starting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    started = _sdk_starts(monkeypatch)
    _traced(_child, True)
    assert started == ["step"]  # the child only: the root was handed to the processors as it ended
    _traced(_eventful, True)
    assert started == ["step", "request"]  # an event makes the SDK span


def test_children_nest_under_the_deferred_root_and_it_spans_them() -> None:
    trace_id = _traced(_child, True)
    agenttrace.flush()
    root, child = agenttrace.get_trace(trace_id).spans
    assert child.parent_span_id == root.span_id and root.parent_span_id is None
    assert root.start_time_ns <= child.start_time_ns <= child.end_time_ns <= root.end_time_ns


def _eventful(live: Any) -> None:
    live.add_event("thinking", {"n": 3})
    current = otel_trace.get_current_span()  # what other OpenTelemetry code in the agent sees
    current.set_attribute("a.list", [1, 2])
    current.set_attribute("a.set", {3})  # type: ignore[arg-type]  # not an OpenTelemetry value: the SDK converts it
    current.add_event("raw", {"k": "v"})


def test_events_and_values_the_sdk_converts_are_replayed_through_it() -> None:
    spans = _same_either_way(_eventful)
    assert [e["name"] for e in spans[0]["events"]] == ["thinking", "raw"]
    assert spans[0]["attributes"]["a.list"] == [1, 2] and spans[0]["attributes"]["a.set"] == "{3}"


def _sdk_calls(live: Any) -> None:
    current = otel_trace.get_current_span()
    values = [1, 2]
    current.set_attribute("a.list", values)
    values.append(3)  # what was set is what is stored, as with an SDK span
    current.set_status(Status(StatusCode.OK))
    current.set_status(Status(StatusCode.ERROR, "ignored after OK"))
    current.update_name("renamed")
    current.add_link(SpanContext(0xABC, 0xDEF, True, TraceFlags(1)), {"why": "batch"})
    try:
        raise ValueError("caught")
    except ValueError as exc:
        current.record_exception(exc, {"extra": 1})  # formatted now: its message and stack as they are here
        exc.args = ("changed later",)
    assert current.name == "renamed" and current.status.status_code == StatusCode.OK  # type: ignore[attr-defined]


def test_status_names_links_and_exceptions_are_the_sdks_own() -> None:
    spans = _same_either_way(_sdk_calls)
    root = spans[0]
    assert root["name"] == "renamed" and root["status"] == "OK" and root["attributes"]["a.list"] == [1, 2]
    (event,) = root["events"]
    assert event["name"] == "exception" and "_sdk_calls" in event["attributes"]["exception.stacktrace"]
    assert event["attributes"]["exception.message"] == "caught"


def test_an_exception_whose_message_cannot_be_read_still_leaves_a_root() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no message")

    def fail(deferred: bool) -> str:
        ids = []
        with pytest.raises(Unprintable):
            with span.of_checked("request", checked_attributes("AGENT", {}), deferred=deferred) as live:
                ids.append(live.trace_id)
                raise Unprintable()
        return ids[0]

    deferred, at_once = _stored(fail(True)), _stored(fail(False))
    assert deferred == at_once
    assert deferred[0][0]["status"] == "ERROR" and [e["name"] for e in deferred[0][0]["events"]] == ["exception"]


def test_an_error_is_recorded_with_its_status_and_exception_event() -> None:
    def fail(deferred: bool) -> str:
        ids = []
        with pytest.raises(KeyError):
            with span.of_checked("request", checked_attributes("AGENT", {}), deferred=deferred) as live:
                ids.append(live.trace_id)
                raise KeyError("gone")
        return ids[0]

    deferred, at_once = _stored(fail(True)), _stored(fail(False))
    assert deferred == at_once
    root = deferred[0][0]
    assert root["status"] == "ERROR" and "KeyError" in root["status_message"]
    assert [e["name"] for e in root["events"]] == ["exception"]


def test_a_callers_traceparent_is_continued(store_path: Path) -> None:
    caller = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True, TraceFlags(1), TraceState([("v", "1")])
    )

    def under_caller(deferred: bool) -> tuple[str, Any]:
        token = otel_context.attach(otel_trace.set_span_in_context(NonRecordingSpan(caller)))
        seen: list[SpanContext] = []
        try:
            trace_id = _traced(lambda live: seen.append(otel_trace.get_current_span().get_span_context()), deferred)
        finally:
            otel_context.detach(token)
        agenttrace.flush()
        (root,) = seen
        assert root.trace_state == caller.trace_state and root.trace_flags == TraceFlags(1)  # the caller's, as the SDK
        return trace_id, agenttrace.get_trace(trace_id).spans[0]

    (deferred_id, deferred_root), (at_once_id, at_once_root) = under_caller(True), under_caller(False)
    assert deferred_id == at_once_id == f"{caller.trace_id:032x}"
    assert deferred_root.parent_span_id == at_once_root.parent_span_id == f"{caller.span_id:016x}"
    assert deferred_root.attributes == at_once_root.attributes


def test_the_root_carries_the_sdks_ids_and_flags_to_its_children() -> None:
    seen = {}

    def look(live: Any) -> None:
        seen["root"] = otel_trace.get_current_span().get_span_context()
        with agenttrace.span("step"):
            seen["child"] = otel_trace.get_current_span().get_span_context()

    _traced(look, True)
    root, child = seen["root"], seen["child"]
    assert isinstance(otel_trace.get_current_span(), NonRecordingSpan)  # the block left the context as found
    assert child.trace_id == root.trace_id and child.trace_flags == root.trace_flags
    assert root.trace_flags.sampled and root.trace_flags.random_trace_id
    assert agenttrace.get_current_trace_id() is None


def test_a_sampled_runtime_lets_the_sampler_decide_at_the_start(store_path: Path) -> None:
    agenttrace.configure(store=str(store_path), raise_internal_errors=True, sample_rate=0.0)
    with span.of_checked("request", checked_attributes("AGENT", {}), deferred=True) as live:
        assert not isinstance(otel_trace.get_current_span(), DeferredRoot)
        with agenttrace.span("step"):
            pass
    agenttrace.flush()
    assert live.trace_id is not None and agenttrace.search_traces().empty  # the sampler dropped the trace


def test_the_sdks_attribute_limits_apply_to_a_deferred_root(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    agenttrace.configure(store=str(store_path), raise_internal_errors=True, schedule_delay_ms=50)

    def many(live: Any) -> None:
        live.set_attributes({f"note.{i}": i for i in range(5)})

    spans = _same_either_way(many)
    assert len(spans[0]["attributes"]) <= 3


def test_a_value_length_limit_in_the_environment_never_cuts_a_payload(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cut would leave the JSON of the inputs unreadable, and the store refuses such a span.
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
    agenttrace.configure(store=str(store_path), raise_internal_errors=True, schedule_delay_ms=50)
    for deferred in (True, False):
        (stored,) = agenttrace.get_trace(_traced(lambda live: None, deferred, answer="a long answer")).spans
        assert stored.inputs == {"q": 1} and stored.outputs == "a long answer"


def test_a_reservation_is_taken_once_and_only_by_its_own_thread() -> None:
    ids = ReservableIds()
    ids.reserve(7, 9)
    other: list[int] = []
    thread = threading.Thread(target=lambda: other.append(ids.generate_span_id()))
    thread.start()
    thread.join()
    assert other[0] != 9
    assert ids.generate_trace_id() == 7 and ids.generate_span_id() == 9
    assert ids.generate_span_id() != 9
    ids.reserve(7, 9)
    ids.clear()
    assert ids.generate_span_id() != 9


def test_a_deferred_root_is_exported_over_otlp_as_one_started_at_once() -> None:
    from tests.otlp_receivers import HttpReceiver

    with HttpReceiver() as rx:
        agenttrace.configure(store=None, otlp_endpoint=rx.endpoint, schedule_delay_ms=50)
        for deferred in (True, False):
            _traced(_child, deferred)
        agenttrace.flush()
        received = rx.wait_for(4)
    roots = [r for r in received if r.name == "request"]
    assert len(roots) == 2

    def seen(r: Any) -> tuple[Any, ...]:
        s = r.span
        return (r.attributes, r.resource, r.scope, s.kind, s.status.code, len(s.events), s.flags, s.trace_state)

    assert seen(roots[0]) == seen(roots[1])
    for root in roots:
        (child,) = [r for r in received if r.name == "step" and r.span.trace_id == root.span.trace_id]
        assert child.span.parent_span_id == root.span.span_id and root.span.parent_span_id == b""


def test_with_opentelemetry_disabled_the_root_is_not_deferred(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    agenttrace.configure(store=None, raise_internal_errors=True)
    root = span.of_checked("request", checked_attributes("AGENT", {}), deferred=True)
    with root:
        assert not isinstance(otel_trace.get_current_span(), DeferredRoot)
        record = root.leave("ok")
    record({"http.response.status_code": 200})  # nothing to record, and no internal error


def test_a_bad_limit_in_the_environment_turns_tracing_off_not_the_program(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "abc")
    agenttrace.configure(store=str(store_path))

    @agenttrace.trace
    def f() -> int:
        return 1

    assert f() == 1 and not get_runtime().enabled


def test_first_attributes_the_sdk_would_change_are_changed_as_it_would(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "4")
    agenttrace.configure(store=str(store_path), raise_internal_errors=True, schedule_delay_ms=50)
    first = {"a.list": ["x", "y"], "b": 1, "c": 2, "d": 3}
    spans = _same_either_way(lambda live: None, first=first)
    assert len(spans[0]["attributes"]) <= 4


def test_the_root_ends_when_it_is_left_not_when_it_is_recorded() -> None:
    root = span.of_checked("request", checked_attributes("AGENT", {}), deferred=True)
    with root as live:
        record = root.leave("ok")
    left = time.time_ns()
    time.sleep(0.05)
    record({})
    (stored,) = agenttrace.get_trace(live.trace_id).spans
    assert stored.end_time_ns <= left


def test_nothing_after_the_end_is_kept_or_stored(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    ended = _Ended()
    provider = get_runtime().provider
    assert provider is not None
    provider.add_span_processor(ended)
    root = span.of_checked("request", checked_attributes("AGENT", {}), deferred=True)
    with root as live:
        held = otel_trace.get_current_span()
        record = root.leave("ok")
    record({})
    assert isinstance(held, DeferredRoot) and not held.is_recording() and len(ended.spans) == 1
    tracer = get_runtime().tracer
    monkeypatch.setattr(tracer, "start_span", lambda *a, **k: pytest.fail("a span was made after the end"))
    with caplog.at_level(logging.WARNING, logger="agenttrace"):
        held.set_attribute("late", 1)
        held.add_event("late")
        held.set_status(Status(StatusCode.ERROR))
        held.end()
    assert len(ended.spans) == 1 and "late" not in ended.spans[0].attributes
    assert "ended span" in caplog.text
    (stored,) = agenttrace.get_trace(live.trace_id).spans
    assert "late" not in stored.attributes and stored.events == [] and stored.status != "ERROR"


def test_probing_for_names_an_sdk_span_lacks_makes_no_span(monkeypatch: pytest.MonkeyPatch) -> None:
    started = _sdk_starts(monkeypatch)
    with span.of_checked("request", checked_attributes("AGENT", {}), deferred=True):
        current = otel_trace.get_current_span()
        assert not hasattr(current, "model_dump") and not hasattr(current, "shape")
        assert started == []
        assert current.name == "request"  # type: ignore[attr-defined]  # an SDK span's field: it is made
        assert started == ["request"]


def test_a_log_handler_writing_to_the_current_span_while_the_sdk_makes_it(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK warns while it makes the span (its attributes are over the limit); a handler that notes
    # log records on the current span must not make it a second time.
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    agenttrace.configure(store=str(store_path), raise_internal_errors=True, schedule_delay_ms=50)

    class ToSpan(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            otel_trace.get_current_span().add_event(record.getMessage())
            otel_trace.get_current_span().set_attribute("logged", True)

    handler = ToSpan()
    logging.getLogger("opentelemetry").addHandler(handler)
    try:
        trace_id = _traced(lambda live: live.add_event("e"), True, first={"b": 1, "c": 2, "d": 3})
    finally:
        logging.getLogger("opentelemetry").removeHandler(handler)
    (stored,) = agenttrace.get_trace(trace_id).spans
    assert stored.name == "request" and len(stored.attributes) <= 2
