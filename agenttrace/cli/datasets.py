"""`agenttrace datasets`: list stored dataset versions, show one, export it to a file.

An exported file evaluates to the same version it came from: JSON lines hold the record dicts as
stored; CSV holds ``id`` and ``inputs``/``expectations``/``tags`` as JSON text, which the CSV
reader parses back (a cell is never Python's repr), so `eval run --data export.csv` finds the
same content digest.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from agenttrace.cli._common import json_option, shorten, store_option, text
from agenttrace.cli._eval_report import emit_json
from agenttrace.cli._render import console
from agenttrace.store import DuckDBStore


@click.group()
def datasets() -> None:
    """Versioned evaluation datasets in the store (a version is a content digest)."""


def _split(ref: str) -> tuple[str, str | None]:
    name, _, version = ref.partition("@")
    return name, version or None


@datasets.command("list")
@json_option
@store_option
def list_datasets(store: DuckDBStore, as_json: bool) -> None:
    """List every stored dataset version, oldest first."""
    rows = store.list_datasets().to_dict(orient="records")
    if as_json:
        emit_json({"datasets": rows})
        return
    table = Table()
    for column in ("name", "version", "records", "source", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"], row["version"], text(row["record_count"]), text(row["source"]), text(row["created"])[:19]
        )
    console().print(table)


@datasets.command("show")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--rows", default=10, show_default=True, type=click.IntRange(min=0), help="Records to print.")
@json_option
@store_option
def show(store: DuckDBStore, ref: str, rows: int, as_json: bool) -> None:
    """Show a dataset version (the newest when no @VERSION): its records' inputs and expectations."""
    name, version = _split(ref)
    version, records = store.load_dataset(name, version)
    if as_json:
        emit_json({"name": name, "version": version, "records": records})
        return
    table = Table(title=f"{name}@{version}: first {min(rows, len(records))} of {len(records)} records")
    for column in ("id", "inputs", "expectations", "tags"):
        table.add_column(column, overflow="ellipsis")
    for r in records[:rows]:
        table.add_row(str(r["id"]), shorten(r["inputs"], 60), shorten(r["expectations"], 60), shorten(r["tags"], 30))
    console().print(table)


@datasets.command("export")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--output", "-o", required=True, help="File to write: .jsonl or .csv.")
@store_option
def export(store: DuckDBStore, ref: str, output: str) -> None:
    """Write a dataset version to a .jsonl or .csv file that `eval run --data` reads back."""
    name, version = _split(ref)
    version, records = store.load_dataset(name, version)
    path = Path(output)
    if path.suffix.lower() == ".csv":
        _write_csv(path, records)
    elif path.suffix.lower() == ".jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(_plain_record(r), ensure_ascii=False, default=str) + "\n")
    else:
        raise click.BadParameter(f"{output!r}: export to a .jsonl or .csv file", param_hint="--output")
    click.echo(f"wrote {len(records)} records of {name}@{version} to {output}", err=True)


def _plain_record(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: record[k] for k in ("id", "inputs", "expectations", "tags") if record.get(k) is not None}
    if record.get("source_trace_id"):
        out["source_trace_id"] = record["source_trace_id"]
    return out


def _write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    traced = any(r.get("source_trace_id") for r in records)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "inputs", "expectations", "tags", *(["source_trace_id"] if traced else [])])
        for r in records:
            cells = [
                json.dumps(r.get(k) or {}, ensure_ascii=False, default=str) for k in ("inputs", "expectations", "tags")
            ]
            writer.writerow([r["id"], *cells, *([r.get("source_trace_id") or ""] if traced else [])])
