"""Mounting the UI: on the server's app (`include_ui`) or as an app of its own (`create_ui_app`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from agenttrace.store import DuckDBStore
from agenttrace.ui import _evals, _registry, _traces
from agenttrace.ui._pages import static_file
from agenttrace.ui._security import UISessionAuth

__all__ = ["create_ui_app", "include_ui", "protect"]


def _home() -> RedirectResponse:
    return RedirectResponse("/ui/traces", status_code=307)


def _static(name: str) -> Response:
    return static_file(name)


def include_ui(app: FastAPI, *, root_redirect: bool = True) -> None:
    """Add the UI's pages under /ui to `app`, whose `app.state.store` they read."""
    for router in (_traces.router, _evals.router, _registry.router):
        app.include_router(router)
    app.add_api_route("/ui/static/{name}", _static, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui", _home, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/", _home, methods=["GET"], include_in_schema=False)
    if root_redirect:
        app.add_api_route("/", _home, methods=["GET"], include_in_schema=False)


def protect(app: Any, auth_token: str | None) -> Any:
    """`app` (already behind BearerAuth when a token is set) with cookie sign-in for the UI's pages."""
    return UISessionAuth(app, auth_token) if auth_token else app


def create_ui_app(
    store: DuckDBStore, *, auth_token: str | None = None, host: str = "127.0.0.1", allowed_hosts: Sequence[str] = ()
) -> Any:
    """The UI alone over `store` (for `agenttrace ui`): pages only, no OTLP receiver or writer thread.

    Like the server it answers only requests addressed to it (Host check, against DNS rebinding)
    and, with a token, only signed-in browsers or bearer-token clients.
    """
    from agenttrace.server.auth import BearerAuth
    from agenttrace.server.hosts import HostAllowList

    store.initialise()
    app = FastAPI(title="agenttrace UI", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    include_ui(app)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:  # pragma: no cover - a bug of ours
        from agenttrace.ui._pages import error_page

        return error_page(request, exc)

    guarded: Any = protect(BearerAuth(app, auth_token), auth_token) if auth_token else app
    return HostAllowList(guarded, host, allowed_hosts)
