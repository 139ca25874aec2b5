"""What serving through `agenttrace serve` costs, and how fast `monitor run` scores a backlog.

Serving: the same trivial agent (`echo(text) -> text`) behind
- `agenttrace serve echo/1`: the real CLI (one uvicorn worker), every request traced to DuckDB;
- `agenttrace serve echo/1` with AGENTTRACE_ENABLED=false: the serving layer without the tracer;
- baseline: a bare FastAPI endpoint on uvicorn (a plain `def`, so FastAPI runs it on its thread
  pool as serve runs a sync agent), same body in and out, no tracing, no checks;
all started as processes in the same run. A load generator in another process keeps `--concurrency`
keep-alive connections busy for `--seconds`, for `--rounds` rounds, under two loads: saturated (each
connection sends again as soon as it is answered: the throughput, where p50 is only connections /
throughput), against one server at a time in alternating order; and a fixed offered rate well below
the bare endpoint's most (`--rate` per server, requests due at fixed times and timed from when they
were due: the latency a request pays for tracing when the server is not overloaded), against the
three servers in the same window (each with its own connections and schedule, the requests
alternating). Reported per server: medians over rounds of requests per second, p50 and p99 latency
(each request timed from send to the last byte), and the medians of the per-round ratios to the bare
endpoint.

Monitoring: `agenttrace monitor run` (the CLI, process start to exit) over a backlog of
`--traces` traces of a registered agent with one heuristic scorer (`regex_match`), and the rate
the run reports for its scoring loop alone (claims, scoring, stored assessments).

    python benchmarks/serve_overhead.py [--rounds 5] [--seconds 5] [--concurrency 8] [--rate 200] [--traces 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AGENT = "def echo(text: str) -> str:\n    return text\n"

BARE = """
import json, sys
import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response
from echo_agent import echo

app = FastAPI()

# A sync agent behind FastAPI the idiomatic way: a plain `def` endpoint, which FastAPI runs on its
# thread pool (as agenttrace serve runs a sync agent), reading the JSON body into a dict.
@app.post("/invocations")
def invocations(body: dict) -> Response:
    return Response(json.dumps({"outputs": echo(**body)}), media_type="application/json")

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""

# The load generator: threads with keep-alive connections, each timing its own requests. With a
# rate of 0 each connection sends its next request as soon as the last one is answered (the most the
# server can do: there p50 is just connections / throughput), to the one port given. With a rate,
# requests are due at fixed times whatever the answers do, and each is timed from when it was due,
# so a slow answer also counts the wait of the requests queued behind it (no coordinated omission);
# given several ports, each gets its own connections and schedule at the rate, offset so that their
# requests alternate, so every server is measured in the same seconds as the others (this machine's
# speed drifts by 2x between windows of a few seconds; within one window the three see one machine).
LOAD = """
import http.client, itertools, json, sys, threading, time
ports = [int(p) for p in sys.argv[1].split(",")]
seconds, concurrency, rate = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
body = json.dumps({"text": "hello"}).encode()
headers = {"Content-Type": "application/json"}
latencies, errors = {p: [] for p in ports}, {p: 0 for p in ports}
lock = threading.Lock()
start_at = time.perf_counter()
stop_at = start_at + seconds
# Each port has its own connections and its own schedule (so a slow answer of one server never
# delays a request due to another); the schedules are offset so the ports' requests alternate.
schedules = {p: (itertools.count(), k / (rate * len(ports)) if rate else 0.0) for k, p in enumerate(ports)}

def worker(port):
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    due, offset = schedules[port]
    mine, bad = [], 0
    # With a rate the loop ends on the schedule alone: a request due before the end is sent even when
    # the answer before it came late (those are the requests that waited longest).
    while rate or time.perf_counter() < stop_at:
        t = time.perf_counter()
        if rate:
            t = start_at + offset + next(due) / rate
            if t >= stop_at:
                break
            time.sleep(max(0.0, t - time.perf_counter()))
        con.request("POST", "/invocations", body, headers)
        response = con.getresponse()
        response.read()
        mine.append(time.perf_counter() - t)
        if response.status != 200:
            bad += 1
    with lock:
        latencies[port].extend(mine)
        errors[port] += bad

threads = [threading.Thread(target=worker, args=(p,)) for p in ports for _ in range(concurrency)]
start = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
wall = time.perf_counter() - start
out = {}
for p in ports:
    done = sorted(latencies[p])
    q = lambda f: done[min(len(done) - 1, int(f * len(done)))] * 1000
    out[str(p)] = {"rps": len(done) / wall, "p50": q(0.5), "p99": q(0.99), "errors": errors[p]}
print(json.dumps(out))
"""


