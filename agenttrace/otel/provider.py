"""Building our own TracerProvider: sampler, resource and the span processors we own.

We never replace the global provider: ours is private to agenttrace, and spans still nest with
other instrumentation through OpenTelemetry's shared context. With `capture_global` a forwarder
on the global SDK provider (set up once per process) hands its spans to our current processors.
"""

from __future__ import annotations

import logging
import random
import threading

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

from agenttrace.otel import conventions as cv

logger = logging.getLogger("agenttrace")

TRACER_NAME, TRACER_VERSION = "agenttrace", ""  # our spans' instrumentation scope
_random_bits = random.getrandbits


class _KeepMarkedRoots(Sampler):
    """Sample by ratio, except roots marked ALWAYS_SAMPLE (evaluation records are never dropped)."""

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):  # noqa: ANN001 - Sampler's signature
        if attributes and attributes.get(cv.ALWAYS_SAMPLE):
            return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        return self._delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"KeepMarkedRoots{{{self._delegate.get_description()}}}"


class _Reservation(threading.local):
    ids: tuple[int, int] | None = None  # a class default: no per-thread setup, one attribute read


class ReservableIds(RandomIdGenerator):
    """Random ids, except that a thread may reserve the ids of the next span it starts.

    A span recorded after the fact (`DeferredRoot`) is started by the SDK once its work is done,
    with the ids its children already point to. The reservation is per thread and used once, so
    spans other threads start meanwhile get random ids; the check costs one thread-local read.
    """

    def __init__(self) -> None:
        self._reserved = _Reservation()

    def reserve(self, trace_id: int, span_id: int) -> None:
        """The next span this thread starts gets `span_id`, and `trace_id` if it is a root."""
        self._reserved.ids = (trace_id, span_id)

    def clear(self) -> None:
        self._reserved.ids = None

    # Every span's ids come here: RandomIdGenerator's own draws, without its calls (0 is invalid).
    def generate_trace_id(self) -> int:
        ids = self._reserved.ids
        if ids is not None:
            return ids[0]
        trace_id = _random_bits(128)
        return trace_id if trace_id else super().generate_trace_id()

    def generate_span_id(self) -> int:
        ids = self._reserved.ids
        if ids is not None:
            self._reserved.ids = None  # the span id is taken last: the reservation ends with it
            return ids[1]
        span_id = _random_bits(64)
        return span_id if span_id else super().generate_span_id()


def build_provider(
    sample_rate: float,
    processors: list[SpanProcessor],
    resource_attributes: dict[str, str],
    limits: SpanLimits,
    ids: ReservableIds,
) -> TracerProvider:
    """Our provider, with the given span limits and id generator."""
    sampler: Sampler = (
        ALWAYS_ON if sample_rate >= 1.0 else ParentBased(_KeepMarkedRoots(TraceIdRatioBased(sample_rate)))
    )
    # No exit hook of OpenTelemetry's own: ours shuts the provider down within exit_timeout_s, while
    # OpenTelemetry's would wait for every retry of an exporter (10 s and more with a collector down).
    provider = TracerProvider(
        sampler=sampler,
        resource=Resource.create(resource_attributes),
        shutdown_on_exit=False,
        id_generator=ids,
        span_limits=limits,
    )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


class _GlobalForwarder(SpanProcessor):
    """Added once to the global provider; hands its spans to the processors of the current runtime.

    OpenTelemetry has no way to remove a processor from a provider, nor to replace the global
    provider, so reconfiguring must not add processors there again: it swaps our targets instead.
    on_end runs on the thread that ended the span and only forwards.
    """

    def __init__(self) -> None:
        self.targets: list[SpanProcessor] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        for target in self.targets:
            target.on_end(span)

    def shutdown(self) -> None:
        self.targets = []

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_forwarder: _GlobalForwarder | None = None


def attach_to_global(processors: list[SpanProcessor]) -> None:
    """Store spans that other instrumentation emits through the global provider too.

    With no SDK provider set globally, one is set that only forwards to us (never ours, so our
    own spans are not stored twice and a reconfigured runtime does not strand the global one).
    """
    global _forwarder
    if _forwarder is None:
        _forwarder = _GlobalForwarder()
        current = otel_trace.get_tracer_provider()
        if not isinstance(current, TracerProvider):
            current = TracerProvider()
            otel_trace.set_tracer_provider(current)
        current.add_span_processor(_forwarder)
    _forwarder.targets = list(processors)


def detach_from_global(processors: list[SpanProcessor]) -> None:
    """Stop forwarding global spans to these processors (their runtime is shutting down)."""
    if _forwarder is not None and _forwarder.targets == list(processors):
        _forwarder.targets = []
