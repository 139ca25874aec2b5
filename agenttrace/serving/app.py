"""The ASGI app of `agenttrace serve`: /invocations, /invocations/stream, /health, /version, OpenAPI.

The request schema in the OpenAPI document is the agent's own parameters (see _agent), so
/docs shows what to send; the body is read and checked by the app itself, so a body that does not
fit gets 400 with a message (not FastAPI's 422). Errors become statuses here and in _invoke only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

import agenttrace
from agenttrace.server.auth import BearerAuth
from agenttrace.server.hosts import HostAllowList
from agenttrace.serving._agent import AgentHolder
from agenttrace.serving._invoke import Invoker
from agenttrace.tracing.runtime import flush

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_TIMEOUT_S", "create_serving_app"]

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


def _openapi_body(holder: AgentHolder) -> tuple[dict[str, Any], dict[str, Any]]:
    model = holder.current.model
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    body = {"required": True, "content": {"application/json": {"schema": schema}}}
    return body, defs


def create_serving_app(
    holder: AgentHolder,
    *,
    auth_token: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    threads: int = 32,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    host: str = "127.0.0.1",
    allowed_hosts: tuple[str, ...] = (),
) -> Any:
    """The app serving `holder.current`; with `auth_token`, every route needs `Authorization: Bearer`.

    Requests whose Host names neither this server nor an allowed name get 403 (`HostAllowList`): a
    web page must not reach a served agent on loopback through a rebinding name.
    """
    invoker = Invoker(holder, timeout_s, threads, max_body_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder.start()
        yield
        holder.stop()
        invoker.close()
        flush()  # every request's trace is stored before the process exits

    served = holder.current
    app = FastAPI(
        title=f"agenttrace serve: {served.loaded.name}",
        summary=f"{served.ref} ({served.label}) as a REST endpoint; every request is a trace",
        lifespan=lifespan,
    )
    body, defs = _openapi_body(holder)
    responses = {
        "400": {"description": "The body is not JSON or does not match the agent's parameters"},
        "413": {"description": "The body is over the server's --max-body-mb"},
        "500": {"description": "The agent raised; the body has the error type and the trace id"},
        "504": {"description": "The agent did not answer within the timeout"},
    }
    app.add_api_route(
        "/invocations", invoker.invoke, methods=["POST"], summary="Call the agent",
        description='JSON in: the agent\'s parameters by name, or {"inputs": {...}}. '
        'JSON out: {"outputs": ..., "trace_id": ..., "agent_version": ...}.',
        openapi_extra={"requestBody": body, "responses": responses},
    )  # fmt: skip
    app.add_api_route(
        "/invocations/stream", invoker.stream, methods=["POST"], summary="Call a generator agent, streamed",
        description="Server-sent events: `start` (trace id), one `data` event per item, then `end` or `error`.",
        openapi_extra={"requestBody": body, "responses": responses},
    )  # fmt: skip

    @app.get("/health", summary="Liveness")
    def health() -> dict[str, Any]:
        return {"status": "ok", "agent_version": holder.current.label}

    @app.get("/version", summary="The version served")
    def version() -> JSONResponse:
        return JSONResponse({**holder.current.version_info(), "agenttrace": agenttrace.__version__})

    if defs:
        original = app.openapi

        def openapi() -> dict[str, Any]:
            document: dict[str, Any] = original()
            document.setdefault("components", {}).setdefault("schemas", {}).update(defs)
            return document

        app.openapi = openapi  # type: ignore[method-assign]
    app.state.holder = holder
    app.state.invoker = invoker
    return HostAllowList(BearerAuth(app, auth_token) if auth_token else app, host, allowed_hosts)
