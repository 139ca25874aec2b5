"""Rendering a page, reading a posted form, and the UI's one mapping of errors to pages and statuses."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from agenttrace.errors import (
    AgentNotFoundError,
    AgentTraceError,
    EvalRunNotFoundError,
    ExperimentNotFoundError,
    RunNotFoundError,
    StoreLockedError,
    TraceNotFoundError,
)
from agenttrace.reports._eval import environment
from agenttrace.store import DuckDBStore
from agenttrace.ui import _views
from agenttrace.ui._security import CSRF_COOKIE, SECURITY_HEADERS, csrf_ok, new_csrf, read_cookie

__all__ = ["ENV", "error_page", "page", "posted_form", "static_file", "store_of"]

ENV = environment("agenttrace.ui")
ENV.globals.update(qs=_views.qs, ranges=list(_views.RANGES))

_NOT_FOUND = (TraceNotFoundError, EvalRunNotFoundError, RunNotFoundError, AgentNotFoundError, ExperimentNotFoundError)
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".png": "image/png"}


def store_of(request: Request) -> DuckDBStore:
    return request.app.state.store


def _csrf(request: Request) -> tuple[str, bool]:
    token = read_cookie(request.headers.get("cookie"), CSRF_COOKIE)
    return (token, False) if token else (new_csrf(), True)


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with the CSRF token every form needs, under the UI's security headers."""
    token, fresh = _csrf(request)
    html = ENV.get_template(template).render(csrf=token, request_path=request.url.path, **context)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if fresh:
        response.set_cookie(CSRF_COOKIE, token, path="/ui", httponly=True, samesite="strict")
    return response


def error_status(exc: Exception) -> int:
    if isinstance(exc, _NOT_FOUND):
        return 404
    if isinstance(exc, StoreLockedError):
        return 503
    return 400 if isinstance(exc, AgentTraceError | ValueError) else 500


def error_page(request: Request, exc: Exception) -> HTMLResponse:
    return page(request, "error.html", status=error_status(exc), message=str(exc), kind=type(exc).__name__)


def guarded(request: Request, build: Callable[[], HTMLResponse]) -> HTMLResponse:
    """Run a page builder; our errors (unknown id, bad argument) become an error page, not a JSON body."""
    try:
        return build()
    except (AgentTraceError, ValueError) as exc:
        return error_page(request, exc)


MAX_FORM_BYTES = 256 * 1024  # feedback with a long rationale fits; a form is never bigger


async def posted_form(request: Request) -> dict[str, str] | None:
    """The urlencoded form of a POST, or None when its CSRF token does not match the cookie (or it is too big)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    if not csrf_ok(read_cookie(request.headers.get("cookie"), CSRF_COOKIE), form.get("csrf")):
        return None
    return form


def forbidden(request: Request) -> HTMLResponse:
    return page(
        request, "error.html", status=403, kind="CSRF",
        message="this form's security token is missing or stale (or the form is over 256 KB); reload and submit again",
    )  # fmt: skip


def static_file(name: str) -> Response:
    """One of our bundled static files (CSS, JS), by name; nothing else is served from the package."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    if "/" in name or "\\" in name or name.startswith(".") or suffix not in _STATIC_TYPES:
        return Response("not found", status_code=404)
    try:
        data = resources.files("agenttrace.ui").joinpath("static", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return Response("not found", status_code=404)
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(data, media_type=_STATIC_TYPES[suffix], headers=headers)
