"""`agenttrace server`: owns one store, takes OTLP in (HTTP and gRPC), serves the REST API.

Install with the `server` extra (FastAPI and uvicorn). See `app.create_app` for the ASGI app and
`run.serve` for running it.
"""

from agenttrace.server.app import create_app
from agenttrace.server.run import serve

__all__ = ["create_app", "serve"]
