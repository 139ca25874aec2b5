"""`agenttrace runs` and `agenttrace experiments`: tables, JSON, filters, pages, deletion, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import agenttrace
from agenttrace import tracking
from agenttrace.cli import cli
from agenttrace.tracking import runs


@pytest.fixture(autouse=True)
def no_open_runs() -> Iterator[None]:
    runs.forget_active_runs()
    yield
    runs.forget_active_runs()


def invoke(store: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, [*args, "--store", str(store)], input=input)


@pytest.fixture
def three(store_path: Path) -> list[str]:
    ids = []
    for i, experiment in enumerate(["lab", "lab", "prod"]):
        with agenttrace.start_run(name=f"run{i}", experiment=experiment) as run:
            agenttrace.log_params({"lr": i / 10})
            agenttrace.log_metric("acc", 0.5 + i / 10)
        ids.append(run.run_id)
    return ids


def json_rows(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_runs_list_shows_a_table_and_json_with_wide_columns(store_path: Path, three: list[str]) -> None:
    table = invoke(store_path, "runs", "list")
    assert table.exit_code == 0, table.output
    assert all(run_id in table.stdout for run_id in three) and "3 run(s)" in table.stdout
    assert "lr=0.2" in table.stdout and "acc=0.7" in table.stdout
    rows = json_rows(invoke(store_path, "runs", "list", "--json", "--order-by", "metrics.acc DESC"))
    assert [r["run_id"] for r in rows] == three[::-1]
    assert rows[0]["params.lr"] == "0.2" and rows[0]["metrics.acc"] == pytest.approx(0.7)


def test_runs_list_filters_and_pages(store_path: Path, three: list[str]) -> None:
    lab = json_rows(invoke(store_path, "runs", "list", "--json", "--experiment", "lab"))
    assert {r["run_id"] for r in lab} == set(three[:2])
    good = json_rows(invoke(store_path, "runs", "list", "--json", "--filter", "metrics.acc > 0.55"))
    assert {r["run_id"] for r in good} == set(three[1:])
    first = invoke(store_path, "runs", "list", "--json", "--order-by", "name", "--max-results", "2")
    assert [r["name"] for r in json_rows(first)] == ["run0", "run1"]
    assert "more: --page-token 2" in first.stderr
    second = invoke(
        store_path, "runs", "list", "--json", "--order-by", "name", "--max-results", "2", "--page-token", "2"
    )
    assert [r["name"] for r in json_rows(second)] == ["run2"] and "more:" not in second.stderr


def test_runs_show_prints_params_metrics_and_artifacts(store_path: Path, tmp_path: Path) -> None:
    with agenttrace.start_run(name="shown", tags={"team": "a"}) as run:
        agenttrace.log_param("lr", "0.1")
        agenttrace.log_metric("loss", 0.25)
        agenttrace.log_text("hello", "notes/readme.txt")
    shown = invoke(store_path, "runs", "show", run.run_id[:8])
    assert shown.exit_code == 0, shown.output
    for expected in (f"run {run.run_id}  FINISHED", "lr = 0.1", "loss = 0.25", "team = a", "notes/readme.txt  5 bytes"):
        assert expected in shown.stdout
    data = json.loads(invoke(store_path, "runs", "show", run.run_id, "--json").stdout)
    assert (data["params"], data["metrics"], data["artifacts"][0]["path"]) == (
        {"lr": "0.1"},
        {"loss": 0.25},
        "notes/readme.txt",
    )


def test_runs_delete_hides_a_run_and_needs_confirmation(store_path: Path, three: list[str]) -> None:
    refused = invoke(store_path, "runs", "delete", three[0], input="n\n")
    assert refused.exit_code != 0
    done = invoke(store_path, "runs", "delete", three[0], "--yes")
    assert done.exit_code == 0 and "deleted 1 run(s)" in done.stdout
    assert {r["run_id"] for r in json_rows(invoke(store_path, "runs", "list", "--json"))} == set(three[1:])


def test_an_unknown_run_is_an_error_listing_recent_ones(store_path: Path, three: list[str]) -> None:
    result = invoke(store_path, "runs", "show", "nosuchrun")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no run with id 'nosuchrun'") and three[2] in result.stderr
    assert invoke(store_path, "runs", "delete", "nosuchrun", "--yes").exit_code == 1


def test_a_run_whose_process_died_is_listed_running_since_its_start(store_path: Path) -> None:
    script = (
        "import os, sys, agenttrace\n"
        "agenttrace.configure(store=sys.argv[1])\n"
        "run = agenttrace.start_run(name='doomed')\n"
        "print(run.run_id, flush=True)\n"
        "os._exit(9)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(store_path)], capture_output=True, text=True, timeout=120)
    run_id = out.stdout.split()[0]
    started = tracking.get_run(run_id).start_time
    assert started is not None
    listed = invoke(store_path, "runs", "list")
    line = next(line for line in listed.stdout.splitlines() if run_id in line)
    assert "RUNNING since" in line
    shown = invoke(store_path, "runs", "show", run_id)
    assert "RUNNING since" in shown.stdout and "its process is gone" in shown.stdout


def test_experiments_create_list_delete_restore(store_path: Path) -> None:
    created = invoke(store_path, "experiments", "create", "rag", "--tag", "owner=ana", "--description", "retrieval")
    assert created.exit_code == 0 and "created experiment 'rag' with id" in created.stdout
    assert invoke(store_path, "experiments", "create", "rag").exit_code == 1  # exists already
    rows = json_rows(invoke(store_path, "experiments", "list", "--json"))
    assert [(r["name"], r["tags"], r["description"]) for r in rows] == [("rag", {"owner": "ana"}, "retrieval")]
    assert "rag" in invoke(store_path, "experiments", "list").stdout
    assert invoke(store_path, "experiments", "delete", "rag").exit_code == 0
    assert json_rows(invoke(store_path, "experiments", "list", "--json")) == []
    deleted = json_rows(invoke(store_path, "experiments", "list", "--json", "--lifecycle", "deleted"))
    assert [r["name"] for r in deleted] == ["rag"]
    assert invoke(store_path, "experiments", "restore", str(deleted[0]["experiment_id"])).exit_code == 0
    assert [
        r["name"]
        for r in json_rows(invoke(store_path, "experiments", "list", "--json", "--filter", "tags.owner = 'ana'"))
    ] == ["rag"]


def test_experiments_list_pages(store_path: Path) -> None:
    for name in ("a", "b", "c"):
        tracking.create_experiment(name)
    first = invoke(store_path, "experiments", "list", "--json", "--max-results", "2")
    assert [r["name"] for r in json_rows(first)] == ["a", "b"] and "more: --page-token 2" in first.stderr
    second = invoke(store_path, "experiments", "list", "--json", "--max-results", "2", "--page-token", "2")
    assert [r["name"] for r in json_rows(second)] == ["c"]
    assert invoke(store_path, "experiments", "list", "--page-token", "x").exit_code == 2


def test_an_unknown_experiment_is_an_error_listing_what_exists(store_path: Path) -> None:
    tracking.create_experiment("retrieval")
    result = invoke(store_path, "experiments", "delete", "retreival")
    assert result.exit_code == 1
    assert "no experiment 'retreival'; experiments: retrieval" in result.stderr
    listed = invoke(store_path, "runs", "list", "--experiment", "retreival")
    assert listed.exit_code == 1 and "experiments: retrieval" in listed.stderr


@pytest.mark.parametrize("token", ["²", "99999999999999999999999", "-1"])
def test_a_page_token_that_is_not_one_is_a_usage_error(store_path: Path, token: str) -> None:
    result = invoke(store_path, "runs", "list", "--page-token", token)
    assert result.exit_code == 2 and "is not a page token" in result.output, result.output
