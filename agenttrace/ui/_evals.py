"""Evaluation pages: the runs, one run as a sortable table with histograms, two runs side by side, reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from agenttrace.errors import EvaluationError
from agenttrace.reports import eval_report_html
from agenttrace.ui._pages import guarded, page, store_of
from agenttrace.ui._security import REPORT_HEADERS

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 200


@router.get("/evals", response_class=HTMLResponse)
def eval_runs(request: Request) -> HTMLResponse:
    """Eval runs, newest first, with their summary metrics and a form to compare two."""

    def build() -> HTMLResponse:
        frame = store_of(request).list_eval_runs(200)
        runs = frame.to_dict(orient="records")
        return page(request, "evals.html", runs=runs)

    return guarded(request, build)


@router.get("/evals/compare", response_class=HTMLResponse)
def compare(request: Request, a: str = "", b: str = "") -> HTMLResponse:
    """B against A record by record: deltas with intervals, regressed records first."""

    def build() -> HTMLResponse:
        from agenttrace.evaluation.compare import compare_runs

        if not a or not b:
            raise EvaluationError("pick two runs to compare: A (the baseline) and B")
        store = store_of(request)
        result = compare_runs(store, a, b)
        return page(
            request, "compare.html", result=result, summary=result.scorers.to_dict(orient="records"),
            regressed=result.regressed.to_dict(orient="records"), improved=result.improved.to_dict(orient="records"),
            new_errors=result.new_errors.to_dict(orient="records"),
            traces_a=store.eval_trace_ids(result.run_a), traces_b=store.eval_trace_ids(result.run_b),
        )  # fmt: skip

    return guarded(request, build)


@router.get("/evals/{run_ref}", response_class=HTMLResponse)
def eval_run(
    request: Request,
    run_ref: str,
    sort: str = "position",
    desc: int = 0,
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """One run: summary, a histogram per scorer, and its records sorted by any column or scorer."""

    def build() -> HTMLResponse:
        store = store_of(request)
        offset = (page_no - 1) * PAGE_SIZE
        run, records, total, values, recent = store.ui_eval_page(run_ref, sort, bool(desc), offset, PAGE_SIZE)
        others = [r for r in recent if r["eval_run_id"] != run["eval_run_id"]]
        return page(
            request, "eval_run.html", run=run, records=records, total=total, values=values, sort=sort, desc=desc,
            page_no=page_no, page_size=PAGE_SIZE, others=others, state={"sort": sort, "desc": desc},
        )  # fmt: skip

    return guarded(request, build)


@router.get("/evals/{run_ref}/report", response_model=None)
def report(request: Request, run_ref: str, compare: str | None = None) -> Response:
    """The self-contained HTML report of a run (as `agenttrace eval report` writes it), to save or share."""

    def build() -> HTMLResponse:
        base = str(request.base_url).rstrip("/") + "/ui/traces/"
        html = eval_report_html(store_of(request), run_ref, compare or None, trace_url=base)
        return HTMLResponse(html, headers=REPORT_HEADERS)

    return guarded(request, build)
