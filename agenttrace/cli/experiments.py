"""`agenttrace experiments`: list, create, delete and restore experiments.

Deleting is a lifecycle change, not an erasure: the experiment's runs leave lists and searches,
new runs in it are refused, and `restore` brings it all back. Traces keep their experiment name.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from agenttrace.cli._common import plain, store_option, text
from agenttrace.cli.runs import json_lines, next_page, offset_of, page_options, records
from agenttrace.errors import TrackingError
from agenttrace.store import DuckDBStore

__all__ = ["experiments"]


def _tags(pairs: tuple[str, ...]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--tag")
        tags[key.strip()] = value
    return tags


@click.group()
def experiments() -> None:
    """List, create, delete and restore experiments (groups of runs and traces)."""


@experiments.command("list")
@click.option("--filter", "filter_string", default=None, help="e.g. \"name LIKE 'rag%' AND tags.owner = 'ana'\".")
@click.option(
    "--lifecycle",
    type=click.Choice(["active", "deleted", "all"]),
    default="active",
    show_default=True,
    help="Which experiments to list.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@page_options
@store_option
def list_experiments(
    store: DuckDBStore, filter_string: str | None, lifecycle: str, as_json: bool, max_results: int, page_token: str
) -> None:
    """List experiments with their ids, run counts and tags."""
    offset = offset_of(page_token)
    frame = store.list_experiments(filter_string, None if lifecycle == "all" else lifecycle, max_results + 1, offset)
    rows = records(frame, max_results)
    if as_json:
        json_lines(rows)
    else:
        table = Table()
        for column in ("id", "name", "lifecycle", "created", "runs", "tags", "description"):
            table.add_column(column, overflow="fold")
        for row in rows:
            tags = ", ".join(f"{k}={v}" for k, v in (row["tags"] or {}).items())
            created = str(plain(row["created_time"]) or "")[:19].replace("T", " ")
            table.add_row(
                str(row["experiment_id"]), row["name"], row["lifecycle"], created, str(row["runs"]), tags,
                text(row["description"]),
            )  # fmt: skip
        Console(width=None if sys.stdout.isatty() else 200).print(table)
        click.echo(f"{len(rows)} experiment(s)")
    next_page(len(rows), len(frame), offset)


@experiments.command("create")
@click.argument("name")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag (repeatable).")
@click.option("--description", default=None, help="What the experiment is for.")
@store_option
def create(store: DuckDBStore, name: str, tags: tuple[str, ...], description: str | None) -> None:
    """Create an experiment; prints its id."""
    if not name.strip():
        raise TrackingError("an experiment name must be non-empty text")
    experiment_id = store.create_experiment(name, _tags(tags), description)
    click.echo(f"created experiment {name!r} with id {experiment_id}")


@experiments.command("delete")
@click.argument("experiment")
@store_option
def delete(store: DuckDBStore, experiment: str) -> None:
    """Delete an experiment (by name or id): its runs leave lists; `restore` brings them back."""
    found = store.set_experiment_lifecycle(experiment, "deleted")
    click.echo(f"deleted experiment {found['name']!r} (id {found['experiment_id']}); undo with `restore`")


@experiments.command("restore")
@click.argument("experiment")
@store_option
def restore(store: DuckDBStore, experiment: str) -> None:
    """Restore a deleted experiment (by name or id) with its runs."""
    found = store.set_experiment_lifecycle(experiment, "active")
    click.echo(f"restored experiment {found['name']!r} (id {found['experiment_id']})")
