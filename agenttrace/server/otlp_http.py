"""POST /v1/traces: OTLP/HTTP, protobuf or JSON, optionally gzip, with the spec's status codes.

    200  stored (with `partial_success` when spans were rejected for missing ids, refused by the
         store on their values, or had values cut)
    400  the body cannot be decoded as an ExportTraceServiceRequest, or the store refused every
         span in it on its values: sending it again cannot help, so senders do not retry
    413  the body (before or after gunzip) is larger than `max_body_bytes`
    415  a content type other than application/x-protobuf or application/json, or an unknown encoding
    503  (with Retry-After) the bytes of requests in flight are at their bound, too many spans are
         waiting for the store, the store is busy, or the converter process died converting the
         body: OTLP senders retry it

Every answer carries the body limit in `X-Agenttrace-Max-Body-Bytes`, so a client learns it from
its first request (or from the 413) and sends bodies under it. Error bodies are a
`google.rpc.Status` in the request's encoding, as the OTLP spec says.
"""

from __future__ import annotations

import asyncio
import zlib

from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from agenttrace.errors import BatchRejectedError, IngestError
from agenttrace.otel.client_export import MAX_BODY_HEADER
from agenttrace.otel.ingest import IngestResult
from agenttrace.server.converter import BodyConverter, ConverterUnavailable
from agenttrace.server.limits import BytesInFlight, IngestCounts
from agenttrace.server.writer import Overloaded, SpanWriter, Stored

