"""OTLP ingest: an ExportTraceServiceRequest (protobuf or JSON) to the store's batch rows.

Each span is decoded into the arguments of `convert.span_row`, the builder our own spans go
through too, so an ingested span and a traced one are stored alike: the one conventions mapper
(`conventions.map_span`) fills our columns, and every original attribute is kept in `attributes`.

Decoding is strict about shape and lenient about content: a body that is not a request is an
`IngestError` (HTTP 400); a span without valid ids is rejected alone and counted (OTLP's
`partial_success`); an attribute value above `max_value_bytes` is cut to a preview and reported.
Everything that reaches the columns is valid UTF-8, every JSON column holds valid JSON and every
count fits the trace sums, so a batch does not fail in the store because of what a sender wrote.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agenttrace.errors import IngestError
from agenttrace.jsontext import dumps
from agenttrace.otel import conventions as cv
from agenttrace.otel.convert import resource_experiment, span_row

__all__ = ["IngestResult", "convert_body", "decode_json", "decode_protobuf", "request_to_rows"]

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_REMOTE_KNOWN, _REMOTE = 0x100, 0x200  # SpanFlags: "parent is remote" is known / is true
_STATUS_ERROR = 2
_MAX_NS = 2**63 - 1  # the store keeps nanoseconds in BIGINT
DEFAULT_MAX_VALUE_BYTES = 1 << 20


@dataclass
class IngestResult:
    """Rows for `DuckDBStore.append_spans`, and what was refused or cut, for partial_success."""

    rows: list[dict[str, Any]]
    accepted: int = 0
    rejected: int = 0
    truncated: int = 0
    problems: list[str] = field(default_factory=list)

    def message(self) -> str:
        parts = list(dict.fromkeys(self.problems))[:5]
        if self.truncated:
            parts.append(f"{self.truncated} attribute values above the size limit were cut to a preview")
        return "; ".join(parts)


def convert_body(body: bytes, is_json: bool, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> IngestResult:
    """An OTLP/HTTP body (protobuf, or JSON when `is_json`) to rows; IngestError when undecodable."""
    request = decode_json(body) if is_json else decode_protobuf(body)
    return request_to_rows(request, max_value_bytes)


def decode_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """Parse an OTLP/protobuf body; IngestError when it is not an ExportTraceServiceRequest."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise IngestError(f"body is not an OTLP ExportTraceServiceRequest in protobuf: {exc}") from exc
    return request


def decode_json(body: bytes) -> ExportTraceServiceRequest:
    """Parse an OTLP/JSON body (ids in hex, as the OTLP spec says, not protobuf's base64)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise IngestError(f"body is not valid JSON (UTF-8): {exc}") from exc
    if b"\\ud" in body or b"\\uD" in body:  # escapes may hold lone surrogates, which UTF-8 cannot
        data = _without_surrogates(data)
    if not isinstance(data, dict):
        raise IngestError(f"OTLP/JSON body must be an object with resourceSpans, got {type(data).__name__}")
    try:
        _hex_ids_to_base64(data)
        return json_format.ParseDict(data, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise IngestError(f"JSON does not have the shape of an OTLP ExportTraceServiceRequest: {exc}") from exc


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def _hex_ids_to_base64(data: dict[str, Any]) -> None:
    import base64

    def convert(obj: dict[str, Any], keys: tuple[str, ...]) -> None:
        for key in keys:
            value = obj.get(key)
            if isinstance(value, str):
                try:
                    obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    obj[key] = ""  # not hex: the span is rejected for its ids, the rest goes on

    for rs in _list(data, "resourceSpans"):
        for ss in _list(rs, "scopeSpans"):
            for span in _list(ss, "spans"):
                convert(span, ("traceId", "spanId", "parentSpanId"))
                for link in _list(span, "links"):
                    convert(link, ("traceId", "spanId"))


def _list(obj: Any, key: str) -> list[Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class _Values:
    """Turns OTLP AnyValues into plain, JSON-safe Python values, cutting oversized strings.

    Strings are valid UTF-8 here: protobuf refuses anything else, and `decode_json` replaces lone
    surrogates before parsing, so the common case is a length check and nothing more.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.quick = max_bytes // 4  # this many characters are at most max_bytes in UTF-8
        self.truncated = 0

    def value(self, v: Any) -> Any:
        kind = v.WhichOneof("value")
        if kind == "string_value":
            s = v.string_value
            return s if len(s) <= self.quick else self.text(s)
        if kind == "int_value" or kind == "bool_value":
            return getattr(v, kind)
        if kind == "double_value":
            d = v.double_value
            return d if math.isfinite(d) else None  # JSON has no NaN: null, as for a local span
        if kind == "array_value":
            return [self.value(x) for x in v.array_value.values]
        if kind == "kvlist_value":
            return self.attributes(v.kvlist_value.values)
        if kind == "bytes_value":
            return self.text(v.bytes_value.hex())
        return None

    def text(self, s: str) -> str:
        if len(s) <= self.quick or len(s.encode("utf-8")) <= self.max_bytes:
            return s
        self.truncated += 1
        return f"{s[: self.max_bytes // 8]}…[agenttrace: value of {len(s)} characters cut at ingest]"

    def attributes(self, key_values: Any) -> dict[str, Any]:
        # The loop is the hottest of ingest: strings (most values) are handled inline. A oneof's
        # unset string reads as "", so a non-empty `string_value` is a string without asking
        # WhichOneof (a call per value); "" and the other kinds take `value`.
        out = {}
        quick = self.quick
        for kv in key_values:
            v = kv.value
            text = v.string_value
            if text:
                out[kv.key] = text if len(text) <= quick else self.text(text)
            else:
                out[kv.key] = self.value(v)
        return out


