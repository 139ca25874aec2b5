"""`agenttrace serve NAME@ALIAS`: a registered agent version as a REST endpoint (see agenttrace.serving)."""

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


@click.command("serve")
@click.argument("ref", metavar="NAME@ALIAS|NAME/VERSION")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; others need --auth-token.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0 picks a free one)."
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Server processes.")
@click.option(
    "--timeout", "timeout_s", default=60.0, show_default=True, type=click.FloatRange(min=0.001),
    help="Seconds a request may take before it is answered 504 (per item for streams).",
)  # fmt: skip
@click.option(
    "--threads", default=32, show_default=True, type=click.IntRange(1, 1024),
    help="Threads running a sync agent's requests at once, per worker.",
)  # fmt: skip
@click.option(
    "--max-body-mb", default=16.0, show_default=True, type=click.FloatRange(min=0.001),
    help="Largest request body accepted; larger ones get 413 before they are read whole.",
)  # fmt: skip
@click.option(
    "--follow-alias", "follow_s", default=None, type=click.FloatRange(min=0.1), is_flag=False, flag_value=30.0,
    metavar="[SECONDS]", help="Re-resolve the alias every SECONDS (default 30) and serve the version it points at.",
)  # fmt: skip
@click.option(
    "--auth-token", envvar=AUTH_TOKEN_ENV, default=None, show_envvar=True,
    help="Require 'Authorization: Bearer <token>' on every request.",
)  # fmt: skip
@allowed_host_option
@store_path_option
def serve(
    ref: str,
    host: str,
    port: int,
    workers: int,
    timeout_s: float,
    threads: int,
    max_body_mb: float,
    follow_s: float | None,
    auth_token: str | None,
    allowed_hosts: tuple[str, ...],
    store_path: str | None,
) -> None:
    """Serve a registered agent version at POST /invocations; every request is a trace.

    NAME@ALIAS is resolved when the server starts (and again every few seconds with
    --follow-alias); NAME/VERSION is fixed; NAME alone serves the latest version.
    """
    try:
        from agenttrace.serving import serve_agent
    except ImportError as exc:  # fastapi / uvicorn missing
        raise click.ClickException(f"{exc}; install the server extra: pip install 'agenttrace[server]'") from exc
    refuse_exposure_without_token(host, auth_token, "the agent")
    if follow_s is not None and "@" not in ref:
        raise click.UsageError("--follow-alias needs NAME@ALIAS; a version number never moves")
    import agenttrace

    store = open_store(store_path)
    agenttrace.configure(store=str(store.path))
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # so a target like "mybot:answer" imports from here

    def ready(url: str, served: object) -> None:
        from agenttrace.serving import ServedAgent

        assert isinstance(served, ServedAgent)
        click.echo(f"agenttrace serve: {ref} ({served.label}) listening on {url}")
        example = '{"inputs": {}}' if not served.parameters else _example(served)
        # The variable's name, never the token itself: this line ends up in service logs.
        token = f' -H "Authorization: Bearer ${AUTH_TOKEN_ENV}"' if auth_token else ""
        click.echo(f"try: curl -s {url}/invocations -H 'Content-Type: application/json'{token} -d '{example}'")
        click.echo(f"API docs at {url}/docs")
        sys.stdout.flush()  # scripts and tests wait for these lines

    serve_agent(
        ref, host=host, port=port, workers=workers, timeout_s=timeout_s, threads=threads,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        follow_interval_s=follow_s, auth_token=auth_token, allowed_hosts=allowed_hosts, store=str(store.path),
        on_ready=ready,
    )  # fmt: skip


def _example(served: object) -> str:
    import json

    model = getattr(served, "model")  # noqa: B009
    example = {}
    for name, info in model.model_fields.items():
        if info.is_required():
            example[name] = 1 if info.annotation in (int, float) else "..."
    return json.dumps(example)
