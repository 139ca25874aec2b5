"""@agenttrace.trace on every kind of callable: inputs, outputs, errors, nesting."""

from __future__ import annotations

import asyncio
import threading

import pytest

import agenttrace
from agenttrace import SpanType
from tests.conftest import only_trace, shape


def test_plain_function_records_bound_inputs_with_defaults_and_output() -> None:
    @agenttrace.trace
    def add(a, b=10, *, scale=1):
        return (a + b) * scale

    assert add(1, scale=2) == 22
    span = only_trace().root
    assert span.name == "add"
    assert span.span_type == "UNKNOWN"
    assert span.inputs == {"a": 1, "b": 10, "scale": 2}
    assert span.outputs == 22
    assert span.status == "OK"


def test_options_name_type_attributes_and_capture_flags() -> None:
    @agenttrace.trace(name="lookup", span_type=SpanType.TOOL, attributes={"team": "search"}, capture_outputs=False)
    def find(query):
        return "secret result"

    @agenttrace.trace(span_type="llm", capture_inputs=False)
    def ask(prompt):
        return "answer"

    find("q")
    ask("p")
    spans = {s.name: s for _, s in _all_spans()}
    assert spans["lookup"].span_type == "TOOL"
    assert spans["lookup"].attributes["team"] == "search"
    assert spans["lookup"].inputs == {"query": "q"} and spans["lookup"].outputs is None
    assert spans["ask"].span_type == "LLM" and spans["ask"].inputs is None and spans["ask"].outputs == "answer"


def _all_spans():
    frame = agenttrace.search_traces()
    for trace_id in frame.trace_id:
        yield from agenttrace.get_trace(trace_id).walk()


def test_unknown_span_type_is_refused_at_decoration() -> None:
    with pytest.raises(ValueError, match="unknown span_type 'TOOLS'.*AGENT"):
        agenttrace.trace(span_type="TOOLS")


def test_methods_static_and_class_methods_leave_self_and_cls_out() -> None:
    class Agent:
        factor = 3

        @agenttrace.trace
        def run(self, x):
            return self.helper(x) + self.klass(x)

        @agenttrace.trace
        @staticmethod
        def helper(x):
            return x + 1

        @agenttrace.trace
        @classmethod
        def klass(cls, x):
            return x * cls.factor

    assert Agent().run(2) == 9
    trace = only_trace()
    assert shape(trace) == [(0, "run", "UNKNOWN"), (1, "helper", "UNKNOWN"), (1, "klass", "UNKNOWN")]
    assert [s.inputs for s in trace] == [{"x": 2}, {"x": 2}, {"x": 2}]


def test_callable_object_is_traced_under_its_class_name() -> None:
    class Retriever:
        def __call__(self, query, k=2):
            return [query] * k

    traced = agenttrace.trace(Retriever())
    assert traced("q") == ["q", "q"]
    root = only_trace().root
    assert (root.name, root.inputs, root.outputs) == ("Retriever", {"query": "q", "k": 2}, ["q", "q"])


def test_exception_sets_error_records_event_and_reraises_the_same_object() -> None:
    error = KeyError("missing")

    @agenttrace.trace
    def fails():
        raise error

    with pytest.raises(KeyError) as caught:
        fails()
    assert caught.value is error
    root = only_trace().root
    assert root.status == "ERROR"
    assert "KeyError" in root.status_message
    event = root.events[0]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "KeyError"
    assert "missing" in event["attributes"]["exception.message"]
    assert "fails" in event["attributes"]["exception.stacktrace"]


def test_nesting_builds_the_tree_and_trace_summary() -> None:
    @agenttrace.trace(span_type="TOOL")
    def tool(x):
        return x

    @agenttrace.trace(span_type="CHAIN")
    def step(x):
        return tool(x) + tool(x + 1)

    @agenttrace.trace(span_type="AGENT")
    def agent(x):
        return step(x)

    agent(1)
    trace = only_trace()
    assert shape(trace) == [(0, "agent", "AGENT"), (1, "step", "CHAIN"), (2, "tool", "TOOL"), (2, "tool", "TOOL")]
    assert trace.info.span_count == 4
    assert trace.info.name == "agent" and trace.info.inputs == {"x": 1} and trace.info.outputs == 3
    assert trace.info.status == "OK"


def test_async_function_and_gather_keep_each_child_under_its_parent() -> None:
    @agenttrace.trace
    async def leaf(i):
        await asyncio.sleep(0.001 * (3 - i))
        return i

    @agenttrace.trace
    async def fan_out():
        return await asyncio.gather(*(leaf(i) for i in range(3)))

    @agenttrace.trace
    async def with_task():
        return await asyncio.create_task(leaf(7))

    async def main():
        return await fan_out(), await with_task()

    assert asyncio.run(main()) == ([0, 1, 2], 7)
    frame = agenttrace.search_traces(order_by=["name"])
    assert list(frame.name) == ["fan_out", "with_task"]
    fan = agenttrace.get_trace(frame.trace_id[0])
    assert shape(fan) == [(0, "fan_out", "UNKNOWN")] + [(1, "leaf", "UNKNOWN")] * 3
    assert sorted(s.outputs for s in fan.spans if s.name == "leaf") == [0, 1, 2]
    assert shape(agenttrace.get_trace(frame.trace_id[1])) == [(0, "with_task", "UNKNOWN"), (1, "leaf", "UNKNOWN")]


