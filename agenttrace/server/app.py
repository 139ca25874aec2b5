"""The ASGI application: OTLP receiver, REST API and health, over one store.

`create_app` wires the parts; errors from the layers below become HTTP statuses here and only
here. The app owns a `SpanWriter` (its one writer thread) for as long as it runs: the lifespan
closes it, so every accepted span is written before the process exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
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
from agenttrace.server.api import router
from agenttrace.server.auth import BearerAuth
from agenttrace.server.converter import BodyConverter
from agenttrace.server.otlp_http import OTLPHttpReceiver
from agenttrace.server.writer import SpanWriter
from agenttrace.store import DuckDBStore

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "http_status"]

DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024  # the OpenTelemetry Collector's default, too
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024
from agenttrace.ui import include_ui, protect


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
    writer: SpanWriter | None = None,
    converter: BodyConverter | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> Any:
    """The server's ASGI app over `store` (created or migrated now, so a bad store fails early)."""
    store.initialise()
    owns_writer = writer is None
    writer = writer or SpanWriter(store, max_pending_spans=max_pending_spans)
    converter = converter or BodyConverter(max_value_bytes)
    receiver = OTLPHttpReceiver(writer, converter, max_body_bytes=max_body_bytes)

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
    app.add_exception_handler(AgentTraceError, _error)
    app.add_exception_handler(ValueError, _error)
    if auth_token:
        return BearerAuth(app, auth_token)
    return app
    include_ui(app)  # the web UI's pages under /ui, reading app.state.store (agenttrace/ui)
