"""Encrypted against plain store, and backup/compact against a plain file copy, paired in one run.

    python benchmarks/store_maintenance.py [--spans 100000] [--rounds 5]

Figures (medians of the rounds; plain and encrypted alternate within each round):
- open + read: a fresh open (read-only) and `count_traces`, as every CLI/REST read does;
- open + write: a fresh open for writing, one 1,000-span batch, close (checkpoint): a short script;
- held writes: 20 batches of 2,000 spans through one held connection, as the exporter writes;
- backup: `DuckDBStore.backup` of the whole store, against `shutil.copyfile` of the checkpointed file
  (the least any backup can cost; it is not a consistent snapshot while writers run);
- compact: `DuckDBStore.rewrite()` (copy, verify, swap).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.store import DuckDBStore, _connection  # noqa: E402

KEY = "benchmark-key"


def spans(prefix: int, n: int) -> dict[str, list[Any]]:
    now = time.time_ns()
    return {
        "trace_id": [f"{prefix:08x}{i // 4:024x}" for i in range(n)],
        "span_id": [f"{prefix:08x}{i:08x}" for i in range(n)],
        "parent_span_id": [None if i % 4 == 0 else f"{prefix:08x}{i - i % 4:08x}" for i in range(n)],
        "name": ["step"] * n,
        "span_type": ["CHAIN"] * n,
        "status": ["OK"] * n,
        "start_time_ns": [now + i for i in range(n)],
        "end_time_ns": [now + i + 1000 for i in range(n)],
        "duration_ms": [0.001] * n,
        "root_rank": [2 if i % 4 == 0 else 0 for i in range(n)],
        "inputs": ['{"question": "' + os.urandom(48).hex() + '"}' for _ in range(n)],
    }


def timed(work: Callable[[], Any]) -> float:
    _connection.forget_prepared()  # every figure includes the first open's checks, as a new process pays
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def build(path: Path, key: str | None, total: int) -> DuckDBStore:
    store = DuckDBStore(path, encryption_key=key)
    for k in range(0, total, 10_000):
        store.append_spans(spans(k // 10_000, min(10_000, total - k)))
    store.release()
    return store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="agenttrace-maint-"))
    stores = {"plain": build(folder / "plain.duckdb", None, args.spans), "encrypted": None}
    stores["encrypted"] = build(folder / "encrypted.duckdb", KEY, args.spans)
    results: dict[str, dict[str, list[float]]] = {name: {} for name in stores}
    for r in range(args.rounds):
        for name, store in stores.items():
            assert store is not None
            fig = results[name]
            fig.setdefault("open + read", []).append(timed(store.count_traces))

            batch = spans(10_000 + r, 1000)  # built before the clock starts: only the store is timed

            def one_batch(store: DuckDBStore = store, batch: Any = batch) -> None:
                store.append_spans(batch)
                store.release()

            fig.setdefault("open + write 1,000 spans", []).append(timed(one_batch))
            burst = [spans(20_000 + r * 100 + b, 2000) for b in range(20)]

            def held(store: DuckDBStore = store, burst: Any = burst) -> None:
                for b in burst:
                    store.append_spans(b)
                store.release()

            fig.setdefault("held writes, 40,000 spans", []).append(timed(held))
            dest = folder / f"backup-{name}.duckdb"
            fig.setdefault("backup", []).append(timed(lambda s=store, d=dest: s.backup(d)))
            fig.setdefault("plain file copy", []).append(
                timed(lambda s=store, d=dest: shutil.copyfile(s.path, d.with_suffix(".copy")))
            )
            fig.setdefault("compact", []).append(timed(store.rewrite))
    size = {name: s.path.stat().st_size for name, s in stores.items() if s is not None}
    print(f"store: {args.spans:,} spans to start ({size['plain'] / 1e6:.1f} MB plain), {args.rounds} rounds, medians")
    print(f"{'figure':<28}{'plain s':>10}{'encrypted s':>13}{'enc/plain':>11}")
    for figure in results["plain"]:
        p, e = statistics.median(results["plain"][figure]), statistics.median(results["encrypted"][figure])
        print(f"{figure:<28}{p:>10.3f}{e:>13.3f}{e / p:>11.2f}")
    for name in stores:
        b = statistics.median(results[name]["backup"])
        c = statistics.median(results[name]["plain file copy"])
        print(f"backup / file copy ({name}): {b / c:.2f}")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
