"""What holding the store costs a traced program once the store is large: checkpoints.

A writer keeps its DuckDB connection open between batches and lets go (closing it checkpoints the
file) once writes pause for `IDLE_CLOSE_S`, after `MAX_HOLD_S` in any case, or at once when another
process rings. A checkpoint rewrites the `traces` key index, so its cost grows with the store: this
script first prints what one release costs after a 1,000-span batch as the store grows, then runs
a traced program at a steady trickle (`--rate` calls per second, one trace each, for `--seconds`)
into a copy of the large store and into an empty one, under the hold limits as they are and under
`--old-hold` (idle, max seconds), and prints the process CPU per call (DuckDB's threads included)
and the number of checkpoints (the release at exit included), with the ratios to the empty store in
the same run.

    python benchmarks/checkpoint_cost.py [--traces 1000000] [--rate 20] [--seconds 60] [--old-hold 1.5,5]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_TRICKLE = r"""
import os, sys, time
from agenttrace.store import _connection
path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
if len(sys.argv) > 4:
    _connection.IDLE_CLOSE_S, _connection.MAX_HOLD_S = (float(x) for x in sys.argv[4].split(","))
releases = 0
close_held = _connection._close_held
def counted(state, key):
    global releases
    releases += 1
    close_held(state, key)
_connection._close_held = counted
import agenttrace
agenttrace.configure(store=path)

@agenttrace.trace
def step(i):
    return i + 1

step(0)
agenttrace.flush()
cpu, start = time.process_time(), time.monotonic()
calls = int(rate * seconds)
for i in range(calls):
    time.sleep(max(0.0, start + i / rate - time.monotonic()))
    step(i)
agenttrace.flush()
_connection.release()  # what exit does: the last checkpoint is the program's too (counted by the wrapper)
print(calls, time.process_time() - cpu, releases, flush=True)
"""


def _rows(rng: random.Random, n: int) -> list[dict[str, object]]:
    from agenttrace.otel.convert import span_row

    now = time.time_ns()
    attributes = {"agenttrace.span_type": "AGENT", "agenttrace.inputs": '{"q":"hi"}', "agenttrace.outputs": '"hi"'}
    return [
        span_row(
            trace_id=f"{rng.getrandbits(128):032x}",
            span_id=f"{rng.getrandbits(64):016x}",
            parent_span_id=None,
            name="agent",
            error=False,
            status_message=None,
            start_time_ns=now + i,
            end_time_ns=now + i + 400_000,
            attributes=attributes,
            events=[],
            resource="{}",
            scope="agenttrace",
            root_rank=2,
            experiment="Default",
            trusted=True,
        )  # fmt: skip
        for i in range(n)
    ]


def build(path: Path, traces: int) -> None:
    """A store of `traces` one-span traces; prints what a release costs after a small batch as it grows."""
    from agenttrace.store import DuckDBStore

    store = DuckDBStore(path)
    rng = random.Random(0)
    step = max(traces // 5, 8192)
    done = 0
    print("one release (checkpoint) after a 1,000-span batch, as the store grows:")
    while done < traces:
        for _ in range(0, step, 8192):
            store.append_spans(_rows(rng, 8192))
            done += 8192
        store.release()
        store.append_spans(_rows(rng, 1000))
        started = time.perf_counter()
        store.release()
        took = time.perf_counter() - started
        print(f"  {done:>10,} traces: {took * 1e3:7.0f} ms   (file {path.stat().st_size / 1e6:,.0f} MB)", flush=True)


def trickle(path: Path, rate: float, seconds: float, hold: str | None) -> tuple[float, int]:
    """(CPU seconds per call, checkpoints) of a traced program writing a trickle into `path`."""
    argv = [sys.executable, "-c", _TRICKLE, str(path), str(rate), str(seconds), *([hold] if hold else [])]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    calls, cpu, releases = int(out[0]), float(out[1]), int(out[2])
    return cpu / calls, releases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--old-hold", default="1.5,5", help="idle,max seconds of the hold to compare with")
    args = parser.parse_args()
    from agenttrace.store import _connection

    with tempfile.TemporaryDirectory() as tmp:
        large = Path(tmp) / "large.duckdb"
        build(large, args.traces)
        print(
            f"\na traced program, {args.rate:g} calls/s for {args.seconds:g} s (one trace a call); "
            "CPU per call of the whole process, and checkpoints:"
        )
        current = f"{_connection.IDLE_CLOSE_S:g},{_connection.MAX_HOLD_S:g}"
        for label, hold in ((f"hold {current} s (now)", None), (f"hold {args.old_hold} s", args.old_hold)):
            results = {}
            for name in ("empty", "large"):
                path = Path(tmp) / f"{name}-{os.getpid()}.duckdb"
                if name == "large":
                    shutil.copy(large, path)
                results[name] = trickle(path, args.rate, args.seconds, hold)
                path.unlink(missing_ok=True)
                Path(str(path) + ".wal").unlink(missing_ok=True)
            (empty_cpu, empty_n), (large_cpu, large_n) = results["empty"], results["large"]
            print(
                f"  {label:<20} empty store {empty_cpu * 1e3:6.2f} ms/call ({empty_n} checkpoints); "
                f"{args.traces:,} traces {large_cpu * 1e3:6.2f} ms/call ({large_n} checkpoints); "
                f"large / empty {large_cpu / empty_cpu:5.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
