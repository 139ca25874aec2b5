"""SQL for experiments and runs: their rows, params, tags, metric history and artifact records.

Every function takes an open connection (the facade in `__init__` opens it). Params and tags are
written as they are logged; metrics arrive in Arrow batches from the engine's buffer and go into
the append-only history and, in the same transaction, the latest-value table that search reads.
Unknown names and ids raise errors that list what exists, closest first.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from agenttrace.errors import (
    ExperimentNotFoundError,
    ParamConflictError,
    RunNotFoundError,
    RunStateError,
    TrackingError,
)
from agenttrace.store._codec import dumps, loads
from agenttrace.store._run_filters import compile_experiment_filter
from agenttrace.store._transaction import transaction

if TYPE_CHECKING:
    import pandas as pd

METRIC_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("key", pa.string()),
        ("value", pa.float64()),
        ("step", pa.int64()),
        ("timestamp_ns", pa.int64()),
    ]
)
RUN_FIELDS = (
    "run_id", "experiment_id", "experiment", "name", "status", "parent_run_id", "description",
    "start_time_ns", "end_time_ns", "lifecycle", "user_name", "host", "pid", "source", "artifact_uri",
)  # fmt: skip
_RUN_SELECT = (
    "SELECT r.run_id, r.experiment_id, e.name, r.name, r.status, r.parent_run_id, r.description, "
    "r.start_time_ns, r.end_time_ns, r.lifecycle, r.user_name, r.host, r.pid, r.source, r.artifact_uri "
    "FROM runs r JOIN experiments e USING (experiment_id)"
)
_EXPERIMENT_FIELDS = ("experiment_id", "name", "created_ns", "tags", "description", "lifecycle", "deleted_ns")


def _closest(wanted: str, names: Sequence[str], limit: int = 10) -> str:
    """'a, b, c' with the names closest to `wanted` first, then the rest; '(none)' for no names."""
    if not names:
        return "(none)"
    close = difflib.get_close_matches(wanted, names, n=limit, cutoff=0.4)
    rest = [n for n in names if n not in close]
    shown = [*close, *rest][:limit]
    more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    return ", ".join(shown) + more


# --- experiments --------------------------------------------------------------------------


def _experiment_row(row: Sequence[Any]) -> dict[str, Any]:
    found = dict(zip(_EXPERIMENT_FIELDS, row, strict=True))
    found["tags"] = loads(found["tags"]) or {}
    return found


def get_experiment(con: duckdb.DuckDBPyConnection, ref: str | int) -> dict[str, Any]:
    """An experiment by name, or by id when `ref` is an int or all digits and no name matches."""
    select = f"SELECT {', '.join(_EXPERIMENT_FIELDS)} FROM experiments"
    row = con.execute(f"{select} WHERE name = ?", [str(ref)]).fetchone()
    if row is None and (str(ref).isascii() and str(ref).isdigit() and len(str(ref)) < 19):
        row = con.execute(f"{select} WHERE experiment_id = ?", [int(ref)]).fetchone()
    if row is None:
        names = [r[0] for r in con.execute("SELECT name FROM experiments ORDER BY created_ns, name").fetchall()]
        raise ExperimentNotFoundError(
            f"no experiment {str(ref)!r}; experiments: {_closest(str(ref), names)} "
            "- create one with `agenttrace experiments create NAME` or start_run(experiment=NAME)"
        )
    return _experiment_row(row)


def create_experiment(
    con: duckdb.DuckDBPyConnection, name: str, tags: Mapping[str, str] | None, description: str | None, now_ns: int
) -> int:
    row = con.execute("SELECT experiment_id, lifecycle FROM experiments WHERE name = ?", [name]).fetchone()
    if row is not None:
        state = " (deleted: `agenttrace experiments restore` it)" if row[1] == "deleted" else ""
        raise TrackingError(f"experiment {name!r} exists already with id {row[0]}{state}; choose another name")
    created = con.execute(
        "INSERT INTO experiments (name, created_ns, tags, description) VALUES (?, ?, ?, ?) RETURNING experiment_id",
        [name, now_ns, dumps(dict(tags)) if tags else None, description],
    ).fetchone()
    assert created is not None
    return int(created[0])


def experiment_for_run(con: duckdb.DuckDBPyConnection, name: str, now_ns: int) -> int:
    """The id of an active experiment, created when the name is new; a deleted one is refused."""
    con.execute(
        "INSERT INTO experiments (name, created_ns) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", [name, now_ns]
    )
    row = con.execute("SELECT experiment_id, lifecycle FROM experiments WHERE name = ?", [name]).fetchone()
    assert row is not None
    if row[1] == "deleted":
        raise RunStateError(
            f"experiment {name!r} is deleted; restore it with `agenttrace experiments restore {name}` "
            "or start the run in another experiment"
        )
    return int(row[0])


def set_experiment_lifecycle(con: duckdb.DuckDBPyConnection, ref: str, lifecycle: str, now_ns: int) -> dict[str, Any]:
    found = get_experiment(con, ref)
    if found["lifecycle"] == lifecycle:
        raise TrackingError(f"experiment {found['name']!r} is {lifecycle} already")
    con.execute(
        "UPDATE experiments SET lifecycle = ?, deleted_ns = ? WHERE experiment_id = ?",
        [lifecycle, now_ns if lifecycle == "deleted" else None, found["experiment_id"]],
    )
    return {**found, "lifecycle": lifecycle}


def list_experiments(
    con: duckdb.DuckDBPyConnection, filter_string: str | None, lifecycle: str | None, limit: int, offset: int
) -> pd.DataFrame:
    where, params = compile_experiment_filter(filter_string)
    if lifecycle is not None:
        where, params = f"({where}) AND e.lifecycle = ?", [*params, lifecycle]
    frame = con.execute(
        "SELECT e.experiment_id, e.name, e.lifecycle, make_timestamp(e.created_ns // 1000) AS created_time, "
        "e.description, e.tags, "
        "(SELECT count(*) FROM runs r WHERE r.experiment_id = e.experiment_id AND r.lifecycle = 'active') AS runs "
        f"FROM experiments e WHERE {where} ORDER BY e.experiment_id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).df()
    frame["tags"] = frame["tags"].map(lambda v: loads(v) or {})
    return frame


# --- runs ---------------------------------------------------------------------------------


def create_run(con: duckdb.DuckDBPyConnection, run: Mapping[str, Any], tags: Mapping[str, str], now_ns: int) -> int:
    """Insert a RUNNING run into its experiment (by name; created if new, refused if deleted)."""
    if run.get("parent_run_id"):
        resolve_run(con, run["parent_run_id"])
    with transaction(con):
        experiment_id = experiment_for_run(con, run["experiment"], now_ns)
        con.execute(
            "INSERT INTO runs (run_id, experiment_id, name, status, parent_run_id, description, start_time_ns, "
            "user_name, host, pid, source, artifact_uri) VALUES (?, ?, ?, 'RUNNING', ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run["run_id"], experiment_id, run.get("name"), run.get("parent_run_id"),
                run.get("description"), run["start_time_ns"], run.get("user_name"), run.get("host"),
                run.get("pid"), run.get("source"), run.get("artifact_uri"),
            ],
        )  # fmt: skip
        _upsert_tags(con, run["run_id"], tags)
    return experiment_id


def resolve_run(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """A run id from a full id or a unique prefix of at least 6 characters."""
    if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [ref]).fetchone():
        return ref
    if len(ref) >= 6:
        rows = con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?) LIMIT 2", [ref]).fetchall()
        if len(rows) == 1:
            return str(rows[0][0])
        if len(rows) > 1:
            raise RunNotFoundError(f"run id prefix {ref!r} matches several runs; give more characters")
    recent = con.execute("SELECT run_id, coalesce(name, '') FROM runs ORDER BY start_time_ns DESC LIMIT 200").fetchall()
    labels = {f"{rid} ({name})" if name else rid: rid for rid, name in recent}
    close = difflib.get_close_matches(ref, [*labels.values(), *(n for _, n in recent if n)], n=5, cutoff=0.5)
    named = [label for label, rid in labels.items() if rid in close or label.endswith(f"({ref})")]
    hint = f"; did you mean {', '.join(named)}?" if named else ""
    shown = ", ".join(list(labels)[:10]) or "(none)"
    raise RunNotFoundError(f"no run with id {ref!r}{hint} recent runs: {shown} - list them with `agenttrace runs list`")


def get_run(con: duckdb.DuckDBPyConnection, ref: str) -> dict[str, Any]:
    """A run's row with its params, latest metrics and tags as dicts."""
    run_id = resolve_run(con, ref)
    row = con.execute(f"{_RUN_SELECT} WHERE r.run_id = ?", [run_id]).fetchone()
    assert row is not None
    run = dict(zip(RUN_FIELDS, row, strict=True))
    run["params"] = dict(
        con.execute("SELECT key, value FROM run_params WHERE run_id = ? ORDER BY key", [run_id]).fetchall()
    )
    run["metrics"] = dict(
        con.execute("SELECT key, value FROM run_latest_metrics WHERE run_id = ? ORDER BY key", [run_id]).fetchall()
    )
    run["tags"] = dict(
        con.execute("SELECT key, value FROM run_tags WHERE run_id = ? ORDER BY key", [run_id]).fetchall()
    )
    return run


