"""OTLP over gRPC (`TraceService/Export`), into the same writer as OTLP/HTTP.

A thread-pool gRPC server: each call converts its request (through the same `BodyConverter` as
OTLP/HTTP, so in the converter processes when there are some), submits the batch to the shared
`SpanWriter` and answers once it is stored. Status
codes as the OTLP spec says: OK (with `partial_success` when spans were rejected), UNAUTHENTICATED
without the bearer token, RESOURCE_EXHAUSTED when too many spans wait (senders retry it) or the
message is above the size limit (gRPC itself refuses it), UNAVAILABLE when the store failed
(retried too).
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from agenttrace.server.auth import token_matches
from agenttrace.server.converter import BodyConverter, ConverterUnavailable
from agenttrace.server.writer import Overloaded, SpanWriter

__all__ = ["start_grpc_server"]


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, writer: SpanWriter, converter: BodyConverter, auth_token: str | None) -> None:
        self.writer = writer
        self.converter = converter
        self.auth_token = auth_token

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method's name
        if self.auth_token is not None:
            header = dict(context.invocation_metadata()).get("authorization")
            if not token_matches(header, self.auth_token):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            # gRPC hands the request over parsed; its bytes are what a converter process takes.
            batch, result = self.converter.convert_blocking(request.SerializeToString(), False)
        except ConverterUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        if batch is not None:
            try:
                self.writer.submit(batch).result()
            except Overloaded as exc:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            except Exception as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"the store could not take the spans: {exc}")
        response = trace_service_pb2.ExportTraceServiceResponse()
        message = result.message()
        if result.rejected or message:
            response.partial_success.rejected_spans = result.rejected
            response.partial_success.error_message = message
        return response


def start_grpc_server(
    writer: SpanWriter,
    host: str,
    port: int,
    *,
    auth_token: str | None,
    max_body_bytes: int,
    max_value_bytes: int,
    converter: BodyConverter | None = None,
) -> tuple[grpc.Server, int]:
    """Start serving; returns the server (call .stop()) and the port it is bound to."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="agenttrace-grpc"),
        options=[("grpc.max_receive_message_length", max_body_bytes)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
        _TraceService(writer, converter or BodyConverter(max_value_bytes), auth_token), server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC receiver to {host}:{port}")
    server.start()
    return server, bound
