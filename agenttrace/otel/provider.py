"""Building our own TracerProvider: sampler, resource and the span processors we own.

We never replace the global provider: ours is private to agenttrace, and spans still nest with
other instrumentation through OpenTelemetry's shared context. With `capture_global` the same
processor is also added to the global SDK provider (or ours becomes global if none was set).
"""

from __future__ import annotations

import logging

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

from agenttrace.otel import conventions as cv

logger = logging.getLogger("agenttrace")


class _KeepMarkedRoots(Sampler):
    """Sample by ratio, except roots marked ALWAYS_SAMPLE (evaluation records are never dropped)."""

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):  # type: ignore[no-untyped-def]
        if attributes and attributes.get(cv.ALWAYS_SAMPLE):
            return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        return self._delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"KeepMarkedRoots{{{self._delegate.get_description()}}}"


def build_provider(
    sample_rate: float, processors: list[SpanProcessor], resource_attributes: dict[str, str]
) -> TracerProvider:
    sampler: Sampler = (
        ALWAYS_ON if sample_rate >= 1.0 else ParentBased(_KeepMarkedRoots(TraceIdRatioBased(sample_rate)))
    )
    provider = TracerProvider(sampler=sampler, resource=Resource.create(resource_attributes))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def attach_to_global(provider: TracerProvider, processors: list[SpanProcessor]) -> None:
    """Store spans that other instrumentation emits through the global provider too."""
    current = otel_trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        if current is not provider:
            for processor in processors:
                current.add_span_processor(processor)
        return
    otel_trace.set_tracer_provider(provider)
