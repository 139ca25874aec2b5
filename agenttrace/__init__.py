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
    from agenttrace import datasets, tracking
    from agenttrace.evaluation.compare import compare_evals
    from agenttrace.evaluation.datasets import load_dataset
    from agenttrace.evaluation.engine import evaluate
    from agenttrace.monitoring import quality_over_time
    from agenttrace.registry import (
        agent_history,
        compare_versions,
        delete_alias,
        lineage,
        load_agent,
        register_agent,
        set_active_agent,
        set_alias,
    )
    from agenttrace.tracking import (
        active_run,
        download_artifacts,
        end_run,
        get_metric_history,
        get_run,
        log_artifact,
        log_artifacts,
        log_dict,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_table,
        log_text,
        search_runs,
        set_tag,
        set_tags,
        start_run,
    )

__version__ = "0.1.0"

# Evaluation pulls in the openai client and numpy; tracing code should not pay for that at import.
_LAZY = {
    "compare_evals": ("agenttrace.evaluation.compare", "compare_evals"),
    "datasets": ("agenttrace.datasets", None),
    "evaluate": ("agenttrace.evaluation.engine", "evaluate"),
    "load_dataset": ("agenttrace.evaluation.datasets", "load_dataset"),
    # the agent registry
    "agent_history": ("agenttrace.registry", "agent_history"),
    "compare_versions": ("agenttrace.registry", "compare_versions"),
    "delete_alias": ("agenttrace.registry", "delete_alias"),
    "lineage": ("agenttrace.registry", "lineage"),
    "load_agent": ("agenttrace.registry", "load_agent"),
    "register_agent": ("agenttrace.registry", "register_agent"),
    "set_active_agent": ("agenttrace.registry", "set_active_agent"),
    "set_alias": ("agenttrace.registry", "set_alias"),
    # online monitoring
    "quality_over_time": ("agenttrace.monitoring", "quality_over_time"),
    # experiments and runs
    "active_run": ("agenttrace.tracking", "active_run"),
    "download_artifacts": ("agenttrace.tracking", "download_artifacts"),
    "end_run": ("agenttrace.tracking", "end_run"),
    "get_metric_history": ("agenttrace.tracking", "get_metric_history"),
    "get_run": ("agenttrace.tracking", "get_run"),
    "log_artifact": ("agenttrace.tracking", "log_artifact"),
    "log_artifacts": ("agenttrace.tracking", "log_artifacts"),
    "log_dict": ("agenttrace.tracking", "log_dict"),
    "log_metric": ("agenttrace.tracking", "log_metric"),
    "log_metrics": ("agenttrace.tracking", "log_metrics"),
    "log_param": ("agenttrace.tracking", "log_param"),
    "log_params": ("agenttrace.tracking", "log_params"),
    "log_table": ("agenttrace.tracking", "log_table"),
    "log_text": ("agenttrace.tracking", "log_text"),
    "search_runs": ("agenttrace.tracking", "search_runs"),
    "set_tag": ("agenttrace.tracking", "set_tag"),
    "set_tags": ("agenttrace.tracking", "set_tags"),
    "start_run": ("agenttrace.tracking", "start_run"),
    "tracking": ("agenttrace.tracking", None),
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
    "active_run",
    "agent_history",
    "autolog",
    "compare_evals",
    "compare_versions",
    "configure",
    "context",
    "datasets",
    "delete_alias",
    "download_artifacts",
    "end_run",
    "evaluate",
    "flush",
    "get_current_span",
    "get_current_trace_id",
    "get_metric_history",
    "get_run",
    "get_trace",
    "lineage",
    "load_agent",
    "load_dataset",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_expectation",
    "log_feedback",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "quality_over_time",
    "register_agent",
    "scorer",
    "search_runs",
    "search_traces",
    "set_active_agent",
    "set_alias",
    "set_tag",
    "set_tags",
    "span",
    "start_run",
    "trace",
    "tracking",
    "update_current_trace",
]
