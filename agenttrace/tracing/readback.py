"""Reading traces back and annotating them, against the store tracing writes to.

Each read first flushes this process's queued spans, so code that traced a call and then searches
finds it without calling flush() itself. In client mode (`uri` set) the spans went to
`agenttrace server`, so reads and notes go there too, through its REST API; a flush there returns
once the server has stored the spans, so the same read-your-writes holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agenttrace.errors import ConfigError, InvalidArgumentError
from agenttrace.records import Assessment, Trace, parse_source
from agenttrace.store import DuckDBStore
from agenttrace.store._filters import order_by_items
from agenttrace.tracing.runtime import flush, get_runtime

if TYPE_CHECKING:  # pandas and the HTTP client load only when needed
    import pandas as pd

    from agenttrace.tracing.server_reads import ServerReads

__all__ = ["current_store", "get_trace", "log_expectation", "log_feedback", "search_traces"]


_server_reads: dict[tuple[str, str | None], ServerReads] = {}


def current_store() -> DuckDBStore:
    """The store file this process traces into (its queued spans flushed first).

    With tracing off the configured file is still readable; with store=None there is none. In
    client mode there is no file: datasets and evaluation runs need one (readback does not).
    """
    rt = get_runtime()
    flush()
    if rt.store is not None:
        return rt.store
    if rt.settings.uri:
        raise ConfigError(
            f"this process sends its spans to {rt.settings.uri} (client mode) and has no store file for datasets "
            f"and evaluation runs; run this where the store is, or unset AGENTTRACE_URI"
        )
    path = rt.settings.store
    if path is None:
        raise ConfigError("no store is configured (store=None); configure(store='agenttrace.duckdb') to read traces")
    return DuckDBStore(path, lock_timeout_s=rt.settings.lock_timeout_s, settings=rt.settings)


def _reads() -> DuckDBStore | ServerReads:
    """Where reads and notes go: the store file, or the server in client mode."""
    rt = get_runtime()
    if rt.store is None and rt.settings.uri:
        from agenttrace.tracing.server_reads import ServerReads

        flush()
        key = (rt.settings.uri, rt.settings.auth_token)
        if key not in _server_reads:
            _server_reads[key] = ServerReads(rt.settings.uri, rt.settings.auth_token)
        return _server_reads[key]
    return current_store()


def search_traces(
    filter_string: str | None = None,
    experiment: str | list[str] | None = None,
    order_by: list[str] | str | None = None,
    max_results: int = 100,
) -> pd.DataFrame:
    """Search traces; returns one row per trace as a pandas DataFrame.

    Columns: trace_id, name, status, start_time, end_time, duration_ms, inputs, outputs, tags,
    metadata, session_id, user_id, span_count, input_tokens, output_tokens, total_tokens,
    experiment, run_id, agent_name, agent_version. `filter_string` uses the MLflow-style filter
    language (see the README); `order_by` takes e.g. ["duration_ms DESC"]; newest first by default.

    Raises:
        FilterError: the filter or order_by cannot be used (the message names the token or value).
        InvalidArgumentError: max_results is not a whole number of at least 1.
    """
    # Arguments are checked here, before either reader, so the store file and the server refuse alike.
    if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
        raise InvalidArgumentError(f"max_results must be a whole number of at least 1, got {max_results!r}")
    experiments = [experiment] if isinstance(experiment, str) else experiment
    return _reads().search_traces(filter_string, experiments, order_by_items(order_by), max_results)


def get_trace(trace_id: str) -> Trace:
    """The whole trace with its spans and assessments; TraceNotFoundError if the id is unknown."""
    return _reads().get_trace(trace_id)


def _log(
    kind: str, trace_id: str, name: str, value: Any, rationale: str | None, source: str | None,
    span_id: str | None, metadata: dict[str, Any] | None,
) -> Assessment:  # fmt: skip
    source_type, source_id = parse_source(source)
    return _reads().log_assessment(
        trace_id, name, value, kind=kind, rationale=rationale, source_type=source_type, source_id=source_id,
        span_id=span_id, metadata=metadata,
    )  # fmt: skip


def log_feedback(
    trace_id: str,
    name: str,
    value: Any,
    rationale: str | None = None,
    source: str | None = None,
    span_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Assessment:
    """Attach feedback (a judgement of the outcome) to a trace or one of its spans.

    `source` is "human", "code" or "llm_judge", optionally with an id: "human:ana", "llm_judge:gpt-4o".
    """
    return _log("feedback", trace_id, name, value, rationale, source, span_id, metadata)


def log_expectation(
    trace_id: str,
    name: str,
    value: Any,
    source: str | None = None,
    span_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Assessment:
    """Attach an expectation (the ground truth, e.g. the expected answer) to a trace."""
    return _log("expectation", trace_id, name, value, None, source, span_id, metadata)
