"""The ASGI application: OTLP receiver, REST API and health, over one store.

`create_app` wires the parts; errors from the layers below become HTTP statuses here and only
here. The app answers only requests addressed to it (`hosts.HostAllowList`, against DNS
rebinding), and both OTLP receivers share one budget of request bytes in flight (`limits`). The
app owns a `SpanWriter` (its one writer thread) for as long as it runs: the lifespan closes it, so
every accepted span is written before the process exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agenttrace.errors import (
    AgentTraceError,
    EvalRunNotFoundError,
    FilterError,
    StoreError,
    StoreLockedError,
    TraceNotFoundError,
)
from agenttrace.otel.client_export import DEFAULT_MAX_BODY_BYTES
from agenttrace.server.api import router
from agenttrace.server.auth import BearerAuth
from agenttrace.server.converter import BodyConverter
from agenttrace.server.hosts import HostAllowList
from agenttrace.server.limits import BytesInFlight, IngestCounts
from agenttrace.server.otlp_http import OTLPHttpReceiver
from agenttrace.server.writer import SpanWriter
from agenttrace.store import DuckDBStore
from agenttrace.ui import include_ui, protect

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_INFLIGHT_BYTES", "create_app", "http_status"]

DEFAULT_MAX_VALUE_BYTES = 1024 * 1024
DEFAULT_MAX_INFLIGHT_BYTES = 64 * 1024 * 1024


def http_status(exc: Exception) -> int:
    """The one mapping of our errors to HTTP statuses."""
    if isinstance(exc, TraceNotFoundError | EvalRunNotFoundError):
        return 404
    if isinstance(exc, FilterError | ValueError):
        return 400
    if isinstance(exc, StoreLockedError):
        return 503
    if isinstance(exc, StoreError):
        return 500
    return 400 if isinstance(exc, AgentTraceError) else 500


async def _error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": str(exc), "type": type(exc).__name__}, status_code=http_status(exc))


def create_app(
    store: DuckDBStore,
    *,
    auth_token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_pending_spans: int = 200_000,
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
    host: str = "127.0.0.1",
    allowed_hosts: Sequence[str] = (),
    writer: SpanWriter | None = None,
    converter: BodyConverter | None = None,
    in_flight: BytesInFlight | None = None,
    counts: IngestCounts | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> Any:
    """The server's ASGI app over `store` (created or migrated now, so a bad store fails early).

    `in_flight` and `counts` are shared with the gRPC receiver when there is one; `host` is the
    address the server is bound to and `allowed_hosts` the other names it answers to.
    """
    store.initialise()
    owns_writer = writer is None
    writer = writer or SpanWriter(store, max_pending_spans=max_pending_spans)
    converter = converter or BodyConverter(max_value_bytes)
    in_flight = in_flight or BytesInFlight(max_inflight_bytes)
    receiver = OTLPHttpReceiver(
        writer, converter, max_body_bytes=max_body_bytes, in_flight=in_flight, counts=counts or IngestCounts()
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:  # e.g. stop the gRPC receiver, then close the shared writer
            on_shutdown()
        if owns_writer:
            writer.close()

    app = FastAPI(
        title="agenttrace",
        summary="OTLP trace receiver and REST API over an agenttrace store",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.writer = writer
    app.state.receiver = receiver
    app.add_api_route(
        "/v1/traces", receiver, methods=["POST"], include_in_schema=True, summary="OTLP/HTTP trace export",
        description="An OTLP ExportTraceServiceRequest, protobuf or JSON, optionally gzip-encoded.",
    )  # fmt: skip
    app.include_router(router)
    include_ui(app)  # the web UI's pages under /ui, reading app.state.store (agenttrace/ui)
    app.add_exception_handler(AgentTraceError, _error)
    app.add_exception_handler(ValueError, _error)
    guarded: Any = BearerAuth(app, auth_token) if auth_token else app
    guarded = protect(guarded, auth_token)  # browsers sign in to /ui once and carry a cookie
    return HostAllowList(guarded, host, allowed_hosts)
