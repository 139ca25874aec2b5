"""Web UI page latency at 100,000 traces, through real HTTP, against the REST API's reads of the same data.

Builds a store fast: 100,000 traces as Arrow batches through DuckDBStore.append_spans (a root and an
LLM child each, tags, sessions, users, 5 % errors), one more trace with 500 spans, and an eval run
with 1,000 records (two scorers, a score assessment per record on its trace). Then starts the real
`agenttrace server` as a subprocess (it serves the UI and the REST API) and times, over several
rounds, each UI page against the REST call that reads the same rows (JSON, no HTML):

- traces list, first page (50 rows, newest first) vs `GET /api/traces?max_results=50`;
- traces list, filtered and sorted by duration vs the same filter and order on `/api/traces`;
- a 500-span trace page vs `GET /api/traces/{id}`;
- an eval run page (200 of 1,000 records sorted by a scorer in DuckDB, histograms over all 1,000)
  vs `GET /api/eval-runs/{id}?max_records=200`.

The last line is the floor under all of them: opening the store file read-only, `SELECT 1`, closing
it, which every page and REST call pays once (the file is held only while a request reads it, so
other processes can write between requests).

Time is wall time of one request from a client in this process, response body read in full;
requests are interleaved UI/REST so both see the same load. Goal: each UI page < 300 ms.

    python benchmarks/ui_pages.py [--traces 100000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import duckdb

from agenttrace.records import Assessment
from agenttrace.schema import SPAN_COLUMNS
from agenttrace.store import DuckDBStore, _connection

BATCH = 32_768
BASE_NS = 1_790_000_000_000_000_000


def trace_columns(first: int, count: int, rng: random.Random) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {c.name: [None] * (2 * count) for c in SPAN_COLUMNS}
    for j in range(count):
        t = first + j
        start = BASE_NS + t * 1_000_000
        end = start + rng.randint(1_000_000, 3_000_000_000)
        error = rng.random() < 0.05
        for k, row in enumerate((2 * j, 2 * j + 1)):
            root = k == 0
            cols["trace_id"][row] = f"{t:032x}"
            cols["span_id"][row] = f"{2 * t + k:016x}"
            cols["parent_span_id"][row] = None if root else f"{2 * t:016x}"
            cols["name"][row] = "answer" if root else "llm"
            cols["span_type"][row] = "AGENT" if root else "LLM"
            cols["status"][row] = "ERROR" if error and root else "OK"
            cols["start_time_ns"][row] = start
            cols["end_time_ns"][row] = end
            cols["duration_ms"][row] = (end - start) / 1e6
            cols["root_rank"][row] = 2 if root else 0
            cols["inputs"][row] = json.dumps({"question": f"question number {t} about the weather"})
            cols["outputs"][row] = json.dumps(f"answer {t}")
            cols["input_tokens"][row] = None if root else 300
            cols["output_tokens"][row] = None if root else 40
            if root:
                cols["experiment"][row] = "Default" if t % 10 else "canary"
                cols["session_id"][row] = f"s-{t // 5}"
                cols["user_id"][row] = f"u-{t % 97}"
                cols["tags"][row] = json.dumps({"env": "prod" if t % 3 else "dev", "region": "eu"})
    return cols


def wide_trace(spans: int) -> dict[str, list[Any]]:
    """One trace of `spans` spans: a root, 25 agent steps, each with tool and LLM children."""
    cols: dict[str, list[Any]] = {c.name: [None] * spans for c in SPAN_COLUMNS}
    start = BASE_NS + 10**15
    for i in range(spans):
        parent = None if i == 0 else (f"{0:016x}" if i <= 25 else f"{1 + (i % 25):016x}")
        s = start + i * 2_000_000
        e = s + (spans * 2_000_000 if i == 0 else 1_500_000)
        cols["trace_id"][i] = "f" * 32
        cols["span_id"][i] = f"{i:016x}"
        cols["parent_span_id"][i] = parent
        cols["name"][i] = "agent" if i == 0 else f"step-{i}"
        cols["span_type"][i] = "AGENT" if i == 0 else ("LLM" if i % 2 else "TOOL")
        cols["status"][i] = "OK"
        cols["start_time_ns"][i] = s
        cols["end_time_ns"][i] = e
        cols["duration_ms"][i] = (e - s) / 1e6
        cols["root_rank"][i] = 2 if i == 0 else 0
        cols["inputs"][i] = json.dumps({"messages": [{"role": "user", "content": f"step {i} " + "x" * 200}]})
        cols["outputs"][i] = json.dumps({"result": list(range(20))})
        cols["attributes"][i] = json.dumps({f"attr.{k}": k for k in range(10)})
        if i == 0:
            cols["experiment"][i] = "Default"
    return cols


def add_eval_run(store: DuckDBStore, records: int) -> str:
    run_id = uuid.uuid4().hex
    store.start_eval_run({
        "eval_run_id": run_id, "name": "bench", "dataset_name": "qa", "dataset_version": "v1",
        "scorers": ["exact_match", "token_f1"], "record_count": records, "started_ns": time.time_ns(),
    })  # fmt: skip
    rows, assessments = [], []
    rng = random.Random(3)
    for i in range(records):
        trace_id = f"{i * 7:032x}"
        passed, f1 = rng.random() < 0.7, rng.random()
        rows.append({
            "record_id": f"r{i}", "position": i, "trace_id": trace_id, "inputs": {"question": f"q {i}"},
            "outputs": f"answer {i}", "expectations": {"expected_response": f"answer {i}"}, "error": None,
            "latency_ms": rng.random() * 900,
            "scores": {"exact_match": {"value": passed, "rationale": "matches" if passed else "differs"},
                       "token_f1": {"value": f1, "rationale": f"f1 {f1:.2f}"}},
        })  # fmt: skip
        assessments.append(
            Assessment(
                uuid.uuid4().hex,
                trace_id,
                "exact_match",
                "feedback",
                passed,
                source_type="CODE",
                eval_run_id=run_id,
                created_ns=time.time_ns(),
            )  # fmt: skip
        )
    store.add_eval_records(run_id, rows, assessments)
    store.finish_eval_run(run_id, "FINISHED", {"scorers": {}, "run": {"records": records}})
    return run_id


def fetch(base: str, path: str) -> tuple[int, int]:
    parts = urlsplit(base)
    con = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        con.request("GET", path)
        response = con.getresponse()
        return response.status, len(response.read())
    finally:
        con.close()


def paired(base: str, ui: str, api: str, rounds: int) -> tuple[float, float, int]:
    """Median ms of the UI page and of the REST call, interleaved; the UI page's size in bytes."""
    for path in (ui, api):  # warm both (first open of the file, template compilation)
        status, _ = fetch(base, path)
        assert status == 200, (path, status)
    ui_times, api_times, size = [], [], 0
    for _ in range(rounds):
        for path, times in ((ui, ui_times), (api, api_times)):
            start = time.perf_counter()
            status, size_read = fetch(base, path)
            times.append((time.perf_counter() - start) * 1000)
            assert status == 200, (path, status)
            size = size_read if path == ui else size
    return statistics.median(ui_times), statistics.median(api_times), size


