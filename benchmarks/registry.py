"""agent_history latency: 100 versions, 100,000 traces stamped with them, 2 eval runs per version.

Builds the store fast: versions through DuckDBStore.register_agent_version (the registry's own
insert, without hashing a package per version), traces as Arrow batches through
DuckDBStore.append_spans (the exporter's path; a root and one LLM child per trace, 5 % errors),
eval runs through the evaluation engine's store calls. Then times, over several rounds:

- `agenttrace.agent_history(name)`: the public call, DataFrame included;
- baseline: a plain `SELECT agent_version_id, count(*) FROM traces GROUP BY 1` on a fresh read-only
  connection, the least any per-version figure over these traces can cost.

    python benchmarks/registry.py [--versions 100] [--traces 100000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb

import agenttrace
from agenttrace.schema import SPAN_COLUMNS
from agenttrace.store import DuckDBStore, _connection

BATCH = 32_768
BASE_NS = 1_790_000_000_000_000_000


def register_versions(store: DuckDBStore, n: int) -> list[dict[str, Any]]:
    versions = []
    for i in range(n):
        entry = {
            "version_id": uuid.uuid4().hex,
            "agent_name": "bench-bot",
            "identity": f"identity-{i}",
            "target": "bench.agent:answer",
            "code_digest": f"{i:064x}",
            "code_root": None,
            "code_files": {"bench/agent.py": f"{i:064x}"},
            "git_commit": None,
            "git_dirty": None,
            "environment": {"python": "3.11"},
            "config": {"temperature": i / 100},
            "prompts": {"system": {"text": f"prompt {i}", "sha256": f"{i:064x}"}},
            "description": None,
            "tags": {},
            "created_by": "bench",
            "run_id": None,
        }
        row, _ = store.register_agent_version(entry)
        versions.append(row)
    return versions


def trace_columns(versions: list[dict[str, Any]], first: int, count: int, rng: random.Random) -> dict[str, list]:
    cols: dict[str, list] = {c.name: [None] * (2 * count) for c in SPAN_COLUMNS}
    for j in range(count):
        t = first + j
        version = versions[t % len(versions)]
        start = BASE_NS + t * 1_000_000
        end = start + rng.randint(1_000_000, 3_000_000_000)
        error = rng.random() < 0.05
        for k, row in enumerate((2 * j, 2 * j + 1)):
            root = k == 0
            cols["trace_id"][row] = f"{t:032x}"
            cols["span_id"][row] = f"{2 * t + k:016x}"
            cols["parent_span_id"][row] = None if root else f"{2 * t:016x}"
            cols["name"][row] = "bench-bot" if root else "llm"
            cols["span_type"][row] = "AGENT" if root else "LLM"
            cols["status"][row] = "ERROR" if error and root else "OK"
            cols["start_time_ns"][row] = start
            cols["end_time_ns"][row] = end
            cols["duration_ms"][row] = (end - start) / 1e6
            cols["root_rank"][row] = 2 if root else 0
            cols["input_tokens"][row] = None if root else 300
            cols["output_tokens"][row] = None if root else 40
            if root:
                cols["experiment"][row] = "Default"
                cols["agent_name"][row] = "bench-bot"
                cols["agent_version"][row] = str(version["version"])
                cols["agent_version_id"][row] = version["version_id"]
    return cols


def add_eval_runs(store: DuckDBStore, versions: list[dict[str, Any]], per_version: int) -> None:
    for version in versions:
        for r in range(per_version):
            run_id = uuid.uuid4().hex
            store.start_eval_run({
                "eval_run_id": run_id, "dataset_name": "qa", "dataset_version": "v1", "agent_name": "bench-bot",
                "agent_version": str(version["version"]), "scorers": ["correct"], "record_count": 50,
                "started_ns": time.time_ns(),
            })  # fmt: skip
            store.link_eval_run_agent(run_id, version["version_id"])
            summary = {"scorers": {"correct": {"count": 50, "pass_rate": 0.5 + r / 10, "aggregation": "boolean"}}}
            store.finish_eval_run(run_id, "FINISHED", summary)


def timed(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--evals", type=int, default=2, help="eval runs per version")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "registry.duckdb"
        store = DuckDBStore(path)
        store.initialise()
        built = time.perf_counter()
        versions = register_versions(store, args.versions)
        rng = random.Random(7)
        for first in range(0, args.traces, BATCH):
            store.append_spans(trace_columns(versions, first, min(BATCH, args.traces - first), rng))
        add_eval_runs(store, versions, args.evals)
        _connection.release()
        print(f"built {args.versions} versions, {args.traces:,} traces, {args.versions * args.evals} eval runs "
              f"in {time.perf_counter() - built:.1f} s")  # fmt: skip

        agenttrace.configure(store=str(path))
        history = agenttrace.agent_history("bench-bot")
        assert len(history) == args.versions and int(history.trace_count.sum()) == args.traces, history
        ours = timed(lambda: agenttrace.agent_history("bench-bot"), args.rounds)

        def baseline() -> None:
            con = duckdb.connect(str(path), read_only=True)
            try:
                con.execute("SELECT agent_version_id, count(*) FROM traces GROUP BY 1").fetchall()
            finally:
                con.close()

        bare = timed(baseline, args.rounds)
        print(f"agent_history, median of {args.rounds}: {ours:.1f} ms (goal < 300 ms)")
        print(f"baseline GROUP BY count on a fresh connection: {bare:.1f} ms")
        print(f"ratio: {ours / bare:.2f}x the baseline")


if __name__ == "__main__":
    main()
