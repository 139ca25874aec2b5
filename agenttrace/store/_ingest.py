"""Which spans of an incoming batch the store already holds, so a re-sent span is stored once.

OTLP senders retry a request whose answer they did not see, so the server may receive a batch
it already stored. The check is one semi-join of the batch's (trace_id, span_id) pairs against
`spans`, run on the writer's held connection just before the append. A stored copy of a span has
the span's own start time, so only stored rows within the batch's start-time range can match:
that bound is exact, and it lets DuckDB skip every row group outside the range by its min/max.
Spans arrive roughly in time order, so the check reads the last row group or two however large
the store grows, instead of every span ever stored.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["existing_span_keys", "without_known"]

_EXISTING = """
SELECT s.trace_id, s.span_id
FROM spans s SEMI JOIN incoming_keys k ON s.trace_id = k.trace_id AND s.span_id = k.span_id
WHERE s.start_time_ns BETWEEN ? AND ?
"""


def existing_span_keys(con: duckdb.DuckDBPyConnection, batch: pa.Table) -> set[tuple[str, str]]:
    if not batch.num_rows:
        return set()
    bounds = pc.min_max(batch.column("start_time_ns"))
    con.register("incoming_keys", batch.select(["trace_id", "span_id"]))
    try:
        return set(con.execute(_EXISTING, [bounds["min"].as_py(), bounds["max"].as_py()]).fetchall())
    finally:
        con.unregister("incoming_keys")


def without_known(batch: pa.Table, known: set[tuple[str, str]]) -> pa.Table:
    """The batch less the spans in `known` and less repeats inside the batch itself."""
    keys = pc.binary_join_element_wise(batch.column("trace_id"), batch.column("span_id"), ":")
    if not known and pc.count_distinct(keys).as_py() == batch.num_rows:
        return batch  # the common case, decided without a Python loop over the rows
    seen = set(known)
    keep = []
    for key in zip(batch.column("trace_id").to_pylist(), batch.column("span_id").to_pylist(), strict=True):
        keep.append(key not in seen)
        seen.add(key)
    return batch.filter(pa.array(keep, pa.bool_()))
