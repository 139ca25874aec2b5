"""Experiments: ids, tags, lifecycle, errors that list what exists, and a store of the last release migrated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

import agenttrace
from agenttrace import tracking
from agenttrace.errors import ExperimentNotFoundError, RunStateError, TrackingError
from agenttrace.store import DuckDBStore, _connection, _schema
from agenttrace.tracking import runs


@pytest.fixture(autouse=True)
def no_open_runs() -> Iterator[None]:
    runs.forget_active_runs()
    yield
    runs.forget_active_runs()


def test_create_get_and_list_experiments() -> None:
    first = tracking.create_experiment("ranking", tags={"owner": "ana"}, description="rank tests")
    second = tracking.create_experiment("search")
    assert second > first
    found = tracking.get_experiment("ranking")
    assert (found["experiment_id"], found["tags"], found["description"], found["lifecycle"]) == (
        first,
        {"owner": "ana"},
        "rank tests",
        "active",
    )
    assert tracking.get_experiment(str(second))["name"] == "search"  # by id too
    with agenttrace.start_run(experiment="ranking"):
        pass
    listed = tracking.search_experiments()
    assert dict(zip(listed["name"], listed["runs"], strict=True)) == {"ranking": 1, "search": 0}
    assert tracking.search_experiments("tags.owner = 'ana'")["name"].tolist() == ["ranking"]


def test_an_existing_name_is_not_created_twice() -> None:
    tracking.create_experiment("lab")
    with pytest.raises(TrackingError, match="exists already"):
        tracking.create_experiment("lab")


def test_a_deleted_experiment_hides_its_runs_refuses_new_ones_and_comes_back() -> None:
    with agenttrace.start_run(name="kept", experiment="old"):
        pass
    tracking.delete_experiment("old")
    assert tracking.search_experiments()["name"].tolist() == []
    assert tracking.search_experiments(lifecycle="deleted")["name"].tolist() == ["old"]
    assert agenttrace.search_runs().empty
    assert agenttrace.search_runs(experiment="old")["name"].tolist() == ["kept"]  # asked by name: shown
    with pytest.raises(RunStateError, match="experiment 'old' is deleted; restore it"):
        agenttrace.start_run(experiment="old")
    with pytest.raises(TrackingError, match="deleted already"):
        tracking.delete_experiment("old")
    tracking.restore_experiment("old")
    assert agenttrace.search_runs()["name"].tolist() == ["kept"]


def test_an_unknown_experiment_lists_what_exists_closest_first() -> None:
    for name in ("alpha", "beta", "retrieval-v2"):
        tracking.create_experiment(name)
    with pytest.raises(ExperimentNotFoundError, match=r"no experiment 'retrieval'; experiments: retrieval-v2, "):
        tracking.delete_experiment("retrieval")
    with pytest.raises(ExperimentNotFoundError, match="alpha"):
        tracking.get_experiment("999")


def test_traces_still_create_experiments_by_name(store_path: Path) -> None:
    @agenttrace.trace
    def step() -> int:
        return 1

    agenttrace.configure(experiment="from-traces")
    step()
    agenttrace.flush()
    assert tracking.get_experiment("from-traces")["lifecycle"] == "active"


def _store_of_the_last_release(path: Path) -> None:
    """A store as the release before runs wrote it: every migration before ours, with data in it."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_ns BIGINT)")
    before = [name for name, _ in _schema.MIGRATIONS].index("005_runs_and_experiments")
    for version, (name, migrate) in enumerate(_schema.MIGRATIONS[:before], start=1):
        migrate(con)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", [version, name])
    con.execute("INSERT INTO experiments VALUES ('Default', 100), ('legacy', 200)")
    columns = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'traces'"
        ).fetchall()
    ]
    row = {"trace_id": "t1", "experiment": "legacy", "name": "old", "status": "OK", "start_time_ns": 300,
           "end_time_ns": 400, "duration_ms": 0.0001, "span_count": 1, "root_rank": 2}  # fmt: skip
    con.execute(f"INSERT INTO traces ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    assert "experiment" in columns
    row["trace_id"], row["experiment"] = "t2", "only-in-traces"
    con.execute(f"INSERT INTO traces ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    con.execute(
        "INSERT INTO eval_runs (eval_run_id, name, experiment, status, started_ns) "
        "VALUES ('e1', 'old eval', 'legacy', 'FINISHED', 250)"
    )
    con.close()


def test_a_store_of_the_last_release_is_migrated_with_nothing_lost(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _store_of_the_last_release(path)
    _connection.forget_prepared()
    agenttrace.configure(store=str(path))
    store = DuckDBStore(path)
    experiments = tracking.search_experiments()
    assert experiments["name"].tolist() == ["Default", "legacy", "only-in-traces"]  # ids in creation order
    assert experiments["experiment_id"].tolist() == sorted(experiments["experiment_id"])
    traces = store.search_traces(order_by="start_time")
    assert sorted(zip(traces["trace_id"], traces["experiment"], strict=True)) == [
        ("t1", "legacy"),
        ("t2", "only-in-traces"),
    ]
    run, rows = store.load_eval_run("e1")
    assert (run["name"], run["experiment"], run["status"]) == ("old eval", "legacy", "FINISHED")
    with agenttrace.start_run(experiment="legacy") as new_run:  # the migrated store takes runs
        agenttrace.log_metric("m", 1.0)
    assert agenttrace.get_run(new_run.run_id).experiment_id == tracking.get_experiment("legacy")["experiment_id"]
