"""A traced program as a whole process: N calls of a traced function into a fresh store, then flush.

Meant to be timed from outside (wall and CPU of the whole process, interpreter start included), in
alternation against another version of the code, so a paired ratio holds when the machine's speed
drifts; `trace_overhead.py` times the same work inside one process against a bare OpenTelemetry span.

    python benchmarks/trace_process.py [--calls 30000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import agenttrace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        agenttrace.configure(store=str(Path(folder) / "trace.duckdb"))

        @agenttrace.trace
        def step(x: int) -> int:
            return x + 1

        for i in range(args.calls):
            step(i)
        agenttrace.flush()


if __name__ == "__main__":
    main()
