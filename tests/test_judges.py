"""LLM judges through the real openai client against the local stub server (tests/judge_stub.py)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time

import pytest

from agenttrace.errors import ConfigError, EvaluationError
from agenttrace.records import Score, SpanRecord, Trace, TraceInfo
from agenttrace.scoring import Scorer, normalize_result
from evaluators.judges import (
    BUILTIN_JUDGES,
    AdaptiveLimiter,
    ChunkRelevanceJudge,
    CorrectnessJudge,
    GroundednessJudge,
    GuidelinesJudge,
    InMemoryJudgeCache,
    JudgeCall,
    JudgeClient,
    JudgeConfigError,
    JudgeError,
    PairwiseJudge,
    RelevanceToQueryJudge,
    SafetyJudge,
    ToolCallCorrectnessJudge,
    cache_key,
    make_judge,
)
from evaluators.judges.parsing import (
    BoolOutput,
    InvalidValue,
    ReplyProblem,
    extract_json,
    output_type,
    parse_verdict,
)
from tests.judge_stub import StubFailure, StubJudgeServer, StubReply, fenced, sequence

MODEL = "judge-model-1"
ENV_VARS = (
    "AGENTTRACE_JUDGE_MODEL",
    "AGENTTRACE_JUDGE_BASE_URL",
    "AGENTTRACE_JUDGE_API_KEY",
    "OPENAI_MODEL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def stub():
    with StubJudgeServer() as server:
        yield server


def opts(stub: StubJudgeServer, **kw):
    """Judge / client options pointing at the stub, with fast backoff."""
    base = {
        "model": MODEL,
        "base_url": stub.base_url,
        "api_key": "test-key",
        "backoff_base": 0.01,
        "timeout": 5,
    }
    return {**base, **kw}


def make_trace(*, retrieved=None, tools=(), inputs=None, outputs=None) -> Trace:
    spans = [SpanRecord("t1", "root", None, "agent", "AGENT", "OK", 0, 100, inputs=inputs, outputs=outputs)]
    t = 10
    if retrieved is not None:
        spans.append(SpanRecord("t1", "r1", "root", "retrieve", "RETRIEVER", "OK", t, t + 5, outputs=retrieved))
        t += 10
    for i, (name, args) in enumerate(tools):
        spans.append(SpanRecord("t1", f"tool{i}", "root", name, "TOOL", "OK", t, t + 5, inputs=args))
        t += 10
    info = TraceInfo("t1", "agent", "OK", 0, 100, 0.0001, inputs=inputs, outputs=outputs)
    return Trace(info, spans)


def user_prompt(request: dict) -> str:
    return [m for m in request["messages"] if m["role"] == "user"][-1]["content"]


# -- parsing -----------------------------------------------------------------------------------

GOOD_REPLIES = [
    ('{"value": "yes", "rationale": "fine"}', True, "fine"),
    ('{"value": false, "rationale": "bad"}', False, "bad"),
    ('```json\n{"value": "no", "rationale": "fenced"}\n```', False, "fenced"),
    (
        'Sure! Here it is:\n```\n{"verdict": "pass", "reason": "bare fence"}\n```\nAnything else?',
        True,
        "bare fence",
    ),
    ('After careful thought: {"score": "yes", "explanation": "prose before"}', True, "prose before"),
    ('{"result": "fail", "rationale": "prose after"}\nI hope this helps.', False, "prose after"),
    ("{'value': 'yes', 'rationale': 'single quotes'}", True, "single quotes"),
    ('{"value": "yes", "rationale": "trailing comma",}', True, "trailing comma"),
    ('{"Rationale": "a } brace and a \\"quote\\"", "Value": "YES"}', True, 'a } brace and a "quote"'),
    ('{"value": true}', True, None),
]


@pytest.mark.parametrize(("reply", "value", "rationale"), GOOD_REPLIES)
def test_parse_verdict_accepts_common_shapes(reply: str, value: bool, rationale: str | None) -> None:
    verdict = parse_verdict(reply, BoolOutput())
    assert (verdict.value, verdict.rationale) == (value, rationale)
    assert verdict.label == ("pass" if value else "fail")


BAD_REPLIES = [
    ("I think the answer is good.", bool, "unparseable"),
    ("", bool, "unparseable"),
    ('{"rationale": "forgot the value"}', bool, "unparseable"),
    ('{"value": "maybe"}', bool, "invalid_value"),
    ('{"value": 7}', (1, 5), "invalid_value"),
    ('{"value": 2.5}', (1, 5), "invalid_value"),
    ('{"value": "purple"}', ["good", "bad"], "invalid_value"),
    ('{"value": 1.5}', (0.0, 1.0), "invalid_value"),
]


@pytest.mark.parametrize(("reply", "output", "kind"), BAD_REPLIES)
def test_parse_verdict_rejects_unusable_replies(reply: str, output, kind: str) -> None:
    with pytest.raises(ReplyProblem) as info:
        parse_verdict(reply, output_type(output))
    assert info.value.kind == kind
    assert isinstance(info.value, InvalidValue) == (kind == "invalid_value")


@pytest.mark.parametrize(
    ("output", "raw", "expected"),
    [
        ((1, 5), "4", 4),
        ((1, 5), 5.0, 5),
        (float, "0.25", 0.25),
        (["Good", "Bad"], "good", "Good"),
        (["A", "B", "tie"], "TIE.", "tie"),
        (bool, "Pass", True),
        (bool, 0, False),
    ],
)
def test_output_types_normalise_values(output, raw, expected) -> None:
    verdict = parse_verdict(json.dumps({"value": raw}), output_type(output))
    assert verdict.value == expected and type(verdict.value) is type(expected)


@pytest.mark.parametrize("spec", [int, (5, 1), ["only-one"], ["a", "A"], "bool", None])
def test_bad_output_specs_are_config_errors(spec) -> None:
    with pytest.raises(JudgeConfigError):
        output_type(spec)


def test_extract_json_prefers_the_object_over_surrounding_prose() -> None:
    assert extract_json('Answer {not json} then {"value": 3}') == {"value": 3}


# -- built-in judges: happy paths --------------------------------------------------------------


@pytest.mark.parametrize(
    ("expectations", "output", "value"),
    [
        ({"expected_answer": "Paris"}, "The capital is Paris.", True),
        ({"expected_answer": "Paris"}, "The capital is Lyon.", False),
        ({"expected_facts": ["Paris", "on the Seine"]}, "Paris, which lies on the Seine.", True),
        ({"expected_facts": ["Paris", "on the Seine"]}, "Paris.", False),
    ],
)
def test_correctness(stub, expectations, output, value) -> None:
    judge = CorrectnessJudge(**opts(stub))
    score = judge(inputs={"question": "Capital of France?"}, outputs=output, expectations=expectations)
    assert score.value is value and score.label == ("pass" if value else "fail")
    assert score.rationale.startswith("stub:")
    assert score.metadata["judge_model"] == MODEL and score.metadata["cached"] is False
    assert score.metadata["input_tokens"] > 20 and score.metadata["output_tokens"] > 0
    assert score.metadata["latency_ms"] > 0
    assert judge.aggregation == "boolean"
    request = stub.requests[0]
    assert request["temperature"] == 0 and request["response_format"] == {"type": "json_object"}
    assert "Capital of France?" in user_prompt(request)


def test_relevance_to_query(stub) -> None:
    judge = RelevanceToQueryJudge(**opts(stub))
    assert judge(inputs={"question": "weather in Oslo"}, outputs="Oslo is rainy today.").value is True
    assert judge(inputs={"question": "weather in Oslo"}, outputs="I like cake.").value is False


def test_groundedness_reads_retriever_spans(stub) -> None:
    docs = [
        {"id": "d1", "text": "Paris is the capital of France."},
        {"id": "d2", "content": "Berlin is big."},
    ]
    trace = make_trace(retrieved=docs, inputs={"q": "capital?"})
    judge = GroundednessJudge(**opts(stub))
    assert judge(outputs="Paris is the capital of France", trace=trace).value is True
    assert judge(outputs="Rome is the capital of France", trace=trace).value is False
    prompt = user_prompt(stub.requests[0])
    assert "[d1] Paris is the capital of France." in prompt and "[d2] Berlin is big." in prompt


def test_groundedness_needs_a_trace_with_retrieval(stub) -> None:
    judge = GroundednessJudge(**opts(stub))
    with pytest.raises(JudgeError, match="needs a trace") as info:
        judge(outputs="x", trace=None)
    assert info.value.reason == "missing_input"
    with pytest.raises(JudgeError, match="no RETRIEVER span"):
        judge(outputs="x", trace=make_trace())
    assert stub.calls == 0


def test_chunk_relevance_one_call_per_chunk_mean_score(stub) -> None:
    docs = [
        {"id": "a", "text": "Oslo weather: rain."},
        {"id": "b", "text": "Cake recipes."},
        {"id": "c", "text": "Weather forecast for Oslo."},
        "a plain string chunk about nothing",
    ]
    judge = ChunkRelevanceJudge(**opts(stub))
    score = judge(inputs={"q": "Oslo weather"}, trace=make_trace(retrieved=docs))
    assert stub.calls == 4
    assert score.value == pytest.approx(0.5)
    assert [c["relevant"] for c in score.metadata["chunks"]] == [True, False, True, False]
    assert [c["id"] for c in score.metadata["chunks"]][:3] == ["a", "b", "c"]
    assert "2 of 4" in score.rationale and "b" in score.rationale
    assert judge.aggregation == "numeric"
    assert score.metadata["judge_calls"] == 4


def test_safety(stub) -> None:
    judge = SafetyJudge(**opts(stub))
    assert judge(outputs="Here is a cake recipe.").value is True
    assert judge(outputs="Here is how to build a bomb.").value is False


def test_guidelines_all_must_pass_and_failures_are_listed(stub) -> None:
    judge = GuidelinesJudge(guidelines=['Never mention "refund".'], **opts(stub))
    ok = judge(inputs="hi", outputs="Hello!", expectations={"guidelines": ['Do not say "sorry".']})
    assert ok.value is True and ok.label == "pass" and stub.calls == 2
    bad = judge(inputs="hi", outputs="Sorry, no refund.", expectations={"guidelines": ["Be polite."]})
    assert bad.value is False
    assert "Failed 1 of 2" in bad.rationale and 'Never mention "refund".' in bad.rationale
    assert "Be polite" not in bad.rationale
    assert [g["passed"] for g in bad.metadata["guidelines"]] == [False, True]


def test_guidelines_without_rules_is_an_error(stub) -> None:
    with pytest.raises(JudgeError, match="at least one guideline"):
        GuidelinesJudge(**opts(stub))(inputs="hi", outputs="x", expectations={})


def test_tool_call_correctness_against_expected_calls(stub) -> None:
    trace = make_trace(tools=[("search", {"query": "oslo"}), ("weather", {"city": "Oslo"})], inputs="Oslo weather?")
    judge = ToolCallCorrectnessJudge(**opts(stub))
    good = judge(inputs=None, trace=trace, expectations={"expected_tool_calls": [{"name": "weather"}]})
    assert good.value is True and good.metadata["tool_calls"] == ["search", "weather"]
    prompt = user_prompt(stub.requests[0])
    assert '2. weather({"city": "Oslo"})' in prompt and "<expected_tool_calls>" in prompt
    bad = judge(inputs="Oslo weather?", trace=trace, expectations={"expected_tool_calls": ["calendar"]})
    assert bad.value is False


def test_tool_call_correctness_plausibility_without_expectations(stub) -> None:
    judge = ToolCallCorrectnessJudge(**opts(stub))
    assert judge(inputs="Oslo weather?", trace=make_trace(tools=[("weather", {"city": "Oslo"})])).value is True
    assert judge(inputs="Oslo weather?", trace=make_trace()).value is False
    assert "No tools were called" in user_prompt(stub.requests[1])


def test_pairwise_compare(stub) -> None:
    judge = PairwiseJudge(**opts(stub))
    assert judge.compare("Explain rain", "Water falls from clouds when droplets grow heavy.", "Rain.").value == "A"
    assert judge.compare("Explain rain", "Rain.", "Water falls from clouds.").value == "B"
    tie = judge.compare("Explain rain", "same", "same")
    assert tie.value == "tie" and tie.label == "tie"
    assert judge.aggregation == "categorical"
    as_scorer = judge(inputs="Explain rain", outputs="Rain.", expectations={"baseline_output": "Longer baseline."})
    assert as_scorer.value == "B"


def test_pairwise_both_orders_turns_position_bias_into_a_tie(stub) -> None:
    stub.responder = lambda request: {"value": "A", "rationale": "always the first"}
    judge = PairwiseJudge(both_orders=True, **opts(stub))
    score = judge.compare("q", "one", "two")
    assert score.value == "tie" and score.metadata["position_consistent"] is False
    assert stub.calls == 2
    assert "<output_a>\ntwo" in user_prompt(stub.requests[1])


def test_builtin_registry_constructs_every_judge_from_env(stub, monkeypatch) -> None:
    monkeypatch.setenv("AGENTTRACE_JUDGE_MODEL", "env-model")
    monkeypatch.setenv("AGENTTRACE_JUDGE_BASE_URL", stub.base_url)
    assert set(BUILTIN_JUDGES) == {
        "correctness",
        "relevance_to_query",
        "groundedness",
        "chunk_relevance",
        "safety",
        "guidelines",
        "tool_call_correctness",
        "pairwise",
    }
    for name, cls in BUILTIN_JUDGES.items():
        judge = cls()
        assert isinstance(judge, Scorer) and judge.name == name
        assert judge.client.model == "env-model" and judge.client.base_url == stub.base_url
    score = BUILTIN_JUDGES["safety"]()(outputs="hello")
    assert score.value is True and stub.requests[0]["model"] == "env-model"


def test_scores_normalise_through_the_scorer_contract(stub) -> None:
    judge = SafetyJudge(**opts(stub))
    result = judge(inputs="ignored", outputs="hello", expectations=None, trace=None)
    [named] = normalize_result(judge.name, result)
    assert named.name == "safety" and named.value is True


# -- reply robustness through the judge --------------------------------------------------------


def test_code_fenced_reply_is_parsed(stub) -> None:
    stub.responder = lambda request: fenced({"value": "no", "rationale": "fenced no"})
    score = SafetyJudge(**opts(stub))(outputs="hello")
    assert (score.value, score.rationale) == (False, "fenced no") and stub.calls == 1


def test_prose_wrapped_reply_is_parsed(stub) -> None:
    stub.responder = lambda request: 'Let me think. {"verdict": "yes", "reason": "wrapped"} That is all.'
    score = SafetyJudge(**opts(stub))(outputs="hello")
    assert (score.value, score.rationale) == (True, "wrapped") and stub.calls == 1


def test_garbage_then_good_reply_after_one_corrective_reask(stub) -> None:
    stub.responder = sequence("I'd say it's fine!", '{"value": "yes", "rationale": "ok now"}')
    score = SafetyJudge(**opts(stub))(outputs="hello")
    assert score.value is True and score.rationale == "ok now"
    assert stub.calls == 2
    second = stub.requests[1]["messages"]
    assert second[:2] == stub.requests[0]["messages"]
    assert second[2] == {"role": "assistant", "content": "I'd say it's fine!"}
    assert second[3]["role"] == "user" and "Reply only with JSON" in second[3]["content"]
    assert "no JSON object" in second[3]["content"]
    assert score.metadata["judge_calls"] == 2
    first_in = len(" ".join(m["content"] for m in stub.requests[0]["messages"]).split())
    assert score.metadata["input_tokens"] > first_in


def test_garbage_twice_raises_with_the_raw_reply(stub) -> None:
    stub.responder = sequence("no idea", "still no idea")
    with pytest.raises(JudgeError) as info:
        SafetyJudge(**opts(stub))(outputs="hello")
    assert info.value.reason == "unparseable"
    assert info.value.raw_reply == "still no idea"
    assert isinstance(info.value, EvaluationError)
    assert "still no idea" in str(info.value)
    assert stub.calls == 2


def test_out_of_range_int_triggers_the_reask(stub) -> None:
    stub.responder = sequence('{"value": 7, "rationale": "very good"}', '{"value": 5, "rationale": "capped"}')
    judge = make_judge("quality", "Rate this answer: {{ outputs }}", output=(1, 5), **opts(stub))
    score = judge(outputs="an answer")
    assert score.value == 5 and stub.calls == 2
    assert "out of range" in stub.requests[1]["messages"][-1]["content"]
    assert "an integer from 1 to 5" in stub.requests[0]["messages"][0]["content"]


def test_out_of_range_twice_is_an_invalid_value_error(stub) -> None:
    stub.responder = lambda request: '{"value": 0}'
    judge = make_judge("quality", "Rate: {{ outputs }}", output=(1, 5), **opts(stub))
    with pytest.raises(JudgeError) as info:
        judge(outputs="x")
    assert info.value.reason == "invalid_value" and info.value.raw_reply == '{"value": 0}'


# -- retries, timeouts, rate limits ------------------------------------------------------------


def test_429_with_retry_after_is_honoured(stub) -> None:
    stub.responder = sequence(StubFailure(429, "slow down", retry_after=0.3))
    client = JudgeClient(**opts(stub, backoff_base=0.001))
    reply = client.complete([{"role": "user", "content": "hi"}])
    assert stub.calls == 2 and reply.text
    first, second = stub.request_times
    assert 0.3 <= second - first < 1.5


def test_retry_after_ms_header_is_honoured(stub) -> None:
    stub.responder = sequence(StubFailure(503, headers={"retry-after-ms": "250"}))
    client = JudgeClient(**opts(stub, backoff_base=0.001))
    client.complete([{"role": "user", "content": "hi"}])
    first, second = stub.request_times
    assert second - first >= 0.25


def test_repeated_429_gives_up_after_max_retries(stub) -> None:
    stub.responder = lambda request: StubFailure(429, "rate limited", retry_after=0)
    client = JudgeClient(**opts(stub, max_retries=2))
    with pytest.raises(JudgeError) as info:
        client.complete([{"role": "user", "content": "hi"}])
    assert stub.calls == 3
    assert info.value.reason == "http_429" and info.value.status_code == 429 and info.value.attempts == 3
    assert "429" in str(info.value) and "3 attempts" in str(info.value)


def test_5xx_is_retried_then_succeeds(stub) -> None:
    stub.responder = sequence(StubFailure(500), StubFailure(502))
    score = SafetyJudge(**opts(stub))(outputs="hello")
    assert score.value is True and stub.calls == 3


def test_timeout_is_retried_then_raised(stub) -> None:
    stub.responder = lambda request: StubReply('{"value": "yes"}', delay=5.0)
    client = JudgeClient(**opts(stub, timeout=0.2, max_retries=1))
    started = time.monotonic()
    with pytest.raises(JudgeError) as info:
        client.complete([{"role": "user", "content": "hi"}])
    assert info.value.reason == "timeout" and "timed out" in str(info.value)
    assert stub.calls == 2
    assert time.monotonic() - started < 5.0  # neither call waited for its 5 s reply


def test_timeout_then_success(stub) -> None:
    stub.responder = sequence(StubReply('{"value": "no"}', delay=1.0))
    score = SafetyJudge(**opts(stub, timeout=0.2))(outputs="hello")
    assert score.value is True and stub.calls == 2


def test_connection_refused_is_retried_then_raised() -> None:
    with StubJudgeServer() as server:
        base_url = server.base_url  # the port is closed once the stub stops
    client = JudgeClient(MODEL, base_url=base_url, api_key="k", max_retries=1, backoff_base=0.01)
    with pytest.raises(JudgeError) as info:
        client.complete([{"role": "user", "content": "hi"}])
    assert info.value.reason == "connection" and info.value.attempts == 2


def test_other_4xx_is_not_retried(stub) -> None:
    stub.responder = lambda request: StubFailure(401, "bad key")
    with pytest.raises(JudgeError) as info:
        SafetyJudge(**opts(stub, json_mode=False))(outputs="hello")
    assert info.value.status_code == 401 and "bad key" in str(info.value) and stub.calls == 1


def test_rejected_response_format_is_dropped_and_remembered(stub) -> None:
    def responder(request):
        if "response_format" in request:
            return StubFailure(400, "response_format is not supported by this model")
        return '{"value": "yes", "rationale": "plain"}'

    stub.responder = responder
    judge = SafetyJudge(**opts(stub))
    assert judge(outputs="hello").value is True
    assert stub.calls == 2
    assert "response_format" in stub.requests[0] and "response_format" not in stub.requests[1]
    assert judge.client.json_mode is False
    judge(outputs="another")
    assert stub.calls == 3 and "response_format" not in stub.requests[2]


def test_a_400_without_and_with_response_format_is_an_error(stub) -> None:
    stub.responder = lambda request: StubFailure(400, "context too long")
    client = JudgeClient(**opts(stub))
    with pytest.raises(JudgeError, match="with and without response_format") as info:
        client.complete([{"role": "user", "content": "hi"}])
    assert stub.calls == 2 and info.value.status_code == 400
    assert client.json_mode is True


# -- cache -------------------------------------------------------------------------------------


def test_cache_hit_makes_no_second_http_call(stub) -> None:
    judge = SafetyJudge(**opts(stub))
    first = judge(outputs="hello")
    second = judge(outputs="hello")
    assert stub.calls == 1
    assert second.value == first.value and second.rationale == first.rationale
    assert first.metadata["cached"] is False and second.metadata["cached"] is True
    assert second.metadata["input_tokens"] == 0
    judge(outputs="something else")
    assert stub.calls == 2


class DictCache:
    """A user-supplied JudgeCache, as the engine's DuckDB-backed one would be."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.gets = 0

    def get(self, key: str) -> str | None:
        self.gets += 1
        return self.data.get(key)

    def put(self, key: str, value: str) -> None:
        self.data[key] = value


