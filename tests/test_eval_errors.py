"""Errored cells count: in pass rates, in gates, in comparisons and in a run's status."""

from __future__ import annotations

from pathlib import Path

import pytest

import agenttrace
from agenttrace.errors import InvalidArgumentError
from agenttrace.evaluation.gates import check_thresholds, parse_error_budget, parse_thresholds, regression_failures
from agenttrace.store import DuckDBStore, _connection
from tests.judge_stub import StubFailure, StubJudgeServer

RECORDS = [
    {"id": f"r{i}", "inputs": {"question": f"q{i}"}, "expectations": {"expected_answer": f"a{i}"}} for i in range(1, 5)
]


def agent_crashing_on(*crash: str):  # noqa: ANN201 - a predict_fn
    def answer(question: str) -> str:
        if question in crash:
            raise RuntimeError(f"cannot answer {question}")
        return "a" + question[1:]

    return answer


def test_an_agent_crashing_on_three_of_four_records_fails_the_gate() -> None:
    result = agenttrace.evaluate(RECORDS, agent_crashing_on("q2", "q3", "q4"), scorers=["contains"])
    summary = result.metrics["scorers"]["contains"]
    assert summary["n"] == 4 and summary["count"] == 1 and summary["errors"] == 3
    assert summary["pass_rate"] == 0.25 and summary["pass_rate_without_errors"] == 1.0
    assert check_thresholds(result.metrics, {"contains": 0.9}) == [
        "contains = 0.25 < 0.9 (3 errored of 4, counted as failures)"
    ]
    assert check_thresholds(result.metrics, {"contains": 0.9}, errors="ignore") == []
    assert result.scorer_value("contains") == 0.25 and result.scorer_value("contains", "ignore") == 1.0
    assert check_thresholds(result.metrics, {}, budget=parse_error_budget("2")) == [
        "3 errored records > --max-errors 2"
    ]
    assert check_thresholds(result.metrics, {}, budget=parse_error_budget("75%")) == []
    assert check_thresholds(result.metrics, {}, budget=parse_error_budget("50%")) == [
        "3 of 4 records errored (75.0%) > --max-errors 50%"
    ]
    assert result.status == "FINISHED_WITH_ERRORS"


def test_a_numeric_scorer_counts_an_errored_cell_as_zero() -> None:
    result = agenttrace.evaluate(RECORDS, agent_crashing_on("q4"), scorers=["token_f1"])
    summary = result.metrics["scorers"]["token_f1"]
    assert summary["mean"] == 0.75 and summary["mean_without_errors"] == 1.0
    assert summary["ci95"][0] <= 0.75 <= summary["ci95"][1]


def test_a_run_whose_cells_all_errored_is_not_finished_green(store_path: Path) -> None:
    with StubJudgeServer(responder=lambda request: StubFailure(500)) as stub:
        result = agenttrace.evaluate(
            RECORDS[:2],
            agent_crashing_on(),
            scorers=["correctness"],
            judge_model="m",
            judge_base_url=stub.base_url,
            judge_options={"max_retries": 0},
            run_name="judged",
        )
        assert stub.calls == 2  # max_retries=0 reached the client: one attempt per record
    assert result.status == "FINISHED_WITH_ERRORS"
    summary = result.metrics["scorers"]["correctness"]
    assert summary["pass_rate"] == 0.0 and summary["pass_rate_without_errors"] is None and summary["errors"] == 2
    assert check_thresholds(result.metrics, {"correctness": 0.5}, errors="ignore") == [
        "correctness = None < 0.5 (2 errored of 2, left out (--errors ignore))"
    ]
    _connection.release()
    assert DuckDBStore(store_path).load_eval_run("judged")[0]["status"] == "FINISHED_WITH_ERRORS"


def test_a_clean_run_stays_finished() -> None:
    result = agenttrace.evaluate(RECORDS, agent_crashing_on(), scorers=["contains"])
    assert result.status == "FINISHED" and result.metrics["run"]["errored_records"] == 0
    assert result.metrics["scorers"]["contains"]["pass_rate"] == 1.0


def test_a_comparison_catches_a_new_crash_and_credits_a_fixed_one() -> None:
    before = agenttrace.evaluate(RECORDS, agent_crashing_on(), scorers=["contains"], run_name="before")
    after = agenttrace.evaluate(RECORDS, agent_crashing_on("q2"), scorers=["contains"], run_name="after")
    comparison = agenttrace.compare_evals(before.eval_run_id, after.eval_run_id)
    row = comparison.scorers.iloc[0]
    assert row.delta == pytest.approx(-0.25) and row.pairs == 4 and row.new_errors == 1
    assert row.ci95_low <= row.delta <= row.ci95_high
    assert list(comparison.regressed.record_id) == ["r2"]
    assert list(comparison.new_errors.record_id) == ["r2"]
    assert "RuntimeError: cannot answer q2" in comparison.new_errors.error[0]
    assert regression_failures(comparison, 0.05) == ["1 records now fail with an error: r2"]

    back = agenttrace.compare_evals("after", "before")
    assert list(back.improved.record_id) == ["r2"] and list(back.fixed_errors.record_id) == ["r2"]
    assert back.regressed.empty and back.new_errors.empty and regression_failures(back, 0.05) == []
    assert back.to_dict()["fixed_errors"][0]["record_id"] == "r2"


def test_a_significant_regression_fails_the_regression_gate() -> None:
    records = [
        {"id": f"r{i}", "inputs": {"question": f"q{i}"}, "expectations": {"expected_answer": f"a{i}"}}
        for i in range(12)
    ]
    good = agenttrace.evaluate(records, agent_crashing_on(), scorers=["exact_match"])
    bad = agenttrace.evaluate(records, lambda question: "wrong", scorers=["exact_match"])
    comparison = agenttrace.compare_evals(good.eval_run_id, bad.eval_run_id)
    row = comparison.scorers.iloc[0]
    assert row.delta == -1.0 and row.p_value < 0.001 and row.ci95_high == -1.0
    assert regression_failures(comparison, 0.05) == [f"exact_match regressed by -1.000 (p = {row.p_value:.3g} < 0.05)"]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["contains:0.5"], "use SCORER=NUMBER"),
        (["contains=high"], "the threshold 'high' is not a number"),
        (["contains=nan"], "must be a finite number"),
    ],
)
def test_bad_thresholds_are_refused(items: list[str], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        parse_thresholds(items)


def test_a_threshold_on_a_scorer_the_run_lacks_fails() -> None:
    result = agenttrace.evaluate(RECORDS[:1], agent_crashing_on(), scorers=["contains"])
    assert check_thresholds(result.metrics, {"exact_match": 0.5}) == [
        "exact_match is not a scorer of this run (it has contains)"
    ]


@pytest.mark.parametrize("text", ["", "x", "-1", "1.5", "101%"])
def test_bad_error_budgets_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_error_budget(text)
