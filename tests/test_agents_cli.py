"""`agenttrace agents` and `eval run --agent NAME@ALIAS`, run as real processes against a real store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

AGENT = """
def answer(question, config=None, prompts=None):
    return prompts["system"] + ":" + config["model"] + ":" + question
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with an agent package and a prompt file; commands run from it."""
    (tmp_path / "cliagent").mkdir()
    (tmp_path / "cliagent" / "__init__.py").write_text(AGENT)
    (tmp_path / "system.txt").write_text("be brief")
    (tmp_path / "data.jsonl").write_text(
        json.dumps({"id": "r1", "inputs": {"question": "q1"}, "expectations": {"expected_response": "be brief:m1:q1"}})
        + "\n"
    )
    return tmp_path


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agenttrace", *args, "--store", str(project / "reg.duckdb")],
        capture_output=True, text=True, timeout=120, cwd=project,
    )  # fmt: skip


def ok(project: Path, *args: str) -> str:
    out = run(project, *args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def register(project: Path, model: str, *extra: str) -> str:
    return ok(project, "agents", "register", "bot", "cliagent:answer", "--config-json", json.dumps({"model": model}),
              "--prompt", "system=system.txt", *extra)  # fmt: skip


def test_register_list_show_alias_diff_delete(project: Path) -> None:
    assert "registered new version 1 of bot" in register(project, "m1", "--tag", "team=support")
    assert "unchanged: existing version 1 of bot" in register(project, "m1")
    assert "registered new version 2 of bot" in register(project, "m2", "--description", "bigger model")
    assert "bot@champion -> version 1" in ok(project, "agents", "alias", "bot", "champion", "1")

    listed = [json.loads(line) for line in ok(project, "agents", "list", "--json").splitlines()]
    assert [(a["name"], a["latest_version"], a["versions"], a["aliases"]) for a in listed] == [
        ("bot", 2, 2, "champion=1")
    ]
    table = ok(project, "agents", "versions", "bot")
    assert "champion" in table and "rows 1-2 (page 1)" in table
    assert [json.loads(x)["version"] for x in ok(project, "agents", "versions", "bot", "--json").splitlines()] == [2, 1]
    only = ok(project, "agents", "versions", "bot", "--json", "--filter", "tags.team = 'support'")
    assert [json.loads(x)["version"] for x in only.splitlines()] == [1]

    shown = json.loads(ok(project, "agents", "show", "bot@champion", "--json"))
    assert (shown["version"], shown["config"], shown["prompts"]) == (1, {"model": "m1"}, {"system": "be brief"})
    assert "bigger model" in ok(project, "agents", "show", "bot")

    diff = ok(project, "agents", "diff", "bot", "champion", "2")
    assert "changed  model: 'm1' -> 'm2'" in diff

    refused = run(project, "agents", "delete", "bot", "1", "--yes")
    assert refused.returncode == 1 and "alias champion" in refused.stderr
    ok(project, "agents", "alias", "bot", "champion", "--delete")
    assert "deleted version 1 of agent bot" in ok(project, "agents", "delete", "bot", "1", "--yes")
    assert [json.loads(x)["version"] for x in ok(project, "agents", "versions", "bot", "--json").splitlines()] == [2]


def test_lists_page_and_filter(project: Path) -> None:
    for name in ("alpha", "beta", "gamma"):
        ok(project, "agents", "register", name, "cliagent:answer", "--tag", f"kind={name[0]}")
    page2 = ok(project, "agents", "list", "--limit", "2", "--page", "2", "--json")
    assert [json.loads(x)["name"] for x in page2.splitlines()] == ["gamma"]
    assert "next: --page 2" in ok(project, "agents", "list", "--limit", "2")
    filtered = ok(project, "agents", "list", "--json", "--filter", "tags.kind = 'b' OR name = 'alpha'")
    assert [json.loads(x)["name"] for x in filtered.splitlines()] == ["alpha", "beta"]
    bad = run(project, "agents", "list", "--filter", "colour = 'red'")
    assert bad.returncode == 1 and "valid fields: name" in bad.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("agents", "show", "nobody"), "no registered agent 'nobody'; registered: bot"),
        (("agents", "show", "bot/9"), "no version 9; versions: 1; aliases: (none)"),
        (("agents", "alias", "bot", "live", "7"), "no version 7; versions: 1"),
        (("agents", "diff", "bot", "1", "prod"), "no alias 'prod'; versions: 1"),
    ],
)
def test_unknown_agent_version_or_alias_lists_what_exists(project: Path, args: tuple[str, ...], message: str) -> None:
    register(project, "m1")
    out = run(project, *args)
    assert out.returncode == 1
    assert message in out.stderr


def test_an_import_path_that_does_not_import_registers_nothing(project: Path) -> None:
    out = run(project, "agents", "register", "bot", "cliagent.nothere:answer")
    assert out.returncode == 1
    assert "does not import: ModuleNotFoundError: No module named 'cliagent.nothere'" in out.stderr
    assert ok(project, "agents", "list", "--json") == ""


def test_eval_run_resolves_a_registered_alias(project: Path) -> None:
    register(project, "m1")
    register(project, "m2")
    ok(project, "agents", "alias", "bot", "champion", "1")
    out = ok(project, "eval", "run", "--data", "data.jsonl", "--agent", "bot@champion", "--scorer", "exact_match")
    assert "eval run" in out
    with duckdb.connect(str(project / "reg.duckdb"), read_only=True) as con:
        run_row = con.execute("SELECT agent_name, agent_version, agent_version_id FROM eval_runs").fetchone()
        version_id = con.execute("SELECT version_id FROM agent_versions WHERE version = 1").fetchone()
        stamped = con.execute("SELECT DISTINCT agent_version_id FROM traces WHERE agent_name = 'bot'").fetchall()
        outputs = con.execute("SELECT outputs FROM eval_records").fetchone()
    assert version_id is not None and run_row == ("bot", "1", version_id[0])
    assert stamped == [(version_id[0],)]
    assert outputs is not None and json.loads(outputs[0]) == "be brief:m1:q1"
    history = [json.loads(x) for x in ok(project, "agents", "history", "bot", "--json").splitlines()]
    assert [(h["version"], h["eval_runs"], h["score.exact_match"]) for h in history] == [(1, 1, 1.0), (2, 0, None)]
    unknown = run(project, "eval", "run", "--data", "data.jsonl", "--agent", "bot@prod", "--scorer", "exact_match")
    assert unknown.returncode == 1 and "no alias 'prod'" in unknown.stderr
