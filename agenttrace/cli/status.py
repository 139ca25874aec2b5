"""`agenttrace status`: what the store holds and whether tracing has lost anything."""

from __future__ import annotations

import click

from agenttrace.cli._common import store_option
from agenttrace.store import DuckDBStore


@click.command()
@store_option
def status(store: DuckDBStore) -> None:
    """Show the store's path, its counts and any spans dropped or failed to store."""
    counts = store.stats()
    click.echo(f"store: {store.path}")
    for name in ("traces", "spans", "assessments"):
        click.echo(f"{name}: {counts.get(name, 0)}")
    dropped, failed = counts.get("dropped_spans", 0), counts.get("failed_spans", 0)
    click.echo(f"dropped spans: {dropped}")
    click.echo(f"failed to store: {failed}")
    otlp_dropped, otlp_failed = counts.get("otlp_dropped_spans", 0), counts.get("otlp_failed_spans", 0)
    if otlp_dropped or otlp_failed:
        click.echo(f"OTLP export: {otlp_dropped} dropped, {otlp_failed} failed to send")
    if dropped or failed or otlp_dropped or otlp_failed:
        click.echo("warning: some spans were lost; see the README section 'Nothing dropped silently'", err=True)
