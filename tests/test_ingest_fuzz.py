"""Fuzzing the OTLP decoder: any body either decodes or raises IngestError, and what decodes stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agenttrace.errors import IngestError
from agenttrace.otel.ingest import decode_json, decode_protobuf, request_to_rows
from agenttrace.schema import SPAN_COLUMNS, Kind
from agenttrace.store import DuckDBStore
from agenttrace.store._writer import to_arrow
from tests.otlp_builders import make_request, make_span, new_ids

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_JSON_COLUMNS = tuple(c.name for c in SPAN_COLUMNS if c.kind is Kind.JSON)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.text(alphabet=st.characters(codec="utf-8"), max_size=10),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # noqa: E501


def _check(rows: list[dict[str, Any]]) -> None:
    """What reaches the store: valid Arrow, strict JSON the store's JSON type accepts."""
    to_arrow(rows)
    con = duckdb.connect()
    for row in rows:
        for name in _JSON_COLUMNS:
            text = row.get(name)
            if text is not None:
                con.execute("SELECT ?::JSON", [text])


def _valid_body() -> bytes:
    trace_id, span_id = new_ids()
    span = make_span("s", trace_id, span_id, attributes={"input.value": '{"a": [1, 2]}', "k": 3.5},
                     events=[("e", {"x": "y"})])  # fmt: skip
    return make_request([span]).SerializeToString()


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(body: bytes) -> None:
    try:
        request = decode_protobuf(body)
    except IngestError:
        return
    _check(request_to_rows(request).rows)


@FUZZ
@given(st.data())
def test_mutated_valid_protobuf(data: st.DataObject) -> None:
    body = bytearray(_valid_body())
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(body) - 1))
        body[pos] = data.draw(st.integers(0, 255))
    try:
        request = decode_protobuf(bytes(body))
    except IngestError:
        return
    _check(request_to_rows(request).rows)


def _otlp_json(attr_values: list[Any], trace_id: Any, span_id: Any, extra: dict[str, Any]) -> dict[str, Any]:
    attributes = [{"key": f"k{i}", "value": v} for i, v in enumerate(attr_values)]
    span = {"traceId": trace_id, "spanId": span_id, "name": "n", "attributes": attributes, **extra}
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


any_values = st.recursive(
    st.one_of(
        st.builds(lambda v: {"stringValue": v}, st.text(max_size=20)),
        st.builds(lambda v: {"intValue": v}, st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5)),
        st.builds(lambda v: {"doubleValue": v}, st.floats() | st.sampled_from(["NaN", "Infinity", "x"])),
        st.builds(lambda v: {"boolValue": v}, st.booleans() | st.integers()),
        st.builds(lambda v: {"bytesValue": v}, st.text(max_size=8)),
        json_values,
    ),
    lambda inner: st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3))
    | st.builds(lambda vs: {"kvlistValue": {"values": [{"key": "a", "value": v} for v in vs]}},
                st.lists(inner, max_size=3)),
    max_leaves=8,
)  # fmt: skip


@FUZZ
@given(
    st.lists(any_values, max_size=5),
    st.one_of(st.just("0af7651916cd43dd8448eb211c80319c"), st.text(max_size=34), st.integers()),
    st.one_of(st.just("b7ad6b7169203331"), st.text(max_size=18)),
    st.dictionaries(st.sampled_from(["parentSpanId", "startTimeUnixNano", "status", "events", "kind"]), json_values),
)
def test_json_of_any_shape(attr_values: list, trace_id: Any, span_id: Any, extra: dict) -> None:
    body = json.dumps(_otlp_json(attr_values, trace_id, span_id, extra)).encode()
    try:
        request = decode_json(body)
    except IngestError:
        return
    _check(request_to_rows(request).rows)


@FUZZ
@given(
    st.dictionaries(
        st.text(max_size=12), st.text(max_size=40) | st.integers(-(2**63), 2**63 - 1) | st.floats(), max_size=6
    )
)
def test_foreign_attribute_values_always_store(attributes: dict[str, Any]) -> None:
    """Whatever a sender puts in input.value, tag.tags, metadata..., the columns stay storable."""
    keys = ["input.value", "output.value", "metadata", "agenttrace.trace.tags", "gen_ai.input.messages",
            "llm.token_count.prompt", "gen_ai.prompt.0.content", "agenttrace.inputs"]  # fmt: skip
    mapped = {keys[i % len(keys)]: v for i, v in enumerate(attributes.values())} | attributes
    trace_id, span_id = new_ids()
    _check(request_to_rows(make_request([make_span("s", trace_id, span_id, attributes=mapped)])).rows)


def test_lone_surrogates_from_json_never_reach_the_store(tmp_path: Path) -> None:
    trace_id, span_id = new_ids()
    raw = (
        (
            '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"TID","spanId":"SID","name":"\\ud800n",'
            '"attributes":[{"key":"input.value","value":{"stringValue":"[\\"\\\\ud800\\"]"}},'
            '{"key":"k\\udfff","value":{"stringValue":"v\\ud800"}}]}]}]}]}'
        )
        .replace("TID", trace_id.hex())
        .replace("SID", span_id.hex())
    )
    try:
        request = decode_json(raw.encode())
    except IngestError as exc:  # protobuf refuses it: a clear 400, which is fine too
        assert "OTLP" in str(exc)
        return
    result = request_to_rows(request)
    store = DuckDBStore(tmp_path / "s.duckdb")
    assert store.append_new_spans(result.rows) == 1
