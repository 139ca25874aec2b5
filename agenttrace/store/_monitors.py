"""SQL for online monitors: the monitors themselves, claiming work, and quality over time.

Several `agenttrace monitor run` processes may score the same store at once. DuckDB lets one
process write the file at a time, so every claim is one write transaction: stale claims (their
process died) are dropped, then up to `limit` traces are claimed with one INSERT into
`monitor_claims`, whose primary key (trace_id, scorer_name) refuses a second claim of the same
work. Results are written in one transaction that first marks the claims done *for their owner*
and stores assessments only for the claims it could mark, so a claim that expired and was taken
over by another process is never scored twice.

Sampling is by trace id: a trace is in a monitor's sample when md5(trace_id), read as a
little-endian 128-bit number, modulo SAMPLE_BUCKETS is below sample * SAMPLE_BUCKETS. The same
test is `agenttrace.monitoring.in_sample` in Python; a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import duckdb

from agenttrace.errors import InvalidArgumentError
from agenttrace.records import Assessment
from agenttrace.store._codec import append_rows, dumps, loads
from agenttrace.store._filters import compile_filter
from agenttrace.store._queries import insert_assessments
from agenttrace.store._transaction import transaction

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SAMPLE_BUCKETS",
    "add_monitor",
    "claim_work",
    "finish_work",
    "get_monitor",
    "list_monitors",
    "quality_frames",
    "release_work",
    "remove_monitor",
]

SAMPLE_BUCKETS = 1_000_000
_MONITOR_COLUMNS = (
    "monitor_id", "agent_name", "agent_version", "scorer", "scorer_name", "sample", "filter", "alerts",
    "webhook", "judge_model", "since_ns", "created_ns",
)  # fmt: skip


def add_monitor(con: duckdb.DuckDBPyConnection, monitor: dict[str, Any]) -> None:
    compile_filter(monitor.get("filter"))  # refused here, before anything is stored
    row = {name: [monitor.get(name)] for name in _MONITOR_COLUMNS}
    row["alerts"] = [dumps(monitor.get("alerts") or [])]
    append_rows(con, "monitors", row)


def _monitor_rows(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[dict[str, Any]]:
    sql = (
        f"SELECT {', '.join('m.' + c for c in _MONITOR_COLUMNS)}, "
        "(SELECT count(*) FROM monitor_claims c WHERE c.monitor_id = m.monitor_id AND c.state = 'done') AS scored "
        f"FROM monitors m WHERE {where} ORDER BY m.created_ns, m.monitor_id"
    )
    rows = []
    for values in con.execute(sql, params).fetchall():
        row = dict(zip([*_MONITOR_COLUMNS, "scored"], values, strict=True))
        row["alerts"] = loads(row["alerts"]) or []
        rows.append(row)
    return rows


def list_monitors(con: duckdb.DuckDBPyConnection, agent: str | None) -> list[dict[str, Any]]:
    if agent is None:
        return _monitor_rows(con, "TRUE", [])
    return _monitor_rows(con, "m.agent_name = ?", [agent])


def get_monitor(con: duckdb.DuckDBPyConnection, ref: str) -> dict[str, Any]:
    """A monitor by id or unique id prefix; the error lists the monitors that exist."""
    found = _monitor_rows(con, "starts_with(m.monitor_id, ?)", [ref]) if ref else []
    if len(found) == 1:
        return found[0]
    known = ", ".join(f"{m['monitor_id']} ({m['agent_name']}: {m['scorer']})" for m in list_monitors(con, None))
    what = "matches several monitors" if found else "is not a monitor"
    raise InvalidArgumentError(f"{ref!r} {what}; monitors: {known or '(none; add one with agenttrace monitor add)'}")


def remove_monitor(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """Delete a monitor; its finished claims stay, so adding it again does not score twice."""
    monitor_id = str(get_monitor(con, ref)["monitor_id"])
    con.execute("DELETE FROM monitors WHERE monitor_id = ?", [monitor_id])
    return monitor_id


def claim_work(
    con: duckdb.DuckDBPyConnection,
    monitor: dict[str, Any],
    version: str | None,
    owner: str,
    now_ns: int,
    stale_before_ns: int,
    limit: int,
) -> list[dict[str, Any]]:
    """Claim up to `limit` unscored traces in the monitor's sample; their rows, oldest first."""
    where, params = compile_filter(monitor.get("filter"))
    bucket = round(float(monitor["sample"]) * SAMPLE_BUCKETS)
    version_sql = "AND t.agent_version = ?" if version is not None else ""
    with transaction(con):
        con.execute(
            "DELETE FROM monitor_claims WHERE state = 'claimed' AND claimed_ns < ? AND scorer_name = ?",
            [stale_before_ns, monitor["scorer_name"]],
        )
        claimed = con.execute(
            "INSERT INTO monitor_claims "
            "SELECT t.trace_id, ?, ?, ?, 'claimed', ? FROM traces t "
            f"WHERE t.agent_name = ? {version_sql} AND t.start_time_ns >= ? AND t.root_rank > 0 "
            # SAMPLE_BUCKETS is written into the SQL: a bound divisor makes DuckDB compute in DOUBLE,
            # which rounds a 128-bit number and breaks the agreement with in_sample().
            f"AND md5_number(t.trace_id) % {SAMPLE_BUCKETS} < CAST(? AS BIGINT) "
            "AND NOT EXISTS (SELECT 1 FROM monitor_claims c WHERE c.trace_id = t.trace_id AND c.scorer_name = ?) "
            f"AND ({where}) ORDER BY t.start_time_ns, t.trace_id LIMIT ? "
            "ON CONFLICT DO NOTHING RETURNING trace_id",
            [
                monitor["scorer_name"], monitor["monitor_id"], owner, now_ns, monitor["agent_name"],
                *([version] if version is not None else []), monitor["since_ns"], bucket,
                monitor["scorer_name"], *params, limit,
            ],
        ).fetchall()  # fmt: skip
    ids = [r[0] for r in claimed]
    if not ids:
        return []
    rows = con.execute(
        "SELECT t.trace_id, t.agent_version, t.status, t.duration_ms, t.inputs, t.outputs, t.total_tokens, "
        "(SELECT json_group_object(a.name, a.value) FROM assessments a "
        " WHERE a.trace_id = t.trace_id AND a.kind = 'expectation') AS expectations "
        "FROM traces t WHERE t.trace_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY t.start_time_ns, t.trace_id",
        [ids],
    ).fetchall()
    names = ("trace_id", "agent_version", "status", "duration_ms", "inputs", "outputs", "total_tokens", "expectations")
    out = []
    for values in rows:
        row = dict(zip(names, values, strict=True))
        row["inputs"] = loads(row["inputs"])
        row["outputs"] = loads(row["outputs"])
        row["expectations"] = loads(row["expectations"]) or {}
        out.append(row)
    return out


