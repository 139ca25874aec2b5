"""Judges in an evaluation: every judge uses the store cache, verdict shapes, judge settings.

All through the real openai client against the local stub (tests/judge_stub.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agenttrace
from agenttrace.errors import InvalidArgumentError
from agenttrace.evaluation.result import EvaluationResult
from agenttrace.store import DuckDBStore, _connection
from evaluators.judges import InMemoryJudgeCache, JudgeError, make_judge, parse_verdict
from evaluators.judges.parsing import BoolOutput, ReplyProblem
from tests.judge_stub import StubJudgeServer, StubReply, sequence

RECORDS = [{"id": f"r{i}", "inputs": {"question": f"q{i}"}} for i in range(3)]
TEMPLATE = "Is this answer polite?\n<output>\n{{ outputs }}\n</output>"


def polite_agent(question: str) -> str:
    return f"Thank you for asking about {question}."


def test_a_make_judge_judge_is_cached_in_the_store(store_path: Path) -> None:
    with StubJudgeServer() as stub:
        first_judge = make_judge("polite", TEMPLATE, model="stub-judge-1", base_url=stub.base_url, api_key="k")
        first = agenttrace.evaluate(RECORDS, polite_agent, scorers=[first_judge])
        assert stub.calls == 3
        assert isinstance(first_judge.client.cache, InMemoryJudgeCache)  # its own cache is given back
        # A new judge object has an empty in-memory cache: only the store can answer it.
        second_judge = make_judge("polite", TEMPLATE, model="stub-judge-1", base_url=stub.base_url, api_key="k")
        second = agenttrace.evaluate(RECORDS, polite_agent, scorers=[second_judge])
        assert stub.calls == 3
        # Another model is another key: the cache is keyed by model + messages + parameters.
        other = make_judge("polite", TEMPLATE, model="stub-judge-2", base_url=stub.base_url, api_key="k")
        agenttrace.evaluate(RECORDS[:1], polite_agent, scorers=[other])
        assert stub.calls == 4
    assert list(first.tables["eval_results"].polite) == list(second.tables["eval_results"].polite) == [True] * 3
    assert all(m["cached"] for m in _metadata(second, "polite"))
    # Its calls are EVALUATOR traces, like a built-in judge's.
    assert len(agenttrace.search_traces("span.type = 'EVALUATOR'", max_results=100)) == 4
    _connection.release()
    assert len(DuckDBStore(store_path).judge_cache_load()) == 4


def test_a_judge_built_without_a_cache_stays_uncached() -> None:
    with StubJudgeServer() as stub:
        judge = make_judge("polite", TEMPLATE, model="m", base_url=stub.base_url, api_key="k", cache=False)
        agenttrace.evaluate(RECORDS[:1], polite_agent, scorers=[judge])
        agenttrace.evaluate(RECORDS[:1], polite_agent, scorers=[judge])
        assert stub.calls == 2


def _metadata(result: EvaluationResult, name: str) -> list[dict]:
    trace_ids = list(result.tables["eval_results"].trace_id)
    return [next(a for a in agenttrace.get_trace(t).assessments if a.name == name).metadata for t in trace_ids]


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ('{"score": 1.0, "label": "pass"}', True),
        ('{"score": 0.0, "label": "fail"}', False),
        ("1.0", True),
        ("0", False),
        ("yes", True),
        ("No.", False),
        ('"pass"', True),
        ("true", True),
        ('{"value": 1.0}', True),
        ('{"verdict": "FAIL", "reason": "rude"}', False),
    ],
)
def test_unambiguous_verdicts_are_accepted(reply: str, value: bool) -> None:
    assert parse_verdict(reply, BoolOutput()).value is value


@pytest.mark.parametrize(
    "reply",
    [
        '{"score": 1.0, "label": "fail"}',
        '{"score": 0.9, "label": "pass"}',
        '{"value": "yes", "verdict": "no"}',
        "0.5",
        "2",
        "maybe",
        "I think yes",
    ],
)
def test_ambiguous_verdicts_are_refused(reply: str) -> None:
    with pytest.raises(ReplyProblem):
        parse_verdict(reply, BoolOutput())


def test_an_ambiguous_judge_keeps_its_raw_reply_on_the_error() -> None:
    ambiguous = '{"score": 1.0, "label": "fail"}'
    with StubJudgeServer(responder=lambda request: ambiguous) as stub:
        judge = make_judge("polite", TEMPLATE, model="m", base_url=stub.base_url, api_key="k")
        with pytest.raises(JudgeError) as info:
            judge(outputs="hello")
        assert stub.calls == 2  # the reply, and one corrective re-ask
    assert info.value.raw_reply == ambiguous and info.value.reason == "invalid_value"
    assert "ambiguous" in str(info.value)


def test_a_yes_no_judge_takes_a_score_and_label_reply_in_an_evaluation() -> None:
    with StubJudgeServer(responder=sequence(StubReply('{"score": 1.0, "label": "pass"}'), "1.0", "no")) as stub:
        result = agenttrace.evaluate(
            RECORDS, polite_agent, scorers=["safety"], judge_model="m", judge_base_url=stub.base_url, concurrency=1
        )
    assert list(result.tables["eval_results"].safety) == [True, True, False]
    assert result.status == "FINISHED"


def test_judge_settings_reach_the_endpoint() -> None:
    with StubJudgeServer() as stub:
        custom = make_judge("polite", TEMPLATE, model="m", base_url=stub.base_url, api_key="k")
        agenttrace.evaluate(
            [{"id": f"r{i}", "inputs": {"question": f"q{i}"}} for i in range(8)],
            polite_agent,
            scorers=["safety", custom],
            judge_model="m",
            judge_base_url=stub.base_url,
            judge_options={"temperature": 0.3, "max_concurrency": 1, "timeout": 5, "max_retries": 1},
            concurrency=4,
        )
        temperatures = {r["messages"][1]["content"].startswith("Is this"): r["temperature"] for r in stub.requests}
        assert temperatures == {False: 0.3, True: 0}  # the named judge's setting; the built judge keeps its own
        assert stub.max_in_flight == 1  # one limit for the endpoint, shared by both judges
    assert custom.client.limiter.limit == 16  # its own limiter is given back after the run


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temprature": 1}, "'temprature' is not one of"),
        ({"timeout": -1}, "non-negative"),
        ({"max_concurrency": 0}, "above 0"),
    ],
)
def test_bad_judge_settings_are_refused(options: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        agenttrace.evaluate(RECORDS, polite_agent, scorers=["exact_match"], judge_options=options)


def test_judge_settings_from_the_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    agent = tmp_path / "agent.py"
    agent.write_text("def answer(question):\n    return 'fine'\n")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"inputs": {"question": "q"}}) + "\n")
    with StubJudgeServer() as stub:
        out = subprocess.run(
            [sys.executable, "-m", "agenttrace", "eval", "run", "--data", str(data), "--agent", f"{agent}:answer",
             "--scorer", "safety", "--judge-model", "m", "--judge-base-url", stub.base_url,
             "--judge-temperature", "0.7", "--judge-retries", "0", "--judge-timeout", "5",
             "--judge-max-concurrency", "2", "--json", "--store", str(tmp_path / "s.duckdb")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert [r["temperature"] for r in stub.requests] == [0.7]
    assert json.loads(out.stdout)["metrics"]["scorers"]["safety"]["pass_rate"] == 1.0
