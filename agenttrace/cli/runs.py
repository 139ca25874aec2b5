"""`agenttrace runs`: list, show and delete tracking runs.

Lists page with `--max-results` and `--page-token`: the token printed under a page is the offset
of the next one (plain, so a script can also compute it). A RUNNING run is shown with the time it
started and, when its process ran on this host and is gone, says so: a process that died leaves
its run RUNNING, and the list is where that becomes visible.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from agenttrace.cli._common import plain, shorten, store_option, text
from agenttrace.jsontext import dumps
from agenttrace.store import DuckDBStore

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["json_lines", "page_options", "records", "runs"]


def page_options(fn: Any) -> Any:
    """--max-results and --page-token, shared by the list commands of runs and experiments."""
    fn = click.option("--page-token", default="0", show_default=False, help="Token printed under the previous page.")(
        fn
    )
    return click.option(
        "--max-results", default=50, show_default=True, type=click.IntRange(min=1), help="Rows per page."
    )(fn)


def offset_of(token: str) -> int:
    # isdigit() is true of "²" too: only ASCII digits, and an offset the store can take
    if not (token.isascii() and token.isdigit()) or int(token) >= 2**63:
        raise click.BadParameter(f"{token!r} is not a page token; use the one printed under the previous page")
    return int(token)


def next_page(shown: int, fetched: int, offset: int) -> None:
    """Say how to get the next page when one more row than shown was found."""
    if fetched > shown:
        click.echo(f"more: --page-token {offset + shown}", err=True)


def records(frame: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    """The first `limit` rows of a frame as dicts keyed by column name."""
    return [{str(k): v for k, v in row.items()} for row in frame.head(limit).to_dict(orient="records")]


def json_lines(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        click.echo(dumps({k: plain(v) for k, v in row.items()}))


def _gone(row: dict[str, Any]) -> bool:
    """True when the run's process ran on this host and no longer exists."""
    pid, host = plain(row.get("pid")), plain(row.get("host"))
    if pid is None or host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


def status_text(row: dict[str, Any]) -> str:
    status = str(row["status"])
    if status != "RUNNING":
        return status
    started = plain(row.get("start_time"))
    since = f" since {str(started)[:19].replace('T', ' ')}" if started else ""
    return f"RUNNING{since}" + (" (its process is gone)" if _gone(row) else "")


def _duration(row: dict[str, Any]) -> str:
    start, end = plain(row.get("start_time")), plain(row.get("end_time"))
    if start is None or end is None:
        return ""
    seconds = (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
    return f"{seconds:.1f}s"


@click.group()
def runs() -> None:
    """List, show and delete tracking runs (start them with agenttrace.start_run())."""


@runs.command("list")
@click.option("--filter", "filter_string", default=None, help="e.g. \"metrics.acc > 0.9 AND params.lr = '0.1'\".")
@click.option("--experiment", multiple=True, help="Only runs of this experiment (name or id; repeatable).")
@click.option("--order-by", "order_by", multiple=True, help="e.g. 'metrics.acc DESC' (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (every column) instead of a table.")
@page_options
@store_option
def list_runs(
    store: DuckDBStore,
    filter_string: str | None,
    experiment: tuple[str, ...],
    order_by: tuple[str, ...],
    as_json: bool,
    max_results: int,
    page_token: str,
) -> None:
    """List runs, newest first, with their status, params and latest metrics."""
    offset = offset_of(page_token)
    frame = store.search_runs(filter_string, list(experiment) or None, list(order_by) or None, max_results + 1, offset)
    rows = records(frame, max_results)
    if as_json:
        json_lines(rows)
    else:
        table = Table()
        for column in ("run_id", "name", "experiment", "status", "duration", "params", "metrics"):
            table.add_column(column, no_wrap=column == "run_id", overflow="fold")
        for row in rows:
            params = {k[7:]: v for k, v in row.items() if k.startswith("params.") and plain(v) is not None}
            metrics = {k[8:]: v for k, v in row.items() if k.startswith("metrics.") and plain(v) is not None}
            table.add_row(
                row["run_id"],
                text(row["name"]),
                str(row["experiment"]),
                status_text(row),
                _duration(row),
                shorten(", ".join(f"{k}={v}" for k, v in params.items()), 40),
                shorten(", ".join(f"{k}={v:.4g}" for k, v in metrics.items()), 40),
            )
        Console(width=None if sys.stdout.isatty() else 200).print(table)
        click.echo(f"{len(rows)} run(s)")
    next_page(len(rows), len(frame), offset)


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run as one JSON object.")
@store_option
def show(store: DuckDBStore, run_id: str, as_json: bool) -> None:
    """Show one run: status, params, latest metrics, tags and artifacts (id or 6+ character prefix)."""
    run = store.get_run(run_id)
    run["artifacts"] = store.list_artifacts(run["run_id"])
    for key in ("start_time", "end_time"):
        ns = run.pop(f"{key}_ns")
        run[key] = None if ns is None else datetime.fromtimestamp(ns / 1e9).isoformat(sep=" ", timespec="seconds")
    if as_json:
        click.echo(json.dumps(run, default=str, ensure_ascii=False, indent=2))
        return
    head = {"run_id", "params", "metrics", "tags", "artifacts"}
    click.echo(f"run {run['run_id']}  {status_text(run)}")
    for key, value in run.items():
        if key not in head and value is not None and key != "status":
            click.echo(f"  {key}: {value}")
    for section in ("params", "metrics", "tags"):
        if run[section]:
            click.echo(f"{section}:")
            for key, value in run[section].items():
                click.echo(f"  {key} = {value}")
    if run["artifacts"]:
        click.echo("artifacts:")
        for a in run["artifacts"]:
            click.echo(f"  {a['path']}  {a['size_bytes']} bytes  sha256 {a['sha256'][:12]}")


@runs.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed when not run from a terminal).")
@store_option
def delete(store: DuckDBStore, run_ids: tuple[str, ...], yes: bool) -> None:
    """Delete runs: they leave lists and searches; their traces and artifacts stay."""
    resolved = [store.get_run(ref)["run_id"] for ref in run_ids]  # every id checked before any is deleted
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("deleting needs confirmation: run it in a terminal or add --yes")
        click.confirm(f"Delete {len(resolved)} run(s) from {store.path}?", abort=True)
    for run_id in resolved:
        store.delete_run(run_id)
    click.echo(f"deleted {len(resolved)} run(s)")
