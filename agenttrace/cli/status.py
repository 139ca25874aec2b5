"""`agenttrace status`: what the store holds and whether tracing has lost anything.

In client mode (`uri` set) a program writes no store of its own, so without --store there is
nothing local to read: the command says where the spans went instead of reading an unrelated file.
"""

from __future__ import annotations

import click

from agenttrace import config
from agenttrace.cli._common import open_store, store_path_option


@click.command()
@store_path_option
def status(store_path: str | None) -> None:
    """Show the store's path, its counts and any spans dropped or failed to store."""
    if store_path is None:
        uri = config.resolve().uri
        if uri is not None:
            click.echo(f"client mode: traced programs send their spans to the server at {uri}")
            click.echo("there is no local store to read; the server's GET /health counts what it received")
            click.echo("and rejected, and each program's exit warning counts what it could not send")
            return
    store = open_store(store_path)
    counts = store.stats()
    click.echo(f"store: {store.path}")
    for name in ("traces", "spans", "assessments"):
        click.echo(f"{name}: {counts.get(name, 0)}")
    dropped, failed = counts.get("dropped_spans", 0), counts.get("failed_spans", 0)
    click.echo(f"dropped spans: {dropped}")
    click.echo(f"failed to store: {failed}")
    otlp_dropped, otlp_failed = counts.get("otlp_dropped_spans", 0), counts.get("otlp_failed_spans", 0)
    if otlp_dropped or otlp_failed:
        click.echo(f"OTLP export: {otlp_dropped} dropped, {otlp_failed} failed to send (they are in this store)")
    if dropped or failed or otlp_dropped or otlp_failed:
        click.echo("warning: some spans were lost; see the README section 'Nothing dropped silently'", err=True)
