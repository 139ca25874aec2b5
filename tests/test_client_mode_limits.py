"""Client mode against the server's limits: bodies cut under its limit, refusals retried, losses counted."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

import agenttrace
from agenttrace.errors import BatchRejectedError, StoreError
from agenttrace.otel.client_export import MAX_BODY_HEADER, ServerSpanExporter
from agenttrace.server.limits import BytesInFlight
from agenttrace.store import DuckDBStore
from agenttrace.tracing import runtime
from agenttrace.tracing.server_reads import ServerReads
from tests.otlp_receivers import HttpReceiver
from tests.server_harness import ServerThread, http_json


@agenttrace.trace(span_type="TOOL")
def _tool(text: str) -> int:
    return len(text)


def _health(srv: ServerThread) -> dict:
    return http_json(srv.url + "/api/health")[1]["otlp"]


def _client(srv: ServerThread) -> ServerSpanExporter:
    [processor] = runtime.get_runtime().remote_processors
    assert isinstance(processor.exporter, ServerSpanExporter)
    return processor.exporter


@pytest.mark.parametrize(("spans", "size"), [(110, 50_000), (600, 1_500)], ids=["50KB-inputs", "1.5KB-inputs"])
def test_every_span_is_stored_under_a_small_body_limit(tmp_path: Path, spans: int, size: int) -> None:
    # Before: one request per batch of up to 8,192 spans, a 413, and every span lost.
    limit = 256 * 1024
    with ServerThread(tmp_path / "srv.duckdb", max_body_bytes=limit) as srv:
        agenttrace.configure(store=None, uri=srv.url)
        for i in range(spans):
            _tool(f"{i:06d}" + "x" * size)
        assert agenttrace.flush()
        assert runtime.get_runtime().lost_spans() == (0, 0)
        health = _health(srv)
        assert (health["stored"], health["failed"], health["max_body_bytes"]) == (spans, 0, limit)
        # The client learnt the limit from the server (at most one 413 to learn it from).
        assert _client(srv).max_body_bytes == limit and health["requests_too_large"] <= 1
    assert DuckDBStore(tmp_path / "srv.duckdb").count_traces() == spans


def test_opentelemetrys_compression_setting_gzips_client_mode_bodies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    with ServerThread(tmp_path / "srv.duckdb", max_body_bytes=256 * 1024) as srv:
        agenttrace.configure(store=None, uri=srv.url)
        for i in range(60):
            _tool(f"{i:04d} " + "the same words again " * 1000)  # 21 KB each, 1.2 MB in all
        assert agenttrace.flush()
        client = _client(srv)
        assert client.gzip and runtime.get_runtime().lost_spans() == (0, 0)
        assert _health(srv)["stored"] == 60
        assert client.bytes_sent < 200_000  # what went over the wire, gzipped
    stored = DuckDBStore(tmp_path / "srv.duckdb").search_traces(max_results=100)
    assert len(stored) == 60 and all("again" in text for text in stored["inputs"].astype(str))


def test_a_span_alone_above_the_limit_is_counted_lost_and_its_batch_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ServerThread(tmp_path / "srv.duckdb", max_body_bytes=16 * 1024) as srv:
        agenttrace.configure(store=None, uri=srv.url)
        for i in range(20):
            _tool(str(i))
        _tool("y" * 40_000)
        with caplog.at_level(logging.WARNING, logger="agenttrace"):
            agenttrace.flush()
        assert runtime.get_runtime().lost_spans() == (0, 1)
        assert _health(srv)["stored"] == 20
    assert "above the server's body limit of 16,384 bytes" in caplog.text and "--max-body-mb" in caplog.text


def test_client_mode_sends_each_payload_once_on_the_wire() -> None:
    # The schema change dropped the input.value/output.value copies from client mode: none is sent.
    with HttpReceiver() as rx:
        agenttrace.configure(store=None, uri=rx.endpoint.removesuffix("/v1/traces"))
        _tool("question")
        assert agenttrace.flush()
        [span] = rx.wait_for(1)
    assert span.attributes["agenttrace.inputs"] == '{"text":"question"}'
    assert not [k for k in span.attributes if k.startswith(("input.", "output.", "openinference.", "gen_ai."))]


def _hold_budget(srv: ServerThread, declared: int) -> socket.socket:
    """A request that declares `declared` bytes and sends one: it holds that much of the in-flight budget."""
    host, port = srv.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (f"POST /v1/traces HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-protobuf\r\n"
            f"Content-Length: {declared}\r\n\r\n")  # fmt: skip
    sock.sendall(head.encode() + b"\x0a")
    deadline = time.monotonic() + 10
    while _health(srv)["bytes_in_flight"] < declared:
        assert time.monotonic() < deadline, "the held request never reached the server"
        time.sleep(0.01)
    return sock


def test_a_busy_server_is_retried_until_it_takes_the_spans(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "srv.duckdb", in_flight=BytesInFlight(8_000, wait_s=0.3)) as srv:
        agenttrace.configure(store=None, uri=srv.url)
        held = _hold_budget(srv, 7_000)
        for i in range(40):
            _tool(f"{i}" * 100)
        flushed: list[bool] = []
        flusher = threading.Thread(target=lambda: flushed.append(agenttrace.flush()))
        flusher.start()
        deadline = time.monotonic() + 10
        while _health(srv)["requests_busy"] < 1:  # the client met a 503 with Retry-After...
            assert time.monotonic() < deadline, "the client never met the busy server"
            time.sleep(0.01)
        held.close()  # ...and once the budget is free again, its retry is taken
        flusher.join(30)
        assert flushed == [True]
        assert runtime.get_runtime().lost_spans() == (0, 0)
        assert _health(srv)["stored"] == 40 and _client(srv).requests >= 2


class _RefusingStore(DuckDBStore):
    """A real store that refuses, on its values, any batch holding a span named 'poison'.

    No span that reaches the store through OTLP is refused so today (out-of-range times, lone
    surrogates and repeated ids were tried), so the refusal is staged here, at the store's edge.
    """

    def append_new_spans(self, batch: pa.Table) -> int:  # type: ignore[override]
        if "poison" in batch.column("name").to_pylist():
            raise BatchRejectedError(f"store {self.path} refused the values written: a poisoned span")
        return super().append_new_spans(batch)


@agenttrace.trace(name="poison")
def _poison() -> None:
    pass


def test_spans_the_store_refuses_are_lost_at_once_and_the_others_stored(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "srv.duckdb", store_class=_RefusingStore) as srv:
        agenttrace.configure(store=None, uri=srv.url)
        _tool("fine")
        _poison()
        agenttrace.flush()
        assert runtime.get_runtime().lost_spans() == (0, 1)
        assert _health(srv)["spans_refused"] == 1 and _health(srv)["stored"] == 1
        sent = _client(srv).requests
        _poison()  # a request of refused spans only: 400, not retried
        agenttrace.flush()
        assert runtime.get_runtime().lost_spans() == (0, 2) and _client(srv).requests == sent + 1


def test_reads_from_a_server_that_is_not_there_say_the_connection_was_refused() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    reads = ServerReads(f"http://127.0.0.1:{port}", timeout_s=30)
    with pytest.raises(StoreError, match="refused the connection: nothing is listening there") as caught:
        reads.search_traces()
    assert "within" not in str(caught.value)


def test_every_answer_names_the_body_limit(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "srv.duckdb", max_body_bytes=12_345) as srv:
        exporter = ServerSpanExporter(srv.url + "/v1/traces")
        assert exporter.max_body_bytes == 20 * 1024 * 1024
        response = exporter._session.post(srv.url + "/v1/traces", data=b"")
        assert response.status_code == 200 and response.headers[MAX_BODY_HEADER] == "12345"
        exporter.shutdown()
