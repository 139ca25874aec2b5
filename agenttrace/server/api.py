"""The REST API: list and search traces, get one, log feedback and expectations, health.

Routes are plain `def` functions, so FastAPI runs them on its thread pool and a slow query never
blocks OTLP ingest on the event loop. Errors are not handled here: `app.py` maps them to statuses.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from agenttrace.records import parse_source
from agenttrace.store import DuckDBStore

__all__ = ["router"]

router = APIRouter(prefix="/api")


class AssessmentIn(BaseModel):
    name: str = Field(min_length=1, description="what is judged, e.g. 'helpful'")
    value: Any = Field(description="the judgement: bool, number, string or JSON")
    rationale: str | None = None
    source: str | None = Field(None, description="human, code or llm_judge, optionally ':<id>'")
    span_id: str | None = None
    metadata: dict[str, Any] | None = None


def _store(request: Request) -> DuckDBStore:
    return request.app.state.store


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return value


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """Whether the server is up, and what it has received, stored, refused and lost."""
    state = request.app.state
    receiver = state.receiver
    return {
        "status": "ok",
        "store": str(state.store.path),
        "otlp": {  # HTTP and gRPC together
            **receiver.counts.as_dict(),
            "max_body_bytes": receiver.max_body_bytes,
            "bytes_in_flight": receiver.in_flight.held,
            "max_bytes_in_flight": receiver.in_flight.limit,
            "converter_processes": state.receiver.converter.workers,
            "converter_restarts": state.receiver.converter.renewed,
            **state.writer.stats(),
        },
    }


@router.get("/traces")
def list_traces(
    request: Request,
    filter: Annotated[str | None, Query(description="filter language, e.g. status = 'ERROR'")] = None,  # noqa: A002
    experiment: Annotated[list[str] | None, Query()] = None,
    order_by: Annotated[list[str] | None, Query(description='e.g. "duration_ms DESC"')] = None,
    max_results: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """Traces matching the filter, newest first unless order_by says otherwise."""
    frame = _store(request).search_traces(filter, experiment, order_by, max_results)
    rows = [{k: _json_safe(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    return {"traces": rows, "count": len(rows)}


@router.get("/traces/{trace_id}")
def get_trace(request: Request, trace_id: str) -> dict[str, Any]:
    """One trace: its summary, its spans (inputs and outputs decoded) and its assessments."""
    return _store(request).get_trace(trace_id).to_dict()


def _log(request: Request, trace_id: str, body: AssessmentIn, kind: str) -> dict[str, Any]:
    source_type, source_id = parse_source(body.source)
    assessment = _store(request).log_assessment(
        trace_id, body.name, body.value, kind=kind, rationale=body.rationale, source_type=source_type,
        source_id=source_id, span_id=body.span_id, metadata=body.metadata,
    )  # fmt: skip
    from dataclasses import asdict

    return asdict(assessment)


@router.post("/traces/{trace_id}/feedback", status_code=201)
def log_feedback(request: Request, trace_id: str, body: AssessmentIn) -> dict[str, Any]:
    """Attach feedback (a judgement of the outcome) to a trace or one of its spans."""
    return _log(request, trace_id, body, "feedback")


@router.post("/traces/{trace_id}/expectations", status_code=201)
def log_expectation(request: Request, trace_id: str, body: AssessmentIn) -> dict[str, Any]:
    """Attach an expectation (the ground truth) to a trace."""
    return _log(request, trace_id, body, "expectation")


# -- evaluation: runs, their records, comparisons, datasets ------------------------------------
# Read-only views of what `agenttrace eval` stores, in the same shapes as its --json output, so a
# UI or a CI dashboard needs no second parser. Runs are found by id, unique id prefix or name.


def _plain(value: Any) -> Any:
    """Nested JSON-safe values: NaN/inf as null, numpy scalars and timestamps as plain values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return _json_safe(value)


@router.get("/eval-runs")
def list_eval_runs(request: Request, limit: Annotated[int, Query(ge=1, le=1_000)] = 50) -> dict[str, Any]:
    """Evaluation runs, newest first, with status (FINISHED_WITH_ERRORS: a record errored) and summary."""
    frame = _store(request).list_eval_runs(limit)
    runs = [_plain(row) for row in frame.to_dict(orient="records")]
    return {"runs": runs, "count": len(runs)}


@router.get("/eval-runs/{run_ref}")
def get_eval_run(
    request: Request,
    run_ref: str,
    offset: Annotated[int, Query(ge=0)] = 0,
    max_records: Annotated[int, Query(ge=0, le=10_000)] = 1_000,
) -> dict[str, Any]:
    """One run and a page of its per-record rows (inputs, outputs, error, scores per scorer)."""
    info, records = _store(request).load_eval_run(run_ref)
    page = records[offset : offset + max_records]
    return {"run": _plain(info), "records": _plain(page), "total_records": len(records), "offset": offset}


@router.get("/eval-runs/{run_a}/compare/{run_b}")
def compare_eval_runs(request: Request, run_a: str, run_b: str) -> dict[str, Any]:
    """B against A record by record: deltas with 95% intervals and p-values, regressions, new errors."""
    from agenttrace.evaluation.compare import compare_runs

    return _plain(compare_runs(_store(request), run_a, run_b).to_dict())


@router.get("/datasets")
def list_datasets(request: Request) -> dict[str, Any]:
    """Stored dataset versions: name, version, record_count, source, created."""
    rows = [_plain(row) for row in _store(request).list_datasets().to_dict(orient="records")]
    return {"datasets": rows, "count": len(rows)}
