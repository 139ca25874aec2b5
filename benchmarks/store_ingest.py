"""Store throughput: spans per second appended to DuckDB, and search_traces latency.

1. Appends 200,000 spans (20,000 traces of 10 spans, batches of 8,192, the exporter's batch size)
   through DuckDBStore.append_spans, the exporter's own path, and reports spans/s. The baseline in
   the same run is a bare Arrow append of the same rows into a table of the same columns.
2. Fills a store with 100,000 traces and times search_traces with filters; reports the median.

    python benchmarks/store_ingest.py [--spans 200000] [--traces 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from agenttrace.schema import SPAN_COLUMNS
from agenttrace.store import DuckDBStore, _connection, _writer

BATCH = 8192


def make_columns(n_spans: int, spans_per_trace: int, offset: int = 0) -> dict[str, list]:
    rng = random.Random(offset)
    cols: dict[str, list] = {c.name: [] for c in SPAN_COLUMNS}
    base = 1_790_000_000_000_000_000
    types = ["TOOL", "LLM", "RETRIEVER", "CHAIN"]
    for i in range(n_spans):
        t, k = divmod(i + offset, spans_per_trace)
        start = base + t * 1_000_000_000 + k * 1000
        end = start + rng.randint(1_000, 2_000_000_000)
        root = k == 0
        cols["trace_id"].append(f"{t:032x}")
        cols["span_id"].append(f"{t * spans_per_trace + k:016x}")
        cols["parent_span_id"].append(None if root else f"{t * spans_per_trace:016x}")
        cols["name"].append("agent" if root else f"step_{k}")
        cols["span_type"].append("AGENT" if root else types[k % 4])
        cols["status"].append("ERROR" if rng.random() < 0.05 else "OK")
        cols["status_message"].append(None)
        cols["start_time_ns"].append(start)
        cols["end_time_ns"].append(end)
        cols["duration_ms"].append((end - start) / 1e6)
        cols["inputs"].append(json.dumps({"question": f"question number {t}", "k": k}))
        cols["outputs"].append(json.dumps(f"answer {t}-{k}"))
        cols["attributes"].append("{}")
        cols["events"].append("[]")
        cols["model"].append("m-1" if k % 4 == 1 else None)
        cols["input_tokens"].append(100 if k % 4 == 1 else None)
        cols["output_tokens"].append(20 if k % 4 == 1 else None)
        cols["resource"].append('{"service.name":"bench"}')
        cols["scope"].append("agenttrace")
        cols["root_rank"].append(2 if root else 0)
        cols["experiment"].append("Default" if root else None)
        cols["run_id"].append(None)
        cols["session_id"].append(None)
        cols["user_id"].append(None)
        cols["tags"].append(json.dumps({"env": rng.choice(["prod", "dev"])}) if root else None)
        cols["metadata"].append(None)
        cols["agent_name"].append(None)
        cols["agent_version"].append(None)
    return {name: values for name, values in cols.items() if values}  # columns left out are null


def _batches(cols: dict[str, list], size: int) -> list[dict[str, list]]:
    n = len(cols["trace_id"])
    return [{k: v[i : i + size] for k, v in cols.items()} for i in range(0, n, size)]


def bench_append(n_spans: int, tmp: Path) -> tuple[float, float]:
    batches = _batches(make_columns(n_spans, 10), BATCH)
    store = DuckDBStore(tmp / "ingest.duckdb")
    store.initialise()
    start = time.perf_counter()
    for batch in batches:
        store.append_spans(batch)
    _connection.release()  # includes the final checkpoint
    ours = n_spans / (time.perf_counter() - start)

    con = duckdb.connect(str(tmp / "bare.duckdb"))
    con.execute("CREATE TABLE spans AS SELECT * FROM (SELECT 1) WHERE false")  # replaced below
    con.execute("DROP TABLE spans")
    first = _writer.to_arrow(batches[0]).slice(0, 0)
    con.register("empty", first)
    con.execute("CREATE TABLE spans AS SELECT * FROM empty")
    con.unregister("empty")
    start = time.perf_counter()
    for batch in batches:
        table = _writer.to_arrow(batch)
        con.register("b", table)
        con.execute("INSERT INTO spans SELECT * FROM b")
        con.unregister("b")
    con.close()
    bare = n_spans / (time.perf_counter() - start)
    return ours, bare


def bench_search(n_traces: int, tmp: Path, rounds: int = 15) -> dict[str, float]:
    store = DuckDBStore(tmp / "search.duckdb")
    store.initialise()
    spans_per_trace = 4
    chunk = 50_000
    for offset in range(0, n_traces * spans_per_trace, chunk):
        for batch in _batches(
            make_columns(min(chunk, n_traces * spans_per_trace - offset), spans_per_trace, offset), BATCH * 4
        ):
            store.append_spans(batch)
    _connection.release()
    assert store.count_traces() == n_traces, store.count_traces()
    filters = {
        "(none)": None,
        "status = 'ERROR' AND duration_ms > 500": "status = 'ERROR' AND duration_ms > 500",
        "tags.env = 'prod' AND name LIKE 'ag%'": "tags.env = 'prod' AND name LIKE 'ag%'",
        "span.type = 'TOOL' AND status = 'ERROR'": "span.type = 'TOOL' AND status = 'ERROR'",
        "timestamp > '2026-09-22'": "timestamp > '2026-09-22'",
    }
    results = {}
    for label, text in filters.items():
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            frame = store.search_traces(text, max_results=100)
            times.append(time.perf_counter() - start)
        assert len(frame) <= 100
        results[label] = statistics.median(times) * 1000
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--traces", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours, bare = bench_append(args.spans, Path(tmp))
        print(f"append {args.spans} spans in batches of {BATCH}:")
        print(f"  DuckDBStore.append_spans   {ours:>10,.0f} spans/s  ({ours / bare:.2f}x bare Arrow append)")
        print(f"  bare Arrow append          {bare:>10,.0f} spans/s")
        print(f"search_traces over {args.traces} traces, max_results=100 (median of 15):")
        for label, ms in bench_search(args.traces, Path(tmp)).items():
            print(f"  {label:<42} {ms:>7.1f} ms")


if __name__ == "__main__":
    main()
