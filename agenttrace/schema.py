"""The span row and the trace summary, declared once.

Every path a span takes derives from these two tuples, by column name: the converters (our own
spans and OTLP ingest) fill a row per span as a dict keyed by `SPAN_COLUMNS` names; the store
builds its Arrow batch schema, its insert and its trace upsert from them and checks its tables
against them when it opens; readers build `SpanRecord` and `TraceInfo` by field name; the
in-memory collector folds spans into a trace with the same `Fold` rules the store's SQL applies.

Adding a column is one line here plus a migration in `agenttrace/store/_schema.py`. A span
column with an `attribute` is lifted from that span attribute as text by the conventions mapper,
so such a column needs nothing else; a column whose value needs reading several conventions gets
its rule in `agenttrace/otel/conventions.py`.

A span column with `stored=False` rides on the batch only to fill its trace's row (run, session,
tags...: facts of the trace that spans carry), so the spans table does not repeat it per span.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from agenttrace.jsontext import dumps, loads
from agenttrace.records import SpanRecord, TraceInfo

__all__ = [
    "SPAN_COLUMNS",
    "SPAN_NAMES",
    "TRACE_COLUMNS",
    "Fold",
    "Kind",
    "SpanColumn",
    "TraceColumn",
    "fold_trace",
    "span_record",
    "trace_info",
]


class Kind(StrEnum):
    """A column's type; the store maps each to an Arrow and a DuckDB type."""

    TEXT = "text"
    JSON = "json"  # JSON text in the batch, DuckDB's JSON type in the store, decoded in records
    INT64 = "int64"
    INT16 = "int16"
    FLOAT64 = "float64"


class Fold(StrEnum):
    """How a trace column is made from the spans of the trace, whichever batch brought them."""

    KEY = "key"  # the trace id
    ROOT = "root"  # the root span's value, NULL included: the true root over a local one, then the
    #                earliest-starting; `default` until a root arrives
    FIRST = "first"  # in a batch the non-null value of the earliest-starting span; across batches the stored one
    LATEST = "latest"  # in a batch the non-null value of the span that ended last; across batches the newer one
    MIN = "min"
    MAX = "max"
    SUM = "sum"  # of every source column; null while no span has any
    COUNT = "count"  # spans
    MERGE = "merge"  # JSON objects merged as RFC 7396 merge patches (nested objects merge, null deletes a
    #                  key), in end order within a batch and arrival order across batches
    DURATION = "duration"  # milliseconds between the folded start and end (its two sources, trace columns)
    UNSET = "unset"  # declared for a producer to come; always null for now


@dataclass(frozen=True, slots=True)
class SpanColumn:
    """One value per span, as every converter fills it."""

    name: str
    kind: Kind
    nullable: bool = True
    stored: bool = True  # a column of the `spans` table; False: only folded into the trace row
    attribute: str | None = None  # our span attribute it is lifted from as text, if that is all it takes


@dataclass(frozen=True, slots=True)
class TraceColumn:
    """One value per trace, folded from span columns."""

    name: str
    kind: Kind
    fold: Fold
    sources: tuple[str, ...] = ()  # span columns folded; empty means the column of the same name
    nullable: bool = True
    default: str | None = None  # a text constant for ROOT before the root arrives
    public: bool = True  # in `search_traces` and `TraceInfo`

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.sources or (self.name,)


T, J, I64, F64 = Kind.TEXT, Kind.JSON, Kind.INT64, Kind.FLOAT64

SPAN_COLUMNS: tuple[SpanColumn, ...] = (
    SpanColumn("trace_id", T, nullable=False),
    SpanColumn("span_id", T, nullable=False),
    SpanColumn("parent_span_id", T),
    SpanColumn("name", T, nullable=False),
    SpanColumn("span_type", T, nullable=False),
    SpanColumn("status", T, nullable=False),
    SpanColumn("status_message", T),
    SpanColumn("start_time_ns", I64, nullable=False),
    SpanColumn("end_time_ns", I64, nullable=False),
    SpanColumn("duration_ms", F64, nullable=False),
    SpanColumn("inputs", J),
    SpanColumn("outputs", J),
    SpanColumn("attributes", J),
    SpanColumn("events", J),
    SpanColumn("model", T),
    SpanColumn("provider", T),
    SpanColumn("input_tokens", I64),
    SpanColumn("output_tokens", I64),
    SpanColumn("resource", J),
    SpanColumn("scope", T),
    # Facts of the trace, carried by its spans (mostly the local root).
    SpanColumn("root_rank", Kind.INT16, nullable=False, stored=False),  # 2 true root, 1 local root, 0 other
    SpanColumn("experiment", T, stored=False, attribute="agenttrace.experiment"),
    SpanColumn("run_id", T, stored=False, attribute="agenttrace.run_id"),
    SpanColumn("session_id", T, stored=False),
    SpanColumn("user_id", T, stored=False),
    SpanColumn("tags", J, stored=False),
    SpanColumn("metadata", J, stored=False),
    SpanColumn("agent_name", T, stored=False),
    SpanColumn("agent_version", T, stored=False, attribute="agenttrace.agent.version"),
    SpanColumn("agent_version_id", T, stored=False, attribute="agenttrace.agent.version_id"),
)

