"""Keeping the spans of chosen traces in memory, so the evaluator can score a trace at once.

Writing a trace to the store and reading it back costs a flush per record; the evaluator instead
asks the collector to watch a trace id, runs the prediction, and takes the finished spans as a
`Trace` record. on_end runs on whichever thread ended the span; it does one dict lookup for
traces nobody watches.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from agenttrace.otel.convert import spans_to_rows
from agenttrace.records import Trace
from agenttrace.schema import fold_trace, span_record, trace_info


class TraceCollector(SpanProcessor):
    def __init__(self, experiment: str | None = None) -> None:
        self.experiment = experiment  # for spans whose resource names none, as the store exporter does
        self._watched: dict[int, list[ReadableSpan]] = {}
        self._lock = threading.Lock()

    def watch(self, trace_id: str) -> None:
        with self._lock:
            self._watched.setdefault(int(trace_id, 16), [])

    def take(self, trace_id: str) -> Trace | None:
        """Stop watching and return what ended so far as a Trace (None if nothing did)."""
        with self._lock:
            spans = self._watched.pop(int(trace_id, 16), [])
        return spans_to_trace(spans, self.experiment) if spans else None

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


def spans_to_trace(spans: Sequence[ReadableSpan], default_experiment: str | None = None) -> Trace:
    """The Trace record the store would return for these finished spans, built in memory.

    The rows are the ones the store exporter writes, and the summary is folded by the same rules
    as the store's upsert (`agenttrace.schema.fold_trace`).
    """
    rows = spans_to_rows(spans, default_experiment)
    return Trace(info=trace_info(fold_trace(rows)), spans=[span_record(r) for r in rows])
