"""The agenttrace CLI, run as a real process against a real store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import duckdb
import pytest

import agenttrace
from agenttrace.cli import cli
from agenttrace.store import _connection


def run(*args: str, store: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--store", str(store)] if store is not None else []
    return subprocess.run(
        [sys.executable, "-m", "agenttrace", *args, *extra], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def stored(store_path: Path) -> dict[str, str]:
    @agenttrace.trace(span_type="TOOL")
    def search(query):
        return ["doc"]

    @agenttrace.trace(span_type="AGENT")
    def agent(question):
        return search(question)

    @agenttrace.trace
    def broken():
        raise RuntimeError("bad")

    agent("what?")
    try:
        broken()
    except RuntimeError:
        pass
    frame = agenttrace.search_traces()
    _connection.release()
    return dict(zip(frame.name, frame.trace_id, strict=True))


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, f"{prefix}{name} "))
    return found


@pytest.mark.parametrize(("name", "command"), _commands(cli), ids=[n for n, _ in _commands(cli)])
def test_every_command_has_help(name: str, command: click.Command) -> None:
    assert command.help and len(command.help.strip()) > 10, f"`agenttrace {name}` has no help text"


def test_list_table_and_json(stored: dict[str, str], store_path: Path) -> None:
    out = run("traces", "list", store=store_path)
    assert out.returncode == 0, out.stderr
    assert stored["agent"] in out.stdout and "2 trace(s)" in out.stdout
    rows = [json.loads(line) for line in run("traces", "list", "--json", store=store_path).stdout.splitlines()]
    assert {r["name"] for r in rows} == {"agent", "broken"}
    errors = run("traces", "list", "--json", "--filter", "status = 'ERROR'", store=store_path)
    assert [json.loads(line)["name"] for line in errors.stdout.splitlines()] == ["broken"]


def test_show_prints_the_tree(stored: dict[str, str], store_path: Path) -> None:
    out = run("traces", "show", stored["agent"], store=store_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].strip().startswith("[AGENT] agent") and any("[TOOL] search" in line for line in lines)
    assert '{"question": "what?"}' in out.stdout
    as_json = json.loads(run("traces", "show", stored["broken"], "--json", store=store_path).stdout)
    assert as_json["info"]["status"] == "ERROR"


def test_unknown_id_and_bad_filter_exit_nonzero_with_one_line(stored: dict[str, str], store_path: Path) -> None:
    missing = run("traces", "show", "feedbeef", store=store_path)
    assert missing.returncode == 1
    assert (
        missing.stderr.strip()
        == "error: no trace with id 'feedbeef' in the store; list ids with `agenttrace traces list`"
    )
    bad = run("traces", "list", "--filter", "status ==", store=store_path)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "position" in bad.stderr


def test_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("hello")
    out = run("traces", "list", store=path)
    assert out.returncode == 1 and "not a DuckDB database file" in out.stderr
    assert path.read_text() == "hello"


def test_export_jsonl_and_parquet(stored: dict[str, str], store_path: Path, tmp_path: Path) -> None:
    jsonl = tmp_path / "out.jsonl"
    assert run("traces", "export", "--format", "jsonl", "-o", str(jsonl), store=store_path).returncode == 0
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    agent_row = next(r for r in rows if r["name"] == "agent")
    assert [s["name"] for s in agent_row["spans"]] == ["agent", "search"]
    parquet = tmp_path / "out.parquet"
    out = run(
        "traces", "export", "--format", "parquet", "-o", str(parquet), "--filter", "status = 'ERROR'", store=store_path
    )
    assert out.returncode == 0 and "exported 1 trace(s)" in out.stdout
    assert duckdb.sql(f"SELECT name FROM '{parquet}'").fetchall() == [("broken",)]


def test_delete_older_than(stored: dict[str, str], store_path: Path) -> None:
    unconfirmed = run("traces", "delete", "--older-than", "0s", store=store_path)
    assert unconfirmed.returncode == 2 and "add --yes" in unconfirmed.stderr
    kept = run("traces", "delete", "--older-than", "1d", "--yes", store=store_path)
    assert kept.returncode == 0 and "deleted 0 trace(s)" in kept.stdout
    gone = run("traces", "delete", "--older-than", "0s", "--yes", store=store_path)
    assert "deleted 2 trace(s)" in gone.stdout
    counts = run("status", store=store_path).stdout
    assert "traces: 0" in counts and "spans: 0" in counts
    bad = run("traces", "delete", "--older-than", "soon", "--yes", store=store_path)
    assert bad.returncode == 2 and "not a duration" in bad.stderr


def test_status(stored: dict[str, str], store_path: Path) -> None:
    out = run("status", store=store_path)
    assert out.returncode == 0
    assert "traces: 2" in out.stdout and "spans: 3" in out.stdout and "dropped spans: 0" in out.stdout
