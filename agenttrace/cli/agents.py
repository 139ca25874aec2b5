"""`agenttrace agents`: register, list, show, version, alias, diff and delete registered agents.

The commands go through the registry engine (agenttrace.registry) against the --store file, so the
CLI and Python register the same versions. Lists page with --limit/--page and filter with the
trace filter language over their own fields; --json prints one JSON object per line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from agenttrace.cli._common import plain, shorten, store_option, text
from agenttrace.cli._render import console
from agenttrace.store import DuckDBStore


@click.group("agents")
def agents() -> None:
    """Register agent versions (code + config + prompts), alias, compare and delete them."""


def _use(store: DuckDBStore) -> None:
    import agenttrace

    agenttrace.configure(store=str(store.path))


def _pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: use KEY=VALUE", param_hint=option)
        out[key] = value
    return out


def _read_config(config_file: str | None, config_json: str | None) -> dict[str, Any] | None:
    if config_file and config_json:
        raise click.BadParameter("give --config or --config-json, not both", param_hint="--config")
    try:
        raw = Path(config_file).read_text(encoding="utf-8") if config_file else config_json
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {config_file} as UTF-8 text: {exc}", param_hint="--config") from None
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--config") from None
    if not isinstance(value, dict):
        raise click.BadParameter("the config must be a JSON object", param_hint="--config")
    return value


def pages(fn: Any) -> Any:
    """--limit and --page (1-based) for lists."""
    fn = click.option("--page", default=1, show_default=True, type=click.IntRange(min=1), help="Page number.")(fn)
    return click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Rows per page.")(fn)


def _page_note(count: int, limit: int, page: int) -> None:
    first = (page - 1) * limit
    if count == 0:
        click.echo(f"no rows on page {page}" if page > 1 else "no rows")
        return
    more = f"; next: --page {page + 1}" if count == limit else ""
    click.echo(f"rows {first + 1}-{first + count} (page {page}){more}")


def _json_lines(frame: Any) -> None:
    for row in frame.to_dict(orient="records"):
        click.echo(json.dumps({k: plain(v) for k, v in row.items()}, default=str, ensure_ascii=False))


@agents.command("register")
@click.argument("name")
@click.argument("target")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), help="Config: a JSON file.")
@click.option("--config-json", default=None, help="Config as a JSON object on the command line.")
@click.option("--prompt", "prompts", multiple=True, metavar="NAME=FILE", help="A prompt template file (repeatable).")
@click.option("--description", default=None, help="Description of this version.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag on this version (repeatable).")
@store_option
def register(
    store: DuckDBStore,
    name: str,
    target: str,
    config_file: str | None,
    config_json: str | None,
    prompts: tuple[str, ...],
    description: str | None,
    tags: tuple[str, ...],
) -> None:
    """Register TARGET (package.module:function or path/file.py:function) as a version of NAME.

    The same code, config and prompts again print the existing version; any change makes a new one.
    The current folder is importable, as when running `python -m`.
    """
    from agenttrace.registry import register_agent

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    prompt_texts = {}
    for prompt, path in _pairs(prompts, "--prompt").items():
        try:
            prompt_texts[prompt] = Path(path).read_text()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--prompt") from None
    _use(store)
    version = register_agent(
        name,
        target,
        config=_read_config(config_file, config_json),
        prompts=prompt_texts or None,
        description=description,
        tags=_pairs(tags, "--tag") or None,
    )
    state = "registered new" if version.is_new else "unchanged: existing"
    click.echo(f"{state} version {version.version} of {name} ({version.version_id})")


@agents.command("list")
@click.option("--filter", "filter_string", default=None, help="e.g. \"tags.team = 'support' AND name LIKE 'qa%'\".")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@pages
@store_option
def list_agents(store: DuckDBStore, filter_string: str | None, as_json: bool, limit: int, page: int) -> None:
    """List registered agents by name: latest version, number of versions, aliases, tags."""
    frame = store.list_agents(filter_string, limit, (page - 1) * limit)
    if as_json:
        _json_lines(frame)
        return
    table = Table()
    for column in ("name", "latest", "versions", "aliases", "description", "tags", "updated"):
        table.add_column(column, overflow="ellipsis")
    for row in frame.to_dict(orient="records"):
        table.add_row(
            row["name"],
            str(row["latest_version"]),
            str(row["versions"]),
            text(row["aliases"]),
            shorten(text(row["description"]), 40),
            shorten(row["tags"], 40) if row["tags"] else "",
            text(row["updated"])[:19],
        )
    console().print(table)
    _page_note(len(frame), limit, page)


@agents.command("versions")
@click.argument("name")
@click.option("--filter", "filter_string", default=None, help="e.g. \"tags.stage = 'prod' OR version > 3\".")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@pages
@store_option
def versions(store: DuckDBStore, name: str, filter_string: str | None, as_json: bool, limit: int, page: int) -> None:
    """List the versions of one agent, newest first."""
    frame = store.list_agent_versions(name, filter_string, limit, (page - 1) * limit)
    if as_json:
        _json_lines(frame)
        return
    table = Table(title=name)
    for column in ("version", "aliases", "target", "code", "git", "created", "by", "description"):
        table.add_column(column, overflow="ellipsis")
    for row in frame.to_dict(orient="records"):
        commit = text(row["git_commit"])[:10]
        table.add_row(
            str(row["version"]),
            text(row["aliases"]),
            row["target"],
            row["code_digest"][:12],
            commit + ("*" if plain(row["git_dirty"]) else ""),
            text(row["created"])[:19],
            text(row["created_by"]),
            shorten(text(row["description"]), 30),
        )
    console().print(table)
    _page_note(len(frame), limit, page)


@agents.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the version as JSON.")
@store_option
def show(store: DuckDBStore, ref: str, as_json: bool) -> None:
    """Show one version: REF is NAME (the latest), NAME/3 or NAME@alias."""
    from agenttrace.registry import get_agent_version

    _use(store)
    version = get_agent_version(ref)
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps(asdict(version), default=str, indent=2, ensure_ascii=False))
        return
    click.echo(f"{version.name} version {version.version}  ({version.version_id})")
    lines = [
        ("aliases", ", ".join(version.aliases) or "-"),
        ("target", version.target),
        ("code", f"{version.code_digest[:16]}  {len(version.code_files)} files under {version.code_root or '-'}"),
        ("git", f"{version.git_commit or '-'}{' (dirty)' if version.git_dirty else ''}"),
        ("python", str(version.environment.get("python", "-"))),
        ("packages", ", ".join(f"{k} {v}" for k, v in version.environment.get("packages", {}).items()) or "-"),
        ("registered", f"{text(_when(version.created_ns))[:19]} by {version.created_by or '-'}"),
        ("run", version.run_id or "-"),
        ("description", version.description or "-"),
        ("tags", json.dumps(version.tags) if version.tags else "-"),
        ("config", json.dumps(version.config, ensure_ascii=False)),
    ]
    for label, value in lines:
        click.echo(f"  {label:12} {value}")
    for prompt, body in version.prompts.items():
        click.echo(f"  prompt {prompt} (sha256 {version.prompt_hashes[prompt][:12]}):")
        for line in body.splitlines():
            click.echo(f"    | {line}")


def _when(ns: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


@agents.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", required=False)
@click.option("--delete", is_flag=True, help="Remove the alias instead of setting it.")
@store_option
def alias(store: DuckDBStore, name: str, alias: str, version: str | None, delete: bool) -> None:
    """Point ALIAS of agent NAME at VERSION (a number or another alias), or --delete it."""
    from agenttrace.registry import delete_alias, set_alias

    _use(store)
    if delete:
        if version is not None:
            raise click.UsageError("--delete takes no VERSION")
        delete_alias(name, alias)
        click.echo(f"deleted alias {name}@{alias}")
        return
    if version is None:
        raise click.UsageError("give the VERSION the alias points at, or --delete")
    number = set_alias(name, alias, version)
    click.echo(f"{name}@{alias} -> version {number}")


@agents.command("diff")
@click.argument("name")
@click.argument("version_a")
@click.argument("version_b")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@store_option
def diff(store: DuckDBStore, name: str, version_a: str, version_b: str, as_json: bool) -> None:
    """Show what changed between two versions (numbers or aliases): code files, config keys, prompt text."""
    from agenttrace.registry import diff_agent_versions

    _use(store)
    result = diff_agent_versions(name, version_a, version_b)
    click.echo(json.dumps(result.to_dict(), default=str, indent=2) if as_json else result.to_text())


@agents.command("history")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@store_option
def history(store: DuckDBStore, name: str, as_json: bool) -> None:
    """Per version: eval runs, mean of each scorer, traces, error rate, p50/p95 latency, tokens."""
    from agenttrace.registry import agent_history

    _use(store)
    frame = agent_history(name)
    if as_json:
        _json_lines(frame)
        return
    table = Table(title=name)
    scores = [c for c in frame.columns if c.startswith("score.")]
    for column in ("version", "aliases", "evals", *scores, "traces", "errors", "p50 ms", "p95 ms", "tokens"):
        table.add_column(column, justify="left" if column in ("version", "aliases") else "right")
    for row in frame.to_dict(orient="records"):
        cells = [_number(row[c]) for c in (*scores, "trace_count", "error_rate", "latency_p50_ms", "latency_p95_ms")]
        table.add_row(str(row["version"]), ", ".join(row["aliases"]), str(row["eval_runs"]), *cells,
                      _number(row["total_tokens"]))  # fmt: skip
    console().print(table)


def _number(value: Any) -> str:
    value = plain(value)
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) and not value.is_integer() else str(int(value))


@agents.command("delete")
@click.argument("name")
@click.argument("version", required=False, type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed when not run from a terminal).")
@store_option
def delete(store: DuckDBStore, name: str, version: int | None, yes: bool) -> None:
    """Delete VERSION of agent NAME, or the whole agent without VERSION; refused while an alias points at it."""
    what = f"version {version} of agent {name}" if version is not None else f"agent {name} and all its versions"
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("deleting needs confirmation: run it in a terminal or add --yes")
        click.confirm(f"Delete {what} from {store.path}?", abort=True)
    if version is not None:
        store.delete_agent_version(name, version)
    else:
        count = store.delete_agent(name)
        what += f" ({count} version(s))"
    click.echo(f"deleted {what}")
