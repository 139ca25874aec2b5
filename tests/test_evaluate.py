"""evaluate(): traces per record, scores stored as assessments, metrics, errors kept in their cells."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import agenttrace
from agenttrace.errors import DatasetError, EvaluationError, UnknownScorerError
from agenttrace.records import Score
from agenttrace.scoring import scorer
from agenttrace.store import DuckDBStore, _connection
from tests.judge_stub import StubFailure, StubJudgeServer

RECORDS = [
    {"id": "r1", "inputs": {"question": "capital of France"}, "expectations": {"expected_answer": "Paris"}},
    {"id": "r2", "inputs": {"question": "capital of Spain"}, "expectations": {"expected_answer": "Madrid"}},
    {"id": "r3", "inputs": {"question": "capital of Italy"}, "expectations": {"expected_answer": "Rome"}},
    {"id": "r4", "inputs": {"question": "capital of Mars"}, "expectations": {"expected_answer": "none"}},
]
ANSWERS = {"France": "Paris", "Spain": "Madrid", "Italy": "Milan"}


@agenttrace.trace(span_type="TOOL")
def lookup(country: str) -> str:
    if country not in ANSWERS:
        raise KeyError(country)
    return ANSWERS[country]


@agenttrace.trace(span_type="AGENT")
def agent(question: str) -> str:
    return lookup(question.split()[-1])


def test_records_are_traced_scored_and_stored(store_path: Path) -> None:
    result = agenttrace.evaluate(
        RECORDS, agent, scorers=["exact_match", "no_error_spans"], agent=("geo", "v2"), run_name="first"
    )
    table = result.tables["eval_results"]
    assert list(table.record_id) == ["r1", "r2", "r3", "r4"]
    assert list(table.exact_match[:3]) == [True, True, False]
    assert table.error[3] == "KeyError: 'Mars'" and table["exact_match/error"][3].startswith("prediction failed")
    # The crashed record counts as a failure: 2 passes of 4, not 2 of the 3 that finished.
    exact = result.metrics["scorers"]["exact_match"]
    assert exact["pass_rate"] == 0.5 and exact["pass_rate_without_errors"] == pytest.approx(2 / 3)
    assert exact["errors"] == 1 and exact["n"] == 4 and exact["count"] == 3
    assert result.status == "FINISHED_WITH_ERRORS" and result.metrics["run"]["errored_records"] == 1
    assert result.metrics["run"]["prediction_errors"] == 1 and result.metrics["run"]["records"] == 4

    # Each record has its own trace: tagged, with the agent's spans nested under the eval root.
    trace = agenttrace.get_trace(table.trace_id[0])
    assert [(d, s.name) for d, s in trace.walk()] == [(0, "agent"), (1, "agent"), (2, "lookup")]
    assert trace.info.tags["eval_run_id"] == result.eval_run_id and trace.info.tags["record_id"] == "r1"
    assert trace.info.tags["agent_version"] == "v2"
    frame = agenttrace.search_traces(f"tags.eval_run_id = '{result.eval_run_id}'")
    assert len(frame) == 4 and set(frame.agent_name) == {"geo"} and set(frame.agent_version) == {"v2"}
    assert agenttrace.get_trace(table.trace_id[3]).info.status == "ERROR"

    # Scores are assessments on the traces, carrying the run id.
    feedback = {a.name: a for a in trace.assessments}
    assert feedback["exact_match"].value is True and feedback["exact_match"].eval_run_id == result.eval_run_id
    assert feedback["exact_match"].source_type == "CODE"

    # The run is stored with its dataset version and summary.
    info, rows = DuckDBStore(store_path).load_eval_run("first")
    assert info["status"] == "FINISHED_WITH_ERRORS" and info["agent_version"] == "v2" and info["record_count"] == 4
    assert info["summary"]["scorers"]["exact_match"]["pass_rate"] == 0.5
    assert [r["record_id"] for r in rows] == ["r1", "r2", "r3", "r4"]


def test_scorer_returns_and_raises_become_values_and_cell_errors() -> None:
    @scorer
    def length(outputs) -> float:
        return len(outputs)

    @scorer
    def verdicts(outputs, expectations):
        return [Score(True, rationale="ok", name="polite"), Score(0.5, name="brevity")]

    @scorer
    def fragile(outputs):
        if outputs == "Madrid":
            raise RuntimeError("cannot score Madrid")
        return "fine"

    @scorer
    def reads_trace(trace) -> bool:
        return any(s.span_type == "TOOL" for s in trace.spans)

    result = agenttrace.evaluate(RECORDS[:3], agent, scorers=[length, verdicts, fragile, reads_trace])
    table = result.tables["eval_results"]
    assert list(table.length) == [5, 6, 5]
    assert list(table["verdicts/polite"]) == [True] * 3 and list(table["verdicts/brevity"]) == [0.5] * 3
    assert table["fragile/error"][1] == "RuntimeError: cannot score Madrid" and table.fragile[0] == "fine"
    assert list(table.reads_trace) == [True] * 3
    scores = result.metrics["scorers"]
    assert scores["length"]["mean"] == pytest.approx(16 / 3) and scores["fragile"]["errors"] == 1
    assert scores["fragile"]["counts"] == {"fine": 2}
    assert scores["verdicts/polite"]["pass_rate"] == 1.0


def test_async_predict_fn_runs_concurrently() -> None:
    active, peak = [0], [0]

    @agenttrace.trace
    async def slow_agent(question: str) -> str:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await asyncio.sleep(0.2)
        active[0] -= 1
        return "x"

    result = agenttrace.evaluate(RECORDS, slow_agent, scorers=["no_error_spans"], concurrency=4)
    # Counted, not timed (a timed bound fails on a loaded machine): every record was in flight at once.
    assert peak[0] == len(RECORDS)
    assert result.metrics["scorers"]["no_error_spans"]["pass_rate"] == 1.0


def test_thread_concurrency_is_bounded() -> None:
    active, peak, lock = [0], [0], threading.Lock()

    def busy(question: str) -> str:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return "x"

    agenttrace.evaluate(
        [{"inputs": {"question": str(i)}} for i in range(12)], busy, scorers=["json_valid"], concurrency=3
    )
    assert peak[0] == 3


def test_bad_inputs_are_refused_before_anything_runs(store_path: Path, tmp_path: Path) -> None:
    calls = []

    def fn(question: str) -> str:
        calls.append(question)
        return question

    with pytest.raises(DatasetError, match="record 1: record has no 'inputs'"):
        agenttrace.evaluate([{"inputs": {"question": "a"}}, {"question": "b"}], fn, scorers=["exact_match"])
    with pytest.raises(
        EvaluationError,
        match=r"inputs do not fit fn\(question\): record 'x' .* \['query'\]: missing a required argument: 'question'",
    ):
        agenttrace.evaluate([{"id": "x", "inputs": {"query": "a"}}], fn, scorers=["exact_match"])
    with pytest.raises(DatasetError, match="does not exist"):
        agenttrace.evaluate(tmp_path / "missing.jsonl", fn, scorers=["exact_match"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"inputs": {"question": "a"}}\n{"inputs": {"question": \n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: not valid JSON"):
        agenttrace.evaluate(bad, fn, scorers=["exact_match"])
    with pytest.raises(UnknownScorerError, match=r"unknown scorer 'exactmatch'; valid scorers: .*exact_match"):
        agenttrace.evaluate(RECORDS, fn, scorers=["exactmatch"])
    assert calls == []
    _connection.release()
    assert DuckDBStore(store_path).list_eval_runs().empty


def test_data_from_files_and_frames_and_existing_traces(tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    pd.DataFrame(
        {"id": ["a"], "inputs.question": ["capital of France"], "expectations.expected_answer": ["Paris"]}
    ).to_csv(csv, index=False)
    assert agenttrace.evaluate(csv, agent, scorers=["exact_match"]).scorer_value("exact_match") == 1.0
    parquet = tmp_path / "d.parquet"
    pd.DataFrame(
        {
            "inputs": [json.dumps({"question": "capital of Italy"})],
            "expectations": [json.dumps({"expected_answer": "Rome"})],
        }
    ).to_parquet(parquet)
    assert agenttrace.evaluate(parquet, agent, scorers=["exact_match"]).scorer_value("exact_match") == 0.0

    # Score traces that already exist: no predict_fn, expectations from log_expectation.
    agent("capital of Spain")
    traces = agenttrace.search_traces("name = 'agent' AND tags.eval_run_id IS NULL")
    assert len(traces) == 1
    agenttrace.log_expectation(traces.trace_id[0], "expected_answer", "Madrid")
    result = agenttrace.evaluate(traces, scorers=["exact_match"])
    assert result.tables["eval_results"].trace_id[0] == traces.trace_id[0]
    assert result.scorer_value("exact_match") == 1.0
    names = [a.name for a in agenttrace.get_trace(traces.trace_id[0]).assessments]
    assert names == ["expected_answer", "exact_match"]


def test_judges_through_the_real_client_with_cache_and_evaluator_traces(store_path: Path) -> None:
    with StubJudgeServer() as stub:
        first = agenttrace.evaluate(
            RECORDS[:3], agent, scorers=["correctness"], judge_model="stub-judge-1", judge_base_url=stub.base_url
        )
        calls_after_first = stub.calls
        second = agenttrace.evaluate(
            RECORDS[:3], agent, scorers=["correctness"], judge_model="stub-judge-1", judge_base_url=stub.base_url
        )
        assert stub.calls == calls_after_first == 3  # the second run came from the judge cache
    table = first.tables["eval_results"]
    assert list(table.correctness) == [True, True, False]
    assert table["correctness/rationale"][2]
    assert list(second.tables["eval_results"].correctness) == [True, True, False]
    assessment = next(a for a in agenttrace.get_trace(table.trace_id[0]).assessments if a.name == "correctness")
    assert assessment.source_type == "LLM_JUDGE" and assessment.source_id == "stub-judge-1"
    assert assessment.metadata["judge_model"] == "stub-judge-1"
    # Judge calls are EVALUATOR traces of their own, never spans in the agent's trace.
    judge_traces = agenttrace.search_traces("span.type = 'EVALUATOR'", max_results=100)
    assert len(judge_traces) == 3  # one per real call; the cached rerun called no model
    assert all(s.span_type != "EVALUATOR" for s in agenttrace.get_trace(table.trace_id[0]).spans)
    _connection.release()
    info, _ = DuckDBStore(store_path).load_eval_run(first.eval_run_id)
    assert info["judge_model"] == "stub-judge-1"


def test_a_judge_that_keeps_refusing_becomes_a_cell_error() -> None:
    with StubJudgeServer(responder=lambda request: StubFailure(429, retry_after=0.01)) as stub:
        result = agenttrace.evaluate(
            RECORDS[:1], agent, scorers=["correctness"], judge_model="m", judge_base_url=stub.base_url
        )
    error = result.tables["eval_results"]["correctness/error"][0]
    assert "429" in error and result.metrics["scorers"]["correctness"]["errors"] == 1


def test_datasets_are_versioned_by_content(tmp_path: Path) -> None:
    first = agenttrace.datasets.create("geo", RECORDS)
    again = agenttrace.datasets.create("geo", RECORDS)
    changed = agenttrace.datasets.create("geo", RECORDS[:2])
    assert first.version == again.version != changed.version
    assert len(agenttrace.load_dataset("geo")) == 2  # newest
    assert agenttrace.load_dataset("geo", first.version).records[0]["inputs"] == RECORDS[0]["inputs"]
    result = agenttrace.evaluate(f"geo@{first.version}", agent, scorers=["exact_match"])
    assert len(result.tables["eval_results"]) == 4
    with pytest.raises(DatasetError, match=r"no stored dataset 'nope'; stored: geo@"):
        agenttrace.load_dataset("nope")

    agent("capital of France")
    traces = agenttrace.search_traces("tags.eval_run_id IS NULL", max_results=5)
    from_prod = agenttrace.datasets.create("from-prod", traces)
    record = from_prod.records[0]
    assert record["inputs"] == {"question": "capital of France"}
    assert record["expectations"] == {"expected_response": "Paris"} and record["source_trace_id"]


def test_compare_evals_finds_regressions() -> None:
    a = agenttrace.evaluate(RECORDS[:3], agent, scorers=["exact_match"], run_name="a")
    ANSWERS["France"] = "Lyon"
    try:
        agenttrace.evaluate(RECORDS[:3], agent, scorers=["exact_match"], run_name="b")
    finally:
        ANSWERS["France"] = "Paris"
    comparison = agenttrace.compare_evals(a.eval_run_id, "b")  # a name, never read as an id prefix
    row = comparison.scorers.iloc[0]
    assert row.scorer == "exact_match" and row.delta == pytest.approx(-1 / 3) and row.pairs == 3
    assert 0 < row.p_value <= 1
    assert list(comparison.regressed.record_id) == ["r1"] and comparison.improved.empty


_INTERRUPTED = textwrap.dedent(
    """
    import itertools, os, signal, sys, time, agenttrace
    # A shell's background job starts with SIGINT ignored, and children inherit that: restore Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    agenttrace.configure(store=sys.argv[1])
    calls = itertools.count(1)

    def slow(question):
        if next(calls) == 30:  # Ctrl-C arrives while the run is under way
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.02)
        return question

    try:
        agenttrace.evaluate([{"inputs": {"question": str(i)}} for i in range(400)], slow,
                            scorers=["json_valid"], concurrency=2)
    except KeyboardInterrupt:
        print("interrupted")
    """
)


def test_ctrl_c_keeps_results_so_far_and_marks_the_run(tmp_path: Path) -> None:
    path = tmp_path / "ctrlc.duckdb"
    out = subprocess.run([sys.executable, "-c", _INTERRUPTED, str(path)], capture_output=True, text=True, timeout=120)
    assert "interrupted" in out.stdout, out.stderr
    _connection.forget_prepared()
    store = DuckDBStore(path)
    runs = store.list_eval_runs()
    assert list(runs.status) == ["INTERRUPTED"]
    info, rows = store.load_eval_run(runs.eval_run_id[0])
    assert 0 < len(rows) < 400
    assert info["summary"]["run"]["records"] == len(rows)


def test_async_callable_objects_and_sampling_and_failures(store_path: Path) -> None:
    class AsyncAgent:
        async def __call__(self, question: str) -> str:
            return "Paris" if "France" in question else "?"

    agenttrace.configure(sample_rate=0.0)  # evaluation traces are kept whatever the sample rate
    result = agenttrace.evaluate(RECORDS[:2], AsyncAgent(), scorers=["exact_match", "no_error_spans"])
    table = result.tables["eval_results"]
    assert list(table.exact_match) == [True, False] and list(table.no_error_spans) == [True, True]
    assert all(agenttrace.get_trace(t).assessments for t in table.trace_id)

    @scorer
    def odd(outputs):
        return Score(True, rationale=["not", "text"], label=3)

    table = agenttrace.evaluate(RECORDS[:1], agent, scorers=[odd]).tables["eval_results"]
    assert table["odd/rationale"][0] == "['not', 'text']"

    def explode(question: str) -> str:
        raise SystemExit("the agent pulled the plug")

    with pytest.raises(SystemExit):
        agenttrace.evaluate(RECORDS[:1], explode, scorers=["exact_match"], run_name="doomed")
    _connection.release()
    info, _ = DuckDBStore(store_path).load_eval_run("doomed")
    assert info["status"] == "FAILED"


def test_async_evaluation_from_inside_a_running_loop() -> None:
    @agenttrace.trace
    async def agent_async(question: str) -> str:
        return "x"

    async def notebook_cell():
        return agenttrace.evaluate(RECORDS[:2], agent_async, scorers=["json_valid"])

    table = asyncio.run(notebook_cell()).tables["eval_results"]
    # Prediction failures become error cells, so the rows alone would not show a failed run.
    assert list(table.outputs) == ["x", "x"] and table.error.isna().all()


def test_runs_resolve_by_id_then_name_then_prefix(store_path: Path) -> None:
    first = agenttrace.evaluate(RECORDS[:1], agent, scorers=["exact_match"], run_name="nightly")
    # A second run named after the first run's id prefix: the name wins, the prefix still works when longer.
    second = agenttrace.evaluate(RECORDS[:1], agent, scorers=["exact_match"], run_name=first.eval_run_id[:1])
    store = DuckDBStore(store_path)
    assert store.load_eval_run(first.eval_run_id[:1])[0]["eval_run_id"] == second.eval_run_id
    assert store.load_eval_run("nightly")[0]["eval_run_id"] == first.eval_run_id
    assert store.load_eval_run(first.eval_run_id[:8])[0]["eval_run_id"] == first.eval_run_id
    with pytest.raises(EvaluationError, match="no eval run 'zz'"):
        store.load_eval_run("zz")
