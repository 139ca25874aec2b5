"""How much work kill -9 loses from a traced program under load.

A child process runs a tight loop of traced calls (one trace each) into a fresh store and records,
after every call, how many it has finished and for how long it has run (in shared memory, which
survives its death). After a random 1.5-3 s the parent kills it with SIGKILL, opens the store (DuckDB
replays the WAL), scans every table, and counts the traces stored. The loss is the calls finished but
not stored, in seconds of the child's own work (calls lost / its calls per second). Median and worst
over the kills are printed; the store must open and scan clean after every kill.

    python benchmarks/crash_loss.py [--kills 9] [--json]

`tests/test_crash.py` runs `measure()` with three kills.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

_CHILD = r"""
import mmap, struct, sys, time
import agenttrace

agenttrace.configure(store=sys.argv[1])

@agenttrace.trace
def work(i):
    return sum(range(50))  # a little real work, as an agent step would have

with open(sys.argv[2], "r+b") as fh:
    progress = mmap.mmap(fh.fileno(), 16)
pack = struct.Struct("<qd").pack_into
start = time.perf_counter()
i = 0
while True:
    work(i)
    i += 1
    pack(progress, 0, i, time.perf_counter() - start)
"""


@dataclass
class Kill:
    """One kill: calls finished, traces stored, the child's rate and the loss in seconds of work."""

    finished: int
    stored: int
    calls_per_s: float
    lost_s: float


def _one_kill(folder: Path, n: int, after_s: float) -> Kill:
    store = folder / f"crash{n}.duckdb"
    progress_file = folder / f"progress{n}"
    progress_file.write_bytes(b"\0" * 16)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(store), str(progress_file)])
    with progress_file.open("r+b") as fh:
        progress = mmap.mmap(fh.fileno(), 16)
        try:
            while struct.unpack_from("<qd", progress)[0] == 0:  # wait until the loop runs
                if child.poll() is not None:
                    raise SystemExit(f"the traced child exited with {child.returncode} before its loop ran")
                time.sleep(0.01)
            time.sleep(after_s)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            finished, ran_s = struct.unpack_from("<qd", progress)
        finally:
            progress.close()
    stored = _scan(store)
    rate = finished / ran_s
    return Kill(finished, stored, rate, max(finished - stored, 0) / rate)


def _scan(store: Path) -> int:
    """Open the store after the crash (replaying its WAL), read every table whole; the trace count."""
    if not store.exists():
        return 0
    con = duckdb.connect(str(store))
    try:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            con.execute(f'SELECT * FROM "{table}"').to_arrow_table()
        return int(con.execute("SELECT count(*) FROM traces").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


def measure(kills: int, seed: int = 0) -> list[Kill]:
    """Kill a traced child `kills` times under load; raises if a store does not open and scan clean."""
    chance = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder:
        return [_one_kill(Path(folder), n, chance.uniform(1.5, 3.0)) for n in range(kills)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=9)
    parser.add_argument("--json", action="store_true", help="print the kills as JSON")
    args = parser.parse_args()
    results = measure(args.kills)
    if args.json:
        print(json.dumps([asdict(k) for k in results]))
        return
    for k in results:
        print(f"finished {k.finished:>8}  stored {k.stored:>8}  {k.calls_per_s:>8.0f} calls/s  lost {k.lost_s:.3f} s")
    losses = [k.lost_s for k in results]
    print(f"kills: {len(results)}; every store opened and scanned clean")
    print(f"loss in seconds of work: median {statistics.median(losses):.3f}, worst {max(losses):.3f}")


if __name__ == "__main__":
    main()