# In the order `search_traces` returns them (documented in the README).
TRACE_COLUMNS: tuple[TraceColumn, ...] = (
    TraceColumn("trace_id", T, Fold.KEY, nullable=False),
    TraceColumn("name", T, Fold.ROOT),
    TraceColumn("status", T, Fold.ROOT, nullable=False, default="IN_PROGRESS"),
    TraceColumn("start_time_ns", I64, Fold.MIN),
    TraceColumn("end_time_ns", I64, Fold.MAX),
    TraceColumn("duration_ms", F64, Fold.DURATION, sources=("start_time_ns", "end_time_ns")),
    TraceColumn("inputs", J, Fold.ROOT),
    TraceColumn("outputs", J, Fold.ROOT),
    TraceColumn("tags", J, Fold.MERGE),
    TraceColumn("metadata", J, Fold.MERGE),
    TraceColumn("session_id", T, Fold.LATEST),
    TraceColumn("user_id", T, Fold.LATEST),
    TraceColumn("span_count", I64, Fold.COUNT, nullable=False),
    TraceColumn("input_tokens", I64, Fold.SUM),
    TraceColumn("output_tokens", I64, Fold.SUM),
    TraceColumn("total_tokens", I64, Fold.SUM, sources=("input_tokens", "output_tokens")),
    TraceColumn("experiment", T, Fold.FIRST),
    TraceColumn("run_id", T, Fold.FIRST),
    TraceColumn("agent_name", T, Fold.LATEST),
    TraceColumn("agent_version", T, Fold.LATEST),
    TraceColumn("agent_version_id", T, Fold.LATEST),
    TraceColumn("cost", F64, Fold.UNSET, public=False),
    TraceColumn("root_rank", Kind.INT16, Fold.MAX, nullable=False, public=False),
    # The start of the span the ROOT columns came from: a later batch's root replaces it only if it
    # outranks it, so the trace's root fields do not depend on how its spans were batched.
    TraceColumn("root_start_ns", I64, Fold.ROOT, sources=("start_time_ns",), public=False),
)

SPAN_NAMES: tuple[str, ...] = tuple(c.name for c in SPAN_COLUMNS)
_SPANS = {c.name: c for c in SPAN_COLUMNS}
_TRACES = {c.name: c for c in TRACE_COLUMNS}


# --- records by field name --------------------------------------------------------------------

_SPAN_FIELDS = tuple(f.name for f in fields(SpanRecord))
_TRACE_FIELDS = tuple(f.name for f in fields(TraceInfo))
_JSON_DEFAULTS: dict[str, Any] = {"attributes": {}, "events": [], "tags": {}, "metadata": {}, "resource": {}}


def _decode(kind: Kind, name: str, value: Any) -> Any:
    if kind is not Kind.JSON:
        return value
    decoded = loads(value)
    if decoded is None and name in _JSON_DEFAULTS:
        return type(_JSON_DEFAULTS[name])()
    return decoded


def span_record(row: Mapping[str, Any]) -> SpanRecord:
    """A SpanRecord from a row keyed by column name (JSON columns as text)."""
    return SpanRecord(**{n: _decode(_SPANS[n].kind, n, row.get(n)) for n in _SPAN_FIELDS})


def trace_info(row: Mapping[str, Any]) -> TraceInfo:
    """A TraceInfo from a trace row keyed by column name (JSON columns as text)."""
    return TraceInfo(**{n: _decode(_TRACES[n].kind, n, row.get(n)) for n in _TRACE_FIELDS})


# --- folding spans into a trace, in Python ------------------------------------------------------
# The store does the same in SQL (agenttrace/store/_writer.py); a test folds the same spans both
# ways and compares the rows.


def fold_trace(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The trace row of one trace's span rows (all of them, in any order)."""
    ordered = sorted(rows, key=lambda r: r["end_time_ns"])
    ranked = [r for r in rows if r["root_rank"] > 0]
    root = max(ranked, key=lambda r: (r["root_rank"], -r["start_time_ns"])) if ranked else None
    out: dict[str, Any] = {}
    for column in TRACE_COLUMNS:
        out[column.name] = _fold(column, rows, ordered, root, out)
    return out


def _present(rows: Iterable[Mapping[str, Any]], name: str) -> list[Any]:
    return [r[name] for r in rows if r.get(name) is not None]


def _fold(
    column: TraceColumn,
    rows: Sequence[Mapping[str, Any]],
    ordered: Sequence[Mapping[str, Any]],
    root: Mapping[str, Any] | None,
    done: Mapping[str, Any],
) -> Any:
    name = column.inputs[0]
    fold = column.fold
    if fold is Fold.KEY:
        return rows[0][name]
    if fold is Fold.ROOT:
        return column.default if root is None else root.get(name)
    if fold is Fold.FIRST:
        values = _present(sorted(rows, key=lambda r: r["start_time_ns"]), name)
        return values[0] if values else None
    if fold is Fold.LATEST:
        values = _present(ordered, name)
        return values[-1] if values else None
    if fold is Fold.MIN:
        return min(_present(rows, name), default=None)
    if fold is Fold.MAX:
        return max(_present(rows, name), default=None)
    if fold is Fold.SUM:
        values = [v for source in column.inputs for v in _present(rows, source)]
        return sum(values) if values else None
    if fold is Fold.COUNT:
        return len(rows)
    if fold is Fold.MERGE:
        merged: Any = None
        for text in _present(ordered, name):
            merged = _merge_patch(merged, loads(text))
        return None if merged is None else dumps(merged)
    if fold is Fold.DURATION:
        start, end = (done.get(source) for source in column.inputs)
        return None if start is None or end is None else (end - start) / 1e6
    return None  # Fold.UNSET


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396, as DuckDB's json_merge_patch applies it in the store."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out
