"""`agenttrace server` takes OTLP in over HTTP (and gRPC) with the spec's answers; bad input loses nothing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agenttrace.store import DuckDBStore
from tests.otlp_builders import make_request, make_span, new_ids
from tests.server_harness import ServerThread, http, http_json

PB = {"Content-Type": "application/x-protobuf"}


def _body(n: int = 2) -> tuple[bytes, str]:
    trace_id, root = new_ids()
    spans = [make_span("root", trace_id, root, attributes={"openinference.span.kind": "AGENT"})]
    spans += [make_span(f"child{i}", trace_id, new_ids()[1], root) for i in range(n - 1)]
    return make_request(spans).SerializeToString(), trace_id.hex()


@pytest.fixture
def server(tmp_path: Path):
    with ServerThread(tmp_path / "server.duckdb", max_body_bytes=1_000_000) as srv:
        yield srv


def _stored_spans(srv: ServerThread) -> int:
    return http_json(srv.url + "/api/health")[1]["otlp"]["stored"]


def test_protobuf_gzip_and_json_are_stored(server: ServerThread) -> None:
    body, trace_id = _body(3)
    status, headers, raw = http(server.url + "/v1/traces", body, PB)
    assert status == 200 and headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(raw).HasField("partial_success")
    body2, trace2 = _body(2)
    status, _, _ = http(server.url + "/v1/traces", gzip.compress(body2), {**PB, "Content-Encoding": "gzip"})
    assert status == 200
    tid, sid = new_ids()
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": tid.hex(), "spanId": sid.hex(), "name": "from-json", "startTimeUnixNano": "1",
         "endTimeUnixNano": "2"}
    ]}]}]}  # fmt: skip
    status, headers, raw = http(
        server.url + "/v1/traces", json.dumps(doc).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200 and headers["content-type"] == "application/json" and json.loads(raw) == {}
    status, listed = http_json(server.url + "/api/traces?max_results=10")
    assert status == 200
    assert {t["trace_id"]: t["span_count"] for t in listed["traces"]} == {trace_id: 3, trace2: 2, tid.hex(): 1}


def test_partial_success_counts_rejected_spans(server: ServerThread) -> None:
    trace_id, span_id = new_ids()
    spans = [make_span("ok", trace_id, span_id), make_span("bad", b"\x01" * 3, span_id)]
    status, _, raw = http(server.url + "/v1/traces", make_request(spans).SerializeToString(), PB)
    assert status == 200
    partial = ExportTraceServiceResponse.FromString(raw).partial_success
    assert partial.rejected_spans == 1 and "trace_id" in partial.error_message
    assert _stored_spans(server) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (b"\xff\xfe not protobuf \x00\x01", PB, 400, "not an OTLP"),
        (b"\x0a\x05\x12\x03\x0a\x01", PB, 400, "not an OTLP"),  # truncated nested message
        (b'{"resourceSpans": "nope"}', {"Content-Type": "application/json"}, 400, "shape"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}', {"Content-Type": "application/json"},
         400, "shape"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400, "object"),
        (b'{"resourceSpans": [{"x": "\xff\xfe"}]}', {"Content-Type": "application/json"}, 400, "UTF-8"),
        (b"not gzip at all", {**PB, "Content-Encoding": "gzip"}, 400, "gzip"),
        (gzip.compress(b"\x00" * 2_000_000), {**PB, "Content-Encoding": "gzip"}, 413, "limit"),
        (b"x" * 1_000_001, PB, 413, "limit"),
        (b"{}", {"Content-Type": "text/plain"}, 415, "content type"),
        (b"{}", {}, 415, "content type"),
        (b"{}", {**PB, "Content-Encoding": "br"}, 415, "encoding"),
    ],
    ids=["garbage", "truncated", "json-shape", "json-types", "json-array", "json-utf8", "bad-gzip", "gzip-bomb",
         "too-large", "text-plain", "no-type", "brotli"],
)  # fmt: skip
def test_bad_requests_get_clear_errors_and_lose_nothing(
    server: ServerThread, body: bytes, headers: dict, status: int, says: str
) -> None:
    good, trace_id = _body(2)
    assert http(server.url + "/v1/traces", good, PB)[0] == 200
    got, got_headers, raw = http(server.url + "/v1/traces", body, headers)
    assert got == status
    if got_headers["content-type"] == "application/json":
        message = json.loads(raw)["message"]
    else:
        message = status_pb2.Status.FromString(raw).message
    assert says in message
    # The server is up and what it stored before is intact.
    status_code, health = http_json(server.url + "/api/health")
    assert status_code == 200 and health["otlp"]["stored"] == 2
    assert http_json(f"{server.url}/api/traces/{trace_id}")[1]["info"]["span_count"] == 2


def test_a_50_mb_body_is_refused_with_413(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "s.duckdb") as srv:  # the default 20 MB limit
        status, _, raw = http(srv.url + "/v1/traces", b"\x00" * (50 * 1024 * 1024), PB)
        assert status == 413 and "limit" in status_pb2.Status.FromString(raw).message
        assert http(srv.url + "/v1/traces", _body(1)[0], PB)[0] == 200


def test_several_megabyte_attribute_is_kept_as_a_preview(server: ServerThread) -> None:
    trace_id, span_id = new_ids()
    span = make_span("big", trace_id, span_id, attributes={"input.value": "y" * 900_000, "small": 1})
    with ServerThread(Path(server.store.path).with_name("big.duckdb")) as srv:  # 20 MB body limit, 1 MB values
        status, _, raw = http(srv.url + "/v1/traces", make_request([span]).SerializeToString(), PB)
        assert status == 200 and not ExportTraceServiceResponse.FromString(raw).partial_success.error_message
        span2 = make_span("bigger", trace_id, new_ids()[1], attributes={"input.value": "z" * 5_000_000})
        status, _, raw = http(srv.url + "/v1/traces", make_request([span2]).SerializeToString(), PB)
        assert status == 200
        assert "cut to a preview" in ExportTraceServiceResponse.FromString(raw).partial_success.error_message
        spans = {s["name"]: s for s in http_json(f"{srv.url}/api/traces/{trace_id.hex()}")[1]["spans"]}
        assert len(spans["big"]["inputs"]) == 900_000
        assert "cut at ingest" in spans["bigger"]["inputs"]


def test_resent_request_is_stored_once(server: ServerThread) -> None:
    body, trace_id = _body(4)
    for _ in range(3):
        assert http(server.url + "/v1/traces", body, PB)[0] == 200
    health = http_json(server.url + "/api/health")[1]["otlp"]
    assert (health["stored"], health["duplicates"]) == (4, 8)
    assert http_json(f"{server.url}/api/traces/{trace_id}")[1]["info"]["span_count"] == 4


def test_store_content_survives_server_restart(tmp_path: Path) -> None:
    path = tmp_path / "restart.duckdb"
    body, trace_id = _body(2)
    with ServerThread(path) as srv:
        assert http(srv.url + "/v1/traces", body, PB)[0] == 200
    assert DuckDBStore(path).get_trace(trace_id).info.span_count == 2
