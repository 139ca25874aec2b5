"""Page models: what a template needs from a trace, a page of rows or a query string, as plain data."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from agenttrace.otel import messages as chat
from agenttrace.records import SpanRecord, Trace

__all__ = ["SpanRow", "chat_view", "parse_value", "qs", "span_rows", "time_range"]

# The time-range picker's choices: label -> seconds back from now.
RANGES = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


@dataclass(slots=True)
class SpanRow:
    span: SpanRecord
    depth: int
    offset_pct: float  # where the bar starts in the waterfall, 0-100
    width_pct: float


def span_rows(trace: Trace) -> list[SpanRow]:
    """The spans in tree order with their waterfall geometry relative to the whole trace."""
    spans = trace.spans
    if not spans:
        return []
    start = min(s.start_time_ns for s in spans)
    end = max(s.end_time_ns for s in spans)
    total = max(end - start, 1)
    rows = []
    for depth, span in trace.walk():
        offset = (span.start_time_ns - start) / total * 100
        width = max((span.end_time_ns - span.start_time_ns) / total * 100, 0.3)
        rows.append(SpanRow(span, depth, round(offset, 3), round(min(width, 100 - offset), 3)))
    return rows


def chat_view(span: SpanRecord, side: str) -> list[dict[str, Any]] | None:
    """An LLM span's inputs or outputs as chat messages (stored GenAI shape or OpenAI's), else None."""
    if span.span_type not in ("LLM", "CHAT_MODEL"):
        return None
    value = span.inputs if side == "in" else span.outputs
    try:
        found = chat.from_payload(value, side)
        if found is None and isinstance(value, dict) and side == "in":
            found = chat.messages(value.get("messages"))
    except Exception:  # an odd payload is shown as JSON instead of a conversation
        return None
    return found


def exceptions(span: SpanRecord) -> list[dict[str, Any]]:
    """The span's exception events as {type, message, stacktrace}."""
    out = []
    for event in span.events or []:
        if not isinstance(event, dict) or event.get("name") != "exception":
            continue
        attributes = event.get("attributes") or {}
        out.append({
            "type": attributes.get("exception.type"),
            "message": attributes.get("exception.message"),
            "stacktrace": attributes.get("exception.stacktrace"),
        })  # fmt: skip
    return out


def parse_value(text: str) -> Any:
    """A value typed into the feedback form: JSON when it parses (true, 4, {"a": 1}), else the text."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        return stripped


def qs(params: dict[str, Any], **changes: Any) -> str:
    """The query string of the current page with some parameters changed (None removes one)."""
    merged = {**params, **changes}
    pairs: list[tuple[str, Any]] = []
    for key, value in merged.items():
        if value is None or value == "" or value == []:
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item))
    return "?" + urlencode(pairs) if pairs else "?"


def _instant(text: str | None) -> int | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a time; use the picker or ISO 8601 like 2026-11-01T12:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1e9)


def time_range(range_key: str | None, since: str | None, until: str | None) -> tuple[int | None, int | None]:
    """(since_ns, until_ns) from the picker: a named range back from now, or explicit ISO times."""
    if range_key in RANGES:
        return time.time_ns() - RANGES[range_key] * 1_000_000_000, None
    return _instant(since), _instant(until)
