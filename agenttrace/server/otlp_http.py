"""POST /v1/traces: OTLP/HTTP, protobuf or JSON, optionally gzip, with the spec's status codes.

    200  stored (with `partial_success` when spans were rejected for missing ids or values cut)
    400  the body cannot be decoded as an ExportTraceServiceRequest
    413  the body (before or after gunzip) is larger than `max_body_bytes`
    415  a content type other than application/x-protobuf or application/json, or an unknown encoding
    503  too many spans waiting for the store, the store is busy, or the converter process died
         converting the body: OTLP senders retry it

Error bodies are a `google.rpc.Status` in the request's encoding, as the OTLP spec says.
"""

from __future__ import annotations

import asyncio
import zlib

from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.requests import Request
from starlette.responses import Response

from agenttrace.errors import IngestError
from agenttrace.server.converter import BodyConverter, ConverterUnavailable
from agenttrace.server.writer import Overloaded, SpanWriter

__all__ = ["OTLPHttpReceiver"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class _TooLarge(Exception):
    pass


class OTLPHttpReceiver:
    """The handler of POST /v1/traces; counts what it received and rejected for /api/health."""

    def __init__(self, writer: SpanWriter, converter: BodyConverter, *, max_body_bytes: int) -> None:
        self.writer = writer
        self.converter = converter
        self.max_body_bytes = max_body_bytes
        self.received = 0
        self.rejected = 0
        self.bad_requests = 0

    async def __call__(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (PROTOBUF, JSON):
            return self._error(415, f"content type {content_type or 'none'!r}; send {PROTOBUF} or {JSON}", JSON)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            return self._error(415, f"content encoding {encoding!r}; send gzip or none", content_type)
        try:
            body = await self._body(request)
            if encoding == "gzip":
                body = self._gunzip(body)
            batch, result = await self.converter.convert(body, content_type == JSON)
        except _TooLarge as exc:
            return self._error(413, str(exc), content_type)
        except IngestError as exc:
            self.bad_requests += 1
            return self._error(400, str(exc), content_type)
        except ConverterUnavailable as exc:
            return self._error(503, str(exc), content_type, retry_after="1")
        self.received += result.accepted + result.rejected
        self.rejected += result.rejected
        if batch is not None:
            try:
                await asyncio.wrap_future(self.writer.submit(batch))
            except Overloaded as exc:
                return self._error(503, str(exc), content_type, retry_after="1")
            except Exception as exc:  # the store failed: retryable, nothing was written
                return self._error(503, f"the store could not take the spans: {exc}", content_type, retry_after="2")
        response = ExportTraceServiceResponse()
        message = result.message()
        if result.rejected or message:
            response.partial_success.rejected_spans = result.rejected
            response.partial_success.error_message = message
        return self._reply(200, response, content_type)

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _TooLarge(f"body of {declared} bytes is above the limit of {self.max_body_bytes} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge(f"body is above the limit of {self.max_body_bytes} bytes")
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
        return Response(body, status_code=status, media_type=content_type, headers=headers)

    def _error(self, status: int, text: str, content_type: str, retry_after: str | None = None) -> Response:
        headers = {"Retry-After": retry_after} if retry_after else None
        return self._reply(
            status, status_pb2.Status(code=_RPC_CODES.get(status, 2), message=text), content_type, headers
        )


class _GzipError(IngestError):
    pass


# google.rpc.Code for each HTTP status we answer with.
_RPC_CODES = {400: 3, 413: 8, 415: 3, 503: 14}
