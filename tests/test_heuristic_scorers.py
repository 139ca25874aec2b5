"""Heuristic scorers: pass, fail, normalisation and edge cases, as tables; trace checks on real records."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

import evaluators.heuristic as heuristic
from agenttrace.records import Score, SpanRecord, Trace, TraceInfo
from agenttrace.scoring import Scorer
from evaluators.heuristic import (
    MRR,
    NDCG,
    Bleu,
    Contains,
    ContainsAll,
    ContainsAny,
    EditSimilarity,
    ExactMatch,
    JsonSchema,
    JsonValid,
    LatencyUnder,
    NoErrorSpans,
    PrecisionAtK,
    RecallAtK,
    RegexMatch,
    RougeL,
    TokenF1,
    TokensUnder,
    ToolCalled,
    ToolSequence,
)

MS = 1_000_000  # nanoseconds per millisecond


def span(
    name: str,
    span_type: str = "CHAIN",
    start_ms: int = 0,
    end_ms: int = 10,
    *,
    span_id: str | None = None,
    parent: str | None = None,
    status: str = "OK",
    message: str | None = None,
    outputs: Any = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
) -> SpanRecord:
    return SpanRecord(
        trace_id="t1",
        span_id=span_id or f"{name}-{start_ms}",
        parent_span_id=parent,
        name=name,
        span_type=span_type,
        status=status,
        start_time_ns=start_ms * MS,
        end_time_ns=end_ms * MS,
        outputs=outputs,
        status_message=message,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


def make_trace(
    *spans: SpanRecord,
    duration_ms: float | None = 100.0,
    total_tokens: int | None = None,
    status: str = "OK",
) -> Trace:
    info = TraceInfo(
        trace_id="t1",
        name="agent",
        status=status,
        start_time_ns=0,
        end_time_ns=None if duration_ms is None else int(duration_ms * MS),
        duration_ms=duration_ms,
        span_count=len(spans),
        total_tokens=total_tokens,
    )
    return Trace(info=info, spans=list(spans))


def answer(text: Any) -> dict[str, Any]:
    return {"expected_answer": text}


# --- the package surface ---------------------------------------------------------------------------

BOOLEAN = {
    "exact_match",
    "contains",
    "contains_all",
    "contains_any",
    "json_valid",
    "no_error_spans",
    "tool_called",
    "tool_sequence",
    "latency_under",
    "tokens_under",
}
NUMERIC = {"edit_similarity", "token_f1", "rouge_l", "bleu", "recall_at_k", "precision_at_k", "mrr", "ndcg"}


def test_exported_names_are_pinned_and_sorted():
    assert heuristic.__all__ == sorted(heuristic.__all__)
    assert set(heuristic.__all__) == {
        "BUILTIN_HEURISTICS", "Bleu", "Contains", "ContainsAll", "ContainsAny", "EditSimilarity",
        "ExactMatch", "JsonSchema", "JsonValid", "LatencyUnder", "MRR", "NDCG", "NoErrorSpans",
        "Normalization", "PrecisionAtK", "RecallAtK", "RegexMatch", "RougeL", "TokenF1", "TokensUnder",
        "ToolCalled", "ToolSequence",
    }  # fmt: skip


def test_builtin_names_build_with_no_arguments_and_declare_their_aggregation():
    assert set(heuristic.BUILTIN_HEURISTICS) == BOOLEAN | NUMERIC
    for registry_name, cls in heuristic.BUILTIN_HEURISTICS.items():
        instance = cls()
        assert isinstance(instance, Scorer)
        assert instance.name == registry_name
        assert instance.aggregation == ("boolean" if registry_name in BOOLEAN else "numeric")


def test_builtin_defaults():
    assert RecallAtK().k == PrecisionAtK().k == NDCG().k == 5
    assert MRR().k is None
    assert LatencyUnder().max_ms == 30_000
    assert TokensUnder().max_tokens == 100_000


def test_name_override_is_per_instance():
    renamed = RecallAtK(k=3, name="recall_at_3")
    assert (renamed.name, renamed.k) == ("recall_at_3", 3)
    assert RecallAtK().name == "recall_at_k"


def test_every_builtin_scores_through_the_engine() -> None:
    """evaluate() calls each built-in with the arguments it takes, on a real traced run, without errors."""
    import agenttrace

    @agenttrace.trace(span_type="TOOL")
    def search(query: str) -> str:
        return "found"

    @agenttrace.trace(span_type="RETRIEVER")
    def retrieve(query: str) -> list[dict]:
        return [{"id": "d1"}]

    def agent(question: str) -> str:
        search(question)
        retrieve(question)
        with agenttrace.span("call_llm", span_type="LLM") as llm:
            llm.set_attributes({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5})
        return "The Eiffel Tower is in Paris."

    record = {
        "inputs": {"question": "Where is the Eiffel Tower?"},
        "expectations": {
            "expected_answer": "Paris",
            "expected_facts": ["Paris"],
            "relevant_doc_ids": ["d1"],
            "expected_tool_calls": ["search"],
        },
    }
    result = agenttrace.evaluate([record], agent, scorers=list(heuristic.BUILTIN_HEURISTICS))
    table = result.tables["eval_results"]
    assert table.error.isna().all()
    for name in heuristic.BUILTIN_HEURISTICS:
        assert table[name].notna().all() and table[f"{name}/error"].isna().all(), table.iloc[0].to_dict()


# --- missing and empty expectations ----------------------------------------------------------------

TOOL_TRACE = make_trace(span("search", "TOOL", 0, 5))


@pytest.mark.parametrize(
    ("scorer", "expectations", "key"),
    [
        (ExactMatch(), None, "expected_answer"),
        (ExactMatch(), {}, "expected_answer"),
        (ExactMatch(), {"expected_answer": None}, "expected_answer"),
        (Contains(), {"expected_facts": ["Paris"]}, "expected_answer"),
        (ContainsAll(), {"expected_answer": "Paris"}, "expected_facts"),
        (ContainsAny(), {}, "expected_facts"),
        (EditSimilarity(), {}, "expected_answer"),
        (TokenF1(), {}, "expected_answer"),
        (RougeL(), {}, "expected_answer"),
        (Bleu(), {}, "expected_answer"),
        (RecallAtK(), {"expected_answer": "Paris"}, "relevant_doc_ids"),
        (PrecisionAtK(), {}, "relevant_doc_ids"),
        (MRR(), {}, "relevant_doc_ids"),
        (NDCG(), {}, "relevant_doc_ids"),
        (ToolCalled(), {}, "expected_tool_calls"),
        (ToolSequence(), {}, "expected_tool_calls"),
    ],
    ids=lambda v: v.name if isinstance(v, Scorer) else None,
)
def test_missing_expectation_raises_naming_the_key(scorer, expectations, key):
    with pytest.raises(ValueError, match=re.escape(f"expectations[{key!r}]")):
        scorer(outputs="Paris", expectations=expectations, trace=TOOL_TRACE)


@pytest.mark.parametrize(
    ("scorer", "expectations", "message"),
    [
        (ExactMatch(), {"expected_answer": []}, "expectations['expected_answer'] is empty"),
        (ContainsAll(), {"expected_facts": []}, "expectations['expected_facts'] is empty"),
        (RecallAtK(), {"relevant_doc_ids": []}, "expectations['relevant_doc_ids'] is empty"),
        (Contains(), {"expected_answer": "The."}, "is empty after normalisation"),
        (
            ContainsAny(),
            {"expected_facts": ["Paris", "an"]},
            "'an' in expectations['expected_facts'] is empty",
        ),
    ],
)
def test_empty_expectation_raises(scorer, expectations, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        scorer(outputs="Paris", expectations=expectations)


def test_expected_response_is_accepted_in_place_of_expected_answer():
    assert ExactMatch()(outputs="Paris", expectations={"expected_response": "paris"}).value is True


# --- exact match and output conversion -------------------------------------------------------------


@pytest.mark.parametrize(
    ("outputs", "expected", "options", "value"),
    [
        ("Paris", "Paris", {}, True),
        ("Paris", "London", {}, False),
        ("  The   PARIS. ", "paris", {}, True),
        ("\u201cParis\u201d\u2014", "Paris", {}, True),
        ("an apple", "Apple", {}, True),
        ("Theatre", "atre", {}, False),
        ("paris", "Paris", {"ignore_case": False}, False),
        ("Paris!", "Paris", {"ignore_punctuation": False}, False),
        ("the Paris", "Paris", {"ignore_articles": False}, False),
        ("The Paris", "Paris", {"ignore_case": False}, True),
        ("Paris  France", "Paris France", {"collapse_whitespace": False}, False),
        ("London", ["Paris", "London"], {}, True),
        ({"answer": "Paris"}, "Paris", {}, True),
        ({"answer": "Paris", "sources": ["d1"]}, "Paris", {}, True),
        ({"answer": "Paris", "output": "London"}, "Paris", {}, False),
        (["Paris"], "Paris", {}, True),
        (["Paris"], "Paris", {"ignore_punctuation": False}, False),
        (42, "42", {}, True),
        (None, "Paris", {}, False),
        ("", "Paris", {}, False),
        ("", "the", {}, True),
    ],
)
def test_exact_match(outputs, expected, options, value):
    result = ExactMatch(**options)(outputs=outputs, expectations=answer(expected))
    assert isinstance(result, Score)
    assert result.value is value


@pytest.mark.parametrize(
    ("outputs", "rationale"),
    [
        ("paris", "output matches the expected answer 'Paris'"),
        ("Lyon", "normalised output 'lyon' differs from 'paris'"),
        ("", "the output is empty"),
    ],
)
def test_exact_match_rationale(outputs, rationale):
    assert ExactMatch()(outputs=outputs, expectations=answer("Paris")).rationale == rationale


# --- containment -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outputs", "expected", "value"),
    [
        ("The capital is Paris.", "paris", True),
        ("A cat sat", "cat", True),
        ("It took 1400 years", "4", False),
        ("concatenate", "cat", False),
        ("The U.S. economy", "U.S.", True),
        ("Visit paris france", "Paris, France", True),
        ("", "Paris", False),
        (None, "Paris", False),
        ("It is London", ["Paris", "London"], True),
        ({"response": "It is Paris"}, "Paris", True),
    ],
)
def test_contains(outputs, expected, value):
    assert Contains()(outputs=outputs, expectations=answer(expected)).value is value


def test_contains_rationale_names_what_was_missing():
    result = Contains()(outputs="It is Lyon", expectations=answer(["Paris", "London"]))
    assert result.rationale == "output does not contain 'Paris' or 'London'"


@pytest.mark.parametrize(
    ("scorer", "outputs", "facts", "value", "rationale", "missing"),
    [
        (ContainsAll(), "Paris, in 1889", ["Paris", "1889"], True, "all 2 expected facts found", []),
        (
            ContainsAll(),
            "It is in Paris",
            ["Paris", "1889", "Eiffel"],
            False,
            "missing 2 of 3 expected facts: '1889', 'Eiffel'",
            ["1889", "Eiffel"],
        ),
        (ContainsAll(), "paris", "Paris", True, "all 1 expected facts found", []),
        (ContainsAll(), "", ["Paris"], False, "missing 1 of 1 expected facts: 'Paris'", ["Paris"]),
        (ContainsAny(), "opened in 1889", ["Paris", "1889"], True, "found 1 of 2: '1889'", ["Paris"]),
        (
            ContainsAny(),
            "no idea",
            ["Paris", "1889"],
            False,
            "none of the 2 expected facts found",
            ["Paris", "1889"],
        ),
        (
            ContainsAll(ignore_case=False),
            "paris",
            ["Paris"],
            False,
            "missing 1 of 1 expected facts: 'Paris'",
            ["Paris"],
        ),
    ],
)
def test_fact_scorers(scorer, outputs, facts, value, rationale, missing):
    result = scorer(outputs=outputs, expectations={"expected_facts": facts})
    assert (result.value, result.rationale) == (value, rationale)
    assert result.metadata["missing"] == missing


def test_facts_given_at_construction_take_precedence():
    scorer = ContainsAll(facts=["Gustave Eiffel"])
    assert scorer(outputs="built by gustave eiffel", expectations=None).value is True
    assert scorer(outputs="built by gustave eiffel", expectations={"expected_facts": ["Paris"]}).value is True
    assert ContainsAny(facts="Paris").facts == ["Paris"]


def test_empty_facts_at_construction_are_refused():
    with pytest.raises(ValueError, match="facts is empty"):
        ContainsAll(facts=[])


# --- regex ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scorer", "outputs", "value", "rationale"),
    [
        (RegexMatch(r"\d{4}"), "built in 1889", True, r"/\d{4}/ matched '1889' at offset 9"),
        (RegexMatch(r"\d{4}"), "no year", False, r"/\d{4}/ does not match anywhere in the output"),
        (RegexMatch(r"\d+", full_match=True), "123", True, r"/\d+/ matched '123' at offset 0"),
        (RegexMatch(r"\d+", full_match=True), "123a", False, r"/\d+/ does not match the whole output"),
        (RegexMatch(r"paris", flags=re.IGNORECASE), "PARIS", True, "/paris/ matched 'PARIS' at offset 0"),
        (RegexMatch(re.compile("^Par")), {"answer": "Paris"}, True, "/^Par/ matched 'Par' at offset 0"),
        (RegexMatch("x"), None, False, "/x/ does not match anywhere in the output"),
    ],
)
def test_regex_match(scorer, outputs, value, rationale):
    result = scorer(outputs=outputs)
    assert (result.value, result.rationale) == (value, rationale)


def test_regex_match_refuses_a_bad_pattern_at_construction():
    with pytest.raises(ValueError, match=r"invalid pattern '\('"):
        RegexMatch("(")


# --- graded similarity -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scorer", "outputs", "expected", "value"),
    [
        (EditSimilarity(), "kitten", "sitting", 1 - 3 / 7),
        (EditSimilarity(), "The Cat!", "cat", 1.0),
        (EditSimilarity(ignore_case=False), "Cat", "cat", 2 / 3),
        (EditSimilarity(), "", "abc", 0.0),
        (EditSimilarity(), "", "the", 1.0),
        (EditSimilarity(), "kitten", ["xyz", "kitten"], 1.0),
        (TokenF1(), "the cat sat", "a cat sat down", 0.8),
        (TokenF1(), "cat cat", "cat", 2 / 3),
        (TokenF1(), "cat cat", "cat cat dog", 0.8),
        (TokenF1(), "z y x", "x y z", 1.0),
        (TokenF1(), "dog", "cat", 0.0),
        (TokenF1(), "", "cat", 0.0),
        (TokenF1(), "", "the", 1.0),
        (TokenF1(), "cat sat", ["dog", "cat sat"], 1.0),
        (RougeL(), "police killed the gunman", "police kill the gunman", 2 / 3),
        (RougeL(), "w x y z", "w y z q", 0.75),
        (RougeL(), "z y x", "x y z", 1 / 3),
        (RougeL(), "", "x", 0.0),
        (RougeL(), "x y", ["q", "x y"], 1.0),
        (Bleu(), "the cat sat on the mat", "the cat sat on the mat", 1.0),
        (Bleu(), "w x y z", "w x y q", (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25),
        (Bleu(), "w x y z", ["w x y q", "w x y z"], 1.0),
        (Bleu(), "p q r", "w x y z", 0.0),
        (Bleu(), "W X Y Z", "w x y z", 0.0),
        (Bleu(lowercase=True), "W X Y Z", "w x y z", 1.0),
        (Bleu(), "", "w x y z", 0.0),
    ],
)
def test_similarity_values(scorer, outputs, expected, value):
    result = scorer(outputs=outputs, expectations=answer(expected))
    assert result.value == pytest.approx(value, abs=1e-12)
    assert 0.0 <= result.value <= 1.0


@pytest.mark.parametrize(
    ("scorer", "outputs", "expected", "rationale"),
    [
        (EditSimilarity(), "kitten", "sitting", "3 edits from 'sitting' (0.57 similar)"),
        (
            TokenF1(),
            "the cat sat",
            "a cat sat down",
            "2 shared tokens; 2 predicted, 3 expected: precision 1.00, recall 0.67",
        ),
        (
            TokenF1(),
            "",
            "cat",
            "0 shared tokens; 0 predicted, 1 expected (an empty text matches only another)",
        ),
        (
            RougeL(),
            "w x y z",
            "w y z q",
            "3 tokens in the longest common subsequence; 4 predicted, 4 expected: precision 0.75, recall 0.75",
        ),
        (
            Bleu(),
            "w x y z",
            "w x y q",
            "BLEU 59.5: n-gram precisions 75.0/66.7/50.0/50.0, brevity penalty 1.00",
        ),
        (Bleu(), "  ", "w x y q", "the output is empty"),
    ],
)
def test_similarity_rationale(scorer, outputs, expected, rationale):
    assert scorer(outputs=outputs, expectations=answer(expected)).rationale == rationale


# --- structured output -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scorer", "outputs", "value", "rationale"),
    [
        (JsonValid(), '{"a": 1}', True, "parsed a JSON object with 1 key"),
        (JsonValid(), " [1, 2] ", True, "parsed a JSON array of 2 items"),
        (JsonValid(), '```json\n{"a": 1, "b": 2}\n```', True, "parsed a JSON object with 2 keys"),
        (JsonValid(allow_code_fence=False), '```json\n{"a": 1}\n```', False, None),
        (JsonValid(), "3", False, "parsed a JSON number (3), not an object or array"),
        (JsonValid(require_container=False), "3", True, "parsed a JSON number (3)"),
        (JsonValid(require_container=False), "null", True, "parsed a JSON null (null)"),
        (JsonValid(), '{"a": ', False, "not valid JSON: Expecting value at line 1 column 6"),
        (JsonValid(), {"a": [1, 2]}, True, "parsed a JSON object with 1 key"),
        (JsonValid(), {"a": object()}, False, None),
        (JsonValid(), None, False, "the output is empty"),
        (JsonValid(), "   ", False, "the output is empty"),
        (JsonValid(), "```\n```", False, "the output is empty"),
    ],
)
def test_json_valid(scorer, outputs, value, rationale):
    result = scorer(outputs=outputs)
    assert result.value is value
    if rationale is not None:
        assert result.rationale == rationale


def test_json_valid_names_an_unrepresentable_value():
    result = JsonValid()(outputs={"a": object()})
    assert result.rationale.startswith("the output holds a value JSON cannot represent")


ORDER_SCHEMA = {
    "type": "object",
    "required": ["name", "items"],
    "properties": {
        "name": {"type": "string"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"price": {"type": "number"}}}},
    },
}


@pytest.mark.parametrize(
    ("outputs", "value", "rationale"),
    [
        (
            {"name": "order", "items": [{"price": 3}]},
            True,
            "a JSON object with 2 keys that matches the schema",
        ),
        ('{"name": "order", "items": []}', True, "a JSON object with 2 keys that matches the schema"),
        ({"items": []}, False, "1 schema violation: $: 'name' is a required property"),
        (
            {"name": 5, "items": [{"price": "x"}]},
            False,
            "2 schema violations: $.items[0].price: 'x' is not of type 'number'; $.name: 5 is not of type 'string'",
        ),
        (
            "{oops",
            False,
            "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        ("", False, "the output is empty"),
    ],
)
def test_json_schema(outputs, value, rationale):
    result = JsonSchema(ORDER_SCHEMA)(outputs=outputs)
    assert (result.value, result.rationale) == (value, rationale)


def test_json_schema_limits_listed_errors_and_keeps_all_in_metadata():
    result = JsonSchema(ORDER_SCHEMA, max_errors=1)(outputs={"name": 5, "items": [{"price": "x"}]})
    assert result.rationale == "2 schema violations: $.items[0].price: 'x' is not of type 'number' (and 1 more)"
    assert [e["path"] for e in result.metadata["errors"]] == ["$.items[0].price", "$.name"]


def test_json_schema_refuses_an_invalid_schema_at_construction():
    with pytest.raises(ValueError, match=r"the schema is invalid at \$\.type"):
        JsonSchema({"type": "nope"})


# --- retrieval ------------------------------------------------------------------------------------

RANKED = ["d1", "d2", "d3", "d4", "d5", "d6"]
RELEVANT = {"relevant_doc_ids": ["d2", "d6", "d9"]}
LOG3 = math.log2(3)


@pytest.mark.parametrize(
    ("scorer", "value", "rationale"),
    [
        (RecallAtK(), 1 / 3, "1 of 3 relevant documents in the top 5; missing d6, d9"),
        (RecallAtK(k=6), 2 / 3, "2 of 3 relevant documents in the top 6; missing d9"),
        (PrecisionAtK(), 1 / 5, "1 of the top 5 are relevant (5 retrieved)"),
        (PrecisionAtK(k=2), 1 / 2, "1 of the top 2 are relevant (2 retrieved)"),
        (PrecisionAtK(k=10), 2 / 10, "2 of the top 10 are relevant (6 retrieved)"),
        (MRR(), 1 / 2, "first relevant document d2 at rank 2"),
        (MRR(k=1), 0.0, "no relevant document in the top 1 (1 retrieved)"),
        (NDCG(), (1 / LOG3) / (1 + 1 / LOG3 + 1 / 2), None),
        (NDCG(k=6), (1 / LOG3 + 1 / math.log2(7)) / (1 + 1 / LOG3 + 1 / 2), None),
        (NDCG(k=1), 0.0, "relevant at ranks none of the top 1; DCG 0.000 of ideal 1.000"),
    ],
)
def test_ranking_metrics(scorer, value, rationale):
    result = scorer(outputs=RANKED, expectations=RELEVANT)
    assert result.value == pytest.approx(value, abs=1e-12)
    if rationale is not None:
        assert result.rationale == rationale


@pytest.mark.parametrize("scorer", [RecallAtK(), PrecisionAtK(k=3), MRR(), NDCG(k=3)], ids=lambda s: s.name)
def test_perfect_ranking_scores_one(scorer):
    assert scorer(outputs=["d2", "d6", "d9"], expectations=RELEVANT).value == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("outputs", "value"),
    [
        ({"retrieved_doc_ids": ["d9", "x"]}, 1 / 3),
        ([{"id": "d2"}, {"doc_id": "d6"}, {"document_id": "d9"}], 1.0),
        ({"documents": [{"metadata": {"doc_id": "d6"}}]}, 1 / 3),
        ([2, "d9"], 1 / 3),
        (["d2", "d2", "d2"], 1 / 3),
        ("an answer with no documents", 0.0),
        (None, 0.0),
    ],
)
def test_recall_reads_document_ids_from_outputs(outputs, value):
    assert RecallAtK()(outputs=outputs, expectations=RELEVANT).value == pytest.approx(value)


def test_a_document_retrieved_twice_counts_once():
    result = PrecisionAtK(k=3)(outputs=["d2", "d2", "d1"], expectations=RELEVANT)
    assert (result.value, result.rationale) == (1 / 3, "1 of the top 3 are relevant (2 retrieved)")


def test_integer_ids_compare_as_strings():
    assert RecallAtK()(outputs=[1, 2], expectations={"relevant_doc_ids": ["2"]}).value == 1.0


def test_retrieval_without_documents_explains_why():
    result = RecallAtK()(outputs="plain answer", expectations=RELEVANT)
    assert result.rationale == "0 of 3 relevant documents in the top 5; missing d2, d6, d9"


def test_documents_come_from_retriever_spans_in_start_order_not_outputs():
    trace = make_trace(
        span("agent", "AGENT", 0, 100, span_id="root"),
        span("second", "RETRIEVER", 50, 60, parent="root", outputs=[{"document_id": "d6"}, {"id": "d1"}]),
        span("first", "RETRIEVER", 10, 20, parent="root", outputs=[{"id": "d1"}, {"doc_id": "d4"}]),
        span("lookup", "TOOL", 30, 40, parent="root", outputs=[{"id": "d2"}]),
    )
    # Ranked from the trace: d1, d4, d6 (d1 again is dropped); the outputs' d2 is ignored.
    result = MRR()(outputs=["d2"], expectations=RELEVANT, trace=trace)
    assert (result.value, result.rationale) == (1 / 3, "first relevant document d6 at rank 3")
    assert PrecisionAtK(k=3)(outputs=["d2"], expectations=RELEVANT, trace=trace).value == pytest.approx(1 / 3)
    assert RecallAtK(span_name="first")(outputs=None, expectations=RELEVANT, trace=trace).value == 0.0


def test_trace_without_retriever_spans_falls_back_to_outputs():
    trace = make_trace(span("agent", "AGENT", 0, 100))
    assert MRR()(outputs=["d6"], expectations=RELEVANT, trace=trace).value == 1.0


def test_a_document_without_an_id_is_an_error():
    with pytest.raises(ValueError, match="a retrieved document has no id"):
        RecallAtK()(outputs=[{"text": "orphan"}], expectations=RELEVANT)


@pytest.mark.parametrize("k", [0, -1, True, 2.5])
def test_k_must_be_a_positive_integer(k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        NDCG(k=k)


# --- trace checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scorer",
    [LatencyUnder(), TokensUnder(), ToolCalled("search"), ToolSequence(), NoErrorSpans()],
    ids=lambda s: s.name,
)
def test_trace_checks_need_a_trace(scorer):
    with pytest.raises(ValueError, match="needs the record's trace"):
        scorer(outputs="x", expectations={"expected_tool_calls": []}, trace=None)


@pytest.mark.parametrize(
    ("scorer", "trace", "value", "rationale"),
    [
        (LatencyUnder(), make_trace(duration_ms=1200.0), True, "took 1200.0 ms, within the 30000 ms limit"),
        (
            LatencyUnder(max_ms=1000),
            make_trace(duration_ms=1200.0),
            False,
            "took 1200.0 ms, over the 1000 ms limit",
        ),
        (
            LatencyUnder(max_ms=1200),
            make_trace(duration_ms=1200.0),
            True,
            "took 1200.0 ms, within the 1200 ms limit",
        ),
        (
            LatencyUnder(max_ms=2000),
            make_trace(span("a", start_ms=100, end_ms=900), span("b", start_ms=500, end_ms=2600), duration_ms=None),
            False,
            "took 2500.0 ms, over the 2000 ms limit",
        ),
        (
            TokensUnder(),
            make_trace(total_tokens=500),
            True,
            "used 500 tokens (trace total), within the 100000 limit",
        ),
        (
            TokensUnder(max_tokens=400),
            make_trace(total_tokens=500),
            False,
            "used 500 tokens (trace total), over the 400 limit",
        ),
        (
            TokensUnder(max_tokens=179),
            make_trace(
                span("llm", "LLM", input_tokens=100, output_tokens=50),
                span("llm2", "LLM", start_ms=20, end_ms=30, output_tokens=30),
            ),
            False,
            "used 180 tokens (sum over spans), over the 179 limit",
        ),
    ],
)
def test_budgets(scorer, trace, value, rationale):
    result = scorer(trace=trace)
    assert (result.value, result.rationale) == (value, rationale)


def test_tokens_under_refuses_a_trace_without_token_counts():
    with pytest.raises(ValueError, match="records no token counts"):
        TokensUnder()(trace=make_trace(span("llm", "LLM")))


@pytest.mark.parametrize("bad", [-1, "fast", True])
def test_budget_limits_are_checked_at_construction(bad):
    with pytest.raises(ValueError, match="must be a non-negative number"):
        LatencyUnder(max_ms=bad)


# Tools start in the order search, calculator, search; a same-named LLM span is not a tool call.
TOOLS = make_trace(
    span("agent", "AGENT", 0, 100, span_id="root"),
    span("search", "TOOL", 10, 20, parent="root"),
    span("calculator", "TOOL", 30, 40, parent="root"),
    span("search", "TOOL", 50, 60, parent="root"),
    span("weather", "LLM", 70, 80, parent="root"),
)


@pytest.mark.parametrize(
    ("scorer", "expected", "value", "rationale"),
    [
        (ToolCalled("search"), None, True, "called search"),
        (ToolCalled("weather"), None, False, "never called weather; tools called: search, calculator"),
        (ToolCalled(), [{"name": "search"}, "calculator"], True, "called search, calculator"),
        (ToolCalled(), [{"tool_name": "calculator"}], True, "called calculator"),
        (ToolCalled(), "search", True, "called search"),
        (
            ToolCalled(),
            ["search", "weather"],
            False,
            "never called weather; tools called: search, calculator",
        ),
        (ToolCalled(), [], True, "no tool expected; tools called: search, calculator"),
        (
            ToolSequence(),
            ["search", "calculator", "search"],
            True,
            "tool calls match: [search -> calculator -> search]",
        ),
        (
            ToolSequence(),
            ["search", "search", "calculator"],
            False,
            "expected [search -> search -> calculator], got [search -> calculator -> search]; "
            "first difference at call 2: expected search, got calculator",
        ),
        (
            ToolSequence(),
            [{"name": "search"}, {"name": "calculator"}],
            False,
            "expected [search -> calculator], got [search -> calculator -> search]; "
            "first difference at call 3: expected no call, got search",
        ),
        (
            ToolSequence(),
            [],
            False,
            "expected [], got [search -> calculator -> search]; "
            "first difference at call 1: expected no call, got search",
        ),
    ],
)
def test_tool_checks(scorer, expected, value, rationale):
    result = scorer(expectations={"expected_tool_calls": expected}, trace=TOOLS)
    assert (result.value, result.rationale) == (value, rationale)


def test_tool_sequence_follows_start_time_not_tree_order():
    # Tree order visits the chain's child "first" (started at 40) before the agent's child "second" (30).
    trace = make_trace(
        span("agent", "AGENT", 0, 100, span_id="root"),
        span("chain", "CHAIN", 1, 90, span_id="chain", parent="root"),
        span("first", "TOOL", 40, 50, parent="chain"),
        span("second", "TOOL", 30, 35, parent="root"),
    )
    assert [s.name for s in trace.spans_of_type("TOOL")] == ["first", "second"]
    assert ToolSequence()(expectations={"expected_tool_calls": ["second", "first"]}, trace=trace).value is True


def test_tool_sequence_with_no_tools_expected_and_none_called():
    result = ToolSequence()(expectations={"expected_tool_calls": []}, trace=make_trace(span("agent", "AGENT")))
    assert (result.value, result.rationale) == (True, "tool calls match: []")


def test_malformed_expected_tool_call_is_an_error():
    with pytest.raises(ValueError, match=r"must be a tool name or a dict with a 'name'"):
        ToolCalled()(expectations={"expected_tool_calls": [{"arguments": {}}]}, trace=TOOLS)


@pytest.mark.parametrize(
    ("trace", "value", "rationale"),
    [
        (TOOLS, True, "none of the 5 spans failed"),
        (make_trace(), True, "none of the 0 spans failed"),
        (
            make_trace(
                span("agent", "AGENT", 0, 100, span_id="root", status="ERROR"),
                span("search", "TOOL", 10, 20, parent="root", status="ERROR", message="TimeoutError: slow"),
                span("answer", "LLM", 30, 40, parent="root"),
            ),
            False,
            "2 spans failed: agent; search (TimeoutError: slow)",
        ),
        (
            make_trace(span("agent", "AGENT"), status="ERROR"),
            False,
            "no span failed but the trace is marked ERROR",
        ),
    ],
)
def test_no_error_spans(trace, value, rationale):
    result = NoErrorSpans()(trace=trace)
    assert (result.value, result.rationale) == (value, rationale)
