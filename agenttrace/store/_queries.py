"""Reading the store: trace search as pandas, whole traces as records, exports and deletion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import duckdb

from agenttrace.errors import TraceNotFoundError
from agenttrace.records import Assessment, SpanRecord, Trace, TraceInfo
from agenttrace.store._codec import append_rows, dumps, loads
from agenttrace.store._filters import compile_filter, compile_order_by

if TYPE_CHECKING:  # pandas loads only when a DataFrame is asked for
    import pandas as pd

# Columns of search_traces, in order; documented in the README.
TRACE_FRAME_COLUMNS = (
    "trace_id",
    "name",
    "status",
    "start_time",
    "end_time",
    "duration_ms",
    "inputs",
    "outputs",
    "tags",
    "metadata",
    "session_id",
    "user_id",
    "span_count",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "experiment",
    "run_id",
    "agent_name",
    "agent_version",
)
_JSON_FRAME_COLUMNS = ("inputs", "outputs", "tags", "metadata")

_TRACE_SELECT = """
SELECT t.trace_id, t.name, t.status,
       make_timestamp(t.start_time_ns // 1000) AS start_time,
       make_timestamp(t.end_time_ns // 1000) AS end_time,
       t.duration_ms, t.inputs, t.outputs, t.tags, t.metadata, t.session_id, t.user_id,
       t.span_count, t.input_tokens, t.output_tokens, t.total_tokens, t.experiment, t.run_id,
       t.agent_name, t.agent_version
FROM traces t
"""


def search_frame(
    con: duckdb.DuckDBPyConnection,
    filter_string: str | None,
    experiments: Sequence[str] | None,
    order_by: list[str] | str | None,
    max_results: int,
) -> pd.DataFrame:
    where, params = compile_filter(filter_string)
    if experiments:
        where = f"({where}) AND t.experiment IN ({', '.join('?' * len(experiments))})"
        params = [*params, *experiments]
    sql = f"{_TRACE_SELECT} WHERE {where} ORDER BY {compile_order_by(order_by)} LIMIT ?"
    frame = con.execute(sql, [*params, max_results]).df()
    for column in _JSON_FRAME_COLUMNS:
        frame[column] = [loads(v) for v in frame[column]]
    for column in ("tags", "metadata"):
        frame[column] = [v if v is not None else {} for v in frame[column]]
    return frame


def count_traces(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT count(*) FROM traces").fetchone()
    return int(row[0]) if row else 0


def _info_from_row(row: tuple[Any, ...]) -> TraceInfo:
    (
        trace_id,
        name,
        status,
        start_ns,
        end_ns,
        duration_ms,
        experiment,
        run_id,
        inputs,
        outputs,
        session_id,
        user_id,
        tags,
        metadata,
        span_count,
        in_tok,
        out_tok,
        total_tok,
    ) = row
    return TraceInfo(
        trace_id=trace_id,
        name=name,
        status=status,
        start_time_ns=start_ns,
        end_time_ns=end_ns,
        duration_ms=duration_ms,
        experiment=experiment,
        run_id=run_id,
        inputs=loads(inputs),
        outputs=loads(outputs),
        session_id=session_id,
        user_id=user_id,
        tags=loads(tags) or {},
        metadata=loads(metadata) or {},
        span_count=span_count,
        input_tokens=in_tok,
        output_tokens=out_tok,
        total_tokens=total_tok,
    )


def load_trace(con: duckdb.DuckDBPyConnection, trace_id: str) -> Trace:
    row = con.execute(
        "SELECT trace_id, name, status, start_time_ns, end_time_ns, duration_ms, experiment, run_id, "
        "inputs, outputs, session_id, user_id, tags, metadata, span_count, input_tokens, output_tokens, "
        "total_tokens FROM traces WHERE trace_id = ?",
        [trace_id],
    ).fetchone()
    if row is None:
        raise TraceNotFoundError(f"no trace with id {trace_id!r} in the store; list ids with `agenttrace traces list`")
    spans = [
        SpanRecord(
            trace_id=r[0],
            span_id=r[1],
            parent_span_id=r[2],
            name=r[3],
            span_type=r[4],
            status=r[5],
            status_message=r[6],
            start_time_ns=r[7],
            end_time_ns=r[8],
            inputs=loads(r[9]),
            outputs=loads(r[10]),
            attributes=loads(r[11]) or {},
            events=loads(r[12]) or [],
            model=r[13],
            input_tokens=r[14],
            output_tokens=r[15],
        )
        for r in con.execute(
            "SELECT trace_id, span_id, parent_span_id, name, span_type, status, status_message, "
            "start_time_ns, end_time_ns, inputs, outputs, attributes, events, model, input_tokens, "
            "output_tokens FROM spans WHERE trace_id = ? ORDER BY start_time_ns, span_id",
            [trace_id],
        ).fetchall()
    ]
    return Trace(info=_info_from_row(row), spans=spans, assessments=load_assessments(con, trace_id))


def trace_exists(con: duckdb.DuckDBPyConnection, trace_id: str) -> bool:
    return con.execute("SELECT 1 FROM traces WHERE trace_id = ?", [trace_id]).fetchone() is not None


def insert_assessments(con: duckdb.DuckDBPyConnection, assessments: Sequence[Assessment]) -> None:
    """Append assessments in one statement (Arrow), whether one human note or a whole eval run."""
    append_rows(
        con,
        "assessments",
        {
            "assessment_id": [a.assessment_id for a in assessments],
            "trace_id": [a.trace_id for a in assessments],
            "span_id": [a.span_id for a in assessments],
            "name": [a.name for a in assessments],
            "kind": [a.kind for a in assessments],
            "value": [dumps(a.value) for a in assessments],
            "rationale": [a.rationale for a in assessments],
            "source_type": [a.source_type for a in assessments],
            "source_id": [a.source_id for a in assessments],
            "metadata": [dumps(a.metadata) for a in assessments],
            "error": [a.error for a in assessments],
            "eval_run_id": [a.eval_run_id for a in assessments],
            "created_ns": [a.created_ns for a in assessments],
        },
    )


def load_assessments(con: duckdb.DuckDBPyConnection, trace_id: str) -> list[Assessment]:
    rows = con.execute(
        "SELECT assessment_id, trace_id, name, kind, value, rationale, source_type, source_id, span_id, "
        "metadata, error, eval_run_id, created_ns FROM assessments WHERE trace_id = ? ORDER BY created_ns",
        [trace_id],
    ).fetchall()
    return [
        Assessment(
            assessment_id=r[0],
            trace_id=r[1],
            name=r[2],
            kind=r[3],
            value=loads(r[4]),
            rationale=r[5],
            source_type=r[6],
            source_id=r[7],
            span_id=r[8],
            metadata=loads(r[9]) or {},
            error=r[10],
            eval_run_id=r[11],
            created_ns=r[12],
        )
        for r in rows
    ]


def delete_before(con: duckdb.DuckDBPyConnection, cutoff_ns: int) -> int:
    """Delete traces that started before the cutoff, with their spans and assessments."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("CREATE TEMP TABLE doomed AS SELECT trace_id FROM traces WHERE start_time_ns < ?", [cutoff_ns])
        row = con.execute("SELECT count(*) FROM doomed").fetchone()
        for table in ("spans", "assessments", "traces"):
            con.execute(f"DELETE FROM {table} WHERE trace_id IN (SELECT trace_id FROM doomed)")
        con.execute("DROP TABLE doomed")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(row[0]) if row else 0


def export_traces(con: duckdb.DuckDBPyConnection, path: str, fmt: str, filter_string: str | None) -> int:
    """Write matching traces, each with its spans nested, as JSON lines or Parquet."""
    where, params = compile_filter(filter_string)
    query = f"""
        SELECT t.*, (SELECT list(s ORDER BY s.start_time_ns) FROM spans s WHERE s.trace_id = t.trace_id) AS spans
        FROM traces t WHERE {where} ORDER BY t.start_time_ns
    """
    options = "(FORMAT json)" if fmt == "jsonl" else "(FORMAT parquet)"
    con.execute(f"CREATE TEMP TABLE export_rows AS {query}", params)
    try:
        # COPY takes no parameter for the file name; quote it as a SQL string literal.
        target = "'" + path.replace("'", "''") + "'"
        con.execute(f"COPY export_rows TO {target} {options}")
        row = con.execute("SELECT count(*) FROM export_rows").fetchone()
    finally:
        con.execute("DROP TABLE export_rows")
    return int(row[0]) if row else 0


def stats(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    counts = {
        "traces": con.execute("SELECT count(*) FROM traces").fetchone()[0],  # type: ignore[index]
        "spans": con.execute("SELECT count(*) FROM spans").fetchone()[0],  # type: ignore[index]
        "assessments": con.execute("SELECT count(*) FROM assessments").fetchone()[0],  # type: ignore[index]
    }
    counts.update(dict(con.execute("SELECT name, value FROM tracing_stats").fetchall()))
    return counts
