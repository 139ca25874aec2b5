"""Appending a batch of spans: one transaction, Arrow in, SQL does the rest.

The batch arrives as columns. Span rows are appended as they are; the `traces` row of every trace
in the batch is upserted from an aggregate over the batch alone (never a scan of stored spans),
so a trace's summary grows as its spans arrive and takes its root fields when its root arrives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa

SPAN_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("trace_id", pa.string()),
    ("span_id", pa.string()),
    ("parent_span_id", pa.string()),
    ("name", pa.string()),
    ("span_type", pa.string()),
    ("status", pa.string()),
    ("status_message", pa.string()),
    ("start_time_ns", pa.int64()),
    ("end_time_ns", pa.int64()),
    ("duration_ms", pa.float64()),
    ("inputs", pa.string()),
    ("outputs", pa.string()),
    ("attributes", pa.string()),
    ("events", pa.string()),
    ("model", pa.string()),
    ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("resource", pa.string()),
    ("scope", pa.string()),
)

# Trace-level facts that ride on spans (mostly the local root) and fill the `traces` row.
TRACE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("root_rank", pa.int16()),
    ("experiment", pa.string()),
    ("run_id", pa.string()),
    ("session_id", pa.string()),
    ("user_id", pa.string()),
    ("tags", pa.string()),
    ("metadata", pa.string()),
    ("agent_name", pa.string()),
    ("agent_version", pa.string()),
)

BATCH_SCHEMA = pa.schema([pa.field(n, t) for n, t in SPAN_COLUMNS + TRACE_COLUMNS])
_SPAN_NAMES = ", ".join(n for n, _ in SPAN_COLUMNS)

_ROOT = "FILTER (WHERE root_rank > 0)"
_AGGREGATE_BATCH = f"""
SELECT
    trace_id,
    any_value(experiment) AS experiment,
    any_value(run_id) AS run_id,
    max_by(name, root_rank) {_ROOT} AS name,
    coalesce(max_by(status, root_rank) {_ROOT}, 'IN_PROGRESS') AS status,
    min(start_time_ns) AS start_time_ns,
    max(end_time_ns) AS end_time_ns,
    (max(end_time_ns) - min(start_time_ns)) / 1e6 AS duration_ms,
    max_by(inputs, root_rank) {_ROOT} AS inputs,
    max_by(outputs, root_rank) {_ROOT} AS outputs,
    any_value(session_id) AS session_id,
    any_value(user_id) AS user_id,
    any_value(tags) AS tags,
    any_value(metadata) AS metadata,
    any_value(agent_name) AS agent_name,
    any_value(agent_version) AS agent_version,
    count(*) AS span_count,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    CASE WHEN count(input_tokens) + count(output_tokens) = 0 THEN NULL
         ELSE sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) END AS total_tokens,
    NULL::DOUBLE AS cost,
    max(root_rank) AS root_rank
FROM batch
GROUP BY trace_id
"""

_UPSERT_TRACES = f"""
INSERT INTO traces {_AGGREGATE_BATCH}
ON CONFLICT (trace_id) DO UPDATE SET
    experiment = coalesce(traces.experiment, excluded.experiment),
    run_id = coalesce(traces.run_id, excluded.run_id),
    name = CASE WHEN excluded.root_rank >= traces.root_rank AND excluded.root_rank > 0
                THEN excluded.name ELSE traces.name END,
    status = CASE WHEN excluded.root_rank >= traces.root_rank AND excluded.root_rank > 0
                  THEN excluded.status ELSE traces.status END,
    inputs = CASE WHEN excluded.root_rank >= traces.root_rank AND excluded.root_rank > 0
                  THEN excluded.inputs ELSE traces.inputs END,
    outputs = CASE WHEN excluded.root_rank >= traces.root_rank AND excluded.root_rank > 0
                   THEN excluded.outputs ELSE traces.outputs END,
    start_time_ns = least(traces.start_time_ns, excluded.start_time_ns),
    end_time_ns = greatest(traces.end_time_ns, excluded.end_time_ns),
    duration_ms = (greatest(traces.end_time_ns, excluded.end_time_ns)
                   - least(traces.start_time_ns, excluded.start_time_ns)) / 1e6,
    session_id = coalesce(excluded.session_id, traces.session_id),
    user_id = coalesce(excluded.user_id, traces.user_id),
    tags = CASE WHEN excluded.tags IS NULL THEN traces.tags WHEN traces.tags IS NULL THEN excluded.tags
                ELSE json_merge_patch(traces.tags, excluded.tags) END,
    metadata = CASE WHEN excluded.metadata IS NULL THEN traces.metadata
                    WHEN traces.metadata IS NULL THEN excluded.metadata
                    ELSE json_merge_patch(traces.metadata, excluded.metadata) END,
    agent_name = coalesce(excluded.agent_name, traces.agent_name),
    agent_version = coalesce(excluded.agent_version, traces.agent_version),
    span_count = traces.span_count + excluded.span_count,
    input_tokens = CASE WHEN excluded.input_tokens IS NULL THEN traces.input_tokens
                        ELSE coalesce(traces.input_tokens, 0) + excluded.input_tokens END,
    output_tokens = CASE WHEN excluded.output_tokens IS NULL THEN traces.output_tokens
                         ELSE coalesce(traces.output_tokens, 0) + excluded.output_tokens END,
    total_tokens = CASE WHEN excluded.total_tokens IS NULL THEN traces.total_tokens
                        ELSE coalesce(traces.total_tokens, 0) + excluded.total_tokens END,
    root_rank = greatest(traces.root_rank, excluded.root_rank)
"""

_UPSERT_EXPERIMENTS = """
INSERT INTO experiments
SELECT DISTINCT experiment, ? FROM batch WHERE experiment IS NOT NULL
ON CONFLICT (name) DO NOTHING
"""


def to_arrow(columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    """Build the batch table; missing trace-level columns are all NULL."""
    n = len(columns["trace_id"])
    arrays = [
        pa.array(columns[name], type=typ) if name in columns else pa.nulls(n, type=typ)
        for name, typ in SPAN_COLUMNS + TRACE_COLUMNS
    ]
    return pa.Table.from_arrays(arrays, schema=BATCH_SCHEMA)


def append_batch(con: duckdb.DuckDBPyConnection, batch: pa.Table, now_ns: int, new_experiments: bool) -> None:
    """Append spans and upsert their traces in one transaction.

    `new_experiments` is False when the caller knows every experiment in the batch is recorded
    already, which saves a statement per batch on the hot path.
    """
    con.register("batch", batch)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"INSERT INTO spans SELECT {_SPAN_NAMES} FROM batch")
            con.execute(_UPSERT_TRACES)
            if new_experiments:
                con.execute(_UPSERT_EXPERIMENTS, [now_ns])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.unregister("batch")


def add_counter(con: duckdb.DuckDBPyConnection, name: str, delta: int) -> None:
    con.execute(
        "INSERT INTO tracing_stats VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = tracing_stats.value + ?",
        [name, delta, delta],
    )
