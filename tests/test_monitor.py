"""Online monitors: add/list/remove, sampling by trace id, the claimed scoring loop, judges through
the evaluation engine's cache and limiter, an endpoint down under --follow, two processes at once,
quality over time, alerts and webhooks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

import agenttrace
from agenttrace.cli import cli
from agenttrace.errors import AgentNotFoundError, FilterError, InvalidArgumentError, UnknownScorerError
from agenttrace.monitoring import add_monitor, in_sample, list_monitors, quality_over_time, remove_monitor, run_monitors
from agenttrace.records import Assessment
from agenttrace.scoring import register_scorer, scorer
from agenttrace.store import _connection
from agenttrace.tracing.readback import current_store
from tests.judge_stub import StubFailure, StubJudgeServer, sequence

# A one-file module: the registry fingerprints a target's whole package, and tests/ is large.
AGENT = """
import agenttrace

def reply(text: str) -> str:
    agenttrace.update_current_trace(tags={"env": "prod" if text.startswith("p") else "dev"})
    if text == "crash":
        raise RuntimeError("crashed")
    return "ok " + text if not text.startswith("bad") else "no " + text
"""


@pytest.fixture(scope="module")
def agent_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("monitor_agent")
    (folder / "monitor_agent_mod.py").write_text(AGENT)
    sys.path.insert(0, str(folder))
    import monitor_agent_mod  # type: ignore[import-not-found]

    yield monitor_agent_mod
    sys.path.remove(str(folder))


@pytest.fixture
def bot(agent_module: Any) -> Any:
    agenttrace.register_agent("bot", "monitor_agent_mod:reply")
    return agenttrace.load_agent("bot/1")


def make_traces(bot: Any, texts: list[str]) -> list[str]:
    for text in texts:
        try:
            bot(text=text)
        except RuntimeError:
            pass
    agenttrace.flush()
    frame = agenttrace.search_traces(max_results=100_000)
    return list(frame.trace_id)


def monitor_scores(monitor_id: str) -> dict[str, list[Assessment]]:
    """trace id -> the monitor's assessments on it (read in one query: a get_trace per trace is slow)."""
    _connection.release()
    names = [f.name for f in fields(Assessment)]
    with duckdb.connect(str(current_store().path), read_only=True) as con:
        rows = con.execute(
            f"SELECT {', '.join(names)} FROM assessments WHERE source_id = ?", [f"monitor:{monitor_id}"]
        ).fetchall()
    found: dict[str, list[Assessment]] = {}
    for row in rows:
        values = dict(zip(names, row, strict=True))
        values["value"] = json.loads(values["value"]) if values["value"] is not None else None
        values["metadata"] = json.loads(values["metadata"] or "{}")
        found.setdefault(values["trace_id"], []).append(Assessment(**values))
    return found


def texts_of(scores: dict[str, list[Assessment]]) -> dict[str, Assessment]:
    """The agent's input text -> the one assessment on its trace."""
    frame = agenttrace.search_traces(max_results=100_000)
    text = {t: i["text"] for t, i in zip(frame.trace_id, frame.inputs, strict=True)}
    return {text[t]: a[0] for t, a in scores.items()}


def test_add_list_remove(bot: Any) -> None:
    first = add_monitor("bot", "regex_match:pattern=^ok", sample=0.5, filter_string="tags.env = 'prod'")
    second = add_monitor("bot", "exact_match", version="1", alerts=["exact_match<0.5"])
    assert first["scorer_name"] == "regex_match" and first["sample"] == 0.5 and first["scored"] == 0
    assert [m["monitor_id"] for m in list_monitors()] == [first["monitor_id"], second["monitor_id"]]
    assert list_monitors("other") == []
    assert second["alerts"] == [{"metric": "exact_match", "op": "<", "threshold": 0.5, "window": "1h"}]
    assert remove_monitor(first["monitor_id"][:6]) == first["monitor_id"]
    assert [m["monitor_id"] for m in list_monitors()] == [second["monitor_id"]]
    with pytest.raises(InvalidArgumentError, match="is not a monitor"):
        remove_monitor("zzz")


