"""Appending a batch of spans: one transaction, Arrow in, SQL does the rest.

Everything here is derived from `agenttrace.schema`: the batch's Arrow schema, the insert into
`spans` and the upsert of `traces`, all by column name. The `traces` row of every trace in the
batch is upserted from an aggregate over the batch alone (never a scan of stored spans), so a
trace's summary grows as its spans arrive and takes its root fields when its root arrives. Each
trace column's `Fold` has two SQL forms here: how it aggregates a batch, and how the aggregate
meets the stored row.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from agenttrace.schema import SPAN_COLUMNS, TRACE_COLUMNS, Fold, Kind, TraceColumn
from agenttrace.store._transaction import transaction

__all__ = ["ARROW_TYPES", "BATCH_SCHEMA", "DUCKDB_TYPES", "add_counter", "append_batch", "to_arrow"]

ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.TEXT: pa.string(),
    Kind.JSON: pa.string(),
    Kind.INT64: pa.int64(),
    Kind.INT16: pa.int16(),
    Kind.FLOAT64: pa.float64(),
}
DUCKDB_TYPES: dict[Kind, str] = {
    Kind.TEXT: "VARCHAR",
    Kind.JSON: "JSON",
    Kind.INT64: "BIGINT",
    Kind.INT16: "SMALLINT",
    Kind.FLOAT64: "DOUBLE",
}

BATCH_SCHEMA = pa.schema([pa.field(c.name, ARROW_TYPES[c.kind]) for c in SPAN_COLUMNS])
_BATCH_STRUCT = pa.struct(list(BATCH_SCHEMA))
_STORED = ", ".join(c.name for c in SPAN_COLUMNS if c.stored)
# The true root over a local one, then the earliest: one HUGEINT per row (a list key costs twice as
# much in the aggregate); nanosecond times stay below 10^19, so the rank always dominates.
_ROOT_FIRST = "(root_rank::HUGEINT * 10000000000000000000 - start_time_ns)"
# Whether the batch's root outranks the stored one: the same order, across batches.
_NEW_ROOT_WINS = (
    "excluded.root_rank > 0 AND (excluded.root_rank > traces.root_rank OR (excluded.root_rank = traces.root_rank "
    "AND excluded.root_start_ns < traces.root_start_ns))"
)


def _aggregate(column: TraceColumn) -> str:
    """The column's value over the batch's spans of one trace."""
    c = column.inputs[0]
    fold = column.fold
    if fold is Fold.KEY:
        return c
    if fold is Fold.ROOT:
        # arg_max_null: the root's own value even when it is NULL (max_by would take another span's)
        value = f"arg_max_null({c}, {_ROOT_FIRST}) FILTER (WHERE root_rank > 0)"
        return value if column.default is None else f"coalesce({value}, '{column.default}')"
    if fold is Fold.FIRST:  # arg_min and arg_max skip rows whose value is NULL
        return f"arg_min({c}, start_time_ns)"
    if fold is Fold.LATEST:
        return f"arg_max({c}, end_time_ns)"
    if fold is Fold.MIN or fold is Fold.MAX:
        return f"{fold.value}({c})"
    if fold is Fold.SUM:
        present = " + ".join(f"count({s})" for s in column.inputs)
        total = " + ".join(f"coalesce({s}, 0)" for s in column.inputs)
        return f"CASE WHEN {present} = 0 THEN NULL ELSE sum({total}) END"
    if fold is Fold.COUNT:
        return "count(*)"
    if fold is Fold.MERGE:
        # In end order: a list of (end, value) sorted per trace costs a third of list(... ORDER BY).
        ordered = f"list_sort(list({{'end': end_time_ns, 'value': {c}::JSON}}) FILTER (WHERE {c} IS NOT NULL))"
        values = f"list_transform({ordered}, lambda x: x.value)"
        return f"list_reduce({values}, lambda a, b: json_merge_patch(a, b), NULL::JSON)"
    if fold is Fold.DURATION:
        start, end = column.inputs
        return f"(max({end}) - min({start})) / 1e6"
    return f"NULL::{DUCKDB_TYPES[column.kind]}"  # Fold.UNSET


def _update(column: TraceColumn) -> str | None:
    """The stored value after the batch's aggregate (`excluded`) meets the stored row (`traces`)."""
    c, fold = column.name, column.fold
    old, new = f"traces.{c}", f"excluded.{c}"
    if fold is Fold.KEY or fold is Fold.UNSET:
        return None
    if fold is Fold.ROOT:
        return f"CASE WHEN {_NEW_ROOT_WINS} THEN {new} ELSE {old} END"
    if fold is Fold.FIRST:
        return f"coalesce({old}, {new})"
    if fold is Fold.LATEST:
        return f"coalesce({new}, {old})"
    if fold is Fold.MIN:
        return f"least({old}, {new})"  # least and greatest skip NULLs
    if fold is Fold.MAX:
        return f"greatest({old}, {new})"
    if fold is Fold.SUM:
        return f"CASE WHEN {new} IS NULL THEN {old} ELSE coalesce({old}, 0) + {new} END"
    if fold is Fold.COUNT:
        return f"{old} + {new}"
    if fold is Fold.MERGE:
        return (
            f"CASE WHEN {new} IS NULL THEN {old} WHEN {old} IS NULL THEN {new} ELSE json_merge_patch({old}, {new}) END"
        )
    start, end = column.inputs  # Fold.DURATION
    return f"(greatest(traces.{end}, excluded.{end}) - least(traces.{start}, excluded.{start})) / 1e6"


