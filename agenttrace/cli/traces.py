"""`agenttrace traces`: list, show, export and delete stored traces."""

from __future__ import annotations

import json
import sys
import time

import click
from rich.console import Console
from rich.table import Table

from agenttrace.cli._common import parse_duration, plain, shorten, store_option
from agenttrace.store import DuckDBStore


@click.group()
def traces() -> None:
    """List, show, export and delete stored traces."""


@traces.command("list")
@click.option(
    "--filter", "filter_string", default=None, help="Filter, e.g. \"status = 'ERROR' AND duration_ms > 500\"."
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="Maximum rows.")
@click.option("--experiment", default=None, help="Only traces of this experiment.")
@click.option("--order-by", "order_by", multiple=True, help="e.g. 'duration_ms DESC' (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@store_option
def list_traces(
    store: DuckDBStore,
    filter_string: str | None,
    limit: int,
    experiment: str | None,
    order_by: tuple[str, ...],
    as_json: bool,
) -> None:
    """List traces, newest first."""
    frame = store.search_traces(filter_string, [experiment] if experiment else None, list(order_by) or None, limit)
    if as_json:
        for row in frame.to_dict(orient="records"):
            click.echo(json.dumps({k: plain(v) for k, v in row.items()}, default=str, ensure_ascii=False))
        return
    table = Table(show_lines=False)
    for column in ("trace_id", "name", "status", "start_time", "duration_ms", "spans", "tokens", "inputs"):
        table.add_column(column, no_wrap=column in ("trace_id", "start_time"), overflow="ellipsis")
    for trace in frame.itertuples(index=False):
        tokens, duration = plain(trace.total_tokens), plain(trace.duration_ms)
        table.add_row(
            str(trace.trace_id),
            str(plain(trace.name) or ""),
            str(trace.status),
            str(trace.start_time)[:23],
            "" if duration is None else f"{duration:.1f}",
            str(trace.span_count),
            "" if tokens is None else str(int(tokens)),
            shorten(trace.inputs, 40),
        )
    # Piped output gets a wide console so ids are never cut.
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    click.echo(f"{len(frame)} trace(s)")


@traces.command("show")
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole trace as JSON.")
@click.option("--width", default=80, show_default=True, help="Characters of inputs/outputs shown per span.")
@store_option
def show(store: DuckDBStore, trace_id: str, as_json: bool, width: int) -> None:
    """Show one trace as a tree: types, durations, status, inputs and outputs."""
    trace = store.get_trace(trace_id)
    if as_json:
        click.echo(trace.to_json(indent=2))
        return
    click.echo(trace.to_text(width=width))
    for a in trace.assessments:
        note = f" ({a.rationale})" if a.rationale else ""
        click.echo(f"  {a.kind} {a.name} = {shorten(a.value, 40)}{note}  [{a.source_type}]")


@traces.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default="jsonl", show_default=True)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option("--filter", "filter_string", default=None, help="Only traces matching this filter.")
@store_option
def export(store: DuckDBStore, fmt: str, output: str, filter_string: str | None) -> None:
    """Export traces, each with its spans nested, as JSON lines or Parquet."""
    count = store.export_traces(output, fmt, filter_string)
    click.echo(f"exported {count} trace(s) to {output}")


@traces.command("delete")
@click.option("--older-than", "older_than", required=True, help="Age such as 30d, 12h, 2w.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed when not run from a terminal).")
@store_option
def delete(store: DuckDBStore, older_than: str, yes: bool) -> None:
    """Delete traces (with their spans and assessments) that started before the given age."""
    cutoff_ns = time.time_ns() - int(parse_duration(older_than) * 1e9)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("deleting needs confirmation: run it in a terminal or add --yes")
        click.confirm(f"Delete every trace older than {older_than} from {store.path}?", abort=True)
    count = store.delete_traces_before(cutoff_ns)
    click.echo(f"deleted {count} trace(s) older than {older_than}")