# The least scoring the backlog can cost: read every trace's outputs in one query, run the same
# scorer on each, append the results in one Arrow insert (no claims, no sampling, no filter).
BASELINE = """
import sys, time, duckdb, pyarrow as pa
from evaluators.heuristic import RegexMatch
scorer = RegexMatch(pattern="^h")
start = time.perf_counter()
con = duckdb.connect(sys.argv[1])
rows = con.execute("SELECT trace_id, outputs FROM traces WHERE agent_name = 'echo'").fetchall()
import json
values = [scorer(outputs=json.loads(o) if o is not None else None).value for _, o in rows]
con.register("scores", pa.table({"trace_id": [r[0] for r in rows], "value": values}))
con.execute("CREATE TABLE baseline_scores AS SELECT * FROM scores")
con.close()
print("baseline", time.perf_counter() - start)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(port: int, deadline_s: float = 60) -> None:
    import http.client

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            con = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            con.request("POST", "/invocations", json.dumps({"text": "warm"}), {"Content-Type": "application/json"})
            if con.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not come up")


def serving(work: Path, rounds: int, seconds: float, concurrency: int, rate: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(work)}
    store = work / "serve.duckdb"
    subprocess.run(
        [sys.executable, "-c", "import agenttrace; agenttrace.register_agent('echo', 'echo_agent:echo')"],
        cwd=work, env={**env, "AGENTTRACE_STORE": str(store)}, check=True,
    )  # fmt: skip
    ports = {"bare": _free_port(), "serve": _free_port(), "untraced": _free_port()}
    (work / "bare.py").write_text(BARE)
    procs = {
        "bare": subprocess.Popen([sys.executable, str(work / "bare.py"), str(ports["bare"])], cwd=work, env=env),
        "serve": subprocess.Popen(
            [sys.executable, "-m", "agenttrace", "serve", "echo/1", "--port", str(ports["serve"]),
             "--store", str(store)],
            cwd=work, env=env, stdout=subprocess.DEVNULL,
        ),
        # the same command with tracing off: what the serving layer costs without the tracer
        "untraced": subprocess.Popen(
            [sys.executable, "-m", "agenttrace", "serve", "echo/1", "--port", str(ports["untraced"]),
             "--store", str(store)],
            cwd=work, env={**env, "AGENTTRACE_ENABLED": "false"}, stdout=subprocess.DEVNULL,
        ),
    }  # fmt: skip
    (work / "load.py").write_text(LOAD)
    loads = {"fixed rate": rate, "saturated": 0.0} if rate else {"saturated": 0.0}
    results: dict[str, dict[str, list[dict[str, float]]]] = {load: {name: [] for name in ports} for load in loads}

    def run_load(names: tuple[str, ...], per_s: float) -> dict[str, dict[str, float]]:
        argv = [",".join(str(ports[n]) for n in names), str(seconds), str(concurrency), str(per_s)]
        out = subprocess.run(
            [sys.executable, str(work / "load.py"), *argv], capture_output=True, text=True, check=True
        ).stdout
        by_port = json.loads(out)
        return {n: by_port[str(ports[n])] for n in names}

    try:
        for port in ports.values():
            _wait_up(port)
        order = ("bare", "serve", "untraced")
        # The fixed rate first: its rounds measure servers that are not overloaded, so they do not
        # follow a saturated round (whose backlog the traced server is still writing and checkpointing).
        for r in range(rounds if rate else 0):  # the three servers in the same window, requests in turn
            for name, got in run_load(order, rate).items():
                results["fixed rate"][name].append(got)
                print(f"  round {r + 1} fixed rate {name:8s} {got}", flush=True)
        for r in range(rounds):  # one server at a time (each takes the whole machine), alternating order
            for name in order if r % 2 == 0 else order[::-1]:
                results["saturated"][name].append(run_load((name,), 0.0)[name])
                print(f"  round {r + 1} saturated {name:8s} {results['saturated'][name][-1]}", flush=True)
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(30)
    for load, per_s in loads.items():
        what = (
            f"{per_s:g} requests/s offered to each server, the three in turn in one window"
            if per_s
            else "each connection sends as soon as answered, one server at a time"
        )
        _report(results[load], f"{load} ({what})", concurrency, seconds, rounds)


def _report(
    results: dict[str, list[dict[str, float]]], load: str, concurrency: int, seconds: float, rounds: int
) -> None:
    med = {n: {k: statistics.median(x[k] for x in rows) for k in ("rps", "p50", "p99")} for n, rows in results.items()}
    errors = sum(x["errors"] for rows in results.values() for x in rows)
    print(f"\nserving a trivial agent, {load}, {concurrency} connections, {seconds:g} s x {rounds} rounds (medians):")
    labels = (("bare", "bare FastAPI endpoint"), ("serve", "agenttrace serve (traced)"),
              ("untraced", "agenttrace serve, tracing off"))  # fmt: skip
    for name, label in labels:
        m = med[name]
        print(f"  {label:28s} {m['rps']:8.0f} req/s   p50 {m['p50']:6.2f} ms   p99 {m['p99']:6.2f} ms")

    # Ratios are taken round by round (a round's servers ran side by side or back to back), then the
    # median: the machine's speed drifts between rounds, and a round's figures share its conditions.
    def ratio(name: str, key: str) -> float:
        pairs = zip(results[name], results["bare"], strict=True)
        return statistics.median(x[key] / b[key] for x, b in pairs)

    print(
        f"  ratio serve/bare: p50 {ratio('serve', 'p50'):.2f}x   p99 {ratio('serve', 'p99'):.2f}x   "
        f"throughput {ratio('serve', 'rps'):.2f}x   (non-200 answers: {errors}; medians of per-round ratios)"
    )
    print(f"  ratio untraced/bare: p50 {ratio('untraced', 'p50'):.2f}x   throughput {ratio('untraced', 'rps'):.2f}x")


def monitoring(work: Path, traces: int) -> None:
    store = work / "monitor.duckdb"
    env = {**os.environ, "PYTHONPATH": str(work), "AGENTTRACE_STORE": str(store)}
    build = f"""
