"""OTLP over gRPC (`TraceService/Export`), into the same writer as OTLP/HTTP.

A thread-pool gRPC server: each call converts its request (through the same `BodyConverter` as
OTLP/HTTP, so in the converter processes when there are some), submits the batch to the shared
`SpanWriter` and answers once it is stored. The method is registered to take the request's bytes
as they came (no deserializer), so a body that is not an ExportTraceServiceRequest is ours to
answer INVALID_ARGUMENT (gRPC's own parsing would answer INTERNAL), and the bytes go to the
converter without being parsed and re-encoded first. Both receivers share the counts shown by
`/api/health` and the budget of bytes in flight. Status codes as the OTLP spec says: OK (with
`partial_success` when spans were rejected), UNAUTHENTICATED without the bearer token,
INVALID_ARGUMENT for an undecodable body or one whose every span the store refused on its values
(not retried), RESOURCE_EXHAUSTED when too many spans wait or bytes are in flight (senders retry
it) or the message is above the size limit (gRPC itself refuses it), UNAVAILABLE when the store
failed (retried too).
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from agenttrace.errors import BatchRejectedError, IngestError
from agenttrace.server.auth import token_matches
from agenttrace.server.converter import BodyConverter, ConverterUnavailable
from agenttrace.server.limits import BytesInFlight, IngestCounts
from agenttrace.server.otlp_http import export_response
from agenttrace.server.writer import Overloaded, SpanWriter, Stored

__all__ = ["start_grpc_server"]

_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class _TraceService:
    def __init__(
        self, writer: SpanWriter, converter: BodyConverter, auth_token: str | None, in_flight: BytesInFlight,
        counts: IngestCounts,
    ) -> None:  # fmt: skip
        self.writer = writer
        self.converter = converter
        self.auth_token = auth_token
        self.in_flight = in_flight
        self.counts = counts

    def export(self, body: bytes, context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        if self.auth_token is not None:
            header = dict(context.invocation_metadata()).get("authorization")
            if not token_matches(header, self.auth_token):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        if not self.in_flight.reserve(len(body)):
            text = f"{self.in_flight.held:,} bytes of other requests are in flight; retry shortly"
            self.counts.refused("busy", f"RESOURCE_EXHAUSTED to {context.peer()}: {text}")
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, text)
        try:
            return self._export(body, context)
        finally:
            self.in_flight.release(len(body))

    def _export(self, body: bytes, context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        try:
            batch, result = self.converter.convert_blocking(body, False)
        except (IngestError, BatchRejectedError) as exc:
            self.counts.refused("bad_requests", f"INVALID_ARGUMENT to {context.peer()}: {exc}")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ConverterUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        self.counts.received(result.accepted, result.rejected)
        stored = Stored()
        if batch is not None:
            try:
                stored = self.writer.submit(batch).result()
            except Overloaded as exc:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            except Exception as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"the store could not take the spans: {exc}")
        if stored.refused:
            text = f"{stored.refused} spans refused by the store on their values: {stored.reason}"
            self.counts.refused("spans_refused", f"from {context.peer()}: {text}", stored.refused)
        response = export_response(result, stored)
        if response is None:  # every span refused on its values: sending them again cannot help
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, stored.reason)
        return response  # type: ignore[return-value]  # abort() raises


def start_grpc_server(
    writer: SpanWriter,
    host: str,
    port: int,
    *,
    auth_token: str | None,
    max_body_bytes: int,
    max_value_bytes: int,
    converter: BodyConverter | None = None,
    in_flight: BytesInFlight | None = None,
    counts: IngestCounts | None = None,
) -> tuple[grpc.Server, int]:
    """Start serving; returns the server (call .stop()) and the port it is bound to."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="agenttrace-grpc"),
        options=[("grpc.max_receive_message_length", max_body_bytes)],
    )
    service = _TraceService(
        writer, converter or BodyConverter(max_value_bytes), auth_token,
        in_flight or BytesInFlight(4 * max_body_bytes), counts or IngestCounts(),
    )  # fmt: skip
    handler: Any = grpc.unary_unary_rpc_method_handler(
        service.export,
        request_deserializer=None,  # the raw bytes: see the module docstring
        response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, {"Export": handler}),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC receiver to {host}:{port}")
    server.start()
    return server, bound
