"""Spans to rows of the store's batch: one builder for our own spans and for OTLP ingest.

A row is a dict keyed by the column names of `agenttrace.schema.SPAN_COLUMNS`; a column left out
is null. `span_row` is the one place a row is made: the local exporter (`spans_to_rows`, for
OpenTelemetry SDK spans) and OTLP ingest (`agenttrace.otel.ingest`) only decode their own span
objects into its arguments. Dicts of strings and numbers are not tracked by Python's cyclic
garbage collector, so rows waiting to be written cost the traced program nothing at collection
time, unlike the span objects they replace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from agenttrace.jsontext import dumps
from agenttrace.otel import conventions as cv

__all__ = ["resource_experiment", "span_row", "spans_to_rows"]

logger = logging.getLogger("agenttrace")

# A span with only these attributes (what the decorator makes) needs no conventions read.
_PLAIN_KEYS = frozenset({cv.SPAN_TYPE, cv.INPUTS, cv.OUTPUTS})


def span_row(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str | None,
    name: str,
    error: bool,
    status_message: str | None,
    start_time_ns: int,
    end_time_ns: int,
    attributes: dict[str, Any],
    events: list[dict[str, Any]],
    resource: str,
    scope: str | None,
    root_rank: int,
    experiment: str | None,
    trusted: bool,
) -> dict[str, Any]:
    """The batch row of one span.

    `root_rank` is 2 for a span without a parent, 1 for a local root (its parent is remote, or
    outside our instrumentation), else 0. `experiment` is the one its resource names, used when
    the span names none. `trusted` is True for spans of this process (see `cv.map_span`).
    """
    if end_time_ns < start_time_ns:  # a clock that went back: no negative durations
        end_time_ns = start_time_ns
    scope = scope or None
    events_json = dumps(events) if events else "[]"
    if trusted and attributes.keys() <= _PLAIN_KEYS:
        # The common span, as our decorator makes it (type, inputs, outputs and nothing else): one
        # dict display, the cheapest way Python builds a dict, and no conventions to read.
        get = attributes.get
        return {
            "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent_span_id, "name": name,
            "span_type": get(cv.SPAN_TYPE) or "UNKNOWN", "status": "ERROR" if error else "OK",
            "status_message": status_message, "start_time_ns": start_time_ns, "end_time_ns": end_time_ns,
            "duration_ms": (end_time_ns - start_time_ns) / 1e6, "inputs": get(cv.INPUTS), "outputs": get(cv.OUTPUTS),
            "attributes": "{}", "events": events_json, "resource": resource, "scope": scope, "root_rank": root_rank,
            "experiment": experiment,
        }  # fmt: skip
    try:
        facts = cv.map_span(attributes, events, trusted)
    except Exception as exc:  # conventions are best effort: the span is stored, with every attribute kept
        facts = _unmapped(attributes, exc)
    # The span's own facts come last: an experiment the span names beats its resource's.
    return {
        "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent_span_id, "name": name,
        "status": "ERROR" if error else "OK", "status_message": status_message, "start_time_ns": start_time_ns,
        "end_time_ns": end_time_ns, "duration_ms": (end_time_ns - start_time_ns) / 1e6, "events": events_json,
        "resource": resource, "scope": scope, "root_rank": root_rank, "experiment": experiment, **facts,
    }  # fmt: skip


def _unmapped(attributes: dict[str, Any], exc: Exception) -> dict[str, Any]:
    """The row facts of a span whose conventions could not be read: a type, and its attributes.

    The mapper is meant never to raise (its inputs are whatever a sender wrote); this is the
    backstop that keeps one odd span from costing the batch it came in, logged once.
    """
    global _unmapped_warned
    if not _unmapped_warned:
        _unmapped_warned = True
        logger.warning("agenttrace could not read the conventions of a span (stored with its raw attributes): %r", exc)
    return {"span_type": "UNKNOWN", "attributes": dumps(attributes)}


_unmapped_warned = False


def resource_experiment(resource: dict[str, Any], default: str | None) -> str | None:
    """The experiment a resource names (ours, else Phoenix's project), else `default`."""
    for key in (cv.EXPERIMENT, "openinference.project.name"):
        value = resource.get(key)
        if isinstance(value, str) and value:
            return value
    return default


def _event(event: Any) -> dict[str, Any]:
    return {"name": event.name, "timestamp_ns": event.timestamp, "attributes": dict(event.attributes or {})}


def _attributes_of(span: ReadableSpan) -> dict[str, Any]:
    """A copy of the span's attributes.

    `ReadableSpan.attributes` is a read-only view of the SDK's BoundedAttributes, whose mapping
    methods take a lock for every key: copying ten attributes through it costs 2.6 us against 0.14
    copying the dict it keeps (the span has ended, so nothing writes it any more). That dict is
    private to the SDK (versions pinned in pyproject), so the public view is the fallback.
    """
    held = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(held, dict):
        return dict(held)
    attributes = span.attributes
    return dict(attributes) if attributes else {}


def spans_to_rows(spans: Sequence[ReadableSpan], default_experiment: str | None = None) -> list[dict[str, Any]]:
    """Rows of finished OpenTelemetry SDK spans; runs on the batch processor's thread for every span.

    Resources are serialised once per distinct resource object. Spans of other instrumentation
    (capture_global) whose resource names no experiment get `default_experiment`.
    """
    resources: dict[int, tuple[str, str | None]] = {}
    rows = []
    error_code = StatusCode.ERROR
    for span in spans:
        ctx = span.context
        attrs = _attributes_of(span)
        parent = span.parent
        if parent is None:
            rank = 2
        elif parent.is_remote or attrs.get(cv.LOCAL_ROOT):
            rank = 1
        else:
            rank = 0
        resource = span.resource
        cached = resources.get(id(resource))
        if cached is None:
            res_attrs = dict(resource.attributes) if resource is not None else {}
            cached = resources[id(resource)] = (dumps(res_attrs), resource_experiment(res_attrs, default_experiment))
        scope = span.instrumentation_scope
        events = span.events  # a property that copies: read it once
        start = span.start_time or 0
        end = span.end_time or start
        name = span.name
        rows.append(
            span_row(
                trace_id=format(ctx.trace_id, "032x"),
                span_id=format(ctx.span_id, "016x"),
                parent_span_id=None if parent is None else format(parent.span_id, "016x"),
                name=name if isinstance(name, str) else str(name),
                error=span.status.status_code is error_code,
                status_message=span.status.description,
                start_time_ns=start,
                end_time_ns=end,
                attributes=attrs,
                events=[_event(e) for e in events] if events else [],
                resource=cached[0],
                scope=scope.name if scope is not None else None,
                root_rank=rank,
                experiment=cached[1],
                trusted=True,
            )
        )
    return rows
