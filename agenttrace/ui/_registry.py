"""Runs and agents: runs with params, metric charts and artifacts; agents with versions, aliases,
diffs and quality over time per version."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from agenttrace.evaluation.metrics import headline
from agenttrace.registry._diff import diff_versions
from agenttrace.registry._versions import AgentVersion
from agenttrace.ui._pages import guarded, page, store_of

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 50
_MAX_METRIC_CHARTS = 12


def _records(frame: Any) -> list[dict[str, Any]]:
    import pandas as pd

    return [{k: (None if not isinstance(v, list | dict) and pd.isna(v) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]  # fmt: skip


@router.get("/runs", response_class=HTMLResponse)
def runs(
    request: Request,
    q: str | None = None,
    order: str | None = None,
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Runs (newest first unless ordered) with their params and latest metrics as columns."""

    def build() -> HTMLResponse:
        frame = store_of(request).search_runs(q or None, None, order or None, PAGE_SIZE + 1, (page_no - 1) * PAGE_SIZE)
        rows = _records(frame)
        columns = [c for c in frame.columns if c.startswith(("params.", "metrics."))][:16]
        return page(
            request, "runs.html", rows=rows[:PAGE_SIZE], more=len(rows) > PAGE_SIZE, columns=columns,
            params={"q": q or "", "order": order or ""}, page_no=page_no,
        )  # fmt: skip

    return guarded(request, build)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run(request: Request, run_id: str) -> HTMLResponse:
    """One run: params, tags, latest metrics, a line chart per metric by step, artifacts."""

    def build() -> HTMLResponse:
        store = store_of(request)
        found = store.get_run(run_id)
        histories = {}
        for key in list(found["metrics"])[:_MAX_METRIC_CHARTS]:
            frame = store.metric_history(found["run_id"], key)
            histories[key] = [(float(s), float(v)) for s, v in zip(frame["step"], frame["value"], strict=True)]
        return page(request, "run.html", run=found, histories=histories,
                    artifacts=store.list_artifacts(found["run_id"]))  # fmt: skip

    return guarded(request, build)


@router.get("/agents", response_class=HTMLResponse)
def agents(request: Request, q: str | None = None) -> HTMLResponse:
    """Registered agents: latest version, number of versions, aliases."""

    def build() -> HTMLResponse:
        rows = _records(store_of(request).list_agents(q or None, 200, 0))
        return page(request, "agents.html", rows=rows, params={"q": q or ""})

    return guarded(request, build)


@router.get("/agents/{name}", response_class=HTMLResponse)
def agent(request: Request, name: str) -> HTMLResponse:
    """One agent: versions with aliases, quality over time per version (a chart per scorer), a diff form."""

    def build() -> HTMLResponse:
        store = store_of(request)
        info = store.get_agent(name)
        versions = list(reversed(store.agent_versions(name)))
        number_of = {v["version_id"]: v["version"] for v in versions}
        quality: dict[str, dict[str, list[tuple[float, float]]]] = {}
        runs = store.agent_eval_runs(name)
        for r in runs:
            for scorer, summary in (r["summary"].get("scorers") or {}).items():
                value = headline(summary)
                if value is not None:
                    series = quality.setdefault(scorer, {}).setdefault(f"v{number_of.get(r['agent_version_id'])}", [])
                    series.append((r["started_ns"] / 1e9, float(value)))
        aliases: dict[int, list[str]] = {}
        for alias, number in (info.get("aliases") or {}).items():
            aliases.setdefault(int(number), []).append(alias)
        return page(request, "agent.html", agent=info, name=name, versions=versions, aliases=aliases,
                    quality=quality, runs=list(reversed(runs)), number_of=number_of)  # fmt: skip

    return guarded(request, build)


@router.get("/agents/{name}/diff", response_class=HTMLResponse)
def agent_diff(request: Request, name: str, a: str, b: str) -> HTMLResponse:
    """What changed between two versions (numbers or aliases): target, code files, config, prompts."""

    def build() -> HTMLResponse:
        store = store_of(request)
        version_a = AgentVersion.from_row(store.get_agent_version(name, a))
        version_b = AgentVersion.from_row(store.get_agent_version(name, b))
        return page(request, "agent_diff.html", name=name, diff=diff_versions(version_a, version_b))

    return guarded(request, build)