def test_generator_span_covers_iteration_and_children_nest_inside() -> None:
    @agenttrace.trace
    def child(i):
        return i * 10

    @agenttrace.trace
    def stream(n):
        for i in range(n):
            yield child(i)

    gen = stream(3)
    assert agenttrace.search_traces().empty  # nothing runs before iteration
    assert list(gen) == [0, 10, 20]
    trace = only_trace()
    assert shape(trace) == [(0, "stream", "UNKNOWN")] + [(1, "child", "UNKNOWN")] * 3
    assert trace.root.outputs == [0, 10, 20]
    children = [s for s in trace.spans if s.name == "child"]
    assert all(trace.root.start_time_ns <= c.start_time_ns <= c.end_time_ns <= trace.root.end_time_ns for c in children)


def test_generator_closed_early_and_send_are_handled() -> None:
    @agenttrace.trace
    def echo():
        received = yield "ready"
        while True:
            received = yield f"got {received}"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("a") == "got a"
    gen.close()
    root = only_trace().root
    assert root.status == "OK" and root.outputs == ["ready", "got a"]


def test_generator_output_is_capped() -> None:
    from agenttrace.tracing.decorator import MAX_GENERATOR_ITEMS

    @agenttrace.trace
    def many():
        yield from range(MAX_GENERATOR_ITEMS + 5)

    assert sum(1 for _ in many()) == MAX_GENERATOR_ITEMS + 5
    outputs = only_trace().root.outputs
    assert len(outputs) == MAX_GENERATOR_ITEMS + 1 and outputs[-1] == "... 5 more items not kept"


def test_generator_error_marks_span() -> None:
    @agenttrace.trace
    def broken():
        yield 1
        raise RuntimeError("mid-stream")

    with pytest.raises(RuntimeError, match="mid-stream"):
        list(broken())
    root = only_trace().root
    assert root.status == "ERROR" and root.outputs is None


def test_async_generator() -> None:
    @agenttrace.trace
    async def child(i):
        return i + 1

    @agenttrace.trace
    async def astream(n):
        for i in range(n):
            yield await child(i)

    async def consume():
        return [x async for x in astream(3)]

    assert asyncio.run(consume()) == [1, 2, 3]
    trace = only_trace()
    assert shape(trace) == [(0, "astream", "UNKNOWN")] + [(1, "child", "UNKNOWN")] * 3
    assert trace.root.outputs == [1, 2, 3]


def test_threads_keep_parent_through_wrap_and_executor() -> None:
    @agenttrace.trace
    def work(i):
        return i

    @agenttrace.trace
    def parent():
        results = []
        t = threading.Thread(target=agenttrace.context.wrap(lambda: results.append(work(1))))
        t.start()
        t.join()
        with agenttrace.context.ContextThreadPoolExecutor(max_workers=2) as pool:
            results.extend(pool.map(work, [2, 3]))
        return results

    assert parent() == [1, 2, 3]
    trace = only_trace()
    assert shape(trace) == [(0, "parent", "UNKNOWN")] + [(1, "work", "UNKNOWN")] * 3


def test_thread_without_wrap_starts_its_own_trace() -> None:
    @agenttrace.trace
    def work():
        return 1

    @agenttrace.trace
    def parent():
        t = threading.Thread(target=work)
        t.start()
        t.join()

    parent()
    assert len(agenttrace.search_traces()) == 2


def test_traced_function_keeps_metadata() -> None:
    @agenttrace.trace
    def documented(x: int) -> int:
        """Doc."""
        return x

    assert documented.__name__ == "documented" and documented.__doc__ == "Doc."


def test_decorating_a_class_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot wrap the class Agent; decorate its methods"):

        @agenttrace.trace
        class Agent:
            def __call__(self):
                return 1


def test_generator_closed_early_cleans_up_inside_its_span() -> None:
    @agenttrace.trace
    def cleanup():
        return "cleaned"

    @agenttrace.trace
    def stream():
        try:
            yield 1
            yield 2
        finally:
            cleanup()

    gen = stream()
    assert next(gen) == 1
    gen.close()
    assert agenttrace.get_current_span() is None
    trace = only_trace()
    assert shape(trace) == [(0, "stream", "UNKNOWN"), (1, "cleanup", "UNKNOWN")]
    assert trace.root.outputs == [1] and trace.root.status == "OK"


def test_async_generator_closed_early_ends_its_span() -> None:
    @agenttrace.trace
    async def astream():
        for i in range(10):
            yield i

    async def take_two():
        agen = astream()
        items = [await agen.__anext__(), await agen.__anext__()]
        await agen.aclose()
        return items

    assert asyncio.run(take_two()) == [0, 1]
    root = only_trace().root
    assert root.outputs == [0, 1] and root.status == "OK"


def test_wrap_carries_the_active_agent_into_a_thread() -> None:
    @agenttrace.trace
    def work() -> int:
        return 1

    with agenttrace.set_active_agent("free-label", "7"):
        with agenttrace.context.ContextThreadPoolExecutor(max_workers=1) as pool:
            assert pool.submit(work).result() == 1
    info = only_trace().info
    assert (info.agent_name, info.agent_version, info.agent_version_id) == ("free-label", "7", None)
