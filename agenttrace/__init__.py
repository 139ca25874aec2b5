"""agenttrace: trace LLM agents with OpenTelemetry into one embedded DuckDB file, and evaluate them."""

from agenttrace import context, datasets
from agenttrace.evaluation.compare import compare_evals
from agenttrace.evaluation.datasets import load_dataset
from agenttrace.evaluation.engine import evaluate
from agenttrace.records import SpanType
from agenttrace.tracing.decorator import trace
from agenttrace.tracing.readback import get_trace, log_expectation, log_feedback, search_traces
from agenttrace.tracing.runtime import configure, flush
from agenttrace.tracing.spans import get_current_span, get_current_trace_id, span, update_current_trace

__version__ = "0.1.0"

__all__ = [
    "SpanType",
    "compare_evals",
    "configure",
    "context",
    "datasets",
    "evaluate",
    "flush",
    "get_current_span",
    "get_current_trace_id",
    "get_trace",
    "load_dataset",
    "log_expectation",
    "log_feedback",
    "search_traces",
    "span",
    "trace",
    "update_current_trace",
]