__all__ = ["OTLPHttpReceiver", "export_response"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class _TooLarge(Exception):
    pass


class _Busy(Exception):
    pass


def export_response(result: IngestResult, stored: Stored) -> ExportTraceServiceResponse | None:
    """The answer to a converted and written request; None when the store refused every span in it."""
    if stored.refused and stored.refused >= result.accepted:
        return None
    response = ExportTraceServiceResponse()
    message = "; ".join(m for m in (result.message(), _refusal(stored)) if m)
    if result.rejected or stored.refused or message:
        response.partial_success.rejected_spans = result.rejected + stored.refused
        response.partial_success.error_message = message
    return response


def _refusal(stored: Stored) -> str:
    return f"{stored.refused} spans refused by the store on their values: {stored.reason}" if stored.refused else ""


class OTLPHttpReceiver:
    """The handler of POST /v1/traces; counts what it received and refused for /api/health."""

    def __init__(
        self, writer: SpanWriter, converter: BodyConverter, *, max_body_bytes: int,
        in_flight: BytesInFlight | None = None, counts: IngestCounts | None = None,
    ) -> None:  # fmt: skip
        self.writer = writer
        self.converter = converter
        self.max_body_bytes = max_body_bytes
        self.in_flight = in_flight or BytesInFlight(4 * max_body_bytes)
        self.counts = counts or IngestCounts()
        self._announce = {MAX_BODY_HEADER: str(max_body_bytes)}

    async def __call__(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (PROTOBUF, JSON):
            return self._error(415, f"content type {content_type or 'none'!r}; send {PROTOBUF} or {JSON}", JSON)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            return self._error(415, f"content encoding {encoding!r}; send gzip or none", content_type)
        held = [0]  # bytes this request holds of the in-flight budget, given back when it is answered
        try:
            return await self._export(request, content_type, encoding == "gzip", held)
        except _TooLarge as exc:
            self.counts.refused("too_large", f"413 from {_peer(request)}: {exc}")
            return self._error(413, f"{exc}; send smaller requests (the server's --max-body-mb)", content_type)
        except _Busy as exc:
            self.counts.refused("busy", f"503 to {_peer(request)}: {exc}")
            return self._error(503, str(exc), content_type, retry_after=str(self.in_flight.retry_after()))
        except ClientDisconnect:  # the sender went away mid-body: nobody reads an answer
            return Response(status_code=400)
        finally:
            self.in_flight.release(held[0])

    async def _export(self, request: Request, content_type: str, gzipped: bool, held: list[int]) -> Response:
        body = await self._body(request, held)
        try:
            if gzipped:
                body = self._gunzip(body)
                self._reserve(len(body) - held[0], held)
            batch, result = await self.converter.convert(body, content_type == JSON)
        except IngestError as exc:
            self.counts.refused("bad_requests", f"400 to {_peer(request)}: {exc}")
            return self._error(400, str(exc), content_type)
        except BatchRejectedError as exc:  # values Arrow would not take: resending cannot help
            self.counts.refused("bad_requests", f"400 to {_peer(request)}: {exc}")
            return self._error(400, str(exc), content_type)
        except ConverterUnavailable as exc:
            return self._error(503, str(exc), content_type, retry_after="1")
        del body
        self.counts.received(result.accepted, result.rejected)
        stored = Stored()
        if batch is not None:
            try:
                stored = await asyncio.wrap_future(self.writer.submit(batch))
            except Overloaded as exc:
                return self._error(503, str(exc), content_type, retry_after="1")
            except Exception as exc:  # the store failed: retryable, nothing was written
                return self._error(503, f"the store could not take the spans: {exc}", content_type, retry_after="2")
        if stored.refused:
            self.counts.refused("spans_refused", f"from {_peer(request)}: {_refusal(stored)}", stored.refused)
        response = export_response(result, stored)
        if response is None:
            return self._error(400, _refusal(stored), content_type)
        return self._reply(200, response, content_type)

    def _reserve(self, n: int, held: list[int]) -> None:
        if n <= 0:
            return
        if not self.in_flight.try_reserve(n):
            raise self._busy()
        held[0] += n

    def _busy(self) -> _Busy:
        return _Busy(
            f"{self.in_flight.held:,} bytes of other requests are in flight (bound {self.in_flight.limit:,}); "
            "retry shortly"
        )

    async def _body(self, request: Request, held: list[int]) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit():
            if int(declared) > self.max_body_bytes:
                raise _TooLarge(f"body of {declared} bytes is above the limit of {self.max_body_bytes} bytes")
            # Before reading it: a body waiting for room, or refused, is never held in memory.
            if not await self.in_flight.reserve_async(int(declared)):
                raise self._busy()
            held[0] += int(declared)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge(f"body is above the limit of {self.max_body_bytes} bytes")
            self._reserve(size - held[0], held)  # a chunked body, or one longer than it said
            chunks.append(chunk)
        return b"".join(chunks)

    def _gunzip(self, body: bytes) -> bytes:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(body, self.max_body_bytes + 1)
        except zlib.error as exc:
            raise _GzipError(f"body is not valid gzip: {exc}") from exc
        if len(out) > self.max_body_bytes or inflater.unconsumed_tail:
            raise _TooLarge(f"body unzips to more than the limit of {self.max_body_bytes} bytes")
        if not inflater.eof:
            raise _GzipError("gzip body is truncated")
        return out

    def _reply(self, status: int, message: object, content_type: str, headers: dict | None = None) -> Response:
        if content_type == JSON:
            body = json_format.MessageToJson(message, indent=None).encode()  # type: ignore[arg-type]
        else:
            body = message.SerializeToString()  # type: ignore[attr-defined]
        return Response(
            body, status_code=status, media_type=content_type, headers={**self._announce, **(headers or {})}
        )

    def _error(self, status: int, text: str, content_type: str, retry_after: str | None = None) -> Response:
        headers = {"Retry-After": retry_after} if retry_after else None
        return self._reply(
            status, status_pb2.Status(code=_RPC_CODES.get(status, 2), message=text), content_type, headers
        )


def _peer(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "a sender"


class _GzipError(IngestError):
    pass


# google.rpc.Code for each HTTP status we answer with.
_RPC_CODES = {400: 3, 413: 8, 415: 3, 503: 14}
