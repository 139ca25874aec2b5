"""End-to-end OTLP ingest: OTLP exporter -> `agenttrace server` -> DuckDB, spans per second.

Starts the real server (`python -m agenttrace server`) on 127.0.0.1 with a fresh store, then runs
1 and then 4 sender processes at once. Each sender builds its spans first (agenttrace-shaped: an
AGENT root and TOOL/LLM children carrying inputs, outputs, model and tokens), then sends them
with OpenTelemetry's own OTLPSpanExporter (HTTP/protobuf), one batch per request, back to back,
timing every request. The server answers only once a batch is committed, so the throughput is
of spans stored. Spans/s = all spans / (first send to last answer); p99 is over all requests.
`--mode raw` posts pre-encoded bodies instead, which measures the server alone (the senders'
encoding no longer shares the CPU with it). Span start times advance 1 ms per trace, as a live
agent's do. Each round also prints the CPU seconds per span spent by the server process and by
the senders while sending (the server's with its converter processes), which is what bounds the
rate when both share this machine's cores.

    python benchmarks/otlp_ingest.py [--spans 40000] [--batch 2048] [--mode exporter|raw] [--rounds 3]
                                     [--ingest-workers N]   (the server's option; default: its own)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_SENDER = r"""
import json, os, sys, time, random
import http.client
from urllib.parse import urlsplit
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

url, total, batch, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
resource = Resource.create({"agenttrace.experiment": "bench", "service.name": "bench"})
scope = InstrumentationScope("agenttrace")
rng = random.Random(os.getpid())
spans, now = [], time.time_ns()
while len(spans) < total:
    now += 1_000_000  # traces start 1 ms apart, as a live agent's do, not all at one instant
    tid = rng.getrandbits(128)
    root = SpanContext(tid, rng.getrandbits(64) | 1, False, TraceFlags(1))
    spans.append(ReadableSpan("agent", root, None, resource, {
        "agenttrace.span_type": "AGENT", "agenttrace.inputs": '{"question":"what is the weather in Paris?"}',
        "agenttrace.outputs": '"sunny, 21C"', "openinference.span.kind": "AGENT", "session.id": "s-1",
        "input.value": '{"question":"what is the weather in Paris?"}', "input.mime_type": "application/json",
    }, start_time=now, end_time=now + 5_000_000, instrumentation_scope=scope))
    for i in range(9):
        ctx = SpanContext(tid, rng.getrandbits(64) | 1, False, TraceFlags(1))
        kind = "LLM" if i % 3 == 0 else "TOOL"
        attrs = {"agenttrace.span_type": kind, "agenttrace.inputs": '{"city":"Paris","k":3}',
                 "agenttrace.outputs": '{"temp":21,"sky":"clear"}', "openinference.span.kind": kind}
        if kind == "LLM":
            attrs.update({"gen_ai.request.model": "gpt-x", "gen_ai.usage.input_tokens": 812,
                          "gen_ai.usage.output_tokens": 41, "llm.model_name": "gpt-x"})
        spans.append(ReadableSpan("step", ctx, root, resource, attrs, start_time=now + i,
                                  end_time=now + i + 1000, instrumentation_scope=scope))
spans = spans[:total]
batches = [spans[i:i + batch] for i in range(0, total, batch)]
latencies = []
if mode == "raw":
    bodies = [encode_spans(b).SerializeToString() for b in batches]
    parts = urlsplit(url)
    con = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
print("ready", flush=True)
sys.stdin.readline()  # wait for the go signal, so senders start together
cpu_start = time.process_time()
start = time.perf_counter()
if mode == "raw":
    for body in bodies:
        t = time.perf_counter()
        con.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
        r = con.getresponse(); r.read()
        assert r.status == 200, r.status
        latencies.append(time.perf_counter() - t)
else:
    exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", timeout=60)
    for b in batches:
        t = time.perf_counter()
        assert exporter.export(b) is SpanExportResult.SUCCESS
        latencies.append(time.perf_counter() - t)
end, cpu = time.perf_counter(), time.process_time() - cpu_start
print(json.dumps({"start": start, "end": end, "latencies": latencies, "cpu": cpu}), flush=True)
"""


def _start_server(store: Path, workers: int | None) -> tuple[subprocess.Popen[str], str]:
    extra = [] if workers is None else ["--ingest-workers", str(workers)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttrace", "server", "--port", "0", "--store", str(store), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline()  # type: ignore[union-attr]
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]
    return proc, match.group(1)


def _health(url: str) -> dict[str, Any]:
    from urllib.request import urlopen

    with urlopen(url + "/api/health", timeout=30) as response:
        return json.loads(response.read())["otlp"]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its living children (the server's converter
    processes), from /proc (Linux), so the server's whole cost per span shows."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _round(url: str, server_pid: int, senders: int, spans: int, batch: int, mode: str) -> dict[str, float]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SENDER, url, str(spans), str(batch), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(senders)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
    before = _health(url)["stored"]
    cpu_before = _cpu_seconds(server_pid)
    for p in procs:
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
    results = [json.loads(p.communicate(timeout=900)[0].strip().splitlines()[-1]) for p in procs]
    server_cpu = _cpu_seconds(server_pid) - cpu_before
    stored = _health(url)["stored"] - before
    assert stored == senders * spans, f"stored {stored}, sent {senders * spans}"
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies"])
    return {
        "senders": senders, "spans": stored, "seconds": elapsed, "spans_per_s": stored / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "requests": len(latencies), "server_us_per_span": server_cpu / stored * 1e6,
        "sender_us_per_span": sum(r["cpu"] for r in results) / stored * 1e6,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=40_000, help="spans per sender")
    parser.add_argument("--batch", type=int, default=2048, help="spans per OTLP request")
    parser.add_argument("--mode", choices=["exporter", "raw"], default="exporter")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 1 then 4 senders; medians are printed")
    parser.add_argument("--ingest-workers", type=int, default=None, help="the server's option (default: its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server, url = _start_server(Path(tmp) / "bench.duckdb", args.ingest_workers)
        try:
            print(f"server {url}, {args.spans} spans per sender, {args.batch} per request, mode {args.mode}, "
                  f"ingest workers {args.ingest_workers if args.ingest_workers is not None else 'default'}, "
                  f"{os.cpu_count()} cores")  # fmt: skip
            runs: dict[int, list[dict[str, float]]] = {1: [], 4: []}
            for _ in range(args.rounds):
                for senders in (1, 4):
                    r = _round(url, server.pid, senders, args.spans, args.batch, args.mode)
                    runs[senders].append(r)
                    print(f"  {senders} sender(s): {r['spans_per_s']:,.0f} spans/s; p50 {r['p50_ms']:.0f} ms, "
                          f"p99 {r['p99_ms']:.0f} ms; CPU per span: server {r['server_us_per_span']:.1f} us, "
                          f"senders {r['sender_us_per_span']:.1f} us")  # fmt: skip
            for senders, rs in runs.items():
                med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                print(f"median of {len(rs)}, {senders} sender(s): {med['spans_per_s']:,.0f} spans/s "
                      f"(range {min(r['spans_per_s'] for r in rs):,.0f}-{max(r['spans_per_s'] for r in rs):,.0f}); "
                      f"request p50 {med['p50_ms']:.0f} ms, p99 {med['p99_ms']:.0f} ms; "
                      f"CPU per span: server {med['server_us_per_span']:.1f} us, "
                      f"senders {med['sender_us_per_span']:.1f} us")  # fmt: skip
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
