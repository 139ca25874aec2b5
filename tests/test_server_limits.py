"""The server's own limits: bytes in flight, counts over HTTP and gRPC, refused values, the Host guard."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agenttrace.errors import BatchRejectedError
from agenttrace.server.converter import BodyConverter
from agenttrace.server.grpc_ingest import start_grpc_server
from agenttrace.server.hosts import HostAllowList, host_name
from agenttrace.server.limits import BytesInFlight, IngestCounts
from agenttrace.server.writer import SpanWriter
from agenttrace.store import DuckDBStore
from tests.otlp_builders import make_request, make_span, new_ids
from tests.server_harness import CliServer, ServerThread, http, http_json

PB = {"Content-Type": "application/x-protobuf"}
_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class _RefusingStore(DuckDBStore):
    """A real store that refuses, on its values, any batch holding a span named 'poison'.

    No span that reaches the store through OTLP is refused so today (out-of-range times, lone
    surrogates and repeated ids were tried), so the refusal is staged at the store's edge.
    """

    def append_new_spans(self, batch: pa.Table) -> int:  # type: ignore[override]
        if "poison" in batch.column("name").to_pylist():
            raise BatchRejectedError(f"store {self.path} refused the values written: a poisoned span")
        return super().append_new_spans(batch)


class _Both:
    """The HTTP app and the gRPC receiver over one store, sharing writer, budget and counts (as `serve`)."""

    def __init__(self, path: Path, max_inflight_bytes: int) -> None:
        self.http = ServerThread(path, store_class=_RefusingStore, max_inflight_bytes=max_inflight_bytes)
        self.writer = SpanWriter(self.http.store)
        # A short wait for room before a refusal (5 s by default), so the test does not sit through it.
        self.in_flight, self.counts = BytesInFlight(max_inflight_bytes, wait_s=0.3), IngestCounts()
        self.http.app_options.update(writer=self.writer, in_flight=self.in_flight, counts=self.counts)

    def __enter__(self) -> _Both:
        self.http.start()
        self.grpc, port = start_grpc_server(
            self.writer, "127.0.0.1", 0, auth_token=None, max_body_bytes=1 << 20, max_value_bytes=1 << 20,
            converter=BodyConverter(1 << 20), in_flight=self.in_flight, counts=self.counts,
        )  # fmt: skip
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.export = self.channel.unary_unary(_EXPORT)  # raw bytes in and out, as any sender's bytes
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()
        self.grpc.stop(grace=None)
        self.http.stop()
        self.writer.close()

    def health(self) -> dict:
        return http_json(self.http.url + "/api/health")[1]["otlp"]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory):
    with _Both(tmp_path_factory.mktemp("limits") / "srv.duckdb", max_inflight_bytes=20_000) as servers:
        yield servers


def _request(*names: str) -> bytes:
    trace_id, _ = new_ids()
    return make_request([make_span(n, trace_id, new_ids()[1]) for n in names]).SerializeToString()


def test_grpc_is_counted_in_health_with_http(both: _Both) -> None:
    before = both.health()
    assert ExportTraceServiceResponse.FromString(both.export(_request("a", "b"))) is not None
    http(both.http.url + "/v1/traces", _request("c"), PB)
    after = both.health()
    assert after["spans_received"] - before["spans_received"] == 3
    assert after["stored"] - before["stored"] == 3


def test_malformed_grpc_is_invalid_argument_and_counted(both: _Both) -> None:
    before = both.health()["bad_requests"]
    with pytest.raises(grpc.RpcError) as caught:
        both.export(b"\xff\xfe not protobuf \x00\x01")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # was INTERNAL
    assert "not an OTLP" in caught.value.details()
    assert both.health()["bad_requests"] == before + 1


def _hold(url: str, declared: int) -> socket.socket:
    """A request that declares `declared` bytes and sends one, holding that much of the budget."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST /v1/traces HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {declared}\r\n\r\n\x0a".encode()
    )
    deadline = time.monotonic() + 10
    while http_json(url + "/api/health")[1]["otlp"]["bytes_in_flight"] < declared:
        assert time.monotonic() < deadline, "the held request never reached the server"
        time.sleep(0.01)
    return sock


def test_bytes_in_flight_beyond_the_bound_are_refused_with_503_and_retry_after(both: _Both) -> None:
    body = _request(*["x" * 200] * 30)  # a few KB: alone it is always admitted
    busy_before = both.health()["requests_busy"]
    held = _hold(both.http.url, 18_000)
    try:
        status, headers, raw = http(both.http.url + "/v1/traces", body, PB)
        assert (status, headers["retry-after"]) == (503, "1")
        assert "in flight" in status_pb2.Status.FromString(raw).message
        with pytest.raises(grpc.RpcError) as caught:  # one budget for both receivers
            both.export(body)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert both.health()["requests_busy"] == busy_before + 2
    finally:
        held.close()
    deadline = time.monotonic() + 10
    while both.health()["bytes_in_flight"]:  # the disconnected request gives its bytes back
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert http(both.http.url + "/v1/traces", body, PB)[0] == 200
    assert ExportTraceServiceResponse.FromString(both.export(body)) is not None


