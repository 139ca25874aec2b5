"""search_traces and its filter language: results, ordering, and errors that point at the problem."""

from __future__ import annotations

import time

import pytest

import agenttrace
from agenttrace.errors import FilterError, UnknownFieldError
from agenttrace.store._filters import compile_filter


@pytest.fixture
def sample_traces() -> None:
    """Four traces: plan_a (OK, prod, TOOL inside), plan_b (ERROR), chat (slow), other (dev)."""

    @agenttrace.trace(span_type="TOOL")
    def lookup(x):
        return x

    @agenttrace.trace(name="plan_a")
    def plan_a():
        agenttrace.update_current_trace(tags={"env": "prod"}, metadata={"tier": "gold"}, user_id="u1")
        return lookup(1)

    @agenttrace.trace(name="plan_b")
    def plan_b():
        agenttrace.update_current_trace(tags={"env": "prod"}, session_id="s1")
        raise ValueError("boom")

    @agenttrace.trace(name="chat")
    def chat():
        time.sleep(0.06)
        return "slow"

    @agenttrace.trace(name="other")
    def other():
        agenttrace.update_current_trace(tags={"env": "dev"})

    plan_a()
    with pytest.raises(ValueError):
        plan_b()
    chat()
    other()


CASES = [
    ("", {"plan_a", "plan_b", "chat", "other"}),
    ("status = 'ERROR'", {"plan_b"}),
    ("status != 'ERROR'", {"plan_a", "chat", "other"}),
    ("duration_ms > 50", {"chat"}),
    ("tags.env = 'prod'", {"plan_a", "plan_b"}),
    ("tags.env = 'prod' AND status = 'OK'", {"plan_a"}),
    ("name LIKE 'plan%'", {"plan_a", "plan_b"}),
    ("name ILIKE 'PLAN_%' AND NOT status = 'ERROR'", {"plan_a"}),
    ("span.type = 'TOOL'", {"plan_a"}),
    ("tags.env = 'dev' OR duration_ms > 50", {"other", "chat"}),
    ("(tags.env = 'prod' OR tags.env = 'dev') AND name != 'plan_b'", {"plan_a", "other"}),
    ("name IN ('chat', 'other')", {"chat", "other"}),
    ("name NOT IN ('chat', 'other')", {"plan_a", "plan_b"}),
    ("metadata.tier = 'gold'", {"plan_a"}),
    ("session_id = 's1' OR user_id = 'u1'", {"plan_a", "plan_b"}),
    ("session_id IS NULL AND user_id IS NULL", {"chat", "other"}),
    ("timestamp > '2000-01-01'", {"plan_a", "plan_b", "chat", "other"}),
    ("timestamp < '2000-01-01T00:00:00+00:00'", set()),
    ("span_count >= 2", {"plan_a"}),
    ("experiment = 'Default'", {"plan_a", "plan_b", "chat", "other"}),
]


@pytest.mark.usefixtures("sample_traces")
@pytest.mark.parametrize(("filter_string", "names"), CASES, ids=[c[0] or "(none)" for c in CASES])
def test_filters(filter_string: str, names: set[str]) -> None:
    assert set(agenttrace.search_traces(filter_string).name) == names


@pytest.mark.usefixtures("sample_traces")
def test_columns_order_and_limit() -> None:
    frame = agenttrace.search_traces(order_by=["duration_ms DESC"], max_results=2)
    assert list(frame.name)[0] == "chat" and len(frame) == 2
    # The columns the README documents, in order: a change here is a change to the public API.
    assert list(frame.columns) == [
        "trace_id", "name", "status", "start_time", "end_time", "duration_ms", "inputs", "outputs", "tags",
        "metadata", "session_id", "user_id", "span_count", "input_tokens", "output_tokens", "total_tokens",
        "experiment", "run_id", "agent_name", "agent_version", "agent_version_id",
    ]  # fmt: skip
    assert isinstance(frame.tags[0], dict) and isinstance(frame.inputs[0], dict | type(None))
    newest_first = agenttrace.search_traces()
    assert list(newest_first.start_time) == sorted(newest_first.start_time, reverse=True)
    assert set(agenttrace.search_traces(experiment="Default").name) == {"plan_a", "plan_b", "chat", "other"}
    assert agenttrace.search_traces(experiment="nope").empty


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("status = = 'ERROR'", "expected a quoted value or a number or TRUE or FALSE but found `=` at position 9", 9),
        ("status = 'ERROR' AND", "found end of filter at position 20", 20),
        (
            "status 'ERROR'",
            "expected a comparison (=, !=, <, <=, >, >=) or LIKE or ILIKE or IN but found `'ERROR'` at position 7",
            7,
        ),
        ("duration_ms > 'fast'", "duration_ms is numeric", 14),
        ("timestamp > 'yesterday'", "as a time", 12),
        ("status = 'OK' ; DROP TABLE traces", "unexpected character ';' at position 14", 14),
        ("(status = 'OK'", "expected ')' but found end of filter", 14),
        ("timestamp > 1e400", "number 1e400 at position 12 is out of range", 12),
        ("(" * 60 + "status = 'OK'" + ")" * 60, "filter nests deeper than 50 at position 50", 50),
    ],
)
def test_malformed_filters_name_token_and_position(text: str, message: str, position: int) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter(text)
    assert message in str(caught.value)
    assert caught.value.position == position


def test_unknown_field_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownFieldError, match=r"unknown field 'colour' at position 0; valid fields: .*duration_ms"):
        agenttrace.search_traces("colour = 'red'")
    with pytest.raises(UnknownFieldError, match="cannot order by"):
        agenttrace.search_traces(order_by=["colour"])


def test_user_text_never_reaches_sql() -> None:
    sql, params = compile_filter("name = 'x'' OR 1=1 --' AND tags.`a'b` = 'v'")
    assert "OR 1=1" not in sql and "a'b" not in sql
    assert params == ["x' OR 1=1 --", '$."a\'b"', "v"]
    assert agenttrace.search_traces("name = 'x'' OR 1=1 --'").empty


@pytest.mark.usefixtures("sample_traces")
def test_every_declared_trace_column_and_span_column_is_searchable() -> None:
    # Fields derive from agenttrace.schema: a column added there is searchable without another list.
    assert len(agenttrace.search_traces("agent_version_id = 'v-1' OR span.provider = 'openai'")) == 0
    assert len(agenttrace.search_traces("span.type = 'LLM'")) == len(agenttrace.search_traces("span.span_type = 'LLM'"))
