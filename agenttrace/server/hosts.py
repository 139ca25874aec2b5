"""Refusing requests addressed to a name the server does not answer to: a guard against DNS rebinding.

A web page on `evil.example` can point its own name at 127.0.0.1 once the browser has loaded it,
then read `http://evil.example:4318/api/traces` as same-origin: the request reaches a server on
loopback that, without a token, answers anyone. What gives it away is the `Host` header, which
still names `evil.example`. So, as Jupyter and MLflow do, requests are answered only when Host
names this server: a loopback name (`localhost`, `*.localhost`), an IP address (rebinding needs a
name the attacker controls; a request to an address reached that address), the address or name
the server is bound to, or a name allowed by the operator (`--allowed-host NAME`, repeatable;
`*.example.com` for a domain's names, `*` for any). Anything else gets 403 with a message naming
the flag. A request without Host (HTTP/1.0, not a browser) is let through.

`HostAllowList` is a plain ASGI middleware, so every app we serve (`agenttrace server`,
`agenttrace serve`, the UI) can wrap itself in it.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable
from typing import Any

__all__ = ["HostAllowList", "host_name"]


def host_name(header: str) -> str:
    """The name in a Host header, without the port and IPv6 brackets, lower-cased."""
    value = header.strip().lower()
    if value.startswith("["):  # [::1]:4318
        return value[1 : value.find("]")] if "]" in value else value
    name, _, port = value.rpartition(":")
    if name and port.isdigit() and ":" not in name:
        return name.rstrip(".")
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostAllowList:
    """Answers 403 to an HTTP or WebSocket request whose Host is not one this server answers to.

    Args:
        app: the ASGI app to guard.
        bound_host: the address or name the server is bound to; a wildcard (0.0.0.0, ::) also
            allows this machine's host name.
        allowed: more names, as given to `--allowed-host`: exact, `*.domain`, or `*` for any.
        flag: the option named in the 403 message, for apps whose command spells it otherwise.
    """

    def __init__(
        self, app: Any, bound_host: str = "127.0.0.1", allowed: Iterable[str] = (), flag: str = "--allowed-host"
    ) -> None:
        self.app = app
        self.flag = flag
        names = {host_name(a) for a in allowed if a.strip()}
        self.any = "*" in names
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))  # ".example.com"
        self.names = {n for n in names if not n.startswith("*")} | {"localhost", host_name(bound_host)}
        if host_name(bound_host) in ("0.0.0.0", "::", ""):
            self.names.add(socket.gethostname().lower())

    def allows(self, name: str) -> bool:
        return (
            self.any or name in self.names or name.endswith(".localhost") or _is_ip(name)
            or (bool(self.suffixes) and name.endswith(self.suffixes))
        )  # fmt: skip

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or self.any:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"host"), None)
        name = host_name(header.decode("latin-1")) if header is not None else None
        if name is None or self.allows(name):
            await self.app(scope, receive, send)
            return
        message = (
            f"this server does not answer to host {name!r} (a guard against DNS rebinding); if that is "
            f"a name it is meant to be reached by, restart it with {self.flag} {name}"
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        body = json.dumps({"error": message, "type": "HostNotAllowed"}).encode()
        await send({
            "type": "http.response.start", "status": 403,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})