def test_spans_the_store_refuses_on_values_are_400_not_503_and_the_rest_stored(both: _Both) -> None:
    # Before: the writer's failure was answered 503, which every sender retries, forever in vain.
    stored = both.health()["stored"]
    status, headers, raw = http(both.http.url + "/v1/traces", _request("poison"), PB)
    assert status == 400 and "retry-after" not in headers
    assert "refused by the store on their values" in status_pb2.Status.FromString(raw).message
    status, _, raw = http(both.http.url + "/v1/traces", _request("good", "poison", "good2"), PB)
    partial = ExportTraceServiceResponse.FromString(raw).partial_success
    assert status == 200 and partial.rejected_spans == 1 and "poisoned" in partial.error_message
    with pytest.raises(grpc.RpcError) as caught:
        both.export(_request("poison"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    health = both.health()
    assert health["stored"] - stored == 2 and health["spans_refused"] >= 3


def test_a_request_larger_than_the_limit_is_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ServerThread(tmp_path / "s.duckdb", max_body_bytes=1_000) as srv:
        status, headers, _ = http(srv.url + "/v1/traces", b"\x00" * 5_000, PB)
        assert status == 413 and headers["x-agenttrace-max-body-bytes"] == "1000"
        health = http_json(srv.url + "/api/health")[1]["otlp"]
    assert (health["requests_too_large"], health["max_body_bytes"]) == (1, 1000)
    assert "413 from 127.0.0.1" in caplog.text and "above the limit of 1000 bytes" in caplog.text


# ---- the Host guard (DNS rebinding) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [("localhost:4318", "localhost"), ("[::1]:4318", "::1"), ("127.0.0.1", "127.0.0.1"), ("Evil.Example.:80",
     "evil.example"), ("[fe80::1]", "fe80::1")],
)  # fmt: skip
def test_host_name_from_the_header(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("hosts") / "srv.duckdb"
    with ServerThread(path, allowed_hosts=["traces.corp", "*.lab.example"]) as srv:
        yield srv


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("127.0.0.1:{port}", True), ("localhost:{port}", True), ("app.localhost", True), ("[::1]:{port}", True),
     ("192.168.1.20:{port}", True), ("traces.corp:{port}", True), ("a.lab.example", True),
     ("evil.example:{port}", False), ("lab.example.evil.com", False), ("traces.corp.evil.com", False),
     ("127.0.0.1.nip.io", False)],
)  # fmt: skip
def test_requests_for_other_host_names_get_403_naming_the_flag(guarded: ServerThread, host: str, allowed: bool) -> None:
    port = guarded.url.rsplit(":", 1)[1]
    status, _, raw = http(guarded.url + "/api/traces", headers={"Host": host.format(port=port)})
    if allowed:
        assert status == 200
    else:
        assert status == 403
        message = json.loads(raw)["error"]
        assert "--allowed-host" in message and host.split(":")[0] in message and "DNS rebinding" in message


def test_the_host_check_comes_before_the_token(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "s.duckdb", auth_token="t") as srv:
        assert http(srv.url + "/api/traces", headers={"Host": "evil.example"})[0] == 403
        assert http(srv.url + "/api/traces")[0] == 401


def test_allow_any_host_and_websockets_refused() -> None:
    import asyncio

    sent: list[dict] = []

    async def inner(scope: dict, receive: object, send: object) -> None:
        sent.append({"type": "passed"})

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "websocket", "headers": [(b"host", b"evil.example")]}
    asyncio.run(HostAllowList(inner)(scope, None, send))
    assert sent[0]["type"] == "websocket.close" and sent[0]["code"] == 1008
    sent.clear()
    asyncio.run(HostAllowList(inner, allowed=["*"])(scope, None, send))
    assert sent == [{"type": "passed"}]


def test_cli_takes_allowed_hosts_and_the_in_flight_bound(tmp_path: Path) -> None:
    store = tmp_path / "cli.duckdb"
    with CliServer(
        "--store", str(store), "--ingest-workers", "0", "--allowed-host", "traces.corp", "--max-inflight-mb", "2"
    ) as srv:
        assert http(srv.url + "/api/health", headers={"Host": "traces.corp"})[0] == 200
        assert http(srv.url + "/api/health", headers={"Host": "evil.example"})[0] == 403
        health = http_json(srv.url + "/api/health")[1]["otlp"]
        assert health["max_bytes_in_flight"] == 2 * 1024 * 1024
