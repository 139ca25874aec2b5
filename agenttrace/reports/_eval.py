"""The eval run report: summary, per-scorer distributions, worst records, the comparison if asked."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import jinja2

from agenttrace import __version__ as _version
from agenttrace.evaluation.metrics import as_number
from agenttrace.reports import charts
from agenttrace.reports._format import FILTERS
from agenttrace.store import DuckDBStore

__all__ = ["environment", "eval_report_html", "worst_records", "write_eval_report"]

_WORST = 10


def environment(package: str) -> jinja2.Environment:
    """A jinja2 environment over a package's templates, autoescaping every template (.html or not)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.globals.update(histogram=charts.histogram, interval_chart=charts.interval_chart, line_chart=charts.line_chart)
    return env


_ENV: jinja2.Environment | None = None


def _env() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = environment("agenttrace.reports")
    return _ENV


def _cell_number(cell: dict[str, Any] | None) -> float | None:
    """A cell as the number used in figures: an errored cell counts as 0, as in the run's summary."""
    if not cell:
        return None
    if cell.get("error"):
        return 0.0
    return as_number(cell.get("value"))


def worst_records(records: list[dict[str, Any]], scorer: str, count: int = _WORST) -> list[dict[str, Any]]:
    """The records scoring lowest on `scorer` (errored cells first), below the best value seen."""
    scored = [(n, r) for r in records if (n := _cell_number(r["scores"].get(scorer))) is not None]
    if not scored:
        return []
    best = max(n for n, _ in scored)
    low = [(0 if r["scores"][scorer].get("error") else 1, n, r["position"], r) for n, r in scored if n < best]
    low.sort(key=lambda item: item[:3])
    return [r for *_, r in low[:count]]


def eval_report_html(store: DuckDBStore, run: str, compare_to: str | None = None, trace_url: str | None = None) -> str:
    """The report of `run` (id, prefix or name) as one HTML document; with `compare_to`, B = run, A = compare_to.

    `trace_url` (e.g. "http://host:4318/ui/traces/") makes trace ids links to a running UI;
    without it they are shown as text to look up with `agenttrace traces show`.
    """
    from agenttrace.evaluation.compare import compare_runs

    info, records = store.load_eval_run(run)
    scorers = list(info.get("scorers") or [])
    # Every record's value per scorer, None for an errored cell (drawn as the "error" bar).
    values = {
        s: [None if r["scores"][s].get("error") else r["scores"][s].get("value") for r in records if r["scores"].get(s)]
        for s in scorers
    }
    comparison = None
    if compare_to is not None:
        result = compare_runs(store, compare_to, run)
        a_traces = store.eval_trace_ids(compare_to)
        comparison = {
            "run_a": result.run_a, "run_b": result.run_b, "dataset_a": result.dataset_a, "dataset_b": result.dataset_b,
            "scorers": result.scorers.to_dict(orient="records"),
            "regressed": result.regressed.to_dict(orient="records"),
            "improved": result.improved.to_dict(orient="records"),
            "new_errors": result.new_errors.to_dict(orient="records"),
            "a_traces": a_traces,
        }  # fmt: skip
    return _env().get_template("eval_report.html").render(
        run=info, records=records, scorers=scorers, values=values, summary=info.get("summary") or {},
        worst={s: worst_records(records, s) for s in scorers}, comparison=comparison,
        b_traces={r["record_id"]: r["trace_id"] for r in records}, trace_url=trace_url,
        generated=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), version=_version,
    )  # fmt: skip


def write_eval_report(
    store: DuckDBStore, run: str, path: str | Path, compare_to: str | None = None, trace_url: str | None = None
) -> Path:
    """Write the report to `path` (UTF-8) and return the path."""
    target = Path(path)
    target.write_text(eval_report_html(store, run, compare_to, trace_url), encoding="utf-8")
    return target
