"""Starting and ending our spans, the `span()` context manager and the current-trace helpers.

Both the decorator and `span()` go through `start` and `end_ok`/`end_error`, which never raise:
a failure inside them is passed to the runtime's guard and the user's code runs on untraced.
The local root (our outermost span in this process) is kept in the OpenTelemetry context under
ROOT_KEY, so it follows the context into tasks and wrapped threads, and `update_current_trace`
can find it from any depth.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

from agenttrace.errors import InvalidArgumentError
from agenttrace.jsontext import dumps
from agenttrace.otel import conventions as cv
from agenttrace.records import SpanType
from agenttrace.tracing.agent_context import _active as _active_agent
from agenttrace.tracing.context import CURRENT_RUN
from agenttrace.tracing.runtime import Runtime, get_runtime, internal_error
from agenttrace.tracing.serialize import safe_str

logger = logging.getLogger("agenttrace")

__all__ = ["LiveSpan", "get_current_span", "get_current_trace_id", "span", "update_current_trace"]

ROOT_KEY = otel_context.create_key("agenttrace-local-root")
_SPAN_TYPES = frozenset(t.value for t in SpanType)
_PAYLOAD_KEYS = frozenset({cv.INPUTS, cv.OUTPUTS})
_NO_OUTPUTS: Any = object()  # `span.leave()` without outputs (None is an agent's result like any)


def normalize_span_type(span_type: str | SpanType | None) -> str:
    if span_type is None:
        return SpanType.UNKNOWN.value
    value = str(span_type.value if isinstance(span_type, SpanType) else span_type).upper()
    if value not in _SPAN_TYPES:
        raise InvalidArgumentError(f"unknown span_type {span_type!r}; use one of {', '.join(sorted(_SPAN_TYPES))}")
    return value


def start(rt: Runtime, name: str, attributes: dict[str, Any], deferred: bool = False) -> tuple[Span, object] | None:
    """Start a span as a child of the current context and make it current.

    `deferred`: a local root is a `DeferredRoot` where the runtime allows it (the SDK makes it when
    it must), for a server that answers before it records.
    """
    try:
        parent = otel_context.get_current()
        if otel_context.get_value(ROOT_KEY, parent) is None:
            _add_root_facts(parent, attributes)
            make = rt.deferred_root if deferred else None
            if make is not None:
                s: Span = make(name, parent, attributes)
            else:
                s = rt.tracer.start_span(name, context=parent, attributes=attributes)  # type: ignore[union-attr]
            ctx = otel_context.set_value(ROOT_KEY, s, otel_trace.set_span_in_context(s, parent))
        else:
            s = rt.tracer.start_span(name, context=parent, attributes=attributes)  # type: ignore[union-attr]
            ctx = otel_trace.set_span_in_context(s, parent)
        return s, otel_context.attach(ctx)
    except Exception as exc:
        internal_error("start span", exc)
        return None


def _add_root_facts(parent: Context, attributes: dict[str, Any]) -> None:
    """What a local root carries for its trace: the run and agent it belongs to, and whether its
    parent belongs to other instrumentation."""
    if otel_trace.get_current_span(parent).get_span_context().is_valid:
        attributes[cv.LOCAL_ROOT] = True
    run = CURRENT_RUN.get()  # the tracking run this trace belongs to, if any
    if run is not None:
        attributes[cv.RUN_ID] = run.run_id
        if run.experiment is not None:
            attributes[cv.EXPERIMENT] = run.experiment
    agent = _active_agent.get()  # set_active_agent / load_agent: stamp the trace's agent
    if agent is not None and cv.AGENT_NAME not in attributes:
        attributes.update(agent.attributes)


def start_with_inputs(
    rt: Runtime,
    name: str,
    attributes: dict[str, Any],
    inputs_of: Callable[[Any, Any], Any] | None,
    a: Any,
    b: Any,
    deferred: bool = False,
) -> tuple[Span, object] | None:
    """`start`, with the inputs `inputs_of(a, b)` (None: none) as the span's payload.

    Without sampling they go in at start (one attribute write fewer); with it, only for spans that
    are kept, so a sampled-out call serialises nothing. The decorator and `span()` both start so.
    """
    early = inputs_of is not None and rt.settings.sample_rate >= 1.0
    if early:
        _put_inputs(rt, attributes, inputs_of, a, b)  # type: ignore[arg-type]
    started = start(rt, name, attributes, deferred)
    if started is not None and inputs_of is not None and not early and started[0].is_recording():
        late: dict[str, Any] = {}
        _put_inputs(rt, late, inputs_of, a, b)
        started[0].set_attributes(late)
    return started


def _put_inputs(rt: Runtime, attributes: dict[str, Any], inputs_of: Callable[[Any, Any], Any], a: Any, b: Any) -> None:
    try:
        value = inputs_of(a, b)
        if value is not None:
            attributes[cv.INPUTS] = rt.serializer.to_json(value)
    except Exception as exc:
        internal_error("capture inputs", exc)


def _given(inputs: Any, _: Any) -> Any:
    return inputs


def end_ok(rt: Runtime, s: Span, token: object | None, outputs: Any, capture: bool) -> None:
    try:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
        if capture and s.is_recording():
            s.set_attribute(cv.OUTPUTS, rt.serializer.to_json(outputs))
    except Exception as exc:
        internal_error("end span", exc)
    finally:
        _end(s)


def end_error(s: Span, token: object | None, exc: BaseException) -> None:
    try:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
        if s.is_recording():
            message = safe_str(exc)
            s.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"))
            try:
                s.record_exception(exc, escaped=True)
            except Exception:  # the exception's own __str__ raises: record what can be read of it
                s.add_event("exception", {"exception.type": type(exc).__name__, "exception.message": message})
    except Exception as inner:
        internal_error("end span after error", inner)
    finally:
        _end(s)


def _end(s: Span, end_time_ns: int | None = None) -> None:
    # Whatever failed before, the span is ended, so it is stored with what it has.
    try:
        s.end(end_time=end_time_ns)
    except Exception as exc:
        internal_error("end span", exc)


class LiveSpan:
    """The span being recorded, as user code sees it: set outputs, attributes and events."""

    __slots__ = ("_span", "_rt")

    def __init__(self, otel_span: Span, rt: Runtime) -> None:
        self._span = otel_span
        self._rt = rt

    @property
    def trace_id(self) -> str:
        return format(self._span.get_span_context().trace_id, "032x")

    @property
    def span_id(self) -> str:
        return format(self._span.get_span_context().span_id, "016x")

    def set_inputs(self, inputs: Any) -> None:
        self._set(cv.INPUTS, inputs)

    def set_outputs(self, outputs: Any) -> None:
        self._set(cv.OUTPUTS, outputs)

    def _set(self, key: str, value: Any) -> None:
        try:
            if self._span.is_recording():  # a sampled-out span keeps nothing: do not serialise for it
                self._span.set_attribute(key, self._rt.serializer.to_json(value))
        except Exception as exc:
            internal_error("set payload", exc)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set attributes; values OpenTelemetry cannot carry are stored as JSON text.

        Our own payload keys (`agenttrace.inputs`/`outputs`) are values like `set_inputs` takes,
        serialised as such: the store trusts them to be JSON.
        """
        try:
            if not self._span.is_recording():
                return  # a sampled-out span keeps nothing: do not serialise for it
            serializer = self._rt.serializer
            plain = {}
            for key, value in attributes.items():
                if key in _PAYLOAD_KEYS:
                    plain[key] = serializer.to_json(value)
                else:
                    plain[key] = _attribute_value(value, self._rt)
            self._span.set_attributes(plain)  # one call: OpenTelemetry checks and locks once
        except Exception as exc:
            internal_error("set attributes", exc)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        try:
            self._span.add_event(name, {k: _attribute_value(v, self._rt) for k, v in (attributes or {}).items()})
        except Exception as exc:
            internal_error("add event", exc)

    def __repr__(self) -> str:
        return f"<LiveSpan {self.span_id} of trace {self.trace_id}>"


