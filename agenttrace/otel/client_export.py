"""Client mode's exporter: spans to `agenttrace server` in bodies under its limit, retried until taken.

OpenTelemetry's OTLP/HTTP exporter sends each batch as one request of whatever size it comes to,
and neither splits nor retries a 413: client mode's batches of 8,192 spans met the server's body
limit and were lost whole (0 of 8,000 spans with 1.5 KB inputs stored). This exporter encodes a
batch once and cuts the encoded request into bodies under the server's limit. The server names
its limit in the `X-Agenttrace-Max-Body-Bytes` header of every answer, the 413 included, so the
exporter starts from the server's default and corrects itself from the first answer; a 413
without the header (a proxy's) halves the bound. Busy answers (429, 502, 503, 504, honouring
Retry-After) and unreachable servers are retried with backoff for `timeout_s`; what is finally
lost (a span alone above the limit, a 400, a server down for the whole window, spans the server
rejected in `partial_success`) is counted in `failed`, which the exit warning and
`agenttrace.status` read, and logged (once at WARNING per cause). Bodies are gzipped when
OpenTelemetry's own setting asks for it (`OTEL_EXPORTER_OTLP_TRACES_COMPRESSION` or
`OTEL_EXPORTER_OTLP_COMPRESSION` = `gzip`), as the exporters to other collectors are; the
server's limit is on the body after gunzip, so the cut is made on the uncompressed size.

Called by OpenTelemetry's `BatchSpanProcessor` on its worker thread; never raises.
"""

from __future__ import annotations

import gzip
import logging
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence

import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["DEFAULT_MAX_BODY_BYTES", "MAX_BODY_HEADER", "ServerSpanExporter", "split_request"]

logger = logging.getLogger("agenttrace")

MAX_BODY_HEADER = "X-Agenttrace-Max-Body-Bytes"
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024  # the server's default (and the OpenTelemetry Collector's)
_RETRYABLE = frozenset({429, 502, 503, 504})
_MAX_BACKOFF_S = 4.0
# Framing a span adds inside its request: a field tag and a length of at most 5 bytes.
_SPAN_FRAMING = 6
_HEAD_FRAMING = 24  # the same for the resource and scope wrappers around a run of spans


def split_request(request: ExportTraceServiceRequest, limit: int) -> list[tuple[ExportTraceServiceRequest, int]]:
    """The request's spans in requests of at most `limit` encoded bytes each, with their span counts.

    Spans keep their resource and scope. A span that is alone above the limit gets a request of
    its own (the caller decides what to do with it). Sizes are upper bounds, so a part with more
    than one span is never above the limit.
    """
    parts: list[tuple[ExportTraceServiceRequest, int]] = []
    current, size, count = ExportTraceServiceRequest(), 0, 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            head = resource_spans.resource.ByteSize() + scope_spans.scope.ByteSize() + _HEAD_FRAMING
            head += len(resource_spans.schema_url) + len(scope_spans.schema_url)
            target: trace_pb2.ScopeSpans | None = None
            for span in scope_spans.spans:
                cost = span.ByteSize() + _SPAN_FRAMING
                if count and size + cost + (0 if target is not None else head) > limit:
                    parts.append((current, count))
                    current, size, count, target = ExportTraceServiceRequest(), 0, 0, None
                if target is None:
                    new_resource = current.resource_spans.add(schema_url=resource_spans.schema_url)
                    new_resource.resource.CopyFrom(resource_spans.resource)
                    target = new_resource.scope_spans.add(schema_url=scope_spans.schema_url)
                    target.scope.CopyFrom(scope_spans.scope)
                    size += head
                target.spans.append(span)
                size += cost
                count += 1
    if count:
        parts.append((current, count))
    return parts


