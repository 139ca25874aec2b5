"""Running the server: bind, report the address, serve until stopped, write everything queued.

The socket is bound here (not by uvicorn) so `--port 0` works and the chosen port can be printed
before the first request; tests and scripts read that line.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from agenttrace.config import resolve as resolve_settings
from agenttrace.server.app import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INFLIGHT_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    create_app,
)
from agenttrace.server.converter import BodyConverter
from agenttrace.server.limits import BytesInFlight, IngestCounts
from agenttrace.server.writer import SpanWriter
from agenttrace.store import DuckDBStore

__all__ = ["serve"]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    store: DuckDBStore,
    *,
    host: str = "127.0.0.1",
    port: int = 4318,
    grpc_port: int | None = None,
    auth_token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
    allowed_hosts: Sequence[str] = (),
    ingest_workers: int = 0,
    on_ready: Callable[[str, int | None], None] | None = None,
    retention_s: float | None = None,
) -> None:
    """Serve OTLP/HTTP + REST on host:port (and OTLP/gRPC on grpc_port) until interrupted.

    `ingest_workers` processes convert OTLP/HTTP bodies, so ingest is not held to one core. Both
    receivers share one budget of `max_inflight_bytes` and one set of counts.
    """
    import uvicorn

    sock = _bind(host, port)
    converter = BodyConverter(max_value_bytes, workers=ingest_workers)
    try:
        converter.wait_ready()  # the URL is printed once the first request would be converted at once
    except BaseException:  # Ctrl-C while the converters start: nothing else is running yet
        converter.close()
        raise
    writer = SpanWriter(store)
    # Retention (`retention_s`, else the `retention` setting): old traces deleted now and on a schedule.
    max_age = retention_s if retention_s is not None else resolve_settings().retention
    retention = store.retention_schedule(max_age) if max_age is not None else None
    in_flight, counts = BytesInFlight(max_inflight_bytes), IngestCounts()
    grpc_server: Any = None
    bound_grpc = None
    if grpc_port is not None:
        from agenttrace.server.grpc_ingest import start_grpc_server

        grpc_server, bound_grpc = start_grpc_server(
            writer, host, grpc_port, auth_token=auth_token, max_body_bytes=max_body_bytes,
            max_value_bytes=max_value_bytes, converter=converter, in_flight=in_flight, counts=counts,
        )  # fmt: skip

    def shutdown() -> None:
        if retention is not None:
            retention.stop()
        # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so this runs in the lifespan.
        if grpc_server is not None:
            grpc_server.stop(grace=5).wait()
        converter.close()
        writer.close()

    app = create_app(
        store, auth_token=auth_token, max_body_bytes=max_body_bytes, max_value_bytes=max_value_bytes,
        host=host, allowed_hosts=allowed_hosts, writer=writer, converter=converter, in_flight=in_flight,
        counts=counts, on_shutdown=shutdown,
    )  # fmt: skip
    url = f"http://{host}:{sock.getsockname()[1]}"
    if on_ready is not None:
        on_ready(url, bound_grpc)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=10)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        shutdown()  # idempotent; covers a server that failed before its lifespan ran
