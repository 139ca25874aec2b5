"""Options and helpers shared by the CLI's command groups."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from agenttrace import config
from agenttrace.errors import ConfigError
from agenttrace.store import KEY_FROM_SETTINGS, DuckDBStore

AUTH_TOKEN_ENV = "AGENTTRACE_AUTH_TOKEN"


# The one --store option, as the raw path (None: the settings decide); `store_option` opens it.
store_path_option = click.option(
    "--store",
    "store_path",
    default=None,
    metavar="PATH",
    help="DuckDB store file [default: AGENTTRACE_STORE, agenttrace.toml, then ./agenttrace.duckdb]",
)


def store_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --store and pass the command the opened store as `store`."""

    @store_path_option
    @functools.wraps(fn)
    def wrapper(*args: Any, store_path: str | None, **kwargs: Any) -> Any:
        return fn(*args, store=open_store(store_path), **kwargs)

    return wrapper


def open_store(path: str | None, encryption_key: Any = KEY_FROM_SETTINGS) -> DuckDBStore:
    """The store at `path`, else the configured one; its key from the settings unless one is given."""
    settings = config.resolve({"store": path} if path else None)
    if settings.store is None:
        raise ConfigError("no store configured (AGENTTRACE_STORE is off); pass --store PATH")
    return DuckDBStore(
        settings.store, lock_timeout_s=settings.lock_timeout_s, encryption_key=encryption_key, settings=settings
    )


def parse_duration(text: str) -> float:
    """'30d', '12h', '90m', '2w', '45s' to seconds: the setting's parser, as a usage error."""
    try:
        return config.parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def shorten(value: Any, width: int) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def plain(value: Any) -> Any:
    """A DataFrame cell as a plain Python value: pandas' NaN/NA/NaT become None."""
    import pandas as pd

    if value is None or (not isinstance(value, list | dict) and pd.isna(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def text(value: Any) -> str:
    """A DataFrame cell for a table: empty for missing values."""
    value = plain(value)
    return "" if value is None else str(value)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --json (as ``as_json``): print one JSON document on stdout and nothing else there."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on stdout (logs and progress go to stderr)."
    )(fn)


def allowed_host_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --allowed-host (repeatable): the Host names a served app answers to besides loopback and --host."""
    return click.option(
        "--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
        help="A host name clients use to reach it (repeatable; '*.example.com', or '*' for any). Loopback names, "
        "IP addresses and --host are always allowed; other Host headers get 403 (DNS rebinding).",
    )(fn)  # fmt: skip


def refuse_exposure_without_token(host: str, auth_token: str | None, what: str) -> None:
    """Binding beyond loopback without a token would hand `what` to anyone who can reach the port."""
    from agenttrace.server.auth import is_loopback

    if not is_loopback(host) and not auth_token:
        raise click.UsageError(
            f"binding to {host} exposes {what} beyond this machine; set --auth-token or {AUTH_TOKEN_ENV}"
        )