REFUSED = [
    ({"agent": "nobody"}, AgentNotFoundError, "bot"),
    ({"version": "7"}, AgentNotFoundError, "1"),
    ({"version": "champion"}, AgentNotFoundError, "champion"),
    ({"filter_string": "status = "}, FilterError, "status"),
    ({"filter_string": "colour = 'red'"}, FilterError, "colour"),
    ({"sample": 0}, InvalidArgumentError, "fraction"),
    ({"sample": 1.5}, InvalidArgumentError, "fraction"),
    ({"scorer": "no_such_scorer"}, UnknownScorerError, "no_such_scorer"),
    ({"alerts": ["exact_match below 3"]}, InvalidArgumentError, "METRIC<NUMBER"),
    ({"alerts": ["correctness<0.8"]}, InvalidArgumentError, "correctness"),
    ({"webhook": "ftp://x"}, InvalidArgumentError, "http"),
]


def test_a_monitor_that_cannot_run_is_refused_at_add(bot: Any) -> None:
    # One registration for every case (registering fingerprints code, the slow part of a case).
    for kwargs, error, says in REFUSED:
        arguments = {"agent": "bot", "scorer": "exact_match", **kwargs}
        with pytest.raises(error, match=says):
            add_monitor(arguments.pop("agent"), arguments.pop("scorer"), **arguments)
    assert list_monitors() == []


def test_run_scores_new_traces_once_as_assessments_from_the_monitor(bot: Any) -> None:
    old = set(make_traces(bot, ["old"]))  # before the monitor: not its work
    monitor = add_monitor("bot", "regex_match:pattern=^ok")
    new = set(make_traces(bot, ["a", "bad-1", "b", "bad-2"])) - old
    report = run_monitors()
    assert report.scored == {monitor["monitor_id"]: 4} and report.breaches == []
    scores = monitor_scores(monitor["monitor_id"])
    assert set(scores) == set(new)
    values = {text: a.value for text, a in texts_of(scores).items()}
    assert values == {"a": True, "b": True, "bad-1": False, "bad-2": False}
    one = next(iter(scores.values()))[0]
    assert (one.kind, one.source_type, one.name, one.eval_run_id) == ("feedback", "CODE", "regex_match", None)
    assert one.metadata["monitor_id"] == monitor["monitor_id"]
    assert run_monitors().total == 0  # nothing twice
    assert list_monitors()[0]["scored"] == 4


def test_sampling_is_by_trace_id_reproducible_and_the_same_for_every_monitor(bot: Any) -> None:
    first = add_monitor("bot", "exact_match", sample=0.3, since_ns=0)
    second = add_monitor("bot", "regex_match:pattern=^ok", sample=0.3, since_ns=0)
    ids = make_traces(bot, [f"t{i}" for i in range(120)])
    run_monitors()
    expected = {t for t in ids if in_sample(t, 0.3)}
    assert 15 < len(expected) < 60
    assert set(monitor_scores(first["monitor_id"])) == expected
    assert set(monitor_scores(second["monitor_id"])) == expected


def test_filter_and_a_version_alias_that_moves(bot: Any) -> None:
    agenttrace.register_agent("bot", "monitor_agent_mod:reply", config={"v": 2})
    agenttrace.set_alias("bot", "champion", 1)
    monitor = add_monitor("bot", "exact_match", version="champion", filter_string="tags.env = 'prod'", since_ns=0)
    make_traces(bot, ["p-1", "d-1"])  # v1: only the prod one matches
    v2 = agenttrace.load_agent("bot/2")
    make_traces(v2, ["p-2"])
    run_monitors()
    texts = set(texts_of(monitor_scores(monitor["monitor_id"])))
    assert texts == {"p-1"}
    agenttrace.set_alias("bot", "champion", 2)  # the monitor follows the alias on its next run
    run_monitors()
    texts = set(texts_of(monitor_scores(monitor["monitor_id"])))
    assert texts == {"p-1", "p-2"}


def test_a_scorer_that_fails_is_recorded_on_that_trace_and_the_loop_goes_on(bot: Any) -> None:
    @scorer(name="picky")
    def picky(outputs: Any) -> bool:
        if outputs is None or "bad" in outputs:
            raise ValueError("cannot judge this one")
        return True

    register_scorer("picky", picky)
    monitor = add_monitor("bot", "picky")
    make_traces(bot, ["a", "bad", "crash", "b"])
    report = run_monitors()
    assert report.scored[monitor["monitor_id"]] == 4 and report.errors[monitor["monitor_id"]] == 2
    by_text = texts_of(monitor_scores(monitor["monitor_id"]))
    assert by_text["a"].value is True and by_text["a"].error is None
    assert by_text["bad"].value is None and "ValueError: cannot judge this one" in by_text["bad"].error
    assert by_text["crash"].error is not None


