"""Real OTLP receivers for tests: OTLP/HTTP and gRPC on 127.0.0.1, decoding what arrives.

    with HttpReceiver() as rx:            # rx.endpoint = "http://127.0.0.1:PORT/v1/traces"
        ...export...
        spans = rx.wait_for(3)            # decoded opentelemetry-proto Span messages

Both keep every request's headers (lower-cased names) and the resource of each span, and can be
told to fail the next N requests (`fail_next`) to exercise the exporter's retries.
"""

from __future__ import annotations

import gzip
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

__all__ = ["GrpcReceiver", "HttpReceiver", "ReceivedSpan", "attrs"]


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def attrs(key_values: Any) -> dict[str, Any]:
    """A repeated KeyValue as a plain dict."""
    return {kv.key: _value(kv.value) for kv in key_values}


@dataclass
class ReceivedSpan:
    span: Any  # opentelemetry.proto.trace.v1.Span
    resource: dict[str, Any]
    scope: str

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def attributes(self) -> dict[str, Any]:
        return attrs(self.span.attributes)


class _Base:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.spans: list[ReceivedSpan] = []
        self.headers: list[dict[str, str]] = []
        self.requests = 0
        self.fail_next = 0

    def _accept(self, request: Any, headers: dict[str, str]) -> bool:
        """Record a request; False if it should be answered with a retryable failure."""
        with self._arrived:
            self.requests += 1
            self.headers.append(headers)
            if self.fail_next > 0:
                self.fail_next -= 1
                return False
            for rs in request.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    self.spans.extend(ReceivedSpan(s, resource, ss.scope.name) for s in ss.spans)
            self._arrived.notify_all()
            return True

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.spans) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} spans, received {len(self.spans)}")
                self._arrived.wait(left)
            return list(self.spans)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _HttpHandler(BaseHTTPRequestHandler):
    receiver: HttpReceiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        ok = self.server.receiver._accept(request, {k.lower(): v for k, v in self.headers.items()})  # type: ignore[attr-defined]
        payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class HttpReceiver(_Base):
    """An OTLP/HTTP (protobuf) receiver on an ephemeral 127.0.0.1 port."""

    def start(self) -> HttpReceiver:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _HttpHandler)
        self._server.daemon_threads = True
        self._server.receiver = self  # type: ignore[attr-defined]
        serve = self._server.serve_forever
        self._thread = threading.Thread(target=serve, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: GrpcReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method name
        if not self.receiver._accept(request, {k: v for k, v in context.invocation_metadata()}):
            context.abort(grpc.StatusCode.UNAVAILABLE, "scripted failure")
        return trace_service_pb2.ExportTraceServiceResponse()


class GrpcReceiver(_Base):
    """An OTLP/gRPC receiver on an ephemeral 127.0.0.1 port."""

    def start(self) -> GrpcReceiver:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Servicer(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None)
