"""SQL for lineage: what each registered version produced, and where a trace or eval run came from.

The per-version trace figures are one GROUP BY over `traces` restricted to the agent's version ids,
so `agent_history` costs about what a plain count over those traces costs. A store without the
`traces.agent_version_id` column (one written before that column existed) is matched on the
(agent_name, agent_version) labels instead, which a free-form label equal to a registered
name and number would also match. Tables another part owns (`runs`) are read only if present and
only by `SELECT *`, so this module assumes no more of them than their run_id key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import duckdb

from agenttrace.errors import EvaluationError, TraceNotFoundError
from agenttrace.store._codec import loads as _loads
from agenttrace.store._evaluation import resolve_eval_run
from agenttrace.store._registry import get_agent, has_column, has_table, versions_of

if TYPE_CHECKING:
    import pandas as pd

_FIGURES = (
    "count(*) AS trace_count, "
    "avg(CASE WHEN t.status = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate, "
    "quantile_cont(t.duration_ms, 0.5) AS latency_p50_ms, "
    "quantile_cont(t.duration_ms, 0.95) AS latency_p95_ms, "
    "sum(t.total_tokens) AS total_tokens, "
    "avg(t.total_tokens) AS mean_tokens"
)


def trace_figures(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    """Per version of `name`: trace count, error rate, p50/p95 latency, tokens (versions with traces only)."""
    if has_column(con, "traces", "agent_version_id"):
        # Filtering on the name (a registered version's traces always carry it) is cheaper than
        # testing every id against the agent's versions; ids of deleted versions are dropped later.
        return con.execute(
            f"SELECT t.agent_version_id AS version_id, {_FIGURES} FROM traces t "
            "WHERE t.agent_name = ? AND t.agent_version_id IS NOT NULL GROUP BY t.agent_version_id",
            [name],
        ).df()
    return con.execute(
        f"SELECT v.version_id, {_FIGURES} FROM traces t "
        "JOIN agent_versions v ON t.agent_name = v.agent_name AND t.agent_version = CAST(v.version AS VARCHAR) "
        "WHERE v.agent_name = ? AND t.agent_name = ? GROUP BY v.version_id",
        [name, name],
    ).df()


def eval_runs_of(
    con: duckdb.DuckDBPyConnection, name: str, dataset: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    """Eval runs linked to versions of `name` (optionally on one dataset version), oldest first."""
    sql = (
        "SELECT e.eval_run_id, e.agent_version_id, e.status, e.dataset_name, e.dataset_version, e.scorers, "
        "e.summary, e.started_ns FROM eval_runs e JOIN agent_versions v ON e.agent_version_id = v.version_id "
        "WHERE v.agent_name = ?"
    )
    params: list[Any] = [name]
    if dataset is not None:
        sql += " AND e.dataset_name = ? AND e.dataset_version = ?"
        params += list(dataset)
    cursor = con.execute(sql + " ORDER BY e.started_ns", params)
    names = [d[0] for d in cursor.description or ()]
    runs = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for run in runs:
        run["scorers"] = _loads(run["scorers"]) or []
        run["summary"] = _loads(run["summary"]) or {}
    return runs


def history_parts(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any]:
    """Everything agent_history needs, read in one unit of work (one open of the file, not four)."""
    return {
        "agent": get_agent(con, name),
        "versions": versions_of(con, [name]),
        "figures": trace_figures(con, name),
        "eval_runs": eval_runs_of(con, name),
    }


def _row(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> dict[str, Any] | None:
    cursor = con.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description or ()], row, strict=True))


def _version(con: duckdb.DuckDBPyConnection, version_id: str | None) -> dict[str, Any] | None:
    if not version_id:
        return None
    return _row(
        con,
        "SELECT agent_name AS name, version, version_id, target, code_digest, git_commit, git_dirty, created_ns "
        "FROM agent_versions WHERE version_id = ?",
        [version_id],
    )


def _run(con: duckdb.DuckDBPyConnection, run_id: str | None) -> dict[str, Any] | None:
    if not run_id:
        return None
    if has_table(con, "runs"):
        found = _row(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])
        if found is not None:
            if found.get("experiment_id") is not None and has_column(con, "experiments", "experiment_id"):
                named = _row(con, "SELECT name FROM experiments WHERE experiment_id = ?", [found["experiment_id"]])
                found["experiment"] = named["name"] if named else None
            return found
    return {"run_id": run_id}


def _scorers(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Scorer names with what versions them: the judge model for judges (the only version we record)."""
    return [{"name": n, "judge_model": run.get("judge_model")} for n in (_loads(run.get("scorers")) or [])]


def _from_eval_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> dict[str, Any]:
    version = _version(con, run.get("agent_version_id"))
    return {
        "kind": "eval_run",
        "trace_id": None,
        "eval_run_id": run["eval_run_id"],
        "run": _run(con, run.get("run_id")),
        "experiment": run.get("experiment"),
        "agent": {"name": run.get("agent_name"), "version": run.get("agent_version"), "registered": version},
        "dataset": {"name": run.get("dataset_name"), "version": run.get("dataset_version")},
        "scorers": _scorers(run),
    }


def lineage(con: duckdb.DuckDBPyConnection, ref: str) -> dict[str, Any]:
    """Where a trace (by id) or an eval run (by id, name or id prefix) came from, in one record."""
    trace = _row(con, "SELECT * FROM traces WHERE trace_id = ?", [ref])
    if trace is None:
        try:
            run_id = resolve_eval_run(con, ref)
        except EvaluationError as exc:
            raise TraceNotFoundError(
                f"no trace with id {ref!r} and {exc} - give a trace id or an eval run id, name or prefix"
            ) from exc
        run = _row(con, "SELECT * FROM eval_runs WHERE eval_run_id = ?", [run_id])
        assert run is not None
        return _from_eval_run(con, run)
    registered = _version(con, trace.get("agent_version_id"))
    if registered is None and "agent_version_id" not in trace and trace.get("agent_name"):
        found = _row(
            con,
            "SELECT version_id FROM agent_versions WHERE agent_name = ? AND CAST(version AS VARCHAR) = ?",
            [trace.get("agent_name"), trace.get("agent_version")],
        )
        registered = _version(con, found["version_id"]) if found else None
    record: dict[str, Any] = {
        "kind": "trace",
        "trace_id": ref,
        "eval_run_id": None,
        "run": _run(con, trace.get("run_id")),
        "experiment": trace.get("experiment"),
        "agent": {"name": trace.get("agent_name"), "version": trace.get("agent_version"), "registered": registered},
        "dataset": None,
        "scorers": [],
    }
    produced = _row(con, "SELECT eval_run_id FROM eval_records WHERE trace_id = ? LIMIT 1", [ref])
    if produced is not None:
        run = _row(con, "SELECT * FROM eval_runs WHERE eval_run_id = ?", [produced["eval_run_id"]])
        if run is not None:
            from_run = _from_eval_run(con, run)
            record["eval_run_id"] = run["eval_run_id"]
            record["dataset"] = from_run["dataset"]
            record["run"] = record["run"] or from_run["run"]
    record["scorers"] = [
        {"name": n, "source_type": s, "source_id": i, "eval_run_id": e}
        for n, s, i, e in con.execute(
            "SELECT DISTINCT name, source_type, source_id, eval_run_id FROM assessments "
            "WHERE trace_id = ? AND kind = 'feedback' ORDER BY name",
            [ref],
        ).fetchall()
    ]
    return record
