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
    "trace_id", "span_id", "parent_span_id", "name", "span_type", "status", "status_message",
    "start_time_ns", "end_time_ns", "duration_ms", "inputs", "outputs", "attributes", "events", "model",
    "input_tokens", "output_tokens", "resource", "scope", "root_rank", "experiment", "run_id",
    "session_id", "user_id", "tags", "metadata", "agent_name", "agent_version",
)  # fmt: skip
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _event(event: Any) -> dict[str, Any]:
    return {"name": event.name, "timestamp_ns": event.timestamp, "attributes": dict(event.attributes or {})}


def spans_to_columns(spans: Sequence[ReadableSpan]) -> dict[str, list[Any]]:
    """Convert finished spans into the column lists `DuckDBStore.append_spans` takes."""
    cols: dict[str, list[Any]] = {name: [] for name in _COLUMN_NAMES}
    resources: dict[int, str] = {}
    ap = {name: cols[name].append for name in _COLUMN_NAMES}
    for span in spans:
        ctx = span.context
        attrs = dict(span.attributes) if span.attributes else {}
        parent = span.parent
        start = span.start_time or 0
        end = span.end_time or start
        status = span.status
        ap["trace_id"](format(ctx.trace_id, "032x"))
        ap["span_id"](format(ctx.span_id, "016x"))
        ap["parent_span_id"](None if parent is None else format(parent.span_id, "016x"))
        ap["name"](span.name)
        ap["span_type"](cv.span_type_of(attrs))
        ap["status"]("ERROR" if status.status_code is StatusCode.ERROR else "OK")
        ap["status_message"](status.description)
        ap["start_time_ns"](start)
        ap["end_time_ns"](end)
        ap["duration_ms"]((end - start) / 1e6)
        ap["inputs"](attrs.get(cv.INPUTS))
        ap["outputs"](attrs.get(cv.OUTPUTS))
        ap["model"](cv.first_of(attrs, cv.MODEL_KEYS))
        ap["input_tokens"](_int_or_none(cv.first_of(attrs, cv.INPUT_TOKEN_KEYS)))
        ap["output_tokens"](_int_or_none(cv.first_of(attrs, cv.OUTPUT_TOKEN_KEYS)))
        if parent is None:
            rank = 2
        elif parent.is_remote or attrs.get(cv.LOCAL_ROOT):
            rank = 1
        else:
            rank = 0
        ap["root_rank"](rank)
        ap["experiment"](attrs.get(cv.EXPERIMENT))
        ap["run_id"](attrs.get(cv.RUN_ID))
        ap["session_id"](attrs.get(cv.SESSION_ID))
        ap["user_id"](attrs.get(cv.USER_ID))
        ap["tags"](attrs.get(cv.TRACE_TAGS))
        ap["metadata"](attrs.get(cv.TRACE_METADATA))
        ap["agent_name"](attrs.get(cv.AGENT_NAME))
        ap["agent_version"](attrs.get(cv.AGENT_VERSION))
        rest = {k: v for k, v in attrs.items() if k not in cv.LIFTED} if attrs else attrs
        ap["attributes"](_dumps(rest) if rest else "{}")
        ap["events"](_dumps([_event(e) for e in span.events]) if span.events else "[]")
        resource = span.resource
        key = id(resource)
        if key not in resources:
            resources[key] = _dumps(dict(resource.attributes)) if resource is not None else "{}"
        ap["resource"](resources[key])
        scope = span.instrumentation_scope
        ap["scope"](scope.name if scope is not None else None)
    return cols
