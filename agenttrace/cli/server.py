"""`agenttrace server`: run the OTLP receiver and REST API over one store."""

from __future__ import annotations

import os
import sys

import click

from agenttrace.cli._common import (
    AUTH_TOKEN_ENV,
    allowed_host_option,
    open_store,
    refuse_exposure_without_token,
    store_path_option,
)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; others need --auth-token.")
@click.option(
    "--port", default=4318, show_default=True, type=click.IntRange(0, 65535),
    help="OTLP/HTTP + REST port (4318 is OTLP/HTTP's standard port; 0 picks a free one).",
)  # fmt: skip
@click.option(
    "--grpc-port", default=None, type=click.IntRange(0, 65535),
    help="Also receive OTLP over gRPC on this port (standard: 4317).",
)  # fmt: skip
@click.option(
    "--auth-token", envvar=AUTH_TOKEN_ENV, default=None, show_envvar=True,
    help="Require 'Authorization: Bearer <token>' on every request.",
)  # fmt: skip
@click.option(
    "--max-body-mb", default=20.0, show_default=True, type=click.FloatRange(min=0.001),
    help="Largest OTLP request accepted (after gunzip); larger ones get 413.",
)  # fmt: skip
@click.option(
    "--max-inflight-mb", default=64.0, show_default=True, type=click.FloatRange(min=0.001),
    help="Bytes of OTLP requests held at once (HTTP and gRPC); beyond it requests get 503 + Retry-After.",
)  # fmt: skip
@allowed_host_option
@click.option(
    "--ingest-workers", default=None, type=click.IntRange(0, 32),
    help="Processes converting OTLP/HTTP bodies (0: in the server process). Default: one per core less one, at most 4.",
)  # fmt: skip
@store_path_option
def server(
    host: str,
    port: int,
    grpc_port: int | None,
    auth_token: str | None,
    max_body_mb: float,
    max_inflight_mb: float,
    allowed_hosts: tuple[str, ...],
    ingest_workers: int | None,
    store_path: str | None,
) -> None:
    """Receive OTLP traces from any process and serve the REST API (/docs), storing into one file.

    Point tracing processes at it with AGENTTRACE_URI=http://HOST:PORT, or any OpenTelemetry SDK
    with OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:PORT.
    """
    try:
        from agenttrace.server import serve
    except ImportError as exc:  # fastapi / uvicorn missing
        raise click.ClickException(f"{exc}; install the server extra: pip install 'agenttrace[server]'") from exc
    refuse_exposure_without_token(host, auth_token, "the store")
    store = open_store(store_path)

    def ready(url: str, grpc_bound: int | None) -> None:
        click.echo(f"agenttrace server listening on {url} (store {store.path})")
        if grpc_bound is not None:
            click.echo(f"OTLP/gRPC on {host}:{grpc_bound}")
        click.echo(f"send spans with AGENTTRACE_URI={url}; API docs at {url}/docs")
        sys.stdout.flush()  # scripts and tests wait for these lines

    if ingest_workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        ingest_workers = min(4, cores - 1)
    serve(
        store, host=host, port=port, grpc_port=grpc_port, auth_token=auth_token,
        max_body_bytes=int(max_body_mb * 1024 * 1024), max_inflight_bytes=int(max_inflight_mb * 1024 * 1024),
        allowed_hosts=allowed_hosts, ingest_workers=ingest_workers, on_ready=ready,
    )  # fmt: skip
