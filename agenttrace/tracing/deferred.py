"""A local root span that the OpenTelemetry SDK starts only once its work is over.

`agenttrace serve` answers a request before it stores the request's span (the caller does not wait
for the storing). Starting an SDK span is most of what tracing adds to a served request that the
caller waits for: on a server whose caches are cold between requests it takes several times what
it takes in a loop. So the request's root is a `DeferredRoot` while the agent runs: it has its ids
and its place in the context from the start (what the agent traces nests under it, and other
OpenTelemetry instrumentation sees it as the current span), and it keeps what is set on it. When
it ends, what the processors receive is an ordinary SDK `ReadableSpan`:

- A root that only has attributes, each a plain value under the SDK's limits (a served request
  that succeeded), is handed to the provider's processors as the finished span the SDK would have
  made of it. Checking its attributes again (`BoundedAttributes`, a lock and a check per key) and
  building a mutable span only to end it are most of what an SDK span costs on a cold server.
- Anything else (events, an exception, a status, links, a value the SDK converts or refuses) is
  replayed through the SDK: `Tracer.start_span` with its start time and the ids it already had
  (`ReservableIds`), then its events, status and links in the order they came, then `end` at its
  end time, so the SDK checks it as any other span.

What differs from a span the SDK started at once: the processors' `on_start` is not called for the
first kind, and sees the second only when it ends (the provider is agenttrace's own, and none of
its processors acts on start); values the SDK refuses are refused at the end rather than when they
are set. The root is only deferred where every span is sampled: with a sample rate the sampler
decides at the start.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.sdk.trace import Tracer as SDKTracer
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.util import types

from agenttrace.otel.provider import TRACER_NAME, ReservableIds

__all__ = ["DeferredRoot"]

_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_PLAIN = frozenset({str, bool, int, float})
_SCOPE = InstrumentationScope(TRACER_NAME)  # the runtime's tracer's scope


class DeferredRoot(Span):
    """A recording span whose SDK span is started and ended when it ends (see the module).

    Used from the thread or task that started it and from the agent's threads, one call at a time
    as a request's root is; `end` replays it on the thread that calls it.
    """

    def __init__(
        self,
        tracer: SDKTracer,
        ids: ReservableIds,
        limits: SpanLimits,
        name: str,
        parent: Context,
        attributes: dict[str, Any],
    ) -> None:
        self._start_ns = time.time_ns()
        self._tracer, self._ids, self._limits, self._name, self._parent = tracer, ids, limits, name, parent
        self._attributes = attributes
        self._later: list[tuple[str, tuple[Any, ...]]] = []  # events, exceptions, status, links, in order
        self._ended = False
        caller = otel_trace.get_current_span(parent).get_span_context()
        # The ids and flags the SDK would give it (ALWAYS_ON keeps the parent's trace state).
        self._caller = caller if caller.is_valid else None
        if caller.is_valid:
            trace_id = caller.trace_id
            flags = _SAMPLED_RANDOM if caller.trace_flags.random_trace_id else _SAMPLED
            state = caller.trace_state
        else:
            trace_id = ids.generate_trace_id()
            flags, state = _SAMPLED_RANDOM, None
        self._context = SpanContext(trace_id, ids.generate_span_id(), False, flags, state)

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return not self._ended

    @property
    def attributes(self) -> Mapping[str, Any]:
        """What is set so far (what `update_current_trace` merges into)."""
        return MappingProxyType(self._attributes)

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        if not self._ended:
            self._attributes.update(attributes)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if not self._ended:
            self._attributes[key] = value

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        self._keep("add_event", name, attributes, timestamp or time.time_ns())

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        self._keep("add_link", context, attributes)

    def update_name(self, name: str) -> None:
        if not self._ended:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self._keep("set_status", status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self._keep("record_exception", exception, attributes, timestamp or time.time_ns(), escaped)

    def _keep(self, method: str, *args: Any) -> None:
        if not self._ended:
            self._later.append((method, args))

    def end(self, end_time: int | None = None) -> None:
        """Hand the finished span to the processors, or replay it through the SDK (see the module)."""
        if self._ended:
            return
        self._ended = True
        end_ns = time.time_ns() if end_time is None else end_time
        if self._later or not _plain(self._attributes, self._limits):
            self._replay(end_ns)
            return
        finished = ReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._caller,
            resource=self._tracer.resource,
            attributes=self._attributes,
            start_time=self._start_ns,
            end_time=end_ns,
            instrumentation_scope=_SCOPE,
        )
        self._tracer.span_processor.on_end(finished)

    def _replay(self, end_ns: int) -> None:
        """Start the SDK span as it would have started, replay what came since, and end it."""
        context = self._context
        self._ids.reserve(context.trace_id, context.span_id)
        try:
            started = self._tracer.start_span(
                self._name, context=self._parent, attributes=self._attributes, start_time=self._start_ns
            )
        finally:
            self._ids.clear()  # taken by the span, or left by a tracer that started none
        for method, args in self._later:
            getattr(started, method)(*args)
        started.end(end_time=end_ns)

    def __repr__(self) -> str:
        return f"DeferredRoot(name={self._name!r}, context={self._context})"


def _plain(attributes: dict[str, Any], limits: SpanLimits) -> bool:
    """Would the SDK keep these attributes as they are? Plain values under names, within the limits."""
    if limits.max_span_attribute_length is not None:
        return False  # the SDK would cut long strings
    if limits.max_span_attributes is not None and len(attributes) > limits.max_span_attributes:
        return False
    return all(type(v) in _PLAIN and type(k) is str and k for k, v in attributes.items())