class ServerSpanExporter(SpanExporter):
    """Sends spans to `agenttrace server` over OTLP/HTTP protobuf (see the module docstring)."""

    def __init__(
        self, url: str, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0, compress: bool | None = None
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.max_body_bytes = DEFAULT_MAX_BODY_BYTES
        self.gzip = _gzip_from_env() if compress is None else compress
        self.exported = 0
        self.failed = 0
        self.requests = 0  # bodies posted, retries included (for tests and benchmarks)
        self.bytes_sent = 0  # on the wire, after compression
        self._session = requests.Session()  # OpenTelemetry's HTTP exporter brings requests
        self._session.headers.update({**(headers or {}), "Content-Type": "application/x-protobuf"})
        if self.gzip:
            self._session.headers["Content-Encoding"] = "gzip"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._unreachable = False  # after a whole window without an answer: one try per batch, no waits
        self._last_error: Exception | None = None

    @property
    def done(self) -> int:
        return self.exported + self.failed

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            request = encode_spans(spans)
            lost = self._deliver(request, len(spans))
        except Exception as exc:  # never into the program: count the batch as lost
            lost = len(spans)
            self._note("error", f"could not send {len(spans)} spans to {self.url}: {exc!r}")
        with self._lock:
            self.exported += len(spans) - lost
            self.failed += lost
        return SpanExportResult.SUCCESS if not lost else SpanExportResult.FAILURE

    def _deliver(self, request: ExportTraceServiceRequest, count: int) -> int:
        """Send the request in bodies under the limit; returns how many spans were lost."""
        body = request.SerializeToString()
        if len(body) > self.max_body_bytes:
            parts = split_request(request, self.max_body_bytes)
            if len(parts) == 1:  # one span alone is above the limit: nothing can carry it
                self._note(
                    "span too large",
                    f"a span of {len(body):,} bytes is above the server's body limit of {self.max_body_bytes:,} "
                    "bytes and was not sent; raise the server's --max-body-mb or lower max_payload_bytes",
                )
                return count
            return sum(self._deliver(part, n) for part, n in parts)
        status, response = self._post(body)
        if status == 200 and response is not None:
            return self._partial(response, count)
        if status == 413 and count > 1:
            if self.max_body_bytes >= len(body):  # no header, or one we cannot believe: halve
                self.max_body_bytes = max(1, len(body) // 2)
            return self._deliver(request, count)
        reason = _why(status, response, self.timeout_s)
        self._note(f"status {status}", f"agenttrace server at {self.url} did not take {count} spans: {reason}")
        return count

    def _post(self, body: bytes) -> tuple[int, requests.Response | None]:
        """POST, retrying busy answers and an unreachable server for `timeout_s`; (status, response).

        Each body gets its own window, so a batch cut into many bodies is not cut short by a slow
        server; a server that stayed unreachable for a whole window gets one try per body until it
        answers again, so a program exiting with its server down is not held a window per body.
        Status 0 means no answer at all.
        """
        attempt, deadline = 0, time.monotonic() + self.timeout_s
        if self.gzip:
            body = gzip.compress(body, compresslevel=6)
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                self.requests += 1
                self.bytes_sent += len(body)
                response = self._session.post(self.url, data=body, timeout=max(self.timeout_s, 5.0))
            except requests.RequestException as exc:
                status, answer = 0, None
                self._last_error = exc
            else:
                status, answer = response.status_code, response
                self._unreachable = False
                self._learn(response)
                if status not in _RETRYABLE:
                    return status, answer
                retry_after = _seconds(response.headers.get("Retry-After"))
            delay = retry_after if retry_after is not None else min(_MAX_BACKOFF_S, 0.1 * 2**attempt)
            delay *= random.uniform(0.8, 1.2)  # senders refused together do not come back together
            if (status == 0 and self._unreachable) or time.monotonic() + delay > deadline or self._stop.is_set():
                if status == 0:
                    self._unreachable = True
                return status, answer
            self._stop.wait(delay)

    def _learn(self, response: requests.Response) -> None:
        announced = response.headers.get(MAX_BODY_HEADER, "")
        if announced.isdigit() and int(announced) > 0:
            self.max_body_bytes = int(announced)

    def _partial(self, response: requests.Response, count: int) -> int:
        try:
            partial = ExportTraceServiceResponse.FromString(response.content).partial_success
        except Exception:  # a 200 that is not ours to parse: the spans were taken
            return 0
        rejected = min(count, partial.rejected_spans)
        if rejected:
            self._note("rejected", f"agenttrace server rejected {rejected} spans: {partial.error_message}")
        return rejected

    def _note(self, cause: str, message: str) -> None:
        if cause == "status 0":
            message += f" ({self._last_error!r}); is `agenttrace server` running there?"
        log = logger.debug if cause in self._warned else logger.warning
        self._warned.add(cause)
        log("%s; losses are counted", message)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is held between calls: export sends before it returns

    def shutdown(self) -> None:
        self._stop.set()
        self._session.close()


def _gzip_from_env() -> bool:
    """OpenTelemetry's compression setting for trace exporters: `gzip`, or `none` (the default)."""
    value = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION") or os.environ.get("OTEL_EXPORTER_OTLP_COMPRESSION")
    value = (value or "none").strip().lower()
    if value not in ("gzip", "none"):
        logger.warning("agenttrace: OTLP compression %r is not supported; sending uncompressed (gzip or none)", value)
    return value == "gzip"


def _seconds(value: str | None) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is treated as absent), capped."""
    try:
        return min(_MAX_BACKOFF_S * 4, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def _why(status: int, response: requests.Response | None, window_s: float) -> str:
    if status == 0:
        return f"no answer within {window_s:g} s"
    text = ""
    if response is not None:
        try:
            from google.rpc import status_pb2

            text = status_pb2.Status.FromString(response.content).message
        except Exception:
            text = response.text[:300]
    if status in _RETRYABLE:
        return f"still {status} after retrying for {window_s:g} s: {text}"
    return f"{status}: {text}"
