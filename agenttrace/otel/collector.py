"""Keeping the spans of chosen traces in memory, so the evaluator can score a trace at once.

Writing a trace to the store and reading it back costs a flush per record; the evaluator instead
asks the collector to watch a trace id, runs the prediction, and takes the finished spans as a
`Trace` record. on_end runs on whichever thread ended the span; it does one dict lookup for
traces nobody watches.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from agenttrace.otel.convert import spans_to_columns
from agenttrace.records import SpanRecord, Trace, TraceInfo


class TraceCollector(SpanProcessor):
    def __init__(self) -> None:
        self._watched: dict[int, list[ReadableSpan]] = {}
        self._lock = threading.Lock()

    def watch(self, trace_id: str) -> None:
        with self._lock:
            self._watched.setdefault(int(trace_id, 16), [])

    def take(self, trace_id: str) -> Trace | None:
        """Stop watching and return what ended so far as a Trace (None if nothing did)."""
        with self._lock:
            spans = self._watched.pop(int(trace_id, 16), [])
        return spans_to_trace(spans) if spans else None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        bucket = self._watched.get(span.context.trace_id)
        if bucket is not None:
            bucket.append(span)

    def shutdown(self) -> None:
        self._watched.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _loads(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else None


def _merged(texts: list[Any]) -> dict[str, Any]:
    """Merge the JSON objects spans carry, later ones winning, as the store's upsert does."""
    out: dict[str, Any] = {}
    for text in texts:
        out.update(_loads(text) or {})
    return out


def spans_to_trace(spans: Sequence[ReadableSpan]) -> Trace:
    """Build the Trace record the store would return, from finished spans in memory."""
    c = spans_to_columns(spans)
    records = [
        SpanRecord(
            trace_id=c["trace_id"][i],
            span_id=c["span_id"][i],
            parent_span_id=c["parent_span_id"][i],
            name=c["name"][i],
            span_type=c["span_type"][i],
            status=c["status"][i],
            status_message=c["status_message"][i],
            start_time_ns=c["start_time_ns"][i],
            end_time_ns=c["end_time_ns"][i],
            inputs=_loads(c["inputs"][i]),
            outputs=_loads(c["outputs"][i]),
            attributes=_loads(c["attributes"][i]) or {},
            events=_loads(c["events"][i]) or [],
            model=c["model"][i],
            input_tokens=c["input_tokens"][i],
            output_tokens=c["output_tokens"][i],
        )
        for i in range(len(spans))
    ]
    ranks = c["root_rank"]
    root_index = max(range(len(spans)), key=lambda i: (ranks[i], -c["start_time_ns"][i]))
    root = records[root_index]
    start = min(c["start_time_ns"])
    end = max(c["end_time_ns"])
    in_tok = [t for t in c["input_tokens"] if t is not None]
    out_tok = [t for t in c["output_tokens"] if t is not None]
    info = TraceInfo(
        trace_id=root.trace_id,
        name=root.name,
        status=root.status if ranks[root_index] else "IN_PROGRESS",
        start_time_ns=start,
        end_time_ns=end,
        duration_ms=(end - start) / 1e6,
        experiment=next((e for e in c["experiment"] if e), None),
        run_id=next((r for r in c["run_id"] if r), None),
        inputs=root.inputs,
        outputs=root.outputs,
        session_id=next((v for v in c["session_id"] if v), None),
        user_id=next((v for v in c["user_id"] if v), None),
        tags=_merged(c["tags"]),
        metadata=_merged(c["metadata"]),
        span_count=len(records),
        input_tokens=sum(in_tok) if in_tok else None,
        output_tokens=sum(out_tok) if out_tok else None,
        total_tokens=(sum(in_tok) + sum(out_tok)) if (in_tok or out_tok) else None,
    )
    return Trace(info=info, spans=records)
