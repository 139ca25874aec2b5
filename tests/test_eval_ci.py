"""`agenttrace eval` as a CI job runs it: gates that count errors, --json, JUnit, baselines, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

AGENT_SOURCE = """
import os

def answer(question):
    if question in os.environ.get("CRASH_ON", "").split(","):
        raise RuntimeError(f"cannot answer {question}")
    return "a" + question[1:]
"""


def _cli(*args: str, store: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agenttrace", *args, "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def job(tmp_path: Path) -> dict[str, Path]:
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT_SOURCE)
    data = tmp_path / "qa.jsonl"
    lines = [
        json.dumps({"id": f"r{i}", "inputs": {"question": f"q{i}"}, "expectations": {"expected_answer": f"a{i}"}})
        for i in range(1, 5)
    ]
    data.write_text("\n".join(lines) + "\n")
    return {"agent": agent, "data": data, "store": tmp_path / "ci.duckdb", "dir": tmp_path}


def _run(
    job: dict[str, Path], *extra: str, crash: str = "", data: Path | None = None
) -> subprocess.CompletedProcess[str]:
    args = ["eval", "run", "--data", str(data or job["data"]), "--agent", f"{job['agent']}:answer", *extra]
    return _cli(*args, store=job["store"], env={"CRASH_ON": crash})


def test_crashed_records_fail_the_gate_warn_and_mark_the_run(job: dict[str, Path]) -> None:
    gated = _run(job, "--scorer", "contains", "--fail-under", "contains=0.9", "--name", "crashy", crash="q2,q3,q4")
    assert gated.returncode == 1, gated.stderr
    assert "threshold failed: contains = 0.25 < 0.9 (3 errored of 4, counted as failures)" in gated.stderr
    assert "warning: 3 of 4 records errored (3 in the agent, 0 only in scorers)" in gated.stderr
    assert "FINISHED_WITH_ERRORS" in gated.stdout and "without errors" in gated.stdout

    opted_out = _run(
        job, "--scorer", "contains", "--fail-under", "contains=0.9", "--errors", "ignore", crash="q2,q3,q4"
    )
    assert opted_out.returncode == 0, opted_out.stderr
    budget = _run(job, "--scorer", "contains", "--errors", "ignore", "--max-errors", "50%", crash="q2,q3,q4")
    assert budget.returncode == 1 and "3 of 4 records errored (75.0%) > --max-errors 50%" in budget.stderr

    listed = json.loads(_cli("eval", "list", "--json", store=job["store"]).stdout)
    assert [r["status"] for r in listed["runs"]] == ["FINISHED_WITH_ERRORS"] * 3
    shown = _cli("eval", "show", "crashy", store=job["store"])
    assert "FINISHED_WITH_ERRORS" in shown.stdout and "warning: 3 of 4 records errored" in shown.stderr


def test_json_is_the_only_thing_on_stdout(job: dict[str, Path]) -> None:
    first = _run(job, "--scorer", "contains", "--scorer", "exact_match:ignore_case=false", "--json", "--name", "a")
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    assert document["status"] == "FINISHED" and document["gates"] == {"passed": True, "failures": [], "errors": "fail"}
    assert set(document["metrics"]["scorers"]) == {"contains", "exact_match"}
    second = _run(job, "--scorer", "contains", "--json", "--name", "b", "--baseline", "a", crash="q1")
    assert second.returncode == 0, second.stderr
    comparison = json.loads(second.stdout)["comparison"]
    assert [e["record_id"] for e in comparison["new_errors"]] == ["r1"]

    compared = _cli("eval", "compare", "a", "b", "--json", store=job["store"])
    assert json.loads(compared.stdout)["scorers"][0]["new_errors"] == 1
    gate = _cli("eval", "compare", "a", "b", "--fail-on-regression", store=job["store"])
    assert gate.returncode == 1 and "1 records now fail with an error: r1" in gate.stderr
    assert "now failing with an error: 1 record-scores" in gate.stdout and "95% CI" in gate.stdout
    fine = _cli("eval", "compare", "b", "a", "--fail-on-regression", "--alpha", "0.01", store=job["store"])
    assert fine.returncode == 0 and "error fixed" in fine.stdout
    for args in (["eval", "list", "--json"], ["eval", "show", "a", "--json"]):
        json.loads(_cli(*args, store=job["store"]).stdout)
    scorers = json.loads(subprocess.run(
        [sys.executable, "-m", "agenttrace", "scorers", "list", "--json"], capture_output=True, text=True
    ).stdout)  # fmt: skip
    by_name = {s["name"]: s for s in scorers["scorers"]}
    assert {"name": "k", "default": 5, "required": False, "type": "int | None"} in by_name["recall_at_k"]["parameters"]
    assert by_name["regex_match"]["parameters"][0]["required"] is True and by_name["json_schema"]["kind"] == "heuristic"


def test_baseline_regression_gate_and_junit(job: dict[str, Path]) -> None:
    assert _run(job, "--scorer", "exact_match", "--name", "base").returncode == 0
    junit = job["dir"] / "results.xml"
    gated = _run(
        job, "--scorer", "exact_match", "--baseline", "base", "--fail-on-regression", "--junit", str(junit), crash="q3"
    )
    assert gated.returncode == 1 and "1 records now fail with an error: r3" in gated.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("errors") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    error = cases["r3"].find("error")
    assert error is not None and "RuntimeError: cannot answer q3" in (error.get("message") or "")
    assert cases["r1"].find("failure") is None and cases["r1"].find("error") is None

    wrong = job["dir"] / "wrong.jsonl"
    wrong.write_text(json.dumps({"id": "r1", "inputs": {"question": "q1"}, "expectations": {"expected_answer": "zz"}}))
    junit_failing = _run(job, "--scorer", "exact_match", "--junit", str(junit), data=wrong)
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert junit_failing.returncode == 0 and failure is not None and "exact_match = False" in failure.get("message", "")


def test_output_csv_keeps_json_cells(job: dict[str, Path]) -> None:
    out = job["dir"] / "results.csv"
    assert _run(job, "--scorer", "contains", "-o", str(out)).returncode == 0
    import csv

    rows = list(csv.DictReader(out.open()))
    assert json.loads(rows[0]["inputs"]) == {"question": "q1"}
    assert json.loads(rows[0]["expectations"]) == {"expected_answer": "a1"}


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--scorer", "contains", "--fail-under", "exact_match=0.5"], 2, "'exact_match' is not one of the --scorer"),
        (["--scorer", "contains", "--fail-under", "contains=high"], 2, "the threshold 'high' is not a number"),
        (["--scorer", "recall_at_k:kk=5"], 1, "takes no parameter 'kk'; it takes k=5, span_name=None, name=None"),
        (["--scorer", "regex_match"], 1, "scorer 'regex_match' needs pattern"),
        (["--scorer", "latency_under:max_ms=fast"], 1, "max_ms='fast' is not float"),
        (["--scorer", "contains", "--max-errors", "lots"], 2, "use a count (3) or a percentage"),
        (["--scorer", "contains", "--baseline", "nope"], 1, "error: no store at"),
    ],
)
def test_bad_input_is_one_clear_line(job: dict[str, Path], extra: list[str], code: int, message: str) -> None:
    out = _run(job, *extra)
    assert out.returncode == code and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_scorer_parameters_from_the_cli(job: dict[str, Path]) -> None:
    out = _run(job, "--scorer", r"regex_match:pattern=^a\d$", "--scorer", "latency_under:max_ms=60000", "--json")
    assert out.returncode == 0, out.stderr
    scorers = json.loads(out.stdout)["metrics"]["scorers"]
    assert scorers["regex_match"]["pass_rate"] == 1.0 and scorers["latency_under"]["pass_rate"] == 1.0


def test_a_baseline_on_another_dataset_version_is_refused(job: dict[str, Path]) -> None:
    assert _run(job, "--scorer", "contains", "--name", "old").returncode == 0
    changed = job["dir"] / "qa.jsonl"
    changed.write_text(changed.read_text().replace('"a4"', '"a4 or b4"'))
    refused = _run(job, "--scorer", "contains", "--baseline", "old")
    assert refused.returncode == 1 and "evaluated dataset qa@" in refused.stderr
    versions = [w for w in refused.stderr.split() if w.startswith("qa@")]
    assert len(set(versions)) == 2, refused.stderr  # both versions named
    allowed = _run(job, "--scorer", "contains", "--baseline", "old", "--allow-dataset-change")
    assert allowed.returncode == 0, allowed.stderr
