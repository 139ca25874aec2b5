"""`agenttrace store`: backup, restore, check, compact, and encryption of the store file.

Keys never appear on the command line (shells keep history, `ps` shows arguments): the store's
current key is the encryption_key / encryption_key_file setting or `--key-file`, and a new key
comes from `--new-key-file` or, for `encrypt`, from the setting the store will be opened with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from agenttrace import config
from agenttrace.cli._common import open_store, store_path_option
from agenttrace.store import KEY_FROM_SETTINGS, DuckDBStore
from agenttrace.store._maintenance import unique_backup_path

_KEY_FILE = click.option(
    "--key-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="File holding the store's current key [default: the encryption_key(_file) setting].",
)


def _read_key(path: str) -> str:
    return config.encryption_key(config.Settings(encryption_key_file=path)) or ""


def _open(store_path: str | None, key_file: str | None, key: Any = KEY_FROM_SETTINGS) -> DuckDBStore:
    return open_store(store_path, _read_key(key_file) if key_file is not None else key)


def _size(result: dict[str, Any]) -> str:
    return f"{result['bytes_before']:,} -> {result['bytes_after']:,} bytes"


def _rows(tables: dict[str, tuple[int, int]]) -> int:
    return sum(rows for rows, _ in tables.values())


@click.group()
def store() -> None:
    """Back up, restore, check, compact and encrypt the store file."""


@store.command()
@click.argument("dest", type=click.Path())
@click.option("--force", is_flag=True, help="Overwrite DEST if it is an existing file.")
@store_path_option
@_KEY_FILE
def backup(dest: str, force: bool, store_path: str | None, key_file: str | None) -> None:
    """Write a consistent, verified copy of the store to DEST (a file, or a folder to put a dated file in).

    Safe while programs or the server write: the copy is one snapshot. An encrypted store's backup
    is encrypted with the same key.
    """
    s = _open(store_path, key_file)
    target = Path(dest)
    if target.is_dir():
        target = unique_backup_path(target, s.path)
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; pass --force to overwrite it or choose another name")
    tables = s.backup(target)
    click.echo(f"backed up {_rows(tables):,} rows in {len(tables)} tables to {target}")


@store.command()
@click.argument("src", type=click.Path(dir_okay=False, exists=True))
@click.option("--force", is_flag=True, help="Replace the store even when it has writes newer than the backup.")
@store_path_option
@_KEY_FILE
def restore(src: str, force: bool, store_path: str | None, key_file: str | None) -> None:
    """Replace the store with the backup SRC (made by `agenttrace store backup`).

    Refused when the store has writes newer than anything in the backup, unless --force.
    """
    s = _open(store_path, key_file)
    tables = s.restore(src, force=force)
    click.echo(f"restored {_rows(tables):,} rows in {len(tables)} tables from {src} into {s.path}")


@store.command()
@store_path_option
@_KEY_FILE
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: tables with row counts, problems.")
def check(store_path: str | None, key_file: str | None, as_json: bool) -> None:
    """Read every row of every table and check that the tables agree; exit 1 if a problem is found."""
    s = _open(store_path, key_file)
    tables: dict[str, int] = {}
    problems = s.check(lambda name, rows: tables.__setitem__(name, rows))
    if as_json:
        click.echo(json.dumps({"store": str(s.path), "tables": tables, "problems": problems}))
    else:
        for name, rows in tables.items():
            click.echo(f"{name}: {rows:,} rows read")
        for problem in problems:
            click.echo(f"problem: {problem}", err=True)
        click.echo(f"{len(problems)} problem(s) in {s.path}")
    if problems:
        raise SystemExit(1)


@store.command()
@store_path_option
@_KEY_FILE
def compact(store_path: str | None, key_file: str | None) -> None:
    """Rewrite the store into a fresh file, giving back the space of deleted rows (run after deleting traces)."""
    s = _open(store_path, key_file)
    click.echo(f"compacted {s.path}: {_size(s.rewrite())}")


@store.command()
@store_path_option
@click.option(
    "--new-key-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="File holding the key to encrypt with [default: the encryption_key(_file) setting].",
)
def encrypt(store_path: str | None, new_key_file: str | None) -> None:
    """Encrypt a plain store in place with the configured key (write new, verify, swap)."""
    settings = config.resolve({"store": store_path} if store_path else None)
    key = _read_key(new_key_file) if new_key_file else config.encryption_key(settings)
    if key is None:
        raise click.UsageError("no key to encrypt with: set AGENTTRACE_ENCRYPTION_KEY or encryption_key_file")
    s = _open(store_path, None, key=None)
    click.echo(f"encrypted {s.path}: {_size(s.rewrite(key))}; open it with the same key from now on")


@store.command()
@store_path_option
@_KEY_FILE
def decrypt(store_path: str | None, key_file: str | None) -> None:
    """Decrypt an encrypted store in place (write new, verify, swap); then unset the key."""
    s = _open(store_path, key_file)
    click.echo(f"decrypted {s.path}: {_size(s.rewrite(None))}; unset the encryption key setting now")


@store.command()
@store_path_option
@_KEY_FILE
@click.option(
    "--new-key-file", type=click.Path(dir_okay=False, exists=True), required=True, help="File with the new key."
)
def rekey(store_path: str | None, key_file: str | None, new_key_file: str) -> None:
    """Re-encrypt the store with a new key (write new, verify, swap); then configure the new key."""
    s = _open(store_path, key_file)
    click.echo(f"re-keyed {s.path}: {_size(s.rewrite(_read_key(new_key_file)))}; configure the new key now")
