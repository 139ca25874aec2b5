"""Evaluation throughput: judge-bound wall time against the ideal, engine overhead, the judge cache.

1. 500 records x 2 judges against a local OpenAI-compatible judge server that answers after 100 ms,
   concurrency 16. The ideal is records x judges x 100 ms / 16; prints wall / ideal (goal <= 1.15).
2. The same run again: every judge reply comes from the store's judge cache; prints its wall time
   as a share of the first run's (goal < 5%).
3. Engine overhead per record with heuristic scorers only: evaluate() over 2,000 records minus a
   plain loop calling the same predict function and scorers, divided by the records (goal < 1 ms).

    python benchmarks/eval_throughput.py [--records 500] [--delay 0.1] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import agenttrace  # noqa: E402
from agenttrace.scoring import get_scorer  # noqa: E402

# The judge server runs in a process of its own, as a real endpoint would: in this process it
# would compete with the engine for the interpreter lock and inflate the engine's figures.
_SERVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.judge_stub import StubJudgeServer, StubReply, default_responder
delay = float(sys.argv[2])
with StubJudgeServer(responder=lambda request: StubReply(default_responder(request), delay=delay)) as stub:
    print(stub.base_url, flush=True)
    sys.stdin.read()
    print(stub.calls, flush=True)
"""


@contextmanager
def judge_server(delay: float):
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(ROOT), str(delay)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield proc, proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def predict(question: str) -> str:
    return f"The answer to {question} is Paris."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--overhead-records", type=int, default=2000)
    args = parser.parse_args()
    records = [
        {"id": f"r{i}", "inputs": {"question": f"question {i}"}, "expectations": {"expected_answer": "Paris"}}
        for i in range(args.records)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        agenttrace.configure(store=str(Path(tmp) / "eval.duckdb"))

        with judge_server(args.delay) as (server, base_url):
            kwargs = dict(
                scorers=["correctness", "relevance_to_query"],
                concurrency=args.concurrency,
                judge_model="stub-judge-1",
                judge_base_url=base_url,
                progress=False,
            )
            start = time.perf_counter()
            first = agenttrace.evaluate(records, predict, **kwargs)
            first_s = time.perf_counter() - start
            start = time.perf_counter()
            agenttrace.evaluate(records, predict, **kwargs)
            second_s = time.perf_counter() - start
            server.stdin.close()
            calls = int(server.stdout.readline())
            assert calls == args.records * 2, f"the second run should come from the judge cache ({calls} calls)"
        errors = sum(s["errors"] for s in first.metrics["scorers"].values())
        ideal = args.records * 2 * args.delay / args.concurrency
        print(f"{args.records} records x 2 judges, {args.delay * 1000:.0f} ms a call, concurrency {args.concurrency}")
        print(f"  first run       {first_s:7.2f} s   ideal {ideal:.2f} s   ratio {first_s / ideal:.3f}")
        print(f"                  {calls} judge calls, {errors} scoring errors")
        print(f"  cached rerun    {second_s:7.2f} s   {100 * second_s / first_s:.1f}% of the first run")

        n = args.overhead_records
        many = [{"inputs": {"question": f"q{i}"}, "expectations": {"expected_answer": "Paris"}} for i in range(n)]
        scorers = [get_scorer("exact_match"), get_scorer("contains")]
        start = time.perf_counter()
        for record in many:
            out = predict(**record["inputs"])
            for s in scorers:
                s(inputs=record["inputs"], outputs=out, expectations=record["expectations"], trace=None)
        plain_s = time.perf_counter() - start
        start = time.perf_counter()
        agenttrace.evaluate(many, predict, scorers=["exact_match", "contains"], progress=False)
        engine_s = time.perf_counter() - start
        print(f"engine overhead, {n} records, heuristic scorers (exact_match, contains):")
        print(f"  evaluate()      {engine_s:7.3f} s   plain loop {plain_s:.3f} s")
        print(f"  overhead        {1000 * (engine_s - plain_s) / n:7.3f} ms per record (a trace each, scores stored)")


if __name__ == "__main__":
    main()
