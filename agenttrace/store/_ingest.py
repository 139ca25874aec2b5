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

from collections.abc import Sequence

import duckdb
import pyarrow as pa

__all__ = ["existing_span_keys", "without_known"]

_EXISTING = """
SELECT s.trace_id, s.span_id
FROM spans s SEMI JOIN incoming_keys k ON s.trace_id = k.trace_id AND s.span_id = k.span_id
WHERE s.start_time_ns BETWEEN ? AND ?
"""


def existing_span_keys(
    con: duckdb.DuckDBPyConnection, trace_ids: Sequence[str], span_ids: Sequence[str], start_times: Sequence[int]
) -> set[tuple[str, str]]:
    if not trace_ids:
        return set()
    keys = pa.table({"trace_id": pa.array(trace_ids, pa.string()), "span_id": pa.array(span_ids, pa.string())})
    con.register("incoming_keys", keys)
    try:
        return {(t, s) for t, s in con.execute(_EXISTING, [min(start_times), max(start_times)]).fetchall()}
    finally:
        con.unregister("incoming_keys")


def without_known(columns: dict[str, list], known: set[tuple[str, str]]) -> dict[str, list]:
    """The batch less the spans in `known` and less repeats inside the batch itself."""
    seen = set(known)
    keep = []
    for i, key in enumerate(zip(columns["trace_id"], columns["span_id"], strict=True)):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    if len(keep) == len(columns["trace_id"]):
        return columns
    return {name: [values[i] for i in keep] for name, values in columns.items()}
