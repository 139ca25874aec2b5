"""SQL behind the web UI's pages: one page of rows at a time, sorted and filtered in DuckDB.

A page never loads a whole table into Python. The traces list reads `limit + 1` rows at an offset
(the extra row says whether there is a next page, so no count over the whole store is needed),
then the latest feedback of each assessment name for just those traces. An eval run's records
are sorted by a scorer's value in SQL, so a 1,000-record run is sorted before it is decoded.

Trace rows go by the declared column names (`agenttrace.schema.TRACE_COLUMNS`), never by position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import duckdb

from agenttrace.errors import EvaluationError, TraceNotFoundError
from agenttrace.records import SpanRecord, Trace, TraceInfo
from agenttrace.schema import TRACE_COLUMNS, Kind, span_record, trace_info
from agenttrace.store._codec import loads
from agenttrace.store._evaluation import resolve_eval_run
from agenttrace.store._filters import compile_filter, compile_order_by
from agenttrace.store._queries import load_assessments
from agenttrace.store._transaction import transaction

__all__ = [
    "delete_trace",
    "eval_page",
    "eval_score_values",
    "eval_trace_ids",
    "experiment_names",
    "latest_feedback",
    "recent_eval_runs",
    "session_page",
    "session_traces",
    "trace_page",
    "trace_view",
]

_LIST_COLUMNS = (
    "trace_id", "name", "status", "start_time_ns", "duration_ms", "total_tokens", "tags", "session_id", "user_id",
    "experiment", "agent_name", "agent_version", "span_count", "inputs", "outputs",
)  # fmt: skip
_JSON_COLUMNS = frozenset(c.name for c in TRACE_COLUMNS if c.kind is Kind.JSON)
# Payloads in a list row are previews: the page shows a line of each, never a whole document.
_PREVIEW_CHARS = 300


def _select(columns: Sequence[str]) -> str:
    parts = []
    for name in columns:
        if name in ("inputs", "outputs"):
            parts.append(f"left(CAST(t.{name} AS VARCHAR), {_PREVIEW_CHARS}) AS {name}")
        else:
            parts.append(f"t.{name}")
    return ", ".join(parts)


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or ()]
    out = []
    for raw in cursor.fetchall():
        row = dict(zip(names, raw, strict=True))
        for name in ("tags", "metadata"):
            if name in row:
                row[name] = loads(row[name]) or {}
        out.append(row)
    return out


def _where(
    filter_string: str | None, experiments: Sequence[str] | None, since_ns: int | None, until_ns: int | None
) -> tuple[str, list[Any]]:
    where, params = compile_filter(filter_string)
    if experiments:
        where = f"({where}) AND t.experiment IN ({', '.join('?' * len(experiments))})"
        params = [*params, *experiments]
    if since_ns is not None:
        where, params = f"({where}) AND t.start_time_ns >= ?", [*params, since_ns]
    if until_ns is not None:
        where, params = f"({where}) AND t.start_time_ns < ?", [*params, until_ns]
    return where, params


def trace_page(
    con: duckdb.DuckDBPyConnection,
    filter_string: str | None,
    experiments: Sequence[str] | None,
    since_ns: int | None,
    until_ns: int | None,
    order_by: list[str] | str | None,
    offset: int,
    limit: int,
) -> tuple[list[dict[str, Any]], bool]:
    """One page of trace summaries and whether another page follows.

    Two steps: the page's ids first (sorting only the sort key and id over the matching traces),
    then the shown columns of just those rows by key. Sorting whole rows, payload previews
    included, cost three times as much at 100,000 traces (measured: 81 vs 257 ms).
    """
    where, params = _where(filter_string, experiments, since_ns, until_ns)
    ids = [
        r[0]
        for r in con.execute(
            f"SELECT t.trace_id FROM traces t WHERE {where} ORDER BY {compile_order_by(order_by)} LIMIT ? OFFSET ?",
            [*params, limit + 1, offset],
        ).fetchall()
    ]
    if not ids:
        return [], False
    shown = ids[:limit]
    marks = ", ".join("?" * len(shown))
    rows = _rows(con.execute(f"SELECT {_select(_LIST_COLUMNS)} FROM traces t WHERE t.trace_id IN ({marks})", shown))
    position = {trace_id: i for i, trace_id in enumerate(shown)}
    rows.sort(key=lambda row: position[row["trace_id"]])
    return rows, len(ids) > limit


def latest_feedback(con: duckdb.DuckDBPyConnection, trace_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """trace id -> {assessment name: latest feedback value} for the given traces only."""
    if not trace_ids:
        return {}
    marks = ", ".join("?" * len(trace_ids))
    rows = con.execute(
        "SELECT trace_id, name, arg_max(CAST(value AS VARCHAR), created_ns), arg_max(error, created_ns) "
        f"FROM assessments WHERE kind = 'feedback' AND trace_id IN ({marks}) GROUP BY trace_id, name",
        list(trace_ids),
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for trace_id, name, value, error in rows:
        out.setdefault(trace_id, {})[name] = {"value": loads(value), "error": error}
    return out


def experiment_names(con: duckdb.DuckDBPyConnection, limit: int = 500) -> list[str]:
    """Experiment names for the picker, from the experiments table the writer keeps (not a scan of traces)."""
    rows = con.execute("SELECT name FROM experiments ORDER BY name LIMIT ?", [limit]).fetchall()
    return [r[0] for r in rows]


def session_page(
    con: duckdb.DuckDBPyConnection,
    filter_string: str | None,
    experiments: Sequence[str] | None,
    since_ns: int | None,
    until_ns: int | None,
    offset: int,
    limit: int,
) -> tuple[list[dict[str, Any]], bool]:
    """Sessions (traces grouped by session id), the most recently active first."""
    where, params = _where(filter_string, experiments, since_ns, until_ns)
    sql = f"""
        SELECT t.session_id, count(*) AS turns, min(t.start_time_ns) AS first_ns, max(t.start_time_ns) AS last_ns,
               string_agg(DISTINCT t.user_id, ', ') AS users, sum(t.total_tokens) AS total_tokens,
               count(*) FILTER (WHERE t.status = 'ERROR') AS errors, arg_min(t.name, t.start_time_ns) AS first_name
        FROM traces t WHERE t.session_id IS NOT NULL AND {where}
        GROUP BY t.session_id ORDER BY last_ns DESC, t.session_id LIMIT ? OFFSET ?
    """
    rows = _rows(con.execute(sql, [*params, limit + 1, offset]))
    return rows[:limit], len(rows) > limit


def session_traces(con: duckdb.DuckDBPyConnection, session_id: str, limit: int) -> list[dict[str, Any]]:
    """A session's traces in the order they happened, with their root inputs and outputs whole."""
    columns = [c for c in _LIST_COLUMNS if c not in ("inputs", "outputs")]
    sql = (
        f"SELECT {_select(columns)}, t.inputs, t.outputs FROM traces t WHERE t.session_id = ? "
        "ORDER BY t.start_time_ns, t.trace_id LIMIT ?"
    )
    rows = _rows(con.execute(sql, [session_id, limit]))
    for row in rows:
        row["inputs"], row["outputs"] = loads(row["inputs"]), loads(row["outputs"])
    return rows


