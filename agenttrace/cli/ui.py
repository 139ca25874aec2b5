"""`agenttrace ui`: serve the web UI over a store file, and print its URL."""

from __future__ import annotations

import socket
import sys
import threading
import webbrowser

import click

from agenttrace.cli._common import (
    AUTH_TOKEN_ENV,
    allowed_host_option,
    open_store,
    refuse_exposure_without_token,
    store_path_option,
)


@click.command("ui")
@store_path_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; others need --auth-token.")
@click.option(
    "--port", default=8318, show_default=True, type=click.IntRange(0, 65535), help="Port (0 picks a free one)."
)
@click.option("--open", "open_browser", is_flag=True, help="Open the UI in the default browser.")
@click.option(
    "--auth-token", envvar=AUTH_TOKEN_ENV, default=None, show_envvar=True,
    help="Require this token: browsers sign in once at /ui/login, scripts send 'Authorization: Bearer'.",
)  # fmt: skip
@allowed_host_option
def ui(
    store_path: str | None,
    host: str,
    port: int,
    open_browser: bool,
    auth_token: str | None,
    allowed_hosts: tuple[str, ...],
) -> None:
    """Browse traces, sessions, evaluations, runs and agents in a web UI, served from the store file.

    The file is opened only while a page reads it (or feedback is written), so programs can keep
    tracing into it. `agenttrace server` serves the same pages at /ui.
    """
    try:
        import uvicorn

        from agenttrace.ui import create_ui_app
    except ImportError as exc:  # fastapi / uvicorn missing
        raise click.ClickException(f"{exc}; install the server extra: pip install 'agenttrace[server]'") from exc
    refuse_exposure_without_token(host, auth_token, "the store")
    store = open_store(store_path)
    if not store.path.exists():  # a typo must not create an empty store and show it as "no traces"
        raise click.UsageError(f"no store at {store.path}; trace something first or pass --store PATH")
    app = create_ui_app(store, auth_token=auth_token, host=host, allowed_hosts=allowed_hosts)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc}; pick another --port (0: any free one)"
        ) from exc
    sock.listen(256)
    shown_host = f"[{host.strip('[]')}]" if ":" in host else host
    url = f"http://{shown_host}:{sock.getsockname()[1]}/ui/"
    click.echo(f"agenttrace UI on {url} (store {store.path}); Ctrl-C stops it")
    sys.stdout.flush()  # scripts and tests wait for this line
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