def request_to_rows(request: ExportTraceServiceRequest, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> IngestResult:
    """Convert every valid span of the request; spans without valid ids are rejected and counted."""
    values = _Values(max_value_bytes)
    result = IngestResult(rows=[])
    rows = result.rows
    for rs in request.resource_spans:
        resource = values.attributes(rs.resource.attributes)
        resource_json = dumps(resource)
        default_experiment = resource_experiment(resource, "Default")
        for ss in rs.scope_spans:
            scope = values.text(ss.scope.name) or None
            for span in ss.spans:
                try:
                    rows.append(_row(span, values, resource_json, default_experiment, scope))
                except _Rejected as rejected:
                    result.rejected += 1
                    result.problems.append(str(rejected))
    result.accepted = len(rows)
    result.truncated = values.truncated
    return result


class _Rejected(Exception):
    """A span whose ids or times the store cannot keep; the message says which."""


def _row(span: Any, values: _Values, resource_json: str, default_experiment: str | None, scope: str | None) -> dict:
    # Runs for every ingested span: each protobuf field is read once into a local (a read makes a
    # Python object each time), the checks of ids and times included.
    trace_id, span_id, raw_parent = span.trace_id, span.span_id, span.parent_span_id
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        raise _Rejected("a span without a valid 16-byte trace_id was rejected")
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        raise _Rejected("a span without a valid 8-byte span_id was rejected")
    if raw_parent and len(raw_parent) != 8:
        raise _Rejected("a span whose parent_span_id is not 8 bytes was rejected")
    if start > _MAX_NS or end > _MAX_NS:
        raise _Rejected("a span with a timestamp past the year 2262 was rejected")
    attrs = values.attributes(span.attributes)
    text = values.text
    span_events = span.events
    events = (
        [
            {"name": text(e.name), "timestamp_ns": e.time_unix_nano, "attributes": values.attributes(e.attributes)}
            for e in span_events
        ]
        if span_events
        else []
    )
    if not raw_parent or raw_parent == _ZERO_SPAN:
        parent, rank = None, 2
    else:
        parent = raw_parent.hex()
        flags = span.flags
        rank = 1 if (flags & _REMOTE_KNOWN and flags & _REMOTE) or attrs.get(cv.LOCAL_ROOT) else 0
    status = span.status
    return span_row(
        trace_id=trace_id.hex(), span_id=span_id.hex(), parent_span_id=parent, name=text(span.name),
        error=status.code == _STATUS_ERROR, status_message=text(status.message) or None, start_time_ns=start,
        end_time_ns=end or start, attributes=attrs, events=events, resource=resource_json, scope=scope,
        root_rank=rank, experiment=default_experiment, trusted=False,
    )  # fmt: skip