# By the records' field names, as the store's other readers.
_INFO_NAMES = [f.name for f in fields(TraceInfo)]
_INFO_SELECT = "SELECT " + ", ".join(_INFO_NAMES) + " FROM traces WHERE trace_id = ?"
_SPAN_FIELDS = [f.name for f in fields(SpanRecord)]
_SPAN_SELECT = "SELECT " + ", ".join(_SPAN_FIELDS) + " FROM spans WHERE trace_id = ? AND span_id = ?"
# What the span tree and timeline need: no payloads, attributes or events.
_TREE_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "span_type", "status", "status_message", "start_time_ns",
    "end_time_ns", "duration_ms", "model", "provider", "input_tokens", "output_tokens",
)  # fmt: skip


def trace_view(con: duckdb.DuckDBPyConnection, trace_id: str, span_id: str | None, max_spans: int) -> dict[str, Any]:
    """A trace for its page: the summary, every span without its payloads (up to `max_spans`), one
    span whole (`span_id`, else the root) and the assessments.

    A trace's payloads are decoded for the one span shown, not for all of them: a trace of
    thousands of spans opens as fast as its tree can be drawn.
    """
    row = con.execute(_INFO_SELECT, [trace_id]).fetchone()
    if row is None:
        raise TraceNotFoundError(f"no trace with id {trace_id!r} in the store; list ids with `agenttrace traces list`")
    info = trace_info(dict(zip(_INFO_NAMES, row, strict=True)))
    cursor = con.execute(
        f"SELECT {', '.join(_TREE_COLUMNS)} FROM spans WHERE trace_id = ? ORDER BY start_time_ns, span_id LIMIT ?",
        [trace_id, max_spans + 1],
    )
    spans = [span_record(dict(zip(_TREE_COLUMNS, r, strict=True))) for r in cursor.fetchall()]
    truncated = len(spans) > max_spans
    tree = Trace(info=info, spans=spans[:max_spans], assessments=load_assessments(con, trace_id))
    wanted = span_id if span_id and any(s.span_id == span_id for s in tree.spans) else None
    if wanted is None and tree.root is not None:
        wanted = tree.root.span_id
    selected = None
    if wanted is not None:
        full = con.execute(_SPAN_SELECT, [trace_id, wanted]).fetchone()
        if full is not None:
            selected = span_record(dict(zip(_SPAN_FIELDS, full, strict=True)))
    return {"trace": tree, "selected": selected, "truncated": truncated}


