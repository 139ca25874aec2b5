"""Trace pages: the paged list, sessions, one trace with its span tree and waterfall, feedback, delete."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from agenttrace.errors import AgentTraceError, FilterError, TraceNotFoundError
from agenttrace.records import parse_source
from agenttrace.ui import _views
from agenttrace.ui._pages import error_page, forbidden, guarded, page, posted_form, store_of

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 50
# Columns the list sorts by (the filter language's names), in the order shown.
SORTABLE = ("start_time", "name", "status", "duration_ms", "total_tokens", "session_id", "user_id", "agent_version")
_MAX_SCORE_COLUMNS = 8
# Spans drawn in a trace's tree: a trace of 30,000 spans opens with its first 5,000 (by start).
MAX_SPANS = 5_000


def _list_params(
    q: str | None, experiment: list[str] | None, range_key: str | None, since: str | None, until: str | None
) -> dict[str, Any]:
    return {"q": q or "", "experiment": [e for e in experiment or [] if e], "range": range_key or "",
            "since": since or "", "until": until or ""}  # fmt: skip


@router.get("/traces", response_class=HTMLResponse)
def traces(
    request: Request,
    q: str | None = None,
    experiment: Annotated[list[str] | None, Query()] = None,
    range_key: Annotated[str | None, Query(alias="range")] = None,
    since: str | None = None,
    until: str | None = None,
    order: str = "start_time",
    desc: int = 1,
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """The paged, sortable, filterable trace list."""
    params = _list_params(q, experiment, range_key, since, until)
    sort = order if order in SORTABLE else "start_time"
    error = None
    rows: list[dict[str, Any]] = []
    more = False
    scores: dict[str, dict[str, Any]] = {}
    experiments: list[str] = []
    try:
        since_ns, until_ns = _views.time_range(range_key, since, until)
        rows, more, scores, experiments = store_of(request).ui_trace_page(
            q or None, params["experiment"] or None, since_ns, until_ns, [f"{sort} {'DESC' if desc else 'ASC'}"],
            (page_no - 1) * PAGE_SIZE, PAGE_SIZE,
        )  # fmt: skip
    except (FilterError, ValueError) as exc:
        error = str(exc)
    score_names = sorted({name for s in scores.values() for name in s})[:_MAX_SCORE_COLUMNS]
    return page(
        request, "traces.html", status=400 if error else 200, rows=rows, more=more, scores=scores,
        score_names=score_names, experiments=experiments, params=params, order=sort, desc=desc, page_no=page_no,
        error=error, sortable=SORTABLE, list_state={**params, "order": sort, "desc": desc},
    )  # fmt: skip


@router.get("/sessions", response_class=HTMLResponse)
def sessions(
    request: Request,
    q: str | None = None,
    experiment: Annotated[list[str] | None, Query()] = None,
    range_key: Annotated[str | None, Query(alias="range")] = None,
    since: str | None = None,
    until: str | None = None,
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Traces grouped by session, the most recently active first."""
    params = _list_params(q, experiment, range_key, since, until)
    error = None
    rows: list[dict[str, Any]] = []
    more = False
    try:
        since_ns, until_ns = _views.time_range(range_key, since, until)
        rows, more = store_of(request).ui_session_page(
            q or None, params["experiment"] or None, since_ns, until_ns, (page_no - 1) * PAGE_SIZE, PAGE_SIZE
        )
    except (FilterError, ValueError) as exc:
        error = str(exc)
    return page(
        request, "sessions.html", status=400 if error else 200, rows=rows, more=more, params=params,
        page_no=page_no, error=error,
    )  # fmt: skip


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def session(request: Request, session_id: str) -> HTMLResponse:
    """One conversation: its traces (turns) in order, each turn's input and output."""
    turns = store_of(request).ui_session_traces(session_id)
    if not turns:
        return error_page(request, TraceNotFoundError(f"no trace has session id {session_id!r}"))
    return page(request, "session.html", session_id=session_id, turns=turns)


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
def trace(request: Request, trace_id: str, span: str | None = None) -> HTMLResponse:
    """One trace: span tree beside a waterfall, the selected span's details, assessments, feedback form."""

    def build() -> HTMLResponse:
        view = store_of(request).ui_trace_view(trace_id, span, MAX_SPANS)
        found, selected = view["trace"], view["selected"]
        rows = _views.span_rows(found)
        by_id = {r.span.span_id: r.span for r in rows}
        return page(
            request, "trace.html", trace=found, info=found.info, rows=rows, selected=selected,
            truncated=view["truncated"], max_spans=MAX_SPANS,
            chat_in=_views.chat_view(selected, "in") if selected else None,
            chat_out=_views.chat_view(selected, "out") if selected else None,
            exceptions=_views.exceptions(selected) if selected else [],
            span_names={k: v.name for k, v in by_id.items()},
        )  # fmt: skip

    return guarded(request, build)


@router.post("/traces/{trace_id}/assessments", response_model=None)
async def add_assessment(request: Request, trace_id: str) -> Response:
    """Feedback or an expectation from the trace page's form, then back to the trace."""
    form = await posted_form(request)
    if form is None:
        return forbidden(request)
    kind = "expectation" if form.get("kind") == "expectation" else "feedback"
    name = (form.get("name") or "").strip()
    if not name:
        return error_page(request, ValueError("give the assessment a name, e.g. 'helpful' or 'expected_answer'"))
    span_id = form.get("span_id") or None
    try:
        source_type, source_id = parse_source(form.get("source") or "human")
        await run_in_threadpool(
            store_of(request).log_assessment, trace_id, name, _views.parse_value(form.get("value", "")), kind=kind,
            rationale=form.get("rationale") or None, source_type=source_type, source_id=source_id, span_id=span_id,
        )  # fmt: skip
    except (AgentTraceError, ValueError) as exc:
        return error_page(request, exc)
    target = f"/ui/traces/{quote(trace_id, safe='')}" + (f"?span={quote(span_id, safe='')}" if span_id else "")
    return RedirectResponse(target + "#assessments", status_code=303)


@router.post("/traces/{trace_id}/delete", response_model=None)
async def delete(request: Request, trace_id: str) -> Response:
    """Delete one trace (spans and assessments too), then back to the list."""
    form = await posted_form(request)
    if form is None:
        return forbidden(request)
    if not await run_in_threadpool(store_of(request).delete_trace, trace_id):
        return error_page(request, TraceNotFoundError(f"no trace with id {trace_id!r}; it may be deleted already"))
    return RedirectResponse("/ui/traces?deleted=" + quote(trace_id, safe=""), status_code=303)
