"""Bearer-token authentication for every route, as a plain ASGI middleware.

The token is compared in constant time (`hmac.compare_digest`) so response timing does not leak
how much of a guess was right. Without a token configured the middleware is not installed; the
CLI refuses to bind a non-loopback address without one.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any

__all__ = ["BearerAuth", "is_loopback", "token_matches"]


def token_matches(header: str | bytes | None, token: str) -> bool:
    """Whether an Authorization header value is `Bearer <token>`."""
    if header is None:
        return False
    raw = header.encode("latin-1", "replace") if isinstance(header, str) else header
    scheme, _, given = raw.partition(b" ")
    expected = token.encode("utf-8")
    # compare_digest on the full value even when the scheme is wrong, so timing says nothing
    return hmac.compare_digest(given.strip(), expected) & (scheme.lower() == b"bearer")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerAuth:
    """Answers 401 to any HTTP request without `Authorization: Bearer <token>`."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if token_matches(header, self.token):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or wrong bearer token; send 'Authorization: Bearer <token>'"}).encode()
        await send({
            "type": "http.response.start", "status": 401,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                        (b"content-length", str(len(body)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})
