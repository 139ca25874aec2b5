"""Experiments and runs: params, metric histories, tags and artifacts, in the same store as traces.

The engine above the store: `runs` starts and ends runs and holds the current one in the context
that tracing reads, `_metrics` buffers metric values into Arrow batches, `artifacts` copies files
into the run's folder, `search` reads it all back as records and pandas.
"""

from agenttrace.tracking.fluent import (
    log_artifact,
    log_artifacts,
    log_dict,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_table,
    log_text,
    set_tag,
    set_tags,
)
from agenttrace.tracking.runs import ActiveRun, active_run, end_run, start_run
from agenttrace.tracking.search import (
    Run,
    create_experiment,
    delete_experiment,
    download_artifacts,
    get_experiment,
    get_metric_history,
    get_run,
    list_artifacts,
    restore_experiment,
    search_experiments,
    search_runs,
)

__all__ = [
    "ActiveRun",
    "Run",
    "active_run",
    "create_experiment",
    "delete_experiment",
    "download_artifacts",
    "end_run",
    "get_experiment",
    "get_metric_history",
    "get_run",
    "list_artifacts",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "restore_experiment",
    "search_experiments",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
]