def test_an_interrupted_run_hands_its_claims_back(bot: Any) -> None:
    interrupt = [True]

    @scorer(name="interruptible")
    def interruptible(outputs: Any) -> bool:
        if interrupt[0]:
            raise KeyboardInterrupt  # what SIGTERM or Ctrl-C does in the middle of a batch
        return True

    register_scorer("interruptible", interruptible)
    monitor = add_monitor("bot", "interruptible")
    make_traces(bot, ["a", "b", "c"])
    with pytest.raises(KeyboardInterrupt):
        run_monitors()
    interrupt[0] = False
    assert run_monitors().scored[monitor["monitor_id"]] == 3  # not held for the claims' lease


@pytest.fixture
def judge_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubJudgeServer]:
    with StubJudgeServer() as stub:
        monkeypatch.setenv("AGENTTRACE_JUDGE_BASE_URL", stub.base_url)
        monkeypatch.setenv("AGENTTRACE_JUDGE_API_KEY", "test")
        monkeypatch.setenv("AGENTTRACE_JUDGE_MODEL", "stub-judge-1")
        yield stub


def test_a_judge_monitor_uses_the_judge_cache_and_records_judge_traces(bot: Any, judge_env: StubJudgeServer) -> None:
    monitor = add_monitor("bot", "relevance_to_query")
    make_traces(bot, ["a", "b", "a"])  # the second "a" renders the same prompt: a cache hit
    assert run_monitors(concurrency=1).scored == {monitor["monitor_id"]: 3}
    assert judge_env.calls == 2
    scores = monitor_scores(monitor["monitor_id"])
    assert {a[0].source_type for a in scores.values()} == {"LLM_JUDGE"}
    assert all(a[0].metadata["model"] == "stub-judge-1" for a in scores.values())
    assert len(agenttrace.search_traces("span.type = 'EVALUATOR'")) == 2  # each model call, as its own trace
    assert len(current_store().judge_cache_load()) == 2  # kept in the store for the next run


def test_a_judge_endpoint_down_during_follow_backs_off_resumes_and_scores_nothing_twice(
    bot: Any, judge_env: StubJudgeServer
) -> None:
    judge_env.responder = sequence(StubFailure(503), StubFailure(503), then=judge_env.responder)
    monitor = add_monitor("bot", "relevance_to_query")
    ids = make_traces(bot, ["a", "b", "c", "d"])
    store = current_store()

    def done() -> bool:
        return sum(m["scored"] for m in store.list_monitors()) >= len(ids)

    report = run_monitors(follow=True, poll_s=0.05, judge_options={"max_retries": 0}, should_stop=done, batch=2)
    assert report.scored == {monitor["monitor_id"]: 4} and report.deferred == {}
    scores = monitor_scores(monitor["monitor_id"])
    assert set(scores) == set(ids) and all(len(a) == 1 for a in scores.values())
    assert all(a[0].error is None for a in scores.values())  # the outage is nobody's score
    assert judge_env.calls == 6  # two refused, then each trace once


def test_without_follow_an_endpoint_down_leaves_the_work_for_the_next_run(bot: Any, judge_env: StubJudgeServer) -> None:
    judge_env.responder = sequence(StubFailure(503), then=judge_env.responder)
    monitor = add_monitor("bot", "relevance_to_query")
    make_traces(bot, ["a", "b"])
    report = run_monitors(judge_options={"max_retries": 0})
    assert report.total == 0 and "unavailable" in report.deferred[monitor["monitor_id"]]
    assert run_monitors(judge_options={"max_retries": 0}).total == 2


# A monitor process with a scorer slow enough (50 ms a trace) that two processes overlap for
# seconds; each lets the other into the file between its batches (a process that finds the file
# locked rings `<store>.wait`, and the holder lets go); each waits for the go file, so both start
# together.
WORKER = """
import sys, time
from pathlib import Path
import agenttrace
from agenttrace.monitoring import run_monitors
from agenttrace.scoring import register_scorer, scorer

@scorer(name="slow_ok")
def slow_ok(outputs) -> bool:
    time.sleep(0.05)
    return str(outputs).startswith("ok")

register_scorer("slow_ok", slow_ok)
agenttrace.configure(store=sys.argv[1])
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.01)
t0 = time.perf_counter()
print("scored", run_monitors(batch=6).total, round(time.perf_counter() - t0, 2), flush=True)
"""


