"""Public errors: every one derives from AgentTraceError, is drawn in errors.py, and names what was wrong."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

import agenttrace
from agenttrace import errors
from agenttrace.errors import AgentTraceError, FilterError, InvalidArgumentError, InvalidScorerError
from agenttrace.scoring import Scorer, as_scorers, normalize_result, scorer
from agenttrace.server.app import _error, http_status
from agenttrace.tracing.server_reads import ServerReads
from evaluators.heuristic import (
    ContainsAll,
    ExactMatch,
    JsonSchema,
    LatencyUnder,
    NoErrorSpans,
    RecallAtK,
    RegexMatch,
    TokensUnder,
)
from evaluators.judges.limiter import AdaptiveLimiter
from tests.server_harness import ServerThread

# ---- the tree in errors.py's docstring is the hierarchy ---------------------------------------

_BRANCH = re.compile(r"^ {4}((?:│   | {4})*)(?:├|└)── (\w+)")


def _drawn() -> dict[str, str]:
    """Each class drawn in the docstring with the class drawn as its parent."""
    parents: dict[str, str] = {}
    stack = ["AgentTraceError"]
    for line in (errors.__doc__ or "").splitlines():
        m = _BRANCH.match(line)
        if m:
            depth = len(m.group(1)) // 4 + 1
            del stack[depth:]
            parents[m.group(2)] = stack[-1]
            stack.append(m.group(2))
    return parents


def test_the_docstring_draws_every_error_under_its_real_base() -> None:
    drawn = _drawn()
    assert set(drawn) | {"AgentTraceError"} == set(errors.__all__)
    for name, parent in drawn.items():
        assert issubclass(getattr(errors, name), getattr(errors, parent)), f"{name} is drawn under {parent}"


def test_the_new_errors_keep_the_builtin_excepts_working() -> None:
    assert issubclass(InvalidArgumentError, AgentTraceError) and issubclass(InvalidArgumentError, ValueError)
    assert issubclass(InvalidScorerError, errors.EvaluationError) and issubclass(InvalidScorerError, TypeError)


# ---- search_traces' arguments ------------------------------------------------------------------


@agenttrace.trace
def _traced(x: int) -> int:
    return x


@pytest.mark.parametrize("order_by", [5, [5], {"name": "ASC"}, ["name", None]])
def test_an_order_by_that_is_not_text_is_a_filter_error_naming_it(order_by: object) -> None:
    _traced(1)
    says = rf"order_by must be a string or a list of strings.*{re.escape(repr(order_by))}"
    with pytest.raises(FilterError, match=says):
        agenttrace.search_traces(order_by=order_by)


@pytest.mark.parametrize("max_results", [0, -3, True, "10", 2.5])
def test_a_bad_max_results_is_an_invalid_argument_naming_it(max_results: object) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"max_results must be .* got {re.escape(repr(max_results))}"):
        agenttrace.search_traces(max_results=max_results)


def test_order_by_as_a_tuple_still_orders() -> None:
    assert [_traced(i) for i in (2, 1)] == [2, 1]
    frame = agenttrace.search_traces(order_by=("start_time ASC",))
    assert [row["x"] for row in frame.inputs] == [2, 1]


# ---- client mode: what the server refused comes back as our error -------------------------------


def test_the_servers_400_and_422_come_back_as_invalid_argument(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "srv.duckdb") as srv:
        reads = ServerReads(srv.url)
        # FastAPI's own validation (422) of a query parameter: the message names the parameter
        with pytest.raises(InvalidArgumentError, match="max_results"):
            reads.search_traces(max_results=0)
        # a ValueError on the server (400): its message comes through
        with pytest.raises(InvalidArgumentError, match="human, code or llm_judge"):
            reads.log_assessment("0" * 32, "x", 1, kind="feedback", source_type="BOT")


def test_the_server_maps_invalid_argument_to_400_with_its_type_name() -> None:
    exc = InvalidArgumentError("max_results must be at least 1, got 0")
    response = asyncio.run(_error(None, exc))
    assert http_status(exc) == response.status_code == 400
    assert json.loads(bytes(response.body)) == {"error": str(exc), "type": "InvalidArgumentError"}
    assert http_status(InvalidScorerError("x")) == 400


# ---- the scorer contract --------------------------------------------------------------------------


def test_a_scorer_asking_for_unknown_arguments_is_an_invalid_scorer() -> None:
    def graded(outputs: str, reference: str) -> bool:
        return outputs == reference

    with pytest.raises(InvalidScorerError, match=r"'graded' asks for \['reference'\]"):
        scorer(graded)


@pytest.mark.parametrize(
    ("result", "says"),
    [(None, "returned None"), ([], "returned an empty list"), ({"v": 1}, "returned dict")],
)
def test_a_scorer_result_that_is_no_score_is_an_invalid_scorer(result: object, says: str) -> None:
    with pytest.raises(InvalidScorerError, match=f"scorer 'mine' {says}"):
        normalize_result("mine", result)


def test_something_that_is_not_a_scorer_is_an_invalid_scorer() -> None:
    with pytest.raises(InvalidScorerError, match="42 is not a scorer"):
        as_scorers([42])


def test_a_scorer_subclass_without_score_says_so() -> None:
    class Empty(Scorer):
        name = "empty"

    with pytest.raises(InvalidScorerError, match="Empty has no score"):
        Empty()(outputs="x")


# ---- built-in scorers: bad constructor arguments and records they cannot score ----------------


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda: LatencyUnder(max_ms=-1), "max_ms must be a non-negative number, got -1"),
        (lambda: TokensUnder(max_tokens="many"), "max_tokens must be a non-negative number, got 'many'"),
        (lambda: RecallAtK(k=0), "k must be a positive integer, got 0"),
        (lambda: ContainsAll(facts=[]), "facts is empty"),
        (lambda: RegexMatch("("), r"invalid pattern '\('"),
        (lambda: JsonSchema({"type": 5}), r"the schema is invalid at \$\.type"),
        (lambda: AdaptiveLimiter(max_concurrency=0), "max_concurrency must be at least 1, got 0"),
        (lambda: AdaptiveLimiter(increase_after=0), "increase_after must be at least 1, got 0"),
    ],
)
def test_bad_scorer_arguments_are_invalid_arguments_naming_them(build, says: str) -> None:
    with pytest.raises(InvalidArgumentError, match=says):
        build()


@pytest.mark.parametrize(
    ("score", "says"),
    [
        (lambda: ExactMatch()(outputs="a", expectations={}), r"exact_match needs expectations\['expected_answer'\] or"),
        (lambda: NoErrorSpans()(trace=None), "needs the record's trace"),
    ],
)
def test_a_record_a_scorer_cannot_use_is_an_invalid_argument_naming_what_is_missing(score, says: str) -> None:
    with pytest.raises(InvalidArgumentError, match=says):
        score()


def test_a_bool_schema_is_a_valid_schema() -> None:
    assert JsonSchema(True)(outputs='{"a": 1}').value is True
    assert JsonSchema(False)(outputs='{"a": 1}').value is False