def end_run(con: duckdb.DuckDBPyConnection, run_id: str, status: str, now_ns: int) -> None:
    """Mark a RUNNING run ended; a run that ended already is refused with when and how it ended."""
    row = con.execute("SELECT status, end_time_ns FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        resolve_run(con, run_id)  # raises, listing what exists
        return
    if row[0] != "RUNNING":
        raise RunStateError(f"run {run_id} ended already ({row[0]} at {_when(row[1])}); a run ends once")
    con.execute("UPDATE runs SET status = ?, end_time_ns = ? WHERE run_id = ?", [status, now_ns, run_id])


def _when(ns: int | None) -> str:
    from datetime import UTC, datetime

    return "an unknown time" if ns is None else datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds")


def delete_run(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    run_id = resolve_run(con, ref)
    con.execute("UPDATE runs SET lifecycle = 'deleted' WHERE run_id = ?", [run_id])
    return run_id


def log_params(con: duckdb.DuckDBPyConnection, run_id: str, params: Mapping[str, str]) -> None:
    """Insert params; a key logged before with another value refuses the whole batch."""
    keys = list(params)
    stored = dict(
        con.execute(
            "SELECT key, value FROM run_params WHERE run_id = ? AND list_contains(?, key)", [run_id, keys]
        ).fetchall()
    )
    changed = {k: (stored[k], v) for k, v in params.items() if k in stored and stored[k] != v}
    if changed:
        detail = "; ".join(f"{k!r} is {old!r}, not {new!r}" for k, (old, new) in changed.items())
        raise ParamConflictError(
            f"run {run_id} logged these params already with other values: {detail}. A param never changes "
            "once logged; log the new value under another key or start a new run"
        )
    fresh = {k: v for k, v in params.items() if k not in stored}
    if fresh:
        _insert_pairs(con, "INSERT INTO run_params SELECT * FROM pairs", run_id, fresh)


def _insert_pairs(con: duckdb.DuckDBPyConnection, sql: str, run_id: str, pairs: Mapping[str, str]) -> None:
    """Run `sql` over `pairs` (run_id, key, value) as one Arrow table: executemany runs a statement per row."""
    table = pa.table(
        {"run_id": [run_id] * len(pairs), "key": list(pairs), "value": list(pairs.values())},
        schema=pa.schema([("run_id", pa.string()), ("key", pa.string()), ("value", pa.string())]),
    )
    con.register("pairs", table)
    try:
        con.execute(sql)
    finally:
        con.unregister("pairs")


def _upsert_tags(con: duckdb.DuckDBPyConnection, run_id: str, tags: Mapping[str, str]) -> None:
    if tags:
        _insert_pairs(
            con,
            "INSERT INTO run_tags SELECT * FROM pairs ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            run_id,
            tags,
        )


def set_tags(con: duckdb.DuckDBPyConnection, run_id: str, tags: Mapping[str, str]) -> None:
    _upsert_tags(con, run_id, tags)


_LATEST = """
INSERT INTO run_latest_metrics
SELECT run_id, key, value, step, timestamp_ns FROM metric_batch
QUALIFY row_number() OVER (PARTITION BY run_id, key ORDER BY step DESC, timestamp_ns DESC, value DESC) = 1
ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, step = excluded.step,
    timestamp_ns = excluded.timestamp_ns
WHERE excluded.step > run_latest_metrics.step
   OR (excluded.step = run_latest_metrics.step AND excluded.timestamp_ns >= run_latest_metrics.timestamp_ns)
"""


def append_metrics(con: duckdb.DuckDBPyConnection, batch: pa.Table) -> None:
    """Append a metric batch (METRIC_SCHEMA) to the history and fold it into the latest values."""
    con.register("metric_batch", batch)
    try:
        with transaction(con):
            con.execute("INSERT INTO run_metrics SELECT * FROM metric_batch")
            con.execute(_LATEST)
    finally:
        con.unregister("metric_batch")


def metric_history(con: duckdb.DuckDBPyConnection, ref: str, key: str) -> pd.DataFrame:
    run_id = resolve_run(con, ref)
    frame = con.execute(
        "SELECT key, value, step, make_timestamp(timestamp_ns // 1000) AS timestamp FROM run_metrics "
        "WHERE run_id = ? AND key = ? ORDER BY step, timestamp_ns",
        [run_id, key],
    ).df()
    if frame.empty:
        keys = [
            r[0]
            for r in con.execute(
                "SELECT key FROM run_latest_metrics WHERE run_id = ? ORDER BY key", [run_id]
            ).fetchall()
        ]
        raise TrackingError(f"run {run_id} has no metric {key!r}; its metrics: {_closest(key, keys)}")
    return frame


def record_artifact(
    con: duckdb.DuckDBPyConnection, run_id: str, path: str, size: int, sha256: str, now_ns: int
) -> None:
    con.execute(
        "INSERT INTO run_artifacts VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, path) DO UPDATE SET "
        "size_bytes = excluded.size_bytes, sha256 = excluded.sha256, created_ns = excluded.created_ns",
        [run_id, path, size, sha256, now_ns],
    )


def list_artifacts(con: duckdb.DuckDBPyConnection, ref: str) -> list[dict[str, Any]]:
    run_id = resolve_run(con, ref)
    rows = con.execute(
        "SELECT path, size_bytes, sha256, created_ns FROM run_artifacts WHERE run_id = ? ORDER BY path", [run_id]
    ).fetchall()
    return [dict(zip(("path", "size_bytes", "sha256", "created_ns"), r, strict=True)) for r in rows]


def link_eval_run(con: duckdb.DuckDBPyConnection, eval_run_id: str, run_id: str) -> None:
    con.execute("UPDATE eval_runs SET run_id = ? WHERE eval_run_id = ?", [run_id, eval_run_id])
