"""`agenttrace server`: owns one store, takes OTLP in (HTTP and gRPC), serves the REST API.

Install with the `server` extra (FastAPI and uvicorn). See `app.create_app` for the ASGI app and
`run.serve` for running it. Both are imported on first use: the server's converter processes
import `agenttrace.server.converter` only, and must not pay for FastAPI at every spawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agenttrace.server.app import create_app
    from agenttrace.server.run import serve

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from agenttrace.server.app import create_app

        return create_app
    if name == "serve":
        from agenttrace.server.run import serve

        return serve
    raise AttributeError(f"module 'agenttrace.server' has no attribute {name!r}")