_NOT_PLAIN = object()


def _plain_attribute(value: Any) -> Any:
    """The value as OpenTelemetry takes it (a primitive, or a list of one primitive type), or _NOT_PLAIN."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str | bool | int | float) for v in value):
        if len({type(v) for v in value}) <= 1:
            return list(value)
    return _NOT_PLAIN


def _attribute_value(value: Any, rt: Runtime) -> Any:
    plain = _plain_attribute(value)
    return rt.serializer.to_json(value) if plain is _NOT_PLAIN else plain


def static_attribute_value(value: Any) -> Any:
    """`_attribute_value` at decoration time, before any runtime: anything else becomes JSON text
    once, instead of OpenTelemetry refusing it (with a warning) on every call."""
    plain = _plain_attribute(value)
    return dumps(value) if plain is _NOT_PLAIN else plain


class span:  # noqa: N801 - used like a function: `with agenttrace.span("step") as s:`
    """Trace a block: `with span(name, span_type=, inputs=) as s:`, also `async with`.

    An exception leaving the block marks the span ERROR with an exception event and propagates
    unchanged.
    """

    __slots__ = ("_name", "_attributes", "_inputs", "_state", "_deferred")

    def __init__(
        self,
        name: str,
        span_type: str | SpanType | None = None,
        inputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self._name = name
        self._attributes = checked_attributes(span_type, attributes or {})
        self._inputs = inputs
        self._state: tuple[Span, object] | None = None
        self._deferred = False

    @classmethod
    def of_checked(cls, name: str, attributes: dict[str, Any], inputs: Any = None, deferred: bool = False) -> span:
        """A span whose attributes are already what OpenTelemetry takes, the span type among them
        (`checked_attributes` made them once): for code that starts the same span many times.

        `deferred`: as a local root, the SDK starts it when it ends (`DeferredRoot`), for a server
        whose caller does not wait for the span to be recorded (it uses `leave`).
        """
        self = cls.__new__(cls)
        self._name, self._attributes, self._inputs, self._state = name, attributes, inputs, None
        self._deferred = deferred
        return self

    def leave(self, outputs: Any = _NO_OUTPUTS, outputs_json: str | None = None) -> Callable[[Mapping[str, Any]], None]:
        """Leave the block now; return the call that records the span, ended at this moment.

        For agenttrace's own server, which answers first and records after. Here, in the block's
        context: the context is restored, and `outputs` (None too, when given) serialised, so what is
        stored is the value as it was returned (`outputs_json`, the same value already serialised
        whole and unredacted, is reused when the tracer's settings would store the same text). The
        returned call sets the given attributes (values OpenTelemetry takes as they are) and stores
        the span; it acts once, and must be called, or the span is never stored. After `leave`,
        leaving the `with` block does nothing more.
        """
        if self._state is None:
            return _nothing
        s, token = self._state
        self._state = None
        end_ns = time.time_ns()
        final: dict[str, Any] = {}
        try:
            if outputs is not _NO_OUTPUTS and s.is_recording():
                serializer = get_runtime().serializer
                if outputs_json is None:
                    final[cv.OUTPUTS] = serializer.to_json(outputs)
                else:
                    final[cv.OUTPUTS] = serializer.to_json_given(outputs, outputs_json)
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception as exc:
            internal_error("leave span", exc)
        pending = [s]

        def record(attributes: Mapping[str, Any]) -> None:
            if not pending:
                return
            ended = pending.pop()
            try:
                if ended.is_recording():
                    ended.set_attributes({**final, **attributes})
            except Exception as exc:
                internal_error("set attributes", exc)
            _end(ended, end_ns)

        return record

    def __enter__(self) -> LiveSpan | _NoopSpan:
        rt = get_runtime()
        if not rt.enabled:
            return _NOOP
        if self._state is not None:
            raise RuntimeError(f"span {self._name!r} is already open; create a new span() for each block")
        inputs = self._inputs
        inputs_of = None if inputs is None else _given
        self._state = start_with_inputs(rt, self._name, dict(self._attributes), inputs_of, inputs, None, self._deferred)
        if self._state is None:
            return _NOOP
        return LiveSpan(self._state[0], rt)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._state is None:
            return
        s, token = self._state
        self._state = None
        if exc is not None:
            end_error(s, token, exc)
        else:
            end_ok(get_runtime(), s, token, None, capture=False)

    async def __aenter__(self) -> LiveSpan | _NoopSpan:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _nothing(attributes: Mapping[str, Any]) -> None:
    pass


def checked_attributes(span_type: str | SpanType | None, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """`span()`'s attributes, checked and converted once, for `span.of_checked`."""
    return {
        cv.SPAN_TYPE: normalize_span_type(span_type),
        **{k: static_attribute_value(v) for k, v in attributes.items()},
    }


class _NoopSpan:
    """Stands in for LiveSpan when tracing is off, so user code needs no branches."""

    trace_id = None
    span_id = None

    def set_inputs(self, inputs: Any) -> None: ...
    def set_outputs(self, outputs: Any) -> None: ...
    def set_attributes(self, attributes: Mapping[str, Any]) -> None: ...
    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None: ...


_NOOP = _NoopSpan()


@contextmanager
def detached() -> Iterator[None]:
    """Run a block outside any current trace, so spans started in it begin a new trace."""
    token = otel_context.attach(otel_context.Context())
    try:
        yield
    finally:
        otel_context.detach(token)


def trace_attributes(
    tags: Mapping[str, Any] | None = None,
    agent_name: str | None = None,
    agent_version: str | None = None,
    always_sample: bool = False,
) -> dict[str, Any]:
    """Attributes for a local root span that fill the trace's tags and agent columns.

    `always_sample` keeps the trace whatever the sample rate (evaluation records need their trace).
    """
    attributes: dict[str, Any] = {cv.ALWAYS_SAMPLE: True} if always_sample else {}
    if tags:
        attributes[cv.TRACE_TAGS] = dumps({str(k): str(v) for k, v in tags.items()})
    if agent_name:
        attributes[cv.AGENT_NAME] = agent_name
    if agent_version:
        attributes[cv.AGENT_VERSION] = agent_version
    return attributes


def record_span(
    name: str,
    span_type: str | SpanType,
    start_time_ns: int,
    end_time_ns: int,
    *,
    inputs: Any = None,
    outputs: Any = None,
    attributes: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> str | None:
    """Record an already finished operation as the root span of a trace of its own.

    Used for work observed after the fact (an LLM judge's call). Returns the new trace id.
    """
    rt = get_runtime()
    if not rt.enabled or rt.tracer is None:
        return None
    try:
        attrs = {cv.SPAN_TYPE: normalize_span_type(span_type), **(attributes or {})}
        if inputs is not None:
            attrs[cv.INPUTS] = rt.serializer.to_json(inputs)
        if outputs is not None:
            attrs[cv.OUTPUTS] = rt.serializer.to_json(outputs)
        s = rt.tracer.start_span(name, context=otel_context.Context(), attributes=attrs, start_time=start_time_ns)
        if error:
            s.set_status(Status(StatusCode.ERROR, error))
        s.end(end_time=end_time_ns)
        return format(s.get_span_context().trace_id, "032x")
    except Exception as exc:
        internal_error("record span", exc)
        return None


def get_current_span() -> LiveSpan | None:
    """The recording span of the current context, or None outside any span."""
    current = otel_trace.get_current_span()
    if not current.is_recording():
        return None
    return LiveSpan(current, get_runtime())


def get_current_trace_id() -> str | None:
    ctx = otel_trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def update_current_trace(
    tags: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
) -> None:
    """Attach tags, metadata, a session and a user to the trace being recorded.

    Repeated calls merge tags and metadata. Outside a trace it logs a warning and does nothing.
    """
    root = otel_context.get_value(ROOT_KEY)
    if root is None or not root.is_recording():  # type: ignore[attr-defined]
        logger.warning("update_current_trace called outside a trace; ignored")
        return
    try:
        existing = getattr(root, "attributes", None) or {}
        updates: dict[str, Any] = {}
        if tags:
            merged = {**json.loads(existing.get(cv.TRACE_TAGS, "{}")), **{str(k): str(v) for k, v in tags.items()}}
            updates[cv.TRACE_TAGS] = dumps(merged)
        if metadata:
            previous = json.loads(existing.get(cv.TRACE_METADATA, "{}"))
            fresh = json.loads(get_runtime().serializer.to_json(dict(metadata)))
            updates[cv.TRACE_METADATA] = dumps({**previous, **fresh})
        if session_id is not None:
            updates[cv.SESSION_ID] = str(session_id)
        if user_id is not None:
            updates[cv.USER_ID] = str(user_id)
        root.set_attributes(updates)  # type: ignore[attr-defined]
    except Exception as exc:
        internal_error("update_current_trace", exc)
