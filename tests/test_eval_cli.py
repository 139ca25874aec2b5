"""`agenttrace eval` and `agenttrace scorers` as a user runs them, against the shipped dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "datasets" / "rag_qa" / "rag_qa.jsonl"
AGENT = f"{ROOT / 'examples' / 'demo_agent.py'}:answer"


def run(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agenttrace", *args, "--store", str(store)], capture_output=True, text=True, timeout=120
    )


def eval_run(*extra: str, store: Path, data: Path = DATA, agent: str = AGENT) -> subprocess.CompletedProcess[str]:
    return run("eval", "run", "--data", str(data), "--agent", agent, *extra, store=store)


def test_eval_run_prints_summary_writes_output_and_gates(tmp_path: Path) -> None:
    store = tmp_path / "e.duckdb"
    output = tmp_path / "results.jsonl"
    ok = eval_run(
        "--scorer",
        "contains",
        "--scorer",
        "recall_at_k",
        "--fail-under",
        "recall_at_k=0.9",
        "--name",
        "gate",
        "-o",
        str(output),
        store=store,
    )
    assert ok.returncode == 0, ok.stderr
    assert "contains" in ok.stdout and "recall_at_k" in ok.stdout and "records 47" in ok.stdout
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 47 and {"record_id", "trace_id", "contains", "contains/rationale"} <= set(rows[0])

    failing = eval_run(
        "--scorer",
        "contains",
        "--fail-under",
        "contains=0.99",
        store=store,
    )
    assert failing.returncode == 1 and "threshold failed: contains = 0.9362 < 0.99" in failing.stderr

    listed = run("eval", "list", store=store)
    assert listed.returncode == 0 and listed.stdout.count("FINISHED") == 2 and "gate" in listed.stdout
    shown = run("eval", "show", "gate", store=store)
    assert shown.returncode == 0 and "rag_qa@" in shown.stdout and "rag-001" in shown.stdout
    runs = json.loads(run("eval", "show", "gate", "--json", store=store).stdout)
    compared = run("eval", "compare", "gate", runs["run"]["eval_run_id"][:8], store=store)
    assert compared.returncode == 0 and "contains" in compared.stdout and "regressed: 0" in compared.stdout


def test_eval_run_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    store = tmp_path / "e.duckdb"
    unknown = eval_run("--scorer", "containz", store=store)
    assert unknown.returncode == 1 and "unknown scorer 'containz'; valid scorers:" in unknown.stderr
    missing = eval_run("--scorer", "contains", data=tmp_path / "nope.jsonl", store=store)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    bad_agent = eval_run("--scorer", "contains", agent="no_such_module:fn", store=store)
    assert bad_agent.returncode == 2 and "cannot import 'no_such_module'" in bad_agent.stderr
    bad_gate = eval_run(
        "--scorer",
        "contains",
        "--fail-under",
        "contains:0.5",
        store=store,
    )
    assert bad_gate.returncode == 2 and "SCORER=NUMBER" in bad_gate.stderr
    no_run = run("eval", "show", "feed", store=store)
    assert no_run.returncode == 1 and "no eval run 'feed'" in no_run.stderr


def test_scorers_list_shows_builtins_through_the_registry(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "agenttrace", "scorers", "list"], capture_output=True, text=True)
    lines = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()}
    assert (
        lines["exact_match"] == "heuristic" and lines["correctness"] == "judge" and lines["recall_at_k"] == "heuristic"
    )
