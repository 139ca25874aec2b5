"""Each eval run belongs to exactly one run: the current one, or one started (and ended) for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import agenttrace
from agenttrace.store import DuckDBStore
from agenttrace.tracking import runs

DATA = [{"inputs": {"q": "a"}, "expectations": {"expected_response": "A"}}, {"inputs": {"q": "b"}}]


@pytest.fixture(autouse=True)
def no_open_runs() -> Iterator[None]:
    runs.forget_active_runs()
    yield
    runs.forget_active_runs()


def upper(q: str) -> str:
    return q.upper()


async def upper_async(q: str) -> str:
    return q.upper()


def eval_run_of(store_path: Path, eval_run_id: str) -> dict[str, object]:
    return DuckDBStore(store_path).load_eval_run(eval_run_id)[0]


def trace_run_ids() -> set[object]:
    agenttrace.flush()
    return set(agenttrace.search_traces()["run_id"])


@pytest.mark.parametrize("predict_fn", [upper, upper_async])
def test_an_evaluation_inside_a_run_belongs_to_it(store_path: Path, predict_fn: object) -> None:
    with agenttrace.start_run(name="outer", experiment="evals") as run:
        result = agenttrace.evaluate(DATA, predict_fn=predict_fn, scorers=["exact_match"], progress=False)
        assert agenttrace.active_run() is run  # the evaluation did not end or replace it
    stored = eval_run_of(store_path, result.eval_run_id)
    assert (stored["run_id"], stored["experiment"]) == (run.run_id, "evals")
    assert trace_run_ids() == {run.run_id}  # every record's trace, on every worker thread
    assert len(agenttrace.search_runs()) == 1


def test_an_evaluation_outside_a_run_gets_a_run_of_its_own(store_path: Path) -> None:
    result = agenttrace.evaluate(DATA, predict_fn=upper, scorers=["exact_match"], run_name="nightly", progress=False)
    stored = eval_run_of(store_path, result.eval_run_id)
    own = agenttrace.get_run(str(stored["run_id"]))
    assert (own.name, own.status, own.tags) == ("nightly", "FINISHED", {"agenttrace.source": "evaluate"})
    assert trace_run_ids() == {own.run_id}
    assert agenttrace.active_run() is None
    again = agenttrace.evaluate(DATA, predict_fn=upper, scorers=["exact_match"], progress=False)
    assert eval_run_of(store_path, again.eval_run_id)["run_id"] not in (None, own.run_id)


def test_an_interrupted_evaluation_kills_its_own_run(store_path: Path) -> None:
    def interrupted(q: str) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        agenttrace.evaluate(DATA, predict_fn=interrupted, scorers=["exact_match"], concurrency=1, progress=False)
    frame = agenttrace.search_runs()
    assert frame["status"].tolist() == ["KILLED"]