def open_floor(path: Path, rounds: int) -> float:
    """Median ms of a fresh read-only connection, a trivial query and its close: each request's fixed cost."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        con = duckdb.connect(str(path), read_only=True)
        con.execute("SELECT 1").fetchall()
        con.close()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ui.duckdb"
        store = DuckDBStore(path)
        store.initialise()
        began = time.perf_counter()
        rng = random.Random(7)
        for first in range(0, args.traces, BATCH):
            store.append_spans(trace_columns(first, min(BATCH, args.traces - first), rng))
        store.append_spans(wide_trace(500))
        run_id = add_eval_run(store, 1_000)
        _connection.release()
        print(f"built {args.traces:,} traces + a 500-span trace + a 1,000-record eval run "
              f"in {time.perf_counter() - began:.1f} s")  # fmt: skip

        proc = subprocess.Popen(
            [sys.executable, "-m", "agenttrace", "server", "--port", "0", "--ingest-workers", "0",
             "--store", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            match = re.search(r"listening on (http://\S+)", line)
            assert match, line
            base = match.group(1)
            flt = quote("tags.env = 'prod' AND duration_ms > 1000")
            order = quote("duration_ms DESC")
            cases = [
                ("traces list, page 1", "/ui/traces", "/api/traces?max_results=50"),
                ("traces list, filter + sort", f"/ui/traces?q={flt}&order=duration_ms&desc=1",
                 f"/api/traces?max_results=50&filter={flt}&order_by={order}"),
                ("trace with 500 spans", "/ui/traces/" + "f" * 32, "/api/traces/" + "f" * 32),
                ("eval run, 1,000 records", f"/ui/evals/{run_id}?sort=token_f1&desc=0",
                 f"/api/eval-runs/{run_id}?max_records=200"),
            ]  # fmt: skip
            print(f"medians of {args.rounds} rounds, ms (goal: UI page < 300 ms)")
            print(f"{'page':30} {'UI':>8} {'REST':>8} {'ratio':>6} {'UI bytes':>9}")
            for label, ui, api in cases:
                ours, rest, size = paired(base, ui, api, args.rounds)
                print(f"{label:30} {ours:8.1f} {rest:8.1f} {ours / rest:5.2f}x {size:9,}")
            floor = open_floor(path, args.rounds)
            print(f"floor: open the file read-only, SELECT 1, close it (every request does): {floor:.1f} ms")
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
