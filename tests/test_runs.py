"""Runs: lifecycle, params, metrics, tags, the current run in traces, threads and tasks, bad input."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

import agenttrace
from agenttrace import tracking
from agenttrace.errors import (
    AgentTraceError,
    InvalidMetricError,
    ParamConflictError,
    RunNotFoundError,
    RunStateError,
)
from agenttrace.tracking import _metrics, runs


@pytest.fixture(autouse=True)
def no_open_runs() -> Iterator[None]:
    """Each test starts with no current run and leaves none behind."""
    runs.forget_active_runs()
    yield
    runs.forget_active_runs()


@agenttrace.trace
def answer(question: str) -> str:
    return question.upper()


def traces_by_input() -> dict[str, dict[str, object]]:
    agenttrace.flush()
    frame = agenttrace.search_traces()
    frame = frame.astype(object).where(frame.notna(), None)  # a missing run id reads as None
    return {row["inputs"]["question"]: row for row in frame.to_dict(orient="records")}


def test_a_run_block_stores_params_metrics_tags_and_ends_finished() -> None:
    with agenttrace.start_run(name="train", experiment="lab", tags={"team": "search"}, description="first") as run:
        agenttrace.log_params({"lr": 0.1, "layers": 3})
        agenttrace.log_param("optimizer", "adam")
        agenttrace.log_metric("loss", 0.5, step=1)
        agenttrace.log_metrics({"loss": 0.25, "acc": 0.9}, step=2)
        agenttrace.set_tag("stage", "dev")
        agenttrace.set_tags({"team": "ranking"})
    stored = agenttrace.get_run(run.run_id)
    assert stored.status == "FINISHED"
    assert stored.end_time is not None and stored.start_time is not None
    assert (stored.name, stored.experiment, stored.description) == ("train", "lab", "first")
    assert stored.params == {"lr": "0.1", "layers": "3", "optimizer": "adam"}
    assert stored.metrics == {"loss": 0.25, "acc": 0.9}
    assert stored.tags == {"team": "ranking", "stage": "dev"}
    assert agenttrace.active_run() is None


def test_traces_inside_a_run_carry_its_id_and_experiment_and_outside_none() -> None:
    answer("before")
    with agenttrace.start_run(experiment="lab") as outer:
        answer("outer")
        with agenttrace.start_run(name="child") as inner:
            answer("inner")
        answer("outer again")
    answer("after")
    rows = traces_by_input()
    assert rows["before"]["run_id"] is None and rows["after"]["run_id"] is None
    assert rows["outer"]["run_id"] == outer.run_id == rows["outer again"]["run_id"]
    assert rows["inner"]["run_id"] == inner.run_id
    assert rows["inner"]["experiment"] == rows["outer"]["experiment"] == "lab"
    assert agenttrace.get_run(inner.run_id).parent_run_id == outer.run_id
    assert agenttrace.get_run(inner.run_id).experiment == "lab"


def test_the_current_run_follows_wrapped_threads_and_asyncio_tasks() -> None:
    async def in_task(question: str) -> None:
        await asyncio.sleep(0)
        answer(question)

    async def both() -> None:
        await asyncio.gather(in_task("task 1"), in_task("task 2"))

    with agenttrace.start_run() as run:
        with agenttrace.context.ContextThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(answer, ["pool 1", "pool 2"]))
        worker = threading.Thread(target=agenttrace.context.wrap(lambda: answer("wrapped thread")))
        worker.start()
        worker.join()
        asyncio.run(both())
        logged = threading.Thread(target=agenttrace.context.wrap(lambda: agenttrace.log_metric("from_thread", 1)))
        logged.start()
        logged.join()
    rows = traces_by_input()
    assert {q: r["run_id"] for q, r in rows.items()} == dict.fromkeys(
        ["pool 1", "pool 2", "wrapped thread", "task 1", "task 2"], run.run_id
    )
    assert agenttrace.get_run(run.run_id).metrics == {"from_thread": 1.0}


def test_runs_in_concurrent_tasks_stay_apart() -> None:
    async def own_run(name: str) -> str:
        with agenttrace.start_run(name=name) as run:
            await asyncio.sleep(0.01)  # the other task starts its run meanwhile
            answer(name)
            agenttrace.log_metric("which", 1 if name == "a" else 2)
        return run.run_id

    async def main() -> list[str]:
        return list(await asyncio.gather(own_run("a"), own_run("b")))

    run_a, run_b = asyncio.run(main())
    rows = traces_by_input()
    assert (rows["a"]["run_id"], rows["b"]["run_id"]) == (run_a, run_b)
    assert agenttrace.get_run(run_a).metrics == {"which": 1.0}
    assert agenttrace.get_run(run_b).metrics == {"which": 2.0}
    assert agenttrace.get_run(run_a).parent_run_id is None


def test_a_block_that_raises_fails_the_run_and_ctrl_c_kills_it() -> None:
    with pytest.raises(ZeroDivisionError):
        with agenttrace.start_run() as failed:
            _ = 1 / 0
    with pytest.raises(KeyboardInterrupt):
        with agenttrace.start_run() as killed:
            raise KeyboardInterrupt
    assert agenttrace.get_run(failed.run_id).status == "FAILED"
    assert agenttrace.get_run(killed.run_id).status == "KILLED"


def test_a_plain_run_ends_with_the_status_given() -> None:
    run = agenttrace.start_run(name="plain")
    assert agenttrace.active_run() is run
    agenttrace.log_metric("m", 1)
    agenttrace.end_run(status="KILLED")
    assert agenttrace.active_run() is None
    stored = agenttrace.get_run(run.run_id)
    assert (stored.status, stored.metrics) == ("KILLED", {"m": 1.0})


def test_a_run_ended_twice_is_refused_clearly() -> None:
    run = agenttrace.start_run()
    run.end()
    with pytest.raises(RunStateError, match="ended already .FINISHED.*ends once"):
        run.end()
    with pytest.raises(RunStateError, match="no active run"):
        agenttrace.end_run()
    with pytest.raises(RunStateError, match="has ended"):
        run.log_metric("late", 1.0)
    assert agenttrace.get_run(run.run_id).status == "FINISHED"


def test_ending_inside_the_block_is_not_a_second_end() -> None:
    with agenttrace.start_run() as run:
        agenttrace.end_run(status="FAILED")
    assert agenttrace.get_run(run.run_id).status == "FAILED"


def test_an_unknown_status_is_refused() -> None:
    with agenttrace.start_run() as run:
        with pytest.raises(AgentTraceError, match="FINISHED, FAILED, KILLED"):
            run.end("DONE")


def test_a_param_cannot_change_once_logged() -> None:
    with agenttrace.start_run() as run:
        agenttrace.log_param("lr", 0.1)
        agenttrace.log_param("lr", "0.1")  # the same value again is fine, as in MLflow
        with pytest.raises(ParamConflictError, match=r"'lr' is '0.1', not '0.2'"):
            agenttrace.log_param("lr", 0.2)
        with pytest.raises(ParamConflictError):
            agenttrace.log_params({"batch": 32, "lr": 0.3})  # all or nothing
    assert agenttrace.get_run(run.run_id).params == {"lr": "0.1"}


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, np.float64("nan"), "0.5", None, True, [1.0], Decimal("NaN")]
)
def test_a_metric_that_is_not_a_finite_number_is_refused(value: object) -> None:
    with agenttrace.start_run() as run:
        with pytest.raises(InvalidMetricError, match="'score'") as caught:
            agenttrace.log_metric("score", value)
        with pytest.raises(InvalidMetricError):
            agenttrace.log_metrics({"fine": 1.0, "score": value})
    assert isinstance(caught.value, ValueError)
    assert agenttrace.get_run(run.run_id).metrics == {}


def test_numpy_and_decimal_numbers_are_metrics() -> None:
    with agenttrace.start_run() as run:
        agenttrace.log_metrics({"np": np.float32(0.5), "npi": np.int64(3), "dec": Decimal("1.25")})
    assert agenttrace.get_run(run.run_id).metrics == {"np": 0.5, "npi": 3.0, "dec": 1.25}


def test_metric_history_keeps_every_value_and_latest_is_the_highest_step() -> None:
    with agenttrace.start_run() as run:
        agenttrace.log_metric("loss", 0.3, step=3, timestamp=1_700_000_000_000)
        agenttrace.log_metric("loss", 0.9, step=1)
        agenttrace.log_metric("loss", 0.5, step=2)
        history = agenttrace.get_metric_history(run.run_id, "loss")
        assert agenttrace.get_run(run.run_id).metrics == {"loss": 0.3}  # read before the run ended
    assert history["step"].tolist() == [1, 2, 3]
    assert history["value"].tolist() == [0.9, 0.5, 0.3]
    assert str(history["timestamp"].iloc[2]).startswith("2023-11-14 22:13:20")


def test_a_later_batch_with_a_lower_step_does_not_replace_the_latest_value() -> None:
    with agenttrace.start_run() as run:
        agenttrace.log_metric("acc", 0.8, step=10)
        agenttrace.get_run(run.run_id)  # flushes the first batch
        agenttrace.log_metric("acc", 0.1, step=2)
    assert agenttrace.get_run(run.run_id).metrics == {"acc": 0.8}
    assert len(agenttrace.get_metric_history(run.run_id, "acc")) == 2


def test_a_full_buffer_is_written_without_waiting_for_the_run_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_metrics, "FLUSH_ROWS", 10)
    with agenttrace.start_run() as run:
        for step in range(25):
            agenttrace.log_metric("x", step, step=step)
        assert max(_metrics.buffered_rows().values()) == 5  # two batches of 10 written already
    assert len(agenttrace.get_metric_history(run.run_id, "x")) == 25


def test_unknown_run_and_metric_errors_list_what_exists() -> None:
    with agenttrace.start_run(name="known") as run:
        agenttrace.log_metric("accuracy", 1.0)
    with pytest.raises(RunNotFoundError, match=f"recent runs: {run.run_id} .known."):
        agenttrace.get_run("0123456789abcdef")
    with pytest.raises(AgentTraceError, match="its metrics: accuracy"):
        agenttrace.get_metric_history(run.run_id, "acuracy")
    assert agenttrace.get_run(run.run_id[:8]).run_id == run.run_id  # a unique prefix finds it


def test_logging_without_a_run_is_refused() -> None:
    with pytest.raises(RunStateError, match="no active run"):
        agenttrace.log_metric("loss", 1.0)


SCRIPT = """
import sys, agenttrace
agenttrace.configure(store=sys.argv[1])
run = agenttrace.start_run(name=sys.argv[2])
agenttrace.log_metric("seen", 1.0)
print(run.run_id, flush=True)
if sys.argv[2] == "crash":
    raise RuntimeError("boom")
