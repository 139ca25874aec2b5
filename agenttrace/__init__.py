"""agenttrace: trace LLM agents with OpenTelemetry into one embedded DuckDB file, and evaluate them."""

from typing import TYPE_CHECKING, Any

from agenttrace import autolog, context
from agenttrace.records import Score, SpanType
from agenttrace.scoring import scorer
from agenttrace.tracing.decorator import trace
from agenttrace.tracing.readback import get_trace, log_expectation, log_feedback, search_traces
from agenttrace.tracing.runtime import configure, flush
from agenttrace.tracing.spans import get_current_span, get_current_trace_id, span, update_current_trace

if TYPE_CHECKING:
    from agenttrace import datasets
    from agenttrace.evaluation.compare import compare_evals
    from agenttrace.evaluation.datasets import load_dataset
    from agenttrace.evaluation.engine import evaluate

__version__ = "0.1.0"

# Evaluation pulls in the openai client and numpy; tracing code should not pay for that at import.
_LAZY = {
    "compare_evals": ("agenttrace.evaluation.compare", "compare_evals"),
    "datasets": ("agenttrace.datasets", None),
    "evaluate": ("agenttrace.evaluation.engine", "evaluate"),
    "load_dataset": ("agenttrace.evaluation.datasets", "load_dataset"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'agenttrace' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


__all__ = [
    "Score",
    "SpanType",
    "autolog",
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
    "scorer",
    "search_traces",
    "span",
    "trace",
    "update_current_trace",
]
