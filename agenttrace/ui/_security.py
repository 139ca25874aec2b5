"""What keeps the UI's pages safe to open on untrusted trace content and safe to post to.

- Every page goes out with a Content-Security-Policy that allows scripts from our own static
  folder only: even if some trace text escaped the templates' autoescaping, no inline script,
  event handler or `javascript:` URL in it would run.
- Pages that change data take a POST carrying a CSRF token equal to the `agenttrace_csrf` cookie
  (double submit: another site can make a browser send the cookie but cannot read it to put it in
  the form), and the cookie is SameSite=Strict.
- With an auth token, browsers cannot send `Authorization: Bearer` on a link, so `/ui/login` takes
  the token once and sets an HttpOnly cookie holding an HMAC of it; `UISessionAuth` turns that
  cookie into the bearer header for `/ui` paths only. The REST API keeps accepting the header alone,
  so a cookie never authorises a cross-site POST to it.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import cookie_parser

__all__ = ["CSRF_COOKIE", "REPORT_HEADERS", "SECURITY_HEADERS", "UISessionAuth", "csrf_ok", "new_csrf", "read_cookie"]

CSRF_COOKIE = "agenttrace_csrf"
SESSION_COOKIE = "agenttrace_session"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
# A report has no script at all; its CSS is inline.
REPORT_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'",
}


def read_cookie(header: str | bytes | None, name: str) -> str | None:
    if not header:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    # Starlette's lenient parser, as browsers send cookies: SimpleCookie stops at the first cookie it
    # cannot read (another localhost app's `a={"x": 1}`) and would return none of ours.
    return cookie_parser(text).get(name)


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, submitted: str | None) -> bool:
    """Whether the form's token matches the cookie (both present), compared in constant time."""
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())


def session_value(token: str) -> str:
    """The cookie value for a token: an HMAC, so the cookie never holds the token itself."""
    return hmac.new(token.encode(), b"agenttrace-ui-session", hashlib.sha256).hexdigest()


_LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>agenttrace: sign in</title>
<link rel="stylesheet" href="/ui/static/ui.css"></head><body><main class="login"><h1>agenttrace</h1>
<p>This server needs its auth token (<code>--auth-token</code> / AGENTTRACE_AUTH_TOKEN).</p>{error}
<form method="post" action="/ui/login"><input type="hidden" name="next" value="{next}">
<label>Token <input type="password" name="token" autofocus required></label> <button type="submit">Sign in</button>
</form></main></body></html>"""


def _html_escape(text: str) -> str:
    return html.escape(text, quote=True)


def _safe_next(value: str | None) -> str:
    """Only a path inside the UI: never another site (//evil, https://evil) after signing in."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


class UISessionAuth:
    """ASGI middleware in front of `BearerAuth`: cookie sign-in for the UI's pages."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token
        self.cookie = session_value(token)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/ui" or path.startswith("/ui/")):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if path == "/ui/login":
            await self._login(scope, receive, send, headers)
            return
        given = read_cookie(headers.get(b"cookie"), SESSION_COOKIE)
        signed_in = bool(given) and hmac.compare_digest((given or "").encode(), self.cookie.encode())
        # Our stylesheet and script hold no data: the sign-in page needs them before anyone signs in.
        if signed_in or (path.startswith("/ui/static/") and scope["method"] in ("GET", "HEAD")):
            bearer = f"Bearer {self.token}".encode()
            scope = {**scope, "headers": [*[h for h in scope["headers"] if h[0] != b"authorization"],
                                          (b"authorization", bearer)]}  # fmt: skip
            await self.app(scope, receive, send)
            return
        if b"authorization" in headers:  # a script with the header: BearerAuth decides
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + (f"?{query}" if query else "")
        await _respond(send, 303, b"", [(b"location", f"/ui/login?next={quote(target, safe='')}".encode())])

    async def _login(self, scope: dict[str, Any], receive: Any, send: Any, headers: dict[bytes, bytes]) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        error = ""
        target = _safe_next((query.get("next") or [None])[0])
        if scope["method"] == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body") or len(body) > 65536:
                    break
            form = parse_qs(body.decode("utf-8", "replace"))
            given = (form.get("token") or [""])[0]
            target = _safe_next((form.get("next") or [None])[0])
            if hmac.compare_digest(given.encode(), self.token.encode()):
                cookie = f"{SESSION_COOKIE}={self.cookie}; Path=/ui; HttpOnly; SameSite=Strict"
                await _respond(send, 303, b"", [(b"location", target.encode()), (b"set-cookie", cookie.encode())])
                return
            error = '<p class="error">That token is not this server\'s; check --auth-token.</p>'
        page = _LOGIN_PAGE.format(error=error, next=_html_escape(target)).encode()
        status = 401 if error else 200
        extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        await _respond(send, status, page, [(b"content-type", b"text/html; charset=utf-8"), *extra])


async def _respond(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
