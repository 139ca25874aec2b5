"""Traces stamped with agent versions, and the lineage read back: history, comparisons, origins."""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import agenttrace
from agenttrace.errors import AgentNotFoundError, EvaluationError, TraceNotFoundError
from agenttrace.scoring import scorer
from agenttrace.store import _connection

SOURCE = """
import agenttrace


def answer(question, config=None):
    if question == "boom":
        raise RuntimeError("boom")
    return config["prefix"] + question


@agenttrace.trace
def traced(question):
    return question
"""

RECORDS = [
    {"id": "r1", "inputs": {"question": "a"}, "expectations": {"expected": "A:a"}},
    {"id": "r2", "inputs": {"question": "b"}, "expectations": {"expected": "A:b"}},
    {"id": "r3", "inputs": {"question": "c"}, "expectations": {"expected": "B:c"}},
]


@scorer
def correct(outputs, expectations) -> bool:
    return outputs == expectations["expected"]


@pytest.fixture
def bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Agent "bot": version 1 answers with prefix "A:", version 2 with "B:"; champion -> 1."""
    name = f"lineagepkg_{uuid.uuid4().hex[:10]}"
    (tmp_path / "src" / name).mkdir(parents=True)
    (tmp_path / "src" / name / "__init__.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    agenttrace.register_agent("bot", f"{name}:answer", config={"prefix": "A:"})
    agenttrace.register_agent("bot", f"{name}:answer", config={"prefix": "B:"})
    agenttrace.set_alias("bot", "champion", 1)
    return name


def _stamps() -> list[tuple[str | None, str | None, str | None, str]]:
    """(agent_name, agent_version, agent_version_id, trace name) of every stored trace, by start."""
    agenttrace.flush()
    store = agenttrace.tracing.readback.current_store()
    _connection.release()
    with duckdb.connect(str(store.path), read_only=True) as con:
        rows = con.execute(
            "SELECT agent_name, agent_version, agent_version_id, name FROM traces ORDER BY start_time_ns"
        ).fetchall()
    return [tuple(r) for r in rows]


def _version_id(ref: str) -> str:
    return agenttrace.registry.get_agent_version(ref).version_id


# ---- stamping --------------------------------------------------------------------------------


def test_set_active_agent_stamps_traces_until_reset(bot: str) -> None:
    @agenttrace.trace
    def step(x: int) -> int:
        return x

    with agenttrace.set_active_agent("bot", "champion") as active:
        assert active is not None and active.registered
        step(1)
    step(2)
    scope = agenttrace.set_active_agent("freeform", "v9")
    step(3)
    scope.reset()
    assert _stamps() == [
        ("bot", "1", _version_id("bot/1"), "step"),
        (None, None, None, "step"),
        ("freeform", "v9", None, "step"),  # unregistered: no version id
    ]


def test_trace_agent_argument_stamps_an_entry_point(bot: str) -> None:
    @agenttrace.trace(agent="bot@champion")
    def registered(x: int) -> int:
        return x

    @agenttrace.trace(agent="somebot@3")
    def free(x: int) -> int:
        return x

    registered(1)
    free(2)
    assert _stamps() == [("bot", "1", _version_id("bot/1"), "registered"), ("somebot", "3", None, "free")]


def test_load_agent_calls_are_stamped_and_traced(bot: str) -> None:
    loaded = agenttrace.load_agent("bot/2")
    assert loaded(question="q") == "B:q"
    with pytest.raises(RuntimeError):
        loaded(question="boom")
    frame = agenttrace.search_traces(order_by=["start_time ASC"])
    assert list(frame.status) == ["OK", "ERROR"]
    assert _stamps() == [("bot", "2", _version_id("bot/2"), "bot")] * 2


def test_evaluate_resolves_registered_agents_and_keeps_free_labels(bot: str) -> None:
    registered = agenttrace.evaluate(RECORDS, agenttrace.load_agent("bot@champion"), scorers=[correct])
    labelled = agenttrace.evaluate(RECORDS, agenttrace.load_agent("bot/2"), scorers=[correct], agent="bot/2")
    free = agenttrace.evaluate(RECORDS, lambda question: question, scorers=[correct], agent="freebot@v1")
    store = agenttrace.tracing.readback.current_store()
    runs = {r: store.load_eval_run(r)[0] for r in (registered.eval_run_id, labelled.eval_run_id, free.eval_run_id)}
    assert [(run["agent_name"], run["agent_version"], run["agent_version_id"]) for run in runs.values()] == [
        ("bot", "1", _version_id("bot/1")),
        ("bot", "2", _version_id("bot/2")),
        ("freebot", "v1", None),
    ]
    stamps = _stamps()
    assert {s[:3] for s in stamps[:3]} == {("bot", "1", _version_id("bot/1"))}
    assert {s[:3] for s in stamps[-3:]} == {("freebot", "v1", None)}
    with pytest.raises(AgentNotFoundError, match="no alias 'nosuch'"):
        agenttrace.evaluate(RECORDS, lambda question: question, scorers=[correct], agent="bot@nosuch")


def test_registering_inside_a_run_records_the_run(bot: str) -> None:
    from agenttrace.tracking.runs import start_run

    with start_run(name="tuning") as run:
        version = agenttrace.register_agent("bot", f"{bot}:answer", config={"prefix": "C:"})
    assert version.run_id == run.run_id
    assert agenttrace.registry.get_agent_version("bot/1").run_id is None


# ---- history, comparisons, lineage ------------------------------------------------------------


def test_agent_history_has_a_row_per_version_with_evals_and_trace_figures(bot: str) -> None:
    first = agenttrace.evaluate(RECORDS, agenttrace.load_agent("bot/1"), scorers=[correct])  # 2 of 3 correct
    second = agenttrace.evaluate(RECORDS[:1], agenttrace.load_agent("bot/1"), scorers=[correct])  # 1 of 1
    loaded = agenttrace.load_agent("bot/2")
    with pytest.raises(RuntimeError):
        loaded(question="boom")
    loaded(question="ok")
    history = agenttrace.agent_history("bot")
    assert list(history.version) == [1, 2]
    assert list(history.aliases) == [["champion"], []]
    assert list(history.eval_runs) == [2, 0]
    assert history.loc[0, "eval_run_ids"] == [first.eval_run_id, second.eval_run_id]
    assert history.loc[0, "score.correct"] == pytest.approx(3 / 4)  # weighted by records: (2 + 1) / (3 + 1)
    assert pd.isna(history.loc[1, "score.correct"])  # version 2 was never scored
    assert list(history.trace_count) == [4, 2]
    assert list(history.error_rate) == [0.0, 0.5]
    assert (history.latency_p50_ms > 0).all() and (history.latency_p95_ms >= history.latency_p50_ms).all()
    with pytest.raises(AgentNotFoundError, match="registered: bot"):
        agenttrace.agent_history("nobody")


def test_compare_versions_runs_then_reuses_evaluations(bot: str) -> None:
    dataset = agenttrace.datasets.create("qa", RECORDS)
    comparison = agenttrace.compare_versions("bot", "champion", 2, dataset=dataset, scorers=[correct])
    row = comparison.scorers.set_index("scorer").loc["correct"]
    assert (row["a"], row["b"], row["pairs"]) == (pytest.approx(2 / 3), pytest.approx(1 / 3), 3)
    assert set(comparison.regressed.record_id) == {"r1", "r2"} and list(comparison.improved.record_id) == ["r3"]
    runs_before = len(agenttrace.tracing.readback.current_store().list_eval_runs(100))
    again = agenttrace.compare_versions("bot", 1, 2, dataset="qa", scorers=["correct"])
    assert (again.run_a, again.run_b) == (comparison.run_a, comparison.run_b)
    assert len(agenttrace.tracing.readback.current_store().list_eval_runs(100)) == runs_before


def test_compare_versions_without_scorers_needs_stored_evaluations(bot: str) -> None:
    agenttrace.datasets.create("qa", RECORDS)
    with pytest.raises(EvaluationError, match="bot/1 has no finished evaluation on dataset qa@"):
        agenttrace.compare_versions("bot", 1, 2, dataset="qa")


def test_lineage_of_an_eval_trace_and_of_its_eval_run(bot: str) -> None:
    from agenttrace.tracking.runs import start_run

    dataset = agenttrace.datasets.create("qa", RECORDS)
    with start_run(name="nightly", experiment="support") as run:
        result = agenttrace.evaluate(dataset, agenttrace.load_agent("bot@champion"), scorers=[correct])
    trace_id = result.tables["eval_results"].trace_id.iloc[0]
    of_trace = agenttrace.lineage(trace_id)
    of_run = agenttrace.lineage(result.eval_run_id)
    for record in (of_trace, of_run):
        assert record["eval_run_id"] == result.eval_run_id
        assert record["run"]["run_id"] == run.run_id and record["run"]["experiment"] == "support"
        assert record["agent"]["registered"]["version_id"] == _version_id("bot/1")
        assert record["agent"]["registered"]["target"] == f"{bot}:answer"
        assert record["dataset"] == {"name": "qa", "version": dataset.version}
    assert (of_trace["kind"], of_trace["trace_id"], of_run["kind"]) == ("trace", trace_id, "eval_run")
    assert [s["name"] for s in of_trace["scorers"]] == ["correct"]
    assert of_trace["scorers"][0]["source_type"] == "CODE"
    assert of_run["scorers"] == [{"name": "correct", "judge_model": None}]


def test_lineage_of_a_plain_trace_and_of_nothing(bot: str) -> None:
    @agenttrace.trace(agent="loose@1")
    def step() -> int:
        return 1

    step()
    trace_id = agenttrace.search_traces().trace_id.iloc[0]
    record = agenttrace.lineage(trace_id)
    assert record["agent"] == {"name": "loose", "version": "1", "registered": None}
    assert (record["run"], record["dataset"], record["scorers"]) == (None, None, [])
    with pytest.raises(TraceNotFoundError, match="no trace with id 'f00d' and no eval run"):
        agenttrace.lineage("f00d")
