"""Reading evaluations back: `agenttrace datasets`, `agenttrace.datasets.list()` and the REST API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import agenttrace
from agenttrace.store import _connection
from tests.server_harness import ServerThread, http_json

RECORDS = [
    {"id": "zip", "inputs": {"code": "02134"}, "expectations": {"expected_answer": "02134"}, "tags": {"k": "v"}},
    {"id": "bond", "inputs": {"code": "007"}, "expectations": {"expected_answer": "007"}},
]


def echo(code: str) -> str:
    return code if code != "007" else "7"


def _cli(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agenttrace", *args, "--store", str(store)], capture_output=True, text=True, timeout=120
    )


def test_datasets_list_show_and_export_round_trip(store_path: Path, tmp_path: Path) -> None:
    made = agenttrace.datasets.create("codes", RECORDS)
    listed = agenttrace.datasets.list()
    assert list(listed.name) == ["codes"] and list(listed.version) == [made.version]
    _connection.release()

    assert json.loads(_cli("datasets", "list", "--json", store=store_path).stdout)["datasets"][0]["record_count"] == 2
    shown = json.loads(_cli("datasets", "show", f"codes@{made.version}", "--json", store=store_path).stdout)
    assert shown["version"] == made.version and shown["records"][0]["inputs"] == {"code": "02134"}
    assert "02134" in _cli("datasets", "show", "codes", store=store_path).stdout
    for suffix in ("jsonl", "csv"):
        path = tmp_path / f"codes.{suffix}"
        assert _cli("datasets", "export", "codes", "-o", str(path), store=store_path).returncode == 0
        again = agenttrace.datasets.create("codes", str(path))
        assert again.version == made.version, suffix  # the same content digest: nothing was changed
    missing = _cli("datasets", "show", "nope", store=store_path)
    assert missing.returncode == 1 and "no stored dataset 'nope'" in missing.stderr


def test_eval_runs_rows_and_comparisons_over_rest(store_path: Path) -> None:
    a = agenttrace.evaluate(RECORDS, lambda code: code, scorers=["exact_match"], run_name="a")
    b = agenttrace.evaluate(RECORDS, echo, scorers=["exact_match"], run_name="b")
    _connection.release()
    with ServerThread(store_path) as srv:
        status, runs = http_json(srv.url + "/api/eval-runs")
        assert status == 200 and [r["name"] for r in runs["runs"]] == ["b", "a"]
        assert runs["runs"][0]["summary"]["scorers"]["exact_match"]["pass_rate"] == 0.5
        status, run = http_json(srv.url + "/api/eval-runs/a?max_records=1&offset=1")
        assert status == 200 and run["run"]["eval_run_id"] == a.eval_run_id and run["total_records"] == 2
        assert [r["record_id"] for r in run["records"]] == ["bond"]
        assert run["records"][0]["scores"]["exact_match"]["value"] is True
        status, comparison = http_json(srv.url + "/api/eval-runs/a/compare/" + b.eval_run_id[:8])
        assert status == 200 and comparison["scorers"][0]["delta"] == -0.5
        assert [r["record_id"] for r in comparison["regressed"]] == ["bond"]
        assert comparison["scorers"][0]["ci95_low"] <= -0.5 <= comparison["scorers"][0]["ci95_high"]
        status, found = http_json(srv.url + "/api/datasets")
        assert status == 200 and found["datasets"][0]["name"] == "records"
        status, error = http_json(srv.url + "/api/eval-runs/nope")
        assert status == 404 and "no eval run 'nope'" in error["error"]
