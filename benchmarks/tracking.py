"""Tracking figures: log_metric calls per second, and search_runs over a store of many runs.

1. log_metric in a loop inside one run (N calls over 10 keys, step = i), timed up to and including
   the final flush (end of the run), so every value is in the store when the clock stops. Baseline
   in the same process: the same loop appending (key, value, step, time) tuples to a Python list
   and writing them as one bare Arrow append into a table of the same columns - the floor for
   "validate nothing, write once".
2. search_runs over R runs with 20 params and 20 metrics each (written straight through the store's
   own append paths, not timed): a filter on a metric and a param, ordered by a metric, the first
   100 rows (the CLI's page) and all matching rows; plus a bare DuckDB query that picks the same
   runs without building the wide columns, as a baseline.

Medians of several rounds.

    python benchmarks/tracking.py [--calls 200000] [--runs 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

import agenttrace
from agenttrace.store import DuckDBStore
from agenttrace.store._tracking import METRIC_SCHEMA
from agenttrace.tracking import runs

KEYS = [f"metric_{k}" for k in range(10)]


def log_metric_rate(folder: Path, calls: int) -> float:
    agenttrace.configure(store=str(folder / f"{uuid.uuid4().hex}.duckdb"))
    log_metric = agenttrace.log_metric
    run = agenttrace.start_run(name="bench")
    started = time.perf_counter()
    for i in range(calls):
        log_metric(KEYS[i % 10], i * 0.5, step=i)
    run.end()
    return calls / (time.perf_counter() - started)


def baseline_rate(folder: Path, calls: int) -> float:
    con = duckdb.connect(str(folder / f"{uuid.uuid4().hex}.duckdb"))
    con.execute("CREATE TABLE m (run_id VARCHAR, key VARCHAR, value DOUBLE, step BIGINT, timestamp_ns BIGINT)")
    run_id = uuid.uuid4().hex
    started = time.perf_counter()
    rows = []
    for i in range(calls):
        rows.append((run_id, KEYS[i % 10], i * 0.5, i, time.time_ns()))
    cols = list(zip(*rows, strict=True))
    table = pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(cols, METRIC_SCHEMA, strict=True)], schema=METRIC_SCHEMA
    )
    con.register("b", table)
    con.execute("INSERT INTO m SELECT * FROM b")
    con.close()
    return calls / (time.perf_counter() - started)


def fill_runs(path: Path, n_runs: int) -> None:
    """n_runs finished runs in 4 experiments, each with 20 params, 20 metrics and 2 tags.

    Runs, params and tags go in as bulk Arrow inserts (the fill is not what is measured); metrics
    go through the store's own batched path.
    """
    store = DuckDBStore(path)
    store.initialise()
    for e in range(4):
        store.create_experiment(f"exp{e}")
    store.release()
    ids = [uuid.uuid4().hex for _ in range(n_runs)]
    now = time.time_ns()
    con = duckdb.connect(str(path))
    experiment_ids = [r[0] for r in con.execute("SELECT experiment_id FROM experiments ORDER BY name").fetchall()]
    tables = {
        "runs": pa.table(
            {
                "run_id": ids,
                "experiment_id": [experiment_ids[i % 4] for i in range(n_runs)],
                "name": [f"run{i}" for i in range(n_runs)],
                "status": ["FINISHED"] * n_runs,
                "start_time_ns": [now + i for i in range(n_runs)],
                "end_time_ns": [now + i + 1000 for i in range(n_runs)],
            }
        ),
        "run_params": _pairs(ids, "p", 20, lambda i, k: str((i * 31 + k) % 97 / 100)),
        "run_tags": _pairs(ids, "t", 2, lambda i, k: f"t{(i + k) % 7}"),
    }
    for name, table in tables.items():
        con.register("bulk", table)
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM bulk")
        con.unregister("bulk")
    con.close()
    rows = [(run_id, f"m{k}", ((i * 17 + k) % 1000) / 1000, 0, now) for i, run_id in enumerate(ids) for k in range(20)]
    cols = list(zip(*rows, strict=True))
    for start in range(0, len(rows), 100_000):
        batch = pa.Table.from_arrays(
            [pa.array(c[start : start + 100_000], f.type) for c, f in zip(cols, METRIC_SCHEMA, strict=True)],
            schema=METRIC_SCHEMA,
        )
        store.append_metrics(batch)
    store.release()


def _pairs(ids: list[str], prefix: str, n: int, value: Callable[[int, int], str]) -> pa.Table:
    return pa.table(
        {
            "run_id": [run_id for run_id in ids for _ in range(n)],
            "key": [f"{prefix}{k}" for _ in ids for k in range(n)],
            "value": [value(i, k) for i in range(len(ids)) for k in range(n)],
        }
    )


FILTER = "metrics.m3 > 0.5 AND params.p7 < '0.5'"
BARE = """
SELECT r.run_id FROM runs r
JOIN run_latest_metrics m ON m.run_id = r.run_id AND m.key = 'm3'
JOIN run_params p ON p.run_id = r.run_id AND p.key = 'p7'
WHERE m.value > 0.5 AND p.value < '0.5' ORDER BY m.value DESC LIMIT ?
"""


def search_times(path: Path, rounds: int, limit: int) -> tuple[float, float, int]:
    store = DuckDBStore(path)
    found = len(store.search_runs(FILTER, None, ["metrics.m3 DESC"], limit))
    ours, bare = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        store.search_runs(FILTER, None, ["metrics.m3 DESC"], limit)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        con = duckdb.connect(str(path), read_only=True)
        con.execute(BARE, [limit]).df()
        con.close()
        bare.append(time.perf_counter() - started)
    return statistics.median(ours) * 1000, statistics.median(bare) * 1000, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours = [log_metric_rate(folder, args.calls) for _ in range(args.rounds)]
        base = [baseline_rate(folder, args.calls) for _ in range(args.rounds)]
        runs.forget_active_runs()
        results["log_metric_calls_per_s"] = round(statistics.median(ours))
        results["baseline_list_then_arrow_per_s"] = round(statistics.median(base))
        results["log_metric_vs_baseline"] = round(statistics.median(ours) / statistics.median(base), 2)
        path = folder / "runs.duckdb"
        started = time.perf_counter()
        fill_runs(path, args.runs)
        results["fill_s"] = round(time.perf_counter() - started, 1)
        for limit, label in ((100, "page_100"), (args.runs, "all")):
            ms, bare_ms, found = search_times(path, args.rounds, limit)
            results[f"search_runs_{label}_ms"] = round(ms, 1)
            results[f"bare_query_{label}_ms"] = round(bare_ms, 1)
            results[f"search_runs_{label}_rows"] = found
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
