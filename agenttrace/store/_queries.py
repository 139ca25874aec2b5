"""Reading the store: trace search as pandas, whole traces as records, exports and deletion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING

import duckdb

from agenttrace.errors import TraceNotFoundError
from agenttrace.records import Assessment, SpanRecord, Trace, TraceInfo
from agenttrace.schema import TRACE_COLUMNS, Fold, Kind, TraceColumn, span_record, trace_info
from agenttrace.store._codec import append_rows, dumps, loads
from agenttrace.store._filters import compile_filter, compile_order_by
from agenttrace.store._transaction import transaction

if TYPE_CHECKING:  # pandas loads only when a DataFrame is asked for
    import pandas as pd


def _frame_column(column: TraceColumn) -> tuple[str, str]:
    """(name in search results, SQL): times in nanoseconds are shown as timestamps."""
    if column.name.endswith("_time_ns"):
        return column.name[: -len("_ns")], f"make_timestamp(t.{column.name} // 1000)"
    return column.name, f"t.{column.name}"


_FRAME = [_frame_column(c) for c in TRACE_COLUMNS if c.public]
# Columns of search_traces, in the order of the declaration; documented in the README.
TRACE_FRAME_COLUMNS = tuple(name for name, _ in _FRAME)
_JSON_FRAME_COLUMNS = tuple(c.name for c in TRACE_COLUMNS if c.public and c.kind is Kind.JSON)
_TRACE_SELECT = "SELECT " + ", ".join(f"{sql} AS {name}" for name, sql in _FRAME) + " FROM traces t"
# Objects merged from spans read as {} when no span had any.
_OBJECT_FRAME_COLUMNS = tuple(c.name for c in TRACE_COLUMNS if c.public and c.fold is Fold.MERGE)
_INFO_NAMES = [f.name for f in fields(TraceInfo)]
_INFO_SELECT = "SELECT " + ", ".join(_INFO_NAMES) + " FROM traces WHERE trace_id = ?"
_SPAN_FIELDS = [f.name for f in fields(SpanRecord)]
_SPANS_SELECT = "SELECT " + ", ".join(_SPAN_FIELDS) + " FROM spans WHERE trace_id = ? ORDER BY start_time_ns, span_id"


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
    for column in _OBJECT_FRAME_COLUMNS:
        frame[column] = [v if v is not None else {} for v in frame[column]]
    return frame


def count_traces(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT count(*) FROM traces").fetchone()
    return int(row[0]) if row else 0


def load_trace(con: duckdb.DuckDBPyConnection, trace_id: str) -> Trace:
    row = con.execute(_INFO_SELECT, [trace_id]).fetchone()
    if row is None:
        raise TraceNotFoundError(f"no trace with id {trace_id!r} in the store; list ids with `agenttrace traces list`")
    info = trace_info(dict(zip(_INFO_NAMES, row, strict=True)))
    rows = con.execute(_SPANS_SELECT, [trace_id]).fetchall()
    spans = [span_record(dict(zip(_SPAN_FIELDS, r, strict=True))) for r in rows]
    return Trace(info=info, spans=spans, assessments=load_assessments(con, trace_id))


def trace_exists(con: duckdb.DuckDBPyConnection, trace_id: str) -> bool:
    return con.execute("SELECT 1 FROM traces WHERE trace_id = ?", [trace_id]).fetchone() is not None


# Assessments go in and out by the record's field names; these two are JSON in the table.
_ASSESSMENT_FIELDS = [f.name for f in fields(Assessment)]
_ASSESSMENT_JSON = frozenset({"value", "metadata"})
_ASSESSMENT_SELECT = f"SELECT {', '.join(_ASSESSMENT_FIELDS)} FROM assessments WHERE trace_id = ? ORDER BY created_ns"


def insert_assessments(con: duckdb.DuckDBPyConnection, assessments: Sequence[Assessment]) -> None:
    """Append assessments in one statement (Arrow), whether one human note or a whole eval run."""
    append_rows(
        con,
        "assessments",
        {
            name: [dumps(getattr(a, name)) if name in _ASSESSMENT_JSON else getattr(a, name) for a in assessments]
            for name in _ASSESSMENT_FIELDS
        },
    )


def load_assessments(con: duckdb.DuckDBPyConnection, trace_id: str) -> list[Assessment]:
    assessments = []
    for row in con.execute(_ASSESSMENT_SELECT, [trace_id]).fetchall():
        values = dict(zip(_ASSESSMENT_FIELDS, row, strict=True))
        values["value"] = loads(values["value"])
        values["metadata"] = loads(values["metadata"]) or {}
        assessments.append(Assessment(**values))
    return assessments


def delete_before(con: duckdb.DuckDBPyConnection, cutoff_ns: int) -> int:
    """Delete traces that started before the cutoff, with their spans and assessments."""
    with transaction(con):
        con.execute("CREATE TEMP TABLE doomed AS SELECT trace_id FROM traces WHERE start_time_ns < ?", [cutoff_ns])
        row = con.execute("SELECT count(*) FROM doomed").fetchone()
        for table in ("spans", "assessments", "traces"):
            con.execute(f"DELETE FROM {table} WHERE trace_id IN (SELECT trace_id FROM doomed)")
        con.execute("DROP TABLE doomed")
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
