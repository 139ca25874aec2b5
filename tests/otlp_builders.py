"""Building OTLP requests by hand, as other SDKs (any language) would send them."""

from __future__ import annotations

import itertools
import os
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = ["any_value", "make_request", "make_span", "new_ids"]

_counter = itertools.count(1)


def new_ids() -> tuple[bytes, bytes]:
    """A random trace id and a sequential span id (unique inside a test process)."""
    return os.urandom(16), next(_counter).to_bytes(4, "big") + os.urandom(4)


def any_value(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    if isinstance(value, list | tuple):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=key_values(value)))
    return common_pb2.AnyValue(string_value=str(value))


def key_values(attributes: dict[str, Any]) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def make_span(
    name: str, trace_id: bytes, span_id: bytes, parent: bytes = b"", attributes: dict[str, Any] | None = None,
    events: list[tuple[str, dict[str, Any]]] | None = None, error: str | None = None,
    start: int = 1_700_000_000_000_000_000, duration_ns: int = 5_000_000,
) -> trace_pb2.Span:  # fmt: skip
    span = trace_pb2.Span(
        trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name,
        kind=trace_pb2.Span.SPAN_KIND_INTERNAL, start_time_unix_nano=start,
        end_time_unix_nano=start + duration_ns, attributes=key_values(attributes or {}),
    )  # fmt: skip
    for event_name, event_attributes in events or []:
        span.events.add(name=event_name, time_unix_nano=start + 1, attributes=key_values(event_attributes))
    if error is not None:
        span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
        span.status.message = error
    return span


def make_request(
    spans: list[trace_pb2.Span], resource: dict[str, Any] | None = None, scope: str = "their-sdk"
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(key_values(resource or {"service.name": "their-service"}))
    ss = rs.scope_spans.add()
    ss.scope.name = scope
    ss.spans.extend(spans)
    return request