import agenttrace
agenttrace.configure(store={str(store)!r})
agenttrace.register_agent('echo', 'echo_agent:echo')
from agenttrace.monitoring import add_monitor
add_monitor('echo', 'regex_match:pattern=^h', since_ns=0)
bot = agenttrace.load_agent('echo/1')
for i in range({traces}):
    bot(text='hello' if i % 4 else 'bye')
agenttrace.flush()
"""
    subprocess.run([sys.executable, "-c", build], cwd=work, env=env, check=True)
    baseline = subprocess.run(
        [sys.executable, "-c", BASELINE, str(store)], cwd=work, env=env, capture_output=True, text=True, check=True
    ).stdout  # fmt: skip
    base_s = float(baseline.split()[1])
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "agenttrace", "monitor", "run", "--store", str(store)],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    wall = time.perf_counter() - start
    m = re.search(r"scored (\d+) traces in ([\d.]+) s", out)
    assert m, out
    scored, loop_s = int(m.group(1)), float(m.group(2))
    print(f"\nmonitor run over a backlog of {traces} traces, one heuristic scorer (regex_match):")
    print(f"  scoring loop: {scored} traces in {loop_s:.2f} s = {scored / loop_s:,.0f} traces/s")
    print(f"  baseline (one read, the same scorer in a loop, one Arrow append): {base_s:.2f} s = "
          f"{traces / base_s:,.0f} traces/s; the loop is {loop_s / base_s:.2f}x the baseline")  # fmt: skip
    print(f"  whole command (process start, imports, exit): {wall:.2f} s = {scored / wall:,.0f} traces/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=200.0, help="offered requests/s of the fixed-rate load; 0: none")
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--only", choices=("serve", "monitor"), default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "echo_agent.py").write_text(AGENT)
        if args.only != "monitor":
            serving(work, args.rounds, args.seconds, args.concurrency, args.rate)
        if args.only != "serve":
            monitoring(work, args.traces)


if __name__ == "__main__":
    main()