def finish_work(con: duckdb.DuckDBPyConnection, scorer_name: str, owner: str, assessments: Sequence[Assessment]) -> int:
    """Mark this owner's claims done and store their assessments, in one transaction; how many."""
    ids = sorted({a.trace_id for a in assessments})
    if not ids:
        return 0
    with transaction(con):
        kept = con.execute(
            "UPDATE monitor_claims SET state = 'done' WHERE scorer_name = ? AND owner = ? AND state = 'claimed' "
            "AND trace_id IN (SELECT unnest(?::VARCHAR[])) RETURNING trace_id",
            [scorer_name, owner, ids],
        ).fetchall()
        still_ours = {r[0] for r in kept}
        mine = [a for a in assessments if a.trace_id in still_ours]
        if mine:
            insert_assessments(con, mine)
    return len(still_ours)


def release_work(con: duckdb.DuckDBPyConnection, scorer_name: str, owner: str, trace_ids: Sequence[str]) -> None:
    """Give claims back unscored (the judge endpoint is down), so a later pass takes them again."""
    if trace_ids:
        con.execute(
            "DELETE FROM monitor_claims WHERE scorer_name = ? AND owner = ? AND state = 'claimed' "
            "AND trace_id IN (SELECT unnest(?::VARCHAR[]))",
            [scorer_name, owner, list(trace_ids)],
        )


# Production traffic only: traces an evaluation ran carry its eval_run_id tag.
_TRACES = (
    "SELECT trace_id, agent_version, (start_time_ns // ?) * ? AS window_ns, status, duration_ms, total_tokens "
    "FROM traces WHERE agent_name = ? AND start_time_ns >= ? AND root_rank > 0 "
    "AND json_extract_string(tags, '$.eval_run_id') IS NULL"
)
_NUMBER = (
    "CASE json_type(a.value) WHEN 'BOOLEAN' THEN CAST(CAST(a.value AS VARCHAR) = 'true' AS DOUBLE) "
    "WHEN 'BIGINT' THEN CAST(CAST(a.value AS VARCHAR) AS DOUBLE) WHEN 'UBIGINT' THEN CAST(CAST(a.value AS VARCHAR) "
    "AS DOUBLE) WHEN 'DOUBLE' THEN CAST(CAST(a.value AS VARCHAR) AS DOUBLE) END"
)


def quality_frames(
    con: duckdb.DuckDBPyConnection, agent: str, window_ns: int, since_ns: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (version, window): trace figures; and per (version, window, scorer): score figures.

    Scores are feedback assessments outside evaluation runs (monitors, people, code) on the
    agent's production traces; a boolean scorer's mean is its pass rate.
    """
    params = [window_ns, window_ns, agent, since_ns]
    traces = con.execute(
        f"WITH t AS ({_TRACES}) SELECT agent_version, window_ns, count(*) AS traces, "
        "avg(CASE WHEN status = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate, "
        "quantile_cont(duration_ms, 0.5) AS latency_p50_ms, quantile_cont(duration_ms, 0.95) AS latency_p95_ms, "
        "sum(total_tokens) AS total_tokens FROM t GROUP BY agent_version, window_ns",
        params,
    ).df()
    scores = con.execute(
        f"WITH t AS ({_TRACES}), s AS (SELECT t.agent_version, t.window_ns, a.name AS scorer, a.error, "
        f"json_type(a.value) AS kind, {_NUMBER} AS x FROM assessments a JOIN t ON a.trace_id = t.trace_id "
        "WHERE a.kind = 'feedback' AND a.eval_run_id IS NULL) "
        "SELECT agent_version, window_ns, scorer, count(x) AS n, avg(x) AS mean, stddev_samp(x) AS sd, "
        "count(*) FILTER (WHERE error IS NOT NULL) AS errors, "
        "bool_and(kind = 'BOOLEAN') FILTER (WHERE x IS NOT NULL) AS boolean "
        "FROM s GROUP BY agent_version, window_ns, scorer",
        params,
    ).df()
    return traces, scores
