"""Server memory under concurrent large OTLP bodies: peak RSS of `agenttrace server` and its converters.

Starts the real server (`python -m agenttrace server`, code from `--root`, so a checkout of other
code can be measured against this one in the same run) with a fresh store, then `--senders`
threads each POST one body of about `--body-mb` MB (distinct spans carrying 10 KB inputs) at the
same moment, retrying a 503 after its Retry-After, until every body is stored. The peak is the
largest sum of VmRSS over the server process and its children, sampled every 10 ms; the time is
from the first send to the last 200. Medians of `--rounds` rounds.

    python benchmarks/server_memory.py [--senders 32] [--body-mb 15] [--rounds 3] [--root PATH]
                                       [--server-args "--max-inflight-mb 64"]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _body(seed: int, megabytes: float) -> bytes:
    sys.path.insert(0, str(ROOT))
    from tests.otlp_builders import make_request, make_span

    span_count = max(1, int(megabytes * 1024 * 1024 / 10_300))
    trace_id = seed.to_bytes(16, "big")
    spans = [
        make_span("step", trace_id, (seed * 100_000 + i + 1).to_bytes(8, "big"),
                  attributes={"agenttrace.inputs": '"' + "x" * 10_000 + '"', "i": i})
        for i in range(span_count)
    ]  # fmt: skip
    return make_request(spans).SerializeToString()


def _tree_rss(pid: int) -> int:
    """VmRSS in bytes of a process and its descendants."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024  # type: ignore[union-attr]
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, AttributeError):
            continue
    return total


def _send(url: str, body: bytes, refusals: list[int], done: list[float]) -> None:
    host, port = url.removeprefix("http://").split(":")
    while True:
        con = http.client.HTTPConnection(host, int(port), timeout=300)
        con.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
        response = con.getresponse()
        response.read()
        con.close()
        if response.status == 200:
            done.append(time.perf_counter())
            return
        if response.status != 503:
            raise RuntimeError(f"server answered {response.status}")
        refusals.append(1)
        time.sleep(float(response.getheader("Retry-After") or 1))


def one_round(root: Path, senders: int, bodies: list[bytes], server_args: list[str]) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(root)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "agenttrace", "server", "--port", "0", "--store", f"{tmp}/s.duckdb", *server_args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=tmp,
        )  # fmt: skip
        assert proc.stdout is not None
        url = re.search(r"listening on (http://\S+)", proc.stdout.readline()).group(1)  # type: ignore[union-attr]
        time.sleep(1.0)  # converter processes up
        idle = _tree_rss(proc.pid)
        peak, stop = [idle], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _tree_rss(proc.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        refusals: list[int] = []
        done: list[float] = []
        threads = [threading.Thread(target=_send, args=(url, bodies[i], refusals, done)) for i in range(senders)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        sampler.join()
        after = _tree_rss(proc.pid)
        proc.terminate()
        proc.wait(60)
        print(f"  idle {idle / 2**20:,.0f} MB, after the last answer {after / 2**20:,.0f} MB", flush=True)
        return peak[0] / 2**20, max(done) - start, len(refusals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--body-mb", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose server is measured")
    parser.add_argument("--server-args", default="", help="more options for `agenttrace server`")
    args = parser.parse_args()
    bodies = [_body(n + 1, args.body_mb) for n in range(args.senders)]
    print(f"{args.senders} bodies of {len(bodies[0]) / 2**20:.1f} MB, server from {args.root}", flush=True)
    results = []
    for r in range(args.rounds):
        peak, seconds, refused = one_round(args.root, args.senders, bodies, shlex.split(args.server_args))
        results.append((peak, seconds, refused))
        print(f"round {r + 1}: peak {peak:,.0f} MB, all stored in {seconds:.1f} s, {refused} answered 503", flush=True)
    print(
        f"median: peak {statistics.median(p for p, _, _ in results):,.0f} MB, "
        f"{statistics.median(s for _, s, _ in results):.1f} s, {statistics.median(n for _, _, n in results):.0f} 503s"
    )


if __name__ == "__main__":
    main()
