"""OpenTelemetry spans to the store's batch columns.

Runs on the batch processor's thread for every span, so it does one pass per span and builds the
column lists directly; resources are serialised once per distinct resource object.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from agenttrace.otel import conventions as cv

_COLUMN_NAMES = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "span_type",
    "status",
    "status_message",
    "start_time_ns",
    "end_time_ns",
    "duration_ms",
    "inputs",
    "outputs",
    "attributes",
    "events",
    "model",
    "input_tokens",
    "output_tokens",
    "resource",
    "scope",
    "root_rank",
    "experiment",
    "run_id",
    "session_id",
    "user_id",
    "tags",
    "metadata",
    "agent_name",
    "agent_version",
)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


_INT64 = 2**63


def _int_or_none(value: Any) -> int | None:
    """A token count as a BIGINT, or None when it is not a whole number DuckDB can hold."""
    try:
        number = None if value is None else int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is not None and -_INT64 <= number < _INT64 else None


def _text(value: Any) -> str | None:
    """Attributes anyone may set (user.id = 42) still fit a VARCHAR column."""
    return value if value is None or isinstance(value, str) else str(value)


def _event(event: Any) -> dict[str, Any]:
    return {"name": event.name, "timestamp_ns": event.timestamp, "attributes": dict(event.attributes or {})}


def spans_to_columns(spans: Sequence[ReadableSpan]) -> dict[str, list[Any]]:
    """Convert finished spans into the column lists `DuckDBStore.append_spans` takes."""
    return rows_to_columns(spans_to_rows(spans))


def rows_to_columns(rows: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Transpose span rows into columns (zip runs in C)."""
    if not rows:
        return {name: [] for name in _COLUMN_NAMES}
    return {name: list(column) for name, column in zip(_COLUMN_NAMES, zip(*rows, strict=True), strict=True)}


# A span with only these attributes (what the decorator makes) takes the short path below.
_PLAIN_KEYS = frozenset({cv.SPAN_TYPE, cv.INPUTS, cv.OUTPUTS})
_NO_TRACE_FIELDS = (None,) * 7  # run_id, session_id, user_id, tags, metadata, agent_name, agent_version


def spans_to_rows(spans: Sequence[ReadableSpan], default_experiment: str | None = None) -> list[tuple[Any, ...]]:
    """One tuple of plain values per span, in the order of the batch columns.

    Tuples of strings and numbers are untracked by Python's cyclic garbage collector, so rows
    waiting to be written cost the traced program nothing at collection time, unlike the span
    objects they replace.
    """
    resources: dict[int, tuple[str, Any]] = {}
    rows = []
    get_type = cv.span_type_of
    first_of = cv.first_of
    error_code = StatusCode.ERROR
    lifted = cv.LIFTED
    plain = _PLAIN_KEYS
    for span in spans:
        ctx = span.context
        attrs = dict(span.attributes) if span.attributes else {}
        get = attrs.get
        parent = span.parent
        start = span.start_time or 0
        end = span.end_time or start
        status = span.status
        if parent is None:
            rank = 2
        elif parent.is_remote or get(cv.LOCAL_ROOT):
            rank = 1
        else:
            rank = 0
        resource = span.resource
        cached = resources.get(id(resource))
        if cached is None:
            res_attrs = dict(resource.attributes) if resource is not None else {}
            # Spans of other instrumentation (capture_global) carry no experiment: they get ours.
            experiment = res_attrs.get(cv.EXPERIMENT) or default_experiment
            cached = resources[id(resource)] = (_dumps(res_attrs), experiment)
        scope = span.instrumentation_scope
        events = span.events  # a property that copies: read it once
        if attrs.keys() <= plain:
            # The common span, as our decorator makes it: type, inputs, outputs and nothing else.
            rows.append(
                (
                    format(ctx.trace_id, "032x"),
                    format(ctx.span_id, "016x"),
                    None if parent is None else format(parent.span_id, "016x"),
                    _text(span.name),
                    get(cv.SPAN_TYPE) or "UNKNOWN",
                    "ERROR" if status.status_code is error_code else "OK",
                    status.description,
                    start,
                    end,
                    (end - start) / 1e6,
                    get(cv.INPUTS),
                    get(cv.OUTPUTS),
                    "{}",
                    _dumps([_event(e) for e in events]) if events else "[]",
                    None,
                    None,
                    None,
                    cached[0],
                    scope.name if scope is not None else None,
                    rank,
                    cached[1] if rank else None,
                    *_NO_TRACE_FIELDS,
                )
            )
            continue
        rest = {k: v for k, v in attrs.items() if k not in lifted} if attrs else attrs
        rows.append(
            (
                format(ctx.trace_id, "032x"),
                format(ctx.span_id, "016x"),
                None if parent is None else format(parent.span_id, "016x"),
                _text(span.name),
                get_type(attrs),
                "ERROR" if status.status_code is error_code else "OK",
                status.description,
                start,
                end,
                (end - start) / 1e6,
                _text(get(cv.INPUTS)),
                _text(get(cv.OUTPUTS)),
                _dumps(rest) if rest else "{}",
                _dumps([_event(e) for e in events]) if events else "[]",
                _text(first_of(attrs, cv.MODEL_KEYS)),
                _int_or_none(first_of(attrs, cv.INPUT_TOKEN_KEYS)),
                _int_or_none(first_of(attrs, cv.OUTPUT_TOKEN_KEYS)),
                cached[0],
                scope.name if scope is not None else None,
                rank,
                _text(get(cv.EXPERIMENT) or (cached[1] if rank else None)),
                _text(get(cv.RUN_ID)),
                _text(get(cv.SESSION_ID)),
                _text(get(cv.USER_ID)),
                _text(get(cv.TRACE_TAGS)),
                _text(get(cv.TRACE_METADATA)),
                _text(get(cv.AGENT_NAME)),
                _text(get(cv.AGENT_VERSION)),
            )
        )
    return rows