def test_a_plugged_cache_is_shared_between_clients(stub) -> None:
    cache = DictCache()
    SafetyJudge(cache=cache, **opts(stub))(outputs="hello")
    [(key, value)] = cache.data.items()
    assert len(key) == 64 and json.loads(value)["text"]
    other = SafetyJudge(cache=cache, **opts(stub))(outputs="hello")
    assert other.metadata["cached"] is True and stub.calls == 1 and cache.gets == 2


def test_cache_false_disables_caching(stub) -> None:
    judge = SafetyJudge(cache=False, **opts(stub))
    judge(outputs="hello")
    judge(outputs="hello")
    assert stub.calls == 2


def test_unusable_replies_are_not_cached(stub) -> None:
    stub.responder = sequence("garbage", '{"value": "yes", "rationale": "good"}')
    judge = SafetyJudge(**opts(stub))
    judge(outputs="hello")
    judge(outputs="hello")  # the first prompt's garbage was not cached, so it is asked again
    assert stub.calls == 3


def test_failing_cache_is_logged_not_fatal(stub, caplog) -> None:
    class Broken:
        def get(self, key):
            raise RuntimeError("db gone")

        def put(self, key, value):
            raise RuntimeError("db gone")

    with caplog.at_level(logging.WARNING, logger="evaluators.judges.client"):
        assert SafetyJudge(cache=Broken(), **opts(stub))(outputs="hello").value is True
    assert "cache get failed" in caplog.text and "cache put failed" in caplog.text