def delete_trace(con: duckdb.DuckDBPyConnection, trace_id: str) -> bool:
    """Delete one trace with its spans and assessments; False if there was none."""
    with transaction(con):
        found = con.execute("SELECT 1 FROM traces WHERE trace_id = ?", [trace_id]).fetchone() is not None
        for table in ("spans", "assessments", "traces"):
            con.execute(f"DELETE FROM {table} WHERE trace_id = ?", [trace_id])
    return found


# -- eval runs ---------------------------------------------------------------------------------

_EVAL_SORTS = {"position": "position", "record": "record_id", "latency": "latency_ms", "error": "error"}


def _score_path(scorer: str, key: str) -> str:
    return '$."' + scorer.replace('"', '\\"') + '".' + key


# A score's value as a number to sort by: numbers as they are, booleans as 1/0; labels sort as text after.
_SCORE_NUMBER = (
    "COALESCE(TRY_CAST(json_extract_string(scores, ?) AS DOUBLE), "
    "CASE json_extract_string(scores, ?) WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 END)"
)


def eval_page(
    con: duckdb.DuckDBPyConnection, ref: str, sort: str, descending: bool, offset: int, limit: int
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """(run, one page of its records sorted by a column or a scorer's value, number of records)."""
    run_id = resolve_eval_run(con, ref)
    cursor = con.execute("SELECT * FROM eval_runs WHERE eval_run_id = ?", [run_id])
    names = [d[0] for d in cursor.description or ()]
    run = dict(zip(names, cursor.fetchone() or (), strict=True))
    run["scorers"], run["summary"] = loads(run["scorers"]) or [], loads(run["summary"]) or {}
    direction = "DESC" if descending else "ASC"
    params: list[Any] = [run_id]
    if sort in _EVAL_SORTS:
        order = f"{_EVAL_SORTS[sort]} {direction} NULLS LAST, position"
    elif sort in run["scorers"]:
        value = _score_path(sort, "value")
        order = f"{_SCORE_NUMBER} {direction} NULLS LAST, json_extract_string(scores, ?) {direction}, position"
        params += [value, value, value]
    else:
        choices = ", ".join([*_EVAL_SORTS, *run["scorers"]])
        raise EvaluationError(f"cannot sort eval run records by {sort!r}; sort by one of: {choices}")
    total = con.execute("SELECT count(*) FROM eval_records WHERE eval_run_id = ?", [run_id]).fetchone()
    cursor = con.execute(
        "SELECT record_id, position, trace_id, inputs, outputs, expectations, error, latency_ms, scores "
        f"FROM eval_records WHERE eval_run_id = ? ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    records = _rows(cursor)
    for record in records:
        for key in ("inputs", "outputs", "expectations", "scores"):
            record[key] = loads(record[key])
        record["scores"] = record["scores"] or {}
    return run, records, int(total[0]) if total else 0


def eval_score_values(con: duckdb.DuckDBPyConnection, run_id: str, scorers: Sequence[str]) -> dict[str, list[Any]]:
    """Every record's value per scorer (None where the cell errored), for histograms, in one scan."""
    if not scorers:
        return {}
    columns, params = [], []
    for scorer in scorers:
        columns.append("CAST(json_extract(scores, ?) AS VARCHAR), json_extract_string(scores, ?)")
        params += [_score_path(scorer, "value"), _score_path(scorer, "error")]
    rows = con.execute(
        f"SELECT {', '.join(columns)} FROM eval_records WHERE eval_run_id = ?", [*params, run_id]
    ).fetchall()
    out: dict[str, list[Any]] = {}
    for i, scorer in enumerate(scorers):
        cells = ((row[2 * i], row[2 * i + 1]) for row in rows)
        out[scorer] = [None if error else loads(value) for value, error in cells if value is not None or error]
    return out


def recent_eval_runs(con: duckdb.DuckDBPyConnection, limit: int) -> list[dict[str, Any]]:
    """The newest runs' ids, names and start times: the choices of a "compare with" picker."""
    return _rows(
        con.execute("SELECT eval_run_id, name, started_ns FROM eval_runs ORDER BY started_ns DESC LIMIT ?", [limit])
    )


def eval_trace_ids(con: duckdb.DuckDBPyConnection, ref: str) -> dict[str, str | None]:
    """record id -> trace id for one run."""
    run_id = resolve_eval_run(con, ref)
    rows = con.execute("SELECT record_id, trace_id FROM eval_records WHERE eval_run_id = ?", [run_id]).fetchall()
    return dict(rows)
