"""Trace summaries fold the same in the store's SQL and in Python, however the spans are batched.

Rows go through the one row builder (`span_row`, as ingest does), then into a real store in one
append or split across two (root first, root last); each stored summary must equal
`schema.fold_trace` of the same rows. FIRST and LATEST are by span time within a batch and by
arrival across batches (documented in `agenttrace.schema.Fold`), so the spans here carry those
facts where they agree.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agenttrace.otel.conventions import MAX_COUNT, map_span
from agenttrace.otel.convert import span_row
from agenttrace.schema import SPAN_NAMES, fold_trace, trace_info
from agenttrace.store import DuckDBStore

T0 = 1_800_000_000_000_000_000
TRACE = "0" * 31 + "1"


def _row(span: int, parent: int | None, start: int, end: int, attrs: dict[str, Any], rank: int) -> dict[str, Any]:
    return span_row(
        trace_id=TRACE, span_id=f"{span:016x}", parent_span_id=None if parent is None else f"{parent:016x}",
        name=f"s{span}", error=False, status_message=None, start_time_ns=T0 + start, end_time_ns=T0 + end,
        attributes=attrs, events=[], resource="{}", scope="x", root_rank=rank, experiment="E", trusted=False,
    )  # fmt: skip


CASES: dict[str, list[dict[str, Any]]] = {
    # A server span of other instrumentation (the true root, no payload) above our local root.
    "true root without outputs, local root with": [
        _row(1, None, 0, 100, {"http.method": "GET"}, 2),
        _row(2, 1, 5, 90, {"agenttrace.span_type": "AGENT", "agenttrace.outputs": '"from local root"'}, 1),
    ],
    "two local roots, the earliest wins": [
        _row(1, 99, 0, 50, {"agenttrace.inputs": '"first"'}, 1),
        _row(2, 98, 10, 60, {"agenttrace.inputs": '"second"'}, 1),
    ],
    "tags and metadata merged as patches, nested, null deletes": [
        _row(
            1,
            None,
            0,
            100,
            {"agenttrace.trace.metadata": '{"a": {"x": 1}, "drop": 1}', "agenttrace.trace.tags": '{"env": "dev"}'},
            2,
        ),
        _row(
            2,
            1,
            10,
            50,
            {"agenttrace.trace.metadata": '{"a": {"y": 2}, "drop": null}', "agenttrace.trace.tags": '{"team": "core"}'},
            0,
        ),
    ],  # fmt: skip
    "tokens summed, counts past the bound unknown": [
        _row(1, None, 0, 100, {"gen_ai.usage.input_tokens": 2**63 - 1, "llm.token_count.completion": 3}, 2),
        _row(2, 1, 10, 20, {"gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 4}, 0),
        _row(3, 1, 20, 30, {"gen_ai.usage.input_tokens": MAX_COUNT + 1}, 0),
    ],
}


# Merges follow arrival across batches (documented): a root ends, so arrives, after its children,
# so the merge case is not batched root first.
_BATCHINGS = [
    (case, batches)
    for case in CASES
    for batches in ("one", "root first", "root last")
    if not (case.startswith("tags and metadata") and batches == "root first")
]


@pytest.mark.parametrize(("case", "batches"), _BATCHINGS)
def test_store_folds_as_python_does(tmp_path: Path, case: str, batches: str) -> None:
    rows = CASES[case]
    expected = trace_info(fold_trace(rows))
    store = DuckDBStore(tmp_path / "s.duckdb")
    parts = {"one": [rows], "root first": [rows[:1], rows[1:]], "root last": [rows[1:], rows[:1]]}[batches]
    for part in parts:
        store.append_spans(part)
    assert store.get_trace(TRACE).info == expected


def test_the_folds_say_what_they_mean() -> None:
    info = {name: trace_info(fold_trace(rows)) for name, rows in CASES.items()}
    assert info["true root without outputs, local root with"].outputs is None
    assert info["true root without outputs, local root with"].name == "s1"
    assert info["two local roots, the earliest wins"].inputs == "first"
    merged = info["tags and metadata merged as patches, nested, null deletes"]
    # The root ended last: its patch applies last, so "drop" survives, set again by the root.
    assert merged.metadata == {"a": {"y": 2, "x": 1}, "drop": 1} and merged.tags == {"team": "core", "env": "dev"}
    tokens = info["tokens summed, counts past the bound unknown"]
    assert (tokens.input_tokens, tokens.output_tokens, tokens.total_tokens) == (7, 7, 14)


# What an OTLP sender may put in an attribute value: every AnyValue kind, nested.
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
    | st.sampled_from(["{", "[", '{"role": "user"}', "[" * 3000 + "]" * 3000, '[{"parts": 5}]']),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
_KEYS = st.sampled_from([
    "llm.input_messages.0.message.role", "llm.input_messages.0.message.content",
    "llm.input_messages.0.message.tool_calls", "llm.output_messages.1.message.tool_calls.0.tool_call.id",
    "llm.output_messages.0.message.contents.0.message_content.text", "input.value", "output.value",
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.prompt.0.content", "gen_ai.completion.0.tool_calls",
    "retrieval.documents.0.document.metadata", "retrieval.documents.9999999999.document.id",
    "llm.input_messages." + ".".join(["0"] * 40), "tag.tags", "metadata", "gen_ai.usage.input_tokens",
    "agenttrace.inputs", "agenttrace.span_type", "traceloop.entity.input",
])  # fmt: skip
_KINDS = st.sampled_from([{"openinference.span.kind": "LLM"}, {"openinference.span.kind": "RETRIEVER"},
                          {"gen_ai.operation.name": "chat"}, {}])  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=_KINDS, attrs=st.dictionaries(_KEYS, _VALUES, max_size=5))
def test_the_mapper_takes_anything_a_sender_sends(tmp_path: Path, kind: dict, attrs: dict) -> None:
    attributes = {**attrs, **kind}
    facts = map_span(attributes, [{"name": "gen_ai.choice", "timestamp_ns": 1, "attributes": attrs}], False)
    assert set(facts) <= set(SPAN_NAMES)
    # One store for every example (tmp_path is the same across them): a trace id per example.
    trace_id = f"{next(_FUZZ_TRACES):032x}"
    row = {**_row(1, None, 0, 10, attributes, 2), "trace_id": trace_id}
    store = DuckDBStore(tmp_path / "fuzz.duckdb")
    store.append_spans([row])  # valid JSON, counts the sums can hold: the store takes it
    assert store.get_trace(trace_id).info.span_count == 1


_FUZZ_TRACES = itertools.count(1)


def test_every_builder_fills_declared_columns_only() -> None:
    plain = _row(1, None, 0, 1, {"agenttrace.span_type": "TOOL"}, 2)
    mapped = _row(2, None, 0, 1, {"openinference.span.kind": "LLM", "llm.model_name": "m"}, 2)
    trusted_plain = span_row(
        trace_id=TRACE, span_id="1" * 16, parent_span_id=None, name="n", error=False, status_message=None,
        start_time_ns=1, end_time_ns=2, attributes={"agenttrace.inputs": "{}"}, events=[], resource="{}",
        scope=None, root_rank=2, experiment=None, trusted=True,
    )  # fmt: skip
    for row in (plain, mapped, trusted_plain):
        assert set(row) <= set(SPAN_NAMES), set(row) - set(SPAN_NAMES)
