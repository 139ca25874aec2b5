"""Per-call cost of @agenttrace.trace against a bare OpenTelemetry span, flush included.

Prints, in one run, the median over several rounds of: an undecorated call; a bare OpenTelemetry
span (SDK TracerProvider, BatchSpanProcessor, an exporter that discards); @agenttrace.trace writing
to DuckDB, flat and nested three deep. Each round times N calls plus the flush that stores them,
so the cost of the background export is counted. Ratios are against the bare span of the same run.

    python benchmarks/trace_overhead.py [--calls 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import agenttrace
from agenttrace.tracing import runtime


class _Discard(SpanExporter):
    def export(self, spans):  # noqa: ANN001
        return SpanExportResult.SUCCESS


def _bare_otel(calls: int) -> float:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Discard(), max_queue_size=calls + 1))
    tracer = provider.get_tracer("bench")

    def step(x: int) -> int:
        with tracer.start_as_current_span("step"):
            return x + 1

    start = time.perf_counter()
    for i in range(calls):
        step(i)
    provider.force_flush()
    elapsed = time.perf_counter() - start
    provider.shutdown()
    return elapsed


def _plain(calls: int) -> float:
    def step(x: int) -> int:
        return x + 1

    start = time.perf_counter()
    for i in range(calls):
        step(i)
    return time.perf_counter() - start


def _agenttrace(calls: int, depth: int, store: Path) -> float:
    runtime.reset()
    agenttrace.configure(store=str(store))

    @agenttrace.trace
    def leaf(x: int) -> int:
        return x + 1

    @agenttrace.trace
    def middle(x: int) -> int:
        return leaf(x)

    @agenttrace.trace
    def top(x: int) -> int:
        return middle(x)

    fn: Callable[[int], int] = {1: leaf, 3: top}[depth]
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    agenttrace.flush()
    elapsed = time.perf_counter() - start
    stored = runtime.get_runtime().store.count_traces()
    runtime.reset()
    if stored != calls:  # a fast number for lost spans is no number
        raise SystemExit(f"stored {stored} traces of {calls}: the measurement is void")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {k: [] for k in ("plain", "otel", "flat", "nested3")}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            results["plain"].append(_plain(args.calls) / args.calls)
            results["otel"].append(_bare_otel(args.calls) / args.calls)
            results["flat"].append(_agenttrace(args.calls, 1, Path(tmp) / f"flat{r}.duckdb") / args.calls)
            # nested: three spans per call, so compare per span as well as per call
            results["nested3"].append(_agenttrace(args.calls, 3, Path(tmp) / f"nest{r}.duckdb") / args.calls)
    med = {k: statistics.median(v) * 1e6 for k, v in results.items()}
    # Ratios are taken round by round (each case against the bare span of the same round), then the
    # median: the machine's speed drifts between rounds, and a pair shares one round's conditions.
    ratio = {k: statistics.median(a / b for a, b in zip(v, results["otel"], strict=True)) for k, v in results.items()}
    print(f"calls per round: {args.calls}, rounds: {args.rounds} (medians, flush included)")
    print(f"{'case':<34}{'us/call':>10}{'x bare OTel span':>18}")
    print(f"{'undecorated call':<34}{med['plain']:>10.2f}{ratio['plain']:>18.2f}")
    print(f"{'bare OpenTelemetry span':<34}{med['otel']:>10.2f}{1.0:>18.2f}")
    print(f"{'@agenttrace.trace -> DuckDB, flat':<34}{med['flat']:>10.2f}{ratio['flat']:>18.2f}")
    print(f"{'nested 3 deep (per call)':<34}{med['nested3']:>10.2f}{ratio['nested3']:>18.2f}")
    print(f"{'nested 3 deep (per span)':<34}{med['nested3'] / 3:>10.2f}{ratio['nested3'] / 3:>18.2f}")


if __name__ == "__main__":
    main()