def test_two_monitor_processes_at_once_score_each_trace_once(bot: Any, isolated_tracing: Path, tmp_path: Path) -> None:
    register_scorer("slow_ok", scorer(name="slow_ok")(lambda outputs: True))  # so add() can build it here
    monitor = add_monitor("bot", "slow_ok")
    ids = make_traces(bot, [f"x{i}" for i in range(48)])
    _connection.release()
    (tmp_path / "worker.py").write_text(WORKER)
    go = tmp_path / "go"
    command = [sys.executable, str(tmp_path / "worker.py"), str(isolated_tracing), str(go)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    counts = [int(out.split("scored ")[1].split()[0]) for out, _ in outputs]
    assert sum(counts) == 48 and all(c > 0 for c in counts), counts  # both took part, no trace twice
    scores = monitor_scores(monitor["monitor_id"])
    assert set(scores) == set(ids) and all(len(a) == 1 for a in scores.values())


def test_quality_over_time_per_version_and_window(bot: Any) -> None:
    agenttrace.register_agent("bot", "monitor_agent_mod:reply", config={"v": 2})
    add_monitor("bot", "regex_match:pattern=^ok")
    make_traces(bot, ["a", "b", "bad", "crash"])  # v1: 2 of 4 pass ("crash" has no output: no match)
    make_traces(agenttrace.load_agent("bot/2"), ["a", "b", "c"])  # v2: all pass
    run_monitors()
    frame = quality_over_time("bot", window="1d")
    assert list(frame.agent_version) == ["1", "2"]
    v1, v2 = frame.iloc[0], frame.iloc[1]
    assert (v1.traces, v1.error_rate, v2.traces, v2.error_rate) == (4, 0.25, 3, 0.0)
    assert (v1["regex_match"], v1["regex_match.n"], v2["regex_match"]) == (0.5, 4, 1.0)
    assert 0.0 < v1["regex_match.low"] < 0.5 < v1["regex_match.high"] < 1.0  # Wilson's interval
    assert v2["regex_match.high"] == 1.0 and v2["regex_match.low"] > 0.4
    assert v1.latency_p95_ms >= v1.latency_p50_ms > 0
    assert frame.window_start.iloc[0].hour == 0  # a day window starts at midnight UTC
    assert len(quality_over_time("bot", window="1h", since="2999-01-01")) == 0
    result = CliRunner().invoke(
        cli, ["monitor", "report", "--agent", "bot", "--window", "1d", "--store", "traces.duckdb"]
    )
    assert result.exit_code == 0 and "regex_match" in result.output and "0.500" in result.output


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_alert_breach_exits_non_zero_prints_it_and_posts_the_webhook(bot: Any) -> None:
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/alerts"
        runner = CliRunner()
        added = runner.invoke(cli, [
            "monitor", "add", "--agent", "bot", "--scorer", "regex_match:pattern=^ok", "--alert", "regex_match<0.8",
            "--webhook", url, "--json", "--store", "traces.duckdb",
        ])  # fmt: skip
        assert added.exit_code == 0, added.output
        monitor_id = json.loads(added.output)["monitor_id"]
        make_traces(bot, ["a", "bad-1", "bad-2"])
        result = runner.invoke(cli, ["monitor", "run", "--store", "traces.duckdb"])
        assert result.exit_code == 1
        assert f"ALERT monitor {monitor_id}: bot/1 regex_match=0.3333 (regex_match<0.8)" in result.output
        assert len(_Hook.received) == 1
        sent = _Hook.received[0]
        assert (sent["event"], sent["monitor_id"], sent["metric"], sent["n"]) == (
            "agenttrace.monitor.alert", monitor_id, "regex_match", 3
        )  # fmt: skip
        listed = runner.invoke(cli, ["monitor", "list", "--json", "--store", "traces.duckdb"])
        assert json.loads(listed.output.splitlines()[0])["scored"] == 3
        removed = runner.invoke(cli, ["monitor", "remove", monitor_id, "--store", "traces.duckdb"])
        assert (
            removed.exit_code == 0
            and runner.invoke(cli, ["monitor", "list", "--store", "traces.duckdb"]).exit_code == 0
        )
    finally:
        hook.shutdown()
        hook.server_close()


def test_cli_add_refuses_a_filter_that_does_not_parse(bot: Any) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "monitor",
            "add",
            "--agent",
            "bot",
            "--scorer",
            "exact_match",
            "--filter",
            "status ==",
            "--store",
            "traces.duckdb",
        ],
    )
    assert result.exit_code == 1 and result.output.startswith("error:")
    assert list_monitors() == []
