"""SQL for evaluation: versioned datasets, eval runs and their per-record rows, the judge cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from agenttrace.errors import DatasetError, EvalRunNotFoundError, EvaluationError
from agenttrace.records import Assessment
from agenttrace.store._codec import append_rows as _append
from agenttrace.store._codec import dumps as _dumps
from agenttrace.store._codec import loads as _loads
from agenttrace.store._queries import insert_assessments
from agenttrace.store._transaction import transaction

if TYPE_CHECKING:  # pandas loads only when a DataFrame is asked for
    import pandas as pd


def save_dataset(
    con: duckdb.DuckDBPyConnection,
    name: str,
    version: str,
    digest: str,
    source: str | None,
    records: Sequence[dict[str, Any]],
    now_ns: int,
) -> bool:
    """Store a dataset version; False (and nothing written) if that version exists already."""
    if con.execute("SELECT 1 FROM datasets WHERE name = ? AND version = ?", [name, version]).fetchone():
        return False
    with transaction(con):
        con.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?)", [name, version, digest, len(records), source, now_ns]
        )
        if records:
            _append(
                con,
                "dataset_records",
                {
                    "dataset_name": [name] * len(records),
                    "dataset_version": [version] * len(records),
                    "position": list(range(len(records))),
                    "record_id": [r["id"] for r in records],
                    "inputs": [_dumps(r["inputs"]) for r in records],
                    "expectations": [_dumps(r.get("expectations")) for r in records],
                    "tags": [_dumps(r.get("tags")) for r in records],
                    "source_trace_id": [r.get("source_trace_id") for r in records],
                },
            )
    return True


def load_dataset(con: duckdb.DuckDBPyConnection, name: str, version: str | None) -> tuple[str, list[dict[str, Any]]]:
    if version is None:
        row = con.execute(
            "SELECT version FROM datasets WHERE name = ? ORDER BY created_ns DESC LIMIT 1", [name]
        ).fetchone()
    else:
        row = con.execute("SELECT version FROM datasets WHERE name = ? AND version = ?", [name, version]).fetchone()
    if row is None:
        known = [
            f"{n}@{v}"
            for n, v in con.execute("SELECT name, version FROM datasets ORDER BY name, created_ns").fetchall()
        ]
        wanted = name if version is None else f"{name}@{version}"
        raise DatasetError(
            f"no stored dataset {wanted!r}; stored: {', '.join(known) or '(none)'} "
            "- create one with agenttrace.datasets.create(name, records)"
        )
    version = row[0]
    rows = con.execute(
        "SELECT record_id, inputs, expectations, tags, source_trace_id FROM dataset_records "
        "WHERE dataset_name = ? AND dataset_version = ? ORDER BY position",
        [name, version],
    ).fetchall()
    records = [
        {
            "id": r[0],
            "inputs": _loads(r[1]),
            "expectations": _loads(r[2]) or {},
            "tags": _loads(r[3]) or {},
            "source_trace_id": r[4],
        }
        for r in rows
    ]
    return version, records


def list_datasets(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(
        "SELECT name, version, record_count, source, make_timestamp(created_ns // 1000) AS created "
        "FROM datasets ORDER BY name, created_ns"
    ).df()


def start_eval_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    con.execute(
        "INSERT INTO eval_runs (eval_run_id, name, experiment, status, dataset_name, dataset_version, agent_name, "
        "agent_version, scorers, judge_model, record_count, started_ns) "
        "VALUES (?, ?, ?, 'RUNNING', ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run["eval_run_id"],
            run.get("name"),
            run.get("experiment"),
            run.get("dataset_name"),
            run.get("dataset_version"),
            run.get("agent_name"),
            run.get("agent_version"),
            _dumps(run.get("scorers")),
            run.get("judge_model"),
            run.get("record_count"),
            run["started_ns"],
        ],
    )


def add_eval_records(
    con: duckdb.DuckDBPyConnection, eval_run_id: str, rows: Sequence[dict[str, Any]], assessments: Sequence[Assessment]
) -> None:
    """Store finished record rows and their score assessments in one transaction."""
    with transaction(con):
        if rows:
            _append(
                con,
                "eval_records",
                {
                    "eval_run_id": [eval_run_id] * len(rows),
                    "record_id": [r["record_id"] for r in rows],
                    "position": [r["position"] for r in rows],
                    "trace_id": [r.get("trace_id") for r in rows],
                    "inputs": [_dumps(r.get("inputs")) for r in rows],
                    "outputs": [_dumps(r.get("outputs")) for r in rows],
                    "expectations": [_dumps(r.get("expectations")) for r in rows],
                    "error": [r.get("error") for r in rows],
                    "latency_ms": [r.get("latency_ms") for r in rows],
                    "scores": [_dumps(r.get("scores")) for r in rows],
                },
            )
        if assessments:
            insert_assessments(con, assessments)


def finish_eval_run(
    con: duckdb.DuckDBPyConnection, eval_run_id: str, status: str, ended_ns: int, summary: dict[str, Any]
) -> None:
    con.execute(
        "UPDATE eval_runs SET status = ?, ended_ns = ?, summary = ? WHERE eval_run_id = ?",
        [status, ended_ns, _dumps(summary), eval_run_id],
    )


def list_eval_runs(con: duckdb.DuckDBPyConnection, limit: int) -> pd.DataFrame:
    frame = con.execute(
        "SELECT eval_run_id, name, status, dataset_name, dataset_version, agent_name, agent_version, record_count, "
        "make_timestamp(started_ns // 1000) AS started, (ended_ns - started_ns) / 1e9 AS seconds, summary "
        "FROM eval_runs ORDER BY started_ns DESC LIMIT ?",
        [limit],
    ).df()
    frame["summary"] = [_loads(v) for v in frame["summary"]]
    return frame


_MIN_PREFIX = 6


def resolve_eval_run(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """A run by full id, then by name (the newest with it), then by a unique id prefix.

    Names come before prefixes: a run named "b" must not be mistaken for an id starting with b.
    Prefixes need at least _MIN_PREFIX characters, for the same reason.
    """
    row = con.execute("SELECT eval_run_id FROM eval_runs WHERE eval_run_id = ?", [ref]).fetchone()
    if row is None:
        row = con.execute(
            "SELECT eval_run_id FROM eval_runs WHERE name = ? ORDER BY started_ns DESC LIMIT 1", [ref]
        ).fetchone()
    if row is not None:
        return row[0]
    if len(ref) >= _MIN_PREFIX:
        rows = con.execute("SELECT eval_run_id FROM eval_runs WHERE starts_with(eval_run_id, ?)", [ref]).fetchall()
        if len(rows) == 1:
            return rows[0][0]
        if len(rows) > 1:
            raise EvaluationError(f"eval run prefix {ref!r} matches {len(rows)} runs; give more characters")
    raise EvalRunNotFoundError(
        f"no eval run {ref!r} (by id, name, or id prefix of {_MIN_PREFIX}+ characters); "
        "list runs with `agenttrace eval list`"
    )


def load_eval_run(con: duckdb.DuckDBPyConnection, ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run_id = resolve_eval_run(con, ref)
    cursor = con.execute("SELECT * FROM eval_runs WHERE eval_run_id = ?", [run_id])
    names = [d[0] for d in cursor.description]
    run = dict(zip(names, cursor.fetchone(), strict=True))  # type: ignore[arg-type]
    for key in ("scorers", "summary"):
        run[key] = _loads(run[key])
    rows = con.execute(
        "SELECT record_id, position, trace_id, inputs, outputs, expectations, error, latency_ms, scores "
        "FROM eval_records WHERE eval_run_id = ? ORDER BY position",
        [run_id],
    ).fetchall()
    records = [
        {
            "record_id": r[0],
            "position": r[1],
            "trace_id": r[2],
            "inputs": _loads(r[3]),
            "outputs": _loads(r[4]),
            "expectations": _loads(r[5]),
            "error": r[6],
            "latency_ms": r[7],
            "scores": _loads(r[8]) or {},
        }
        for r in rows
    ]
    return run, records


def judge_cache_load(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM judge_cache").fetchall())


def judge_cache_put_many(con: duckdb.DuckDBPyConnection, entries: dict[str, str], now_ns: int) -> None:
    batch = pa.table({"key": list(entries), "value": list(entries.values()), "created_ns": [now_ns] * len(entries)})
    con.register("cache_batch", batch)
    try:
        con.execute("INSERT INTO judge_cache SELECT * FROM cache_batch ON CONFLICT (key) DO NOTHING")
    finally:
        con.unregister("cache_batch")