if sys.argv[2] == "killed":
    import os
    os._exit(3)
"""


@pytest.mark.parametrize(
    ("mode", "status", "metrics"),
    [("ok", "FINISHED", {"seen": 1.0}), ("crash", "FAILED", {"seen": 1.0}), ("killed", "RUNNING", {})],
)
def test_a_plain_run_is_ended_at_exit_by_how_the_process_ended(
    store_path: Path, mode: str, status: str, metrics: dict[str, float]
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(store_path), mode], capture_output=True, text=True, timeout=120
    )
    run_id = out.stdout.split()[0]
    stored = tracking.get_run(run_id)
    assert (stored.status, stored.metrics) == (status, metrics)
    assert stored.end_time is None if status == "RUNNING" else stored.end_time is not None


@pytest.mark.parametrize(
    ("value", "options", "named"),
    [(1.0, {"step": 2**70}, "step"), (1.0, {"timestamp": 1e300}, "timestamp"),
     (1.0, {"timestamp": float("nan")}, "timestamp"), (10**400, {}, "too large")],
)  # fmt: skip
def test_a_metric_the_store_cannot_keep_is_refused_and_the_run_keeps_the_rest(
    value: object, options: dict, named: str
) -> None:
    from agenttrace.errors import InvalidMetricError

    with agenttrace.start_run() as run:
        agenttrace.log_metric("ok", 1.0)
        with pytest.raises(InvalidMetricError, match=named):
            agenttrace.log_metric("bad", value, **options)
    stored = agenttrace.get_run(run.run_id)
    assert stored.status == "FINISHED"
    assert list(agenttrace.get_metric_history(run.run_id, "ok").value) == [1.0]