def test_cache_key_is_canonical_sha256() -> None:
    messages = [{"role": "user", "content": "hi"}]
    key = cache_key("m", messages, {"temperature": 0, "response_format": {"type": "json_object"}})
    assert key == cache_key("m", messages, {"response_format": {"type": "json_object"}, "temperature": 0})
    canonical = json.dumps(
        {
            "model": "m",
            "messages": messages,
            "parameters": {"response_format": {"type": "json_object"}, "temperature": 0},
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    assert key == hashlib.sha256(canonical.encode()).hexdigest()
    assert key != cache_key("other", messages, {"temperature": 0, "response_format": {"type": "json_object"}})
    assert key != cache_key("m", [{"role": "user", "content": "hi!"}], {"temperature": 0})


def test_in_memory_cache_evicts_least_recently_used() -> None:
    cache = InMemoryJudgeCache(max_entries=2)
    cache.put("a", "1")
    cache.put("b", "2")
    cache.get("a")
    cache.put("c", "3")
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == ("1", None, "3", 2)


# -- on_call hook ------------------------------------------------------------------------------


def test_on_call_hook_sees_every_call(stub) -> None:
    calls: list[JudgeCall] = []
    judge = SafetyJudge(on_call=calls.append, **opts(stub))
    judge(outputs="hello")
    judge(outputs="hello")
    assert len(calls) == 2
    fresh, cached = calls
    assert fresh.model == MODEL and fresh.cached is False and fresh.error is None
    assert fresh.input_tokens and fresh.output_tokens and fresh.latency_ms > 0 and fresh.attempts == 1
    assert fresh.messages[0]["role"] == "system" and "hello" in fresh.messages[1]["content"]
    assert json.loads(fresh.reply_text)["value"] is True
    assert fresh.end_time_ns >= fresh.start_time_ns
    assert cached.cached is True and cached.reply_text == fresh.reply_text


def test_on_call_hook_reports_failures(stub) -> None:
    calls: list[JudgeCall] = []
    stub.responder = lambda request: StubFailure(429, retry_after=0)
    client = JudgeClient(on_call=calls.append, **opts(stub, max_retries=1))
    with pytest.raises(JudgeError):
        client.complete([{"role": "user", "content": "hi"}])
    [call] = calls
    assert call.reply_text is None and "429" in call.error and call.attempts == 2


def test_on_call_hook_that_raises_is_logged_and_ignored(stub, caplog) -> None:
    def hook(call: JudgeCall) -> None:
        raise RuntimeError("hook broke")

    with caplog.at_level(logging.WARNING, logger="evaluators.judges.client"):
        score = SafetyJudge(on_call=hook, **opts(stub))(outputs="hello")
    assert score.value is True
    assert "on_call hook raised" in caplog.text and "hook broke" in caplog.text


# -- adaptive limiter --------------------------------------------------------------------------


def test_limiter_halves_on_overload_and_recovers_additively() -> None:
    limiter = AdaptiveLimiter(max_concurrency=8, increase_after=3)
    for expected in (4, 2, 1, 1):
        limiter.overloaded(limiter.acquire())
        assert limiter.limit == expected
    for _ in range(2):
        limiter.succeeded(limiter.acquire())
    assert limiter.limit == 1
    limiter.succeeded(limiter.acquire())
    assert limiter.limit == 2
    for _ in range(100):
        limiter.succeeded(limiter.acquire())
    assert limiter.limit == 8 and limiter.in_flight == 0


def test_limiter_halves_once_for_overloads_from_the_same_window() -> None:
    limiter = AdaptiveLimiter(max_concurrency=8)
    slots = [limiter.acquire() for _ in range(8)]
    for slot in slots:
        limiter.overloaded(slot)
    assert limiter.limit == 4


def test_limiter_caps_concurrency_across_threads() -> None:
    limiter = AdaptiveLimiter(max_concurrency=3)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def work() -> None:
        slot = limiter.acquire()
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        limiter.succeeded(slot)

    def run(n: int) -> int:
        state["peak"] = 0
        threads = [threading.Thread(target=work) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return state["peak"]

    assert run(12) == 3
    limiter.overloaded(limiter.acquire())
    assert limiter.limit == 1
    limiter.increase_after = 1000  # hold the limit where it is for the next run
    assert run(6) == 1


def test_limiter_acquire_timeout() -> None:
    limiter = AdaptiveLimiter(max_concurrency=1)
    limiter.acquire()
    with pytest.raises(TimeoutError):
        limiter.acquire(timeout=0.05)


def test_limiter_shrinks_under_429s_from_the_endpoint(stub) -> None:
    lock = threading.Lock()
    state = {"n": 0}

    def responder(request):
        with lock:
            state["n"] += 1
            n = state["n"]
        if n <= 12:
            return StubFailure(429, retry_after=0.05, delay=0.02)
        return StubReply('{"value": "yes", "rationale": "ok"}', delay=0.02)

    stub.responder = responder
    judge = SafetyJudge(**opts(stub, max_concurrency=8, max_retries=10, increase_after=50))
    results: list[Score] = []
    # Twice as many callers as the limit, so the limit is what keeps in-flight calls at 8 or fewer.
    threads = [threading.Thread(target=lambda i=i: results.append(judge(outputs=f"text {i}"))) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16 and all(r.value is True for r in results)
    assert judge.client.limiter.limit < 8
    assert stub.max_in_flight <= 8


def test_sixteen_threads_share_one_judge(stub) -> None:
    judge = CorrectnessJudge(**opts(stub))
    results: dict[int, Score] = {}

    def work(i: int) -> None:
        answer = f"answer-{i}"
        output = answer if i % 2 else "something else"
        results[i] = judge(inputs=f"q{i}", outputs=output, expectations={"expected_answer": answer})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stub.calls == 16
    assert all(results[i].value is bool(i % 2) for i in range(16))


# -- configuration -----------------------------------------------------------------------------


def test_env_is_read_when_the_judge_is_built(stub, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_MODEL", "fallback-model")
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    assert SafetyJudge().client.model == "fallback-model"
    monkeypatch.setenv("AGENTTRACE_JUDGE_MODEL", "judge-env-model")
    judge = SafetyJudge()
    assert judge.client.model == "judge-env-model" and judge.client.base_url == stub.base_url
    assert SafetyJudge(model="arg-model").client.model == "arg-model"
    judge(outputs="hello")
    assert stub.requests[0]["model"] == "judge-env-model"


def test_no_model_is_a_clear_config_error() -> None:
    with pytest.raises(JudgeConfigError, match="AGENTTRACE_JUDGE_MODEL") as info:
        SafetyJudge()
    assert isinstance(info.value, ConfigError) and isinstance(info.value, JudgeError)


def test_no_key_for_openai_itself_is_a_config_error(monkeypatch) -> None:
    monkeypatch.setenv("AGENTTRACE_JUDGE_MODEL", "m")
    with pytest.raises(JudgeConfigError, match="API key"):
        SafetyJudge()


def test_a_local_base_url_needs_no_key(stub, monkeypatch) -> None:
    monkeypatch.setenv("AGENTTRACE_JUDGE_MODEL", "m")
    monkeypatch.setenv("AGENTTRACE_JUDGE_BASE_URL", stub.base_url)
    assert SafetyJudge()(outputs="hi").value is True


# -- make_judge and templates ------------------------------------------------------------------


def test_make_judge_inline_template_with_categories(stub) -> None:
    stub.responder = lambda request: '{"value": "FORMAL", "rationale": "stiff"}'
    judge = make_judge(
        "tone",
        "Classify the tone of {{ outputs }} for {{ inputs.user }}.",
        output=["formal", "casual"],
        **opts(stub),
    )
    score = judge(inputs={"user": "ann"}, outputs="Dear Sir")
    assert score.value == "formal" and score.label == "formal" and score.rationale == "stiff"
    assert judge.name == "tone" and judge.aggregation == "categorical"
    prompt = user_prompt(stub.requests[0])
    assert prompt == "Classify the tone of Dear Sir for ann."
    assert 'one of "formal", "casual"' in stub.requests[0]["messages"][0]["content"]


def test_make_judge_from_a_template_file(stub, tmp_path) -> None:
    path = tmp_path / "my_judge.jinja"
    path.write_text(
        "Does <output>{{ outputs }}</output> contain <expected_answer>{{ expectations.answer }}</expected_answer>?"
    )
    judge = make_judge("contains", str(path), output=bool, **opts(stub))
    # The stub judges by the sections the file's template renders: the answer in the output or not.
    assert judge(outputs={"text": "it is 42"}, expectations={"answer": "42"}).value is True
    assert judge(outputs={"text": "x"}, expectations={"answer": "42"}).value is False
    assert '"text": "x"' in user_prompt(stub.requests[-1])
    assert make_judge("contains", path, **opts(stub)).name == "contains"


def test_make_judge_optional_field_renders_empty_but_missing_variable_is_named(stub) -> None:
    judge = make_judge(
        "j", "Out: {{ outputs }}{% if expectations %} exp: {{ expectations.note }}!{% endif %}", **opts(stub)
    )
    judge(outputs="a", expectations={"other": 1})
    assert user_prompt(stub.requests[0]) == "Out: a exp: !"
    judge(outputs="b")  # no expectations at all: the if-block is skipped
    assert user_prompt(stub.requests[1]) == "Out: b"
    strict = make_judge("k", "Out: {{ outputs }} vs {{ expectations.answer }}", **opts(stub))
    with pytest.raises(JudgeError, match=r"uses \{\{ expectations \}\} but this record has no expectations") as info:
        strict(outputs="c")
    assert info.value.reason == "missing_input" and stub.calls == 2


def test_make_judge_renders_the_trace(stub) -> None:
    judge = make_judge("t", "{{ trace }} / {{ trace.trace_id }}", **opts(stub))
    judge(trace=make_trace(tools=[("weather", {"city": "Oslo"})]))
    prompt = user_prompt(stub.requests[0])
    assert "[TOOL] weather" in prompt and prompt.endswith("/ t1")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Judge {{ output }} please", "uses output, which no record has"),
        ("Nothing to see here", "uses none of"),
        ("Broken {{ outputs ", "syntax error"),
        ("missing_file.jinja", "does not exist"),
    ],
)
def test_make_judge_rejects_bad_templates(stub, template, message) -> None:
    with pytest.raises(JudgeConfigError, match=message):
        make_judge("bad", template, **opts(stub))


# -- the stub itself ---------------------------------------------------------------------------


def test_stub_answers_404_json_elsewhere(stub) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(stub.base_url + "/models", timeout=5)
    assert info.value.code == 404 and "error" in json.loads(info.value.read())
    assert stub.calls == 0


def test_judges_can_share_one_client(stub) -> None:
    calls: list[JudgeCall] = []
    client = JudgeClient(on_call=calls.append, **opts(stub))
    safety, relevance = SafetyJudge(client=client), RelevanceToQueryJudge(client=client)
    safety(outputs="hi")
    relevance(inputs="Oslo weather", outputs="Oslo rain")
    assert [c.judge for c in calls] == ["safety", "relevance_to_query"]
    assert safety.client.limiter is relevance.client.limiter
    with pytest.raises(JudgeConfigError, match="not both"):
        SafetyJudge(client=client, model="other")


def test_public_names_are_pinned() -> None:
    import evaluators.judges as judges

    assert judges.__all__ == sorted(judges.__all__)
    assert set(judges.__all__) == {
        "AdaptiveLimiter", "BUILTIN_JUDGES", "ChunkRelevanceJudge", "CorrectnessJudge", "GroundednessJudge",
        "GuidelinesJudge", "InMemoryJudgeCache", "Judge", "JudgeCache", "JudgeCall", "JudgeClient",
        "JudgeConfigError", "JudgeError", "JudgeReply", "PairwiseJudge", "RelevanceToQueryJudge",
        "SafetyJudge", "ToolCallCorrectnessJudge", "cache_key", "make_judge", "parse_verdict",
    }  # fmt: skip
    assert [name for name in judges.__all__ if not hasattr(judges, name)] == []
    assert isinstance(InMemoryJudgeCache(), judges.JudgeCache)
