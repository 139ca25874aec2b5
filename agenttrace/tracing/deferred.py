"""A local root span that the OpenTelemetry SDK makes only when it must.

`agenttrace serve` answers a request before it stores the request's span (the caller does not wait
for the storing). Starting an SDK span is most of what tracing adds to a served request that the
caller waits for: on a server whose caches are cold between requests it takes several times what
it takes in a loop (checking each attribute again in `BoundedAttributes`, locks, a mutable span
only to end it). So the request's root is a `DeferredRoot`: it has its ids and its place in the
context from the start (what the agent traces nests under it, and other OpenTelemetry code sees
it as the current span), and it keeps plain attribute values itself, as the SDK would keep them.

- A root that only ever gets plain values (str, bool, int, float) within the SDK's limits, as a
  served request that succeeds, is handed to the provider's processors when it ends as the
  finished `ReadableSpan` the SDK would have made of it.
- Anything else makes the SDK span at that moment (`Tracer.start_span` with the root's start time
  and the ids it already has, through `ReservableIds`), and from then on every call goes to that
  span: an event, an exception (formatted when it is recorded, as the SDK does), a status, a link,
  a new name, a value the SDK converts, an attribute past the count limit, or reading anything
  that only an SDK span has (`name`, `status`, `events`, ...).

What differs from a span the SDK started at once: the processors' `on_start` and `_on_ending`
(and the SDK's own span metrics, when enabled) see the root when it is made, or never for the first
kind (the
provider is agenttrace's own, and none of its processors acts on start); it is not a
`ReadableSpan` until made; `with root:` does not record an exception (nobody enters a root they
did not start). The root is only deferred where every span is sampled (with a sample rate the
sampler decides at the start) and where the tracer is the SDK's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.sdk.trace import Tracer as SDKTracer
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import INVALID_SPAN, Span, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.util import types

from agenttrace.otel.provider import TRACER_NAME, TRACER_VERSION, ReservableIds

logger = logging.getLogger("agenttrace")

__all__ = ["DeferredRoot"]

_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_PLAIN = frozenset({str, bool, int, float})
_SCOPE = InstrumentationScope(TRACER_NAME, TRACER_VERSION)  # what the runtime's tracer names
_SDK_ONLY = frozenset(n for n in dir(SDKSpan) if not n.startswith("_"))  # what __getattr__ reads from it


class DeferredRoot(Span):
    """A recording local root whose SDK span is made when it must be (see the module).

    Safe to use from several threads (the agent's, and the server's that ends it), as an SDK span is.
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
        self._attributes = attributes  # plain values only, until the SDK span is made (else: as given)
        self._made: Span | None = None  # the SDK span, once made
        self._making = False
        self._finished: ReadableSpan | None = None  # or the span handed over, when none was made
        self._ended = False
        self._lock = threading.RLock()  # reentrant: the SDK may log while it makes the span
        self._resource = tracer.resource  # taken at the start, as the SDK does
        # First attributes the SDK would not keep as they are: it makes the span (at the latest at the end).
        self._needs_sdk = not self._fits(attributes, 0)  # (they are held already)
        caller = otel_trace.get_current_span(parent).get_span_context()
        # The ids and flags the SDK would give it (ALWAYS_ON keeps the parent's trace state).
        if caller.is_valid:
            trace_id = caller.trace_id
            flags = _SAMPLED_RANDOM if caller.trace_flags.random_trace_id else _SAMPLED
            state = caller.trace_state
        else:
            trace_id = ids.generate_trace_id()
            flags, state = _SAMPLED_RANDOM, None
        self._caller = caller if caller.is_valid else None
        self._context = SpanContext(trace_id, ids.generate_span_id(), False, flags, state)

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        made = self._made
        return made.is_recording() if made is not None else not self._ended

    @property
    def attributes(self) -> Mapping[str, Any]:
        """What is set so far (what `update_current_trace` merges into)."""
        with self._lock:
            made, held = self._made, dict(self._attributes)  # a copy: agent threads may write meanwhile
        return made.attributes if made is not None else MappingProxyType(held)  # type: ignore[attr-defined]

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        with self._lock:
            late = self._ended and self._made is None
            if late or self._making:  # after the end, or from the SDK's own logging while it makes the span
                made = None
            elif self._made is None and not self._needs_sdk and self._keep(attributes):
                return
            else:
                made = self._make()
        if made is not None:
            made.set_attributes(attributes)
        elif late:
            logger.warning("Setting attribute on ended span.")  # as the SDK warns of its own

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        self.set_attributes({key: value})

    def _keep(self, attributes: Mapping[str, Any]) -> bool:
        """Keep plain values as BoundedAttributes would (a key set again moves to the end), or say
        that only the SDK can take them (False)."""
        held = self._attributes
        if not self._fits(attributes, sum(1 for k in attributes if k not in held)):
            return False
        for key, value in attributes.items():
            held.pop(key, None)
            held[key] = value
        return True

    def _fits(self, attributes: Mapping[str, Any], fresh: int) -> bool:
        """Would the SDK keep these as they are? Plain values under names, `fresh` new keys within its limit."""
        most = self._limits.max_span_attributes
        if most is not None and len(self._attributes) + fresh > most:
            return False
        return all(type(v) in _PLAIN and type(k) is str and k for k, v in attributes.items())

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        self._to_sdk("add_event", name, attributes, timestamp)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        self._to_sdk("add_link", context, attributes)

    def update_name(self, name: str) -> None:
        self._to_sdk("update_name", name)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self._to_sdk("set_status", status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self._to_sdk("record_exception", exception, attributes, timestamp, escaped)

    def _to_sdk(self, method: str, *args: Any) -> None:
        with self._lock:
            made = None if self._ended and self._made is None else self._make()
        if made is None:
            logger.warning("Calling %s on ended span.", method)  # as the SDK says of its own
            return
        getattr(made, method)(*args)

    def __getattr__(self, name: str) -> Any:
        """What only an SDK span has (`name`, `status`, `events`, ...) is read from the SDK span
        (the finished one, once it was handed over); other names are not there, as on an SDK span."""
        if name not in _SDK_ONLY:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        with self._lock:
            span = self._finished if self._finished is not None else self._make()
        return getattr(span, name)

    def _make(self) -> Span:
        """The SDK span, made now if it is not yet (under the lock), as it would have started."""
        if self._made is None:
            if self._making:
                # Called back while the SDK makes it (a log handler writing to the current span):
                # as with a span the SDK starts, nothing is there to write to yet.
                return INVALID_SPAN
            context = self._context
            self._making = True
            self._ids.reserve(context.trace_id, context.span_id)
            try:
                self._made = self._tracer.start_span(
                    self._name, context=self._parent, attributes=self._attributes, start_time=self._start_ns
                )
            finally:
                self._ids.clear()  # taken by the span, or left by a tracer that started none
                self._making = False
        return self._made

    def end(self, end_time: int | None = None) -> None:
        """End the SDK span if it was made; else hand the finished span to the processors."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            made, finished = self._made, None
            if made is None and self._needs_sdk:
                made = self._make()
            if made is None:
                finished = self._finished = ReadableSpan(
                    name=self._name,
                    context=self._context,
                    parent=self._caller,
                    resource=self._resource,
                    attributes=dict(self._attributes),
                    start_time=self._start_ns,
                    end_time=time.time_ns() if end_time is None else end_time,
                    instrumentation_info=self._tracer.instrumentation_info,
                    instrumentation_scope=_SCOPE,
                )
        if finished is not None:
            self._tracer.span_processor.on_end(finished)
        elif made is not None:
            made.end(end_time)

    def __repr__(self) -> str:
        return f"DeferredRoot(name={self._name!r}, context={self._context})"