# Folds whose aggregate is NULL when none of the batch's spans has a value, and whose update then
# keeps the stored value: such a column is left out of the batch's statement altogether (a new
# trace gets NULL, a stored one keeps its value). Most spans carry no tags, session or agent, so
# most batches skip most of the aggregate work (a trace of one span per call costs a group each),
# and DuckDB plans a shorter statement (planning is most of a small batch's cost: 5.5 -> 4.6 ms).
_SKIPPABLE = {Fold.FIRST, Fold.LATEST, Fold.MERGE, Fold.SUM}
OPTIONAL_SOURCES = tuple(sorted({s for c in TRACE_COLUMNS if c.fold in _SKIPPABLE for s in c.inputs}))


@functools.lru_cache(maxsize=64)
def upsert_traces_sql(absent: frozenset[str]) -> str:
    """The trace upsert for a batch in which the columns `absent` are NULL in every row."""
    kept = [c for c in TRACE_COLUMNS if not (c.fold in _SKIPPABLE and absent.issuperset(c.inputs))]
    names = ", ".join(c.name for c in kept)
    selects = ",\n    ".join(f"{_aggregate(c)} AS {c.name}" for c in kept)
    sets = ",\n    ".join(f"{c.name} = {sql}" for c in kept if (sql := _update(c)) is not None)
    return (
        f"INSERT INTO traces ({names})\nSELECT {selects}\nFROM batch GROUP BY trace_id\n"
        f"ON CONFLICT (trace_id) DO UPDATE SET\n    {sets}"
    )


def absent_columns(batch: pa.Table) -> frozenset[str]:
    """The optional fold sources that are NULL in every row of the batch (Arrow counts nulls as it builds)."""
    rows = batch.num_rows
    return frozenset(name for name in OPTIONAL_SOURCES if batch.column(name).null_count == rows)


_INSERT_SPANS = f"INSERT INTO spans ({_STORED}) SELECT {_STORED} FROM batch"
_UPSERT_EXPERIMENTS = """
INSERT INTO experiments (name, created_ns)
SELECT DISTINCT experiment, ? FROM batch WHERE experiment IS NOT NULL
ON CONFLICT (name) DO NOTHING
"""


def to_arrow(batch: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]) -> pa.Table:
    """The batch table from rows (dicts by column name) or from columns (lists by column name).

    A column a row or the columns leave out is null. The conversion of rows runs in Arrow's C++
    code, by field name.
    """
    if isinstance(batch, Mapping):
        n = len(batch["trace_id"])
        arrays = [
            pa.array(batch[f.name], type=f.type) if f.name in batch else pa.nulls(n, type=f.type) for f in BATCH_SCHEMA
        ]
        return pa.Table.from_arrays(arrays, schema=BATCH_SCHEMA)
    if not batch:
        return BATCH_SCHEMA.empty_table()
    return pa.Table.from_struct_array(pa.array(batch, type=_BATCH_STRUCT))


def append_batch(con: duckdb.DuckDBPyConnection, batch: pa.Table, now_ns: int, new_experiments: bool) -> None:
    """Append spans and upsert their traces in one transaction.

    `new_experiments` is False when the caller knows every experiment in the batch is recorded
    already, which saves a statement per batch on the hot path.
    """
    con.register("batch", batch)
    try:
        with transaction(con):
            con.execute(_INSERT_SPANS)
            con.execute(upsert_traces_sql(absent_columns(batch)))
            if new_experiments:
                con.execute(_UPSERT_EXPERIMENTS, [now_ns])
    finally:
        con.unregister("batch")


def add_counter(con: duckdb.DuckDBPyConnection, name: str, delta: int) -> None:
    con.execute(
        "INSERT INTO tracing_stats VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = tracing_stats.value + ?",
        [name, delta, delta],
    )
