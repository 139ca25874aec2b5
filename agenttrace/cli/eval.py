"""`agenttrace eval`: run an evaluation (a CI gate with --fail-under), list, show and compare runs."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from agenttrace.cli._common import json_option, shorten, store_option, text
from agenttrace.cli._eval_ci import judge_options, prepare, regression_options, report
from agenttrace.cli._eval_report import emit_json, error_warning, print_comparison
from agenttrace.cli._render import console, run_line, scorer_table
from agenttrace.errors import EvaluationError
from agenttrace.evaluation.gates import regression_failures
from agenttrace.evaluation.metrics import headline
from agenttrace.store import DuckDBStore


@click.group("eval")
def eval_group() -> None:
    """Evaluate an agent on a dataset, and inspect or compare stored runs."""


def load_callable(spec: str) -> Any:
    """'package.module:function' or 'path/to/file.py:function'."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise click.BadParameter(f"{spec!r}: use module:function or path/to/file.py:function", param_hint="--agent")
    try:
        if target.endswith(".py"):
            path = Path(target).resolve()
            if not path.is_file():
                raise click.BadParameter(f"no file {target}", param_hint="--agent")
            sys.path.insert(0, str(path.parent))  # so the file can import its neighbours
            spec_obj = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec_obj)  # type: ignore[arg-type]
            sys.modules[path.stem] = module
            spec_obj.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(target)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import {target!r}: {exc}", param_hint="--agent") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise click.BadParameter(f"{target} has no callable {attr!r}", param_hint="--agent")
    return fn


@eval_group.command("run")
@click.option("--data", required=True, help="Dataset: a .jsonl/.csv/.parquet file or a stored dataset name[@version].")
@click.option(
    "--agent",
    "agent_spec",
    required=True,
    help="What to evaluate: module:function, file.py:function, or a registered agent NAME, NAME@ALIAS, NAME/3.",
)
@click.option(
    "--scorer",
    "scorers",
    multiple=True,
    required=True,
    help="Scorer name, with parameters as NAME:key=value,key=value (repeatable); see `agenttrace scorers list`.",
)
@click.option("--judge-model", default=None, help="Model for LLM judges [default: AGENTTRACE_JUDGE_MODEL].")
@click.option(
    "--judge-base-url", default=None, help="OpenAI-compatible endpoint for judges [default: OPENAI_BASE_URL]."
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1), help="Records in flight.")
@click.option("--fail-under", "fail_under", multiple=True, help="SCORER=MIN: exit 1 if its mean/pass rate is lower.")
@click.option(
    "--errors",
    type=click.Choice(["fail", "ignore"]),
    default="fail",
    show_default=True,
    help="Errored cells (agent or scorer raised) count as failures in rates and gates, or are left out.",
)
@click.option("--max-errors", default=None, metavar="N|P%", help="Exit 1 if more than N (or P%) records errored.")
@click.option("--output", "-o", default=None, help="Write per-record results (.jsonl, .csv or .parquet).")
@click.option("--junit", default=None, metavar="PATH", help="Write a JUnit XML file: one test case per record.")
@click.option(
    "--report", "report_path", default=None, metavar="PATH",
    help="Write a self-contained HTML report (with the --baseline comparison when given).",
)  # fmt: skip
@click.option("--baseline", default=None, metavar="RUN", help="Compare with this run afterwards (id, prefix or name).")
@click.option(
    "--allow-dataset-change", is_flag=True, help="Let --baseline compare runs over different dataset versions."
)
@regression_options
@judge_options
@json_option
@click.option("--name", "run_name", default=None, help="A name for this run.")
@click.option("--agent-version", default=None, help="Version label stamped on the run and its traces.")
@store_option
def run(
    store: DuckDBStore,
    data: str,
    agent_spec: str,
    scorers: tuple[str, ...],
    judge_model: str | None,
    judge_base_url: str | None,
    concurrency: int,
    fail_under: tuple[str, ...],
    errors: str,
    max_errors: str | None,
    output: str | None,
    junit: str | None,
    report_path: str | None,
    baseline: str | None,
    allow_dataset_change: bool,
    fail_on_regression: bool,
    alpha: float,
    judge_settings: dict[str, Any],
    as_json: bool,
    run_name: str | None,
    agent_version: str | None,
) -> None:
    """Run the agent over the dataset, score every answer, print a summary; exit 1 if a gate fails.

    Gates: --fail-under minimums (errored cells count as failures unless --errors ignore),
    --max-errors, and with --baseline and --fail-on-regression a significant regression or a record
    that now fails with an error.
    """
    import agenttrace

    checks = prepare(store, data, scorers, fail_under, errors, max_errors, baseline, allow_dataset_change)
    agenttrace.configure(store=str(store.path))
    if ":" in agent_spec:
        predict_fn = load_callable(agent_spec)
        agent_name = agent_spec.rpartition(":")[2]
        agent: Any = (agent_name, agent_version) if agent_version else agent_name
    else:  # a registered version, bound to its config and prompts, stamped with its version id
        if agent_version:
            raise click.BadParameter(
                "a registered agent has its own version; drop --agent-version", param_hint="--agent"
            )
        predict_fn = agent = agenttrace.load_agent(agent_spec)
    try:
        result = agenttrace.evaluate(
            data,
            predict_fn,
            scorers=list(scorers),
            run_name=run_name,
            concurrency=concurrency,
            agent=agent,
            judge_model=judge_model,
            judge_base_url=judge_base_url,
            judge_options=judge_settings,
            progress=None if as_json else True,
        )
    except KeyboardInterrupt:
        click.echo("interrupted: the results so far are kept; see `agenttrace eval list`", err=True)
        sys.exit(130)
    if report_path:  # before the gates: a failing run is the one whose report is wanted most
        from agenttrace.reports import write_eval_report

        write_eval_report(store, result.eval_run_id, report_path, compare_to=baseline)
        click.echo(f"wrote report {report_path}", err=True)
    code = report(
        store,
        result,
        checks,
        output=output,
        junit=junit,
        as_json=as_json,
        fail_on_regression=fail_on_regression,
        alpha=alpha,
    )
    if code:
        sys.exit(code)


@eval_group.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@json_option
@store_option
def list_runs(store: DuckDBStore, limit: int, as_json: bool) -> None:
    """List evaluation runs, newest first (FINISHED_WITH_ERRORS: some record errored)."""
    frame = store.list_eval_runs(limit)
    if as_json:
        emit_json({"runs": frame.to_dict(orient="records")})
        return
    table = Table()
    for column in ("eval_run_id", "name", "status", "dataset", "agent", "records", "started", "headline"):
        table.add_column(column, no_wrap=column == "eval_run_id")
    for row in frame.to_dict(orient="records"):
        scores = (row["summary"] or {}).get("scorers", {})
        first = next(iter(scores.items()), None)
        head = f"{first[0]} {headline(first[1]):.3f}" if first and headline(first[1]) is not None else ""
        version = text(row["agent_version"])
        table.add_row(
            row["eval_run_id"],
            text(row["name"]),
            row["status"],
            f"{row['dataset_name']}@{row['dataset_version']}",
            f"{text(row['agent_name'])}{'@' + version if version else ''}",
            text(row["record_count"]),
            text(row["started"])[:19],
            head,
        )
    console().print(table)


@eval_group.command("show")
@click.argument("run_ref")
@click.option("--rows", default=10, show_default=True, help="Per-record rows to print.")
@json_option
@store_option
def show(store: DuckDBStore, run_ref: str, rows: int, as_json: bool) -> None:
    """Show one run (by id, id prefix or name): its summary and per-record scores."""
    info, records = store.load_eval_run(run_ref)
    if as_json:
        emit_json({"run": info, "records": records})
        return
    click.echo(
        f"eval run {info['eval_run_id']}  {info['status']}  dataset {info['dataset_name']}@"
        f"{info['dataset_version']}  agent {info['agent_name'] or '-'}@{info['agent_version'] or '-'}  "
        f"judge {info['judge_model'] or '-'}"
    )
    summary = info.get("summary") or {}
    out = console()
    out.print(scorer_table(summary))
    click.echo(run_line(summary))
    table = Table(title=f"first {min(rows, len(records))} of {len(records)} records")
    names = list(info.get("scorers") or [])
    for column in ("record", "trace_id", "outputs", *names):
        table.add_column(column, overflow="ellipsis")
    for r in records[:rows]:
        cells = [(r["scores"].get(n) or {}) for n in names]
        table.add_row(
            r["record_id"],
            r["trace_id"] or "",
            r["error"] or shorten(r["outputs"], 40),
            *["error" if c.get("error") else shorten(c.get("value"), 12) for c in cells],
        )
    out.print(table)
    warning = error_warning(summary, "fail")
    if warning:
        click.echo(warning, err=True)


@eval_group.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--show-records", default=10, show_default=True, help="Regressed/improved records to list.")
@regression_options
@json_option
@store_option
def compare(
    store: DuckDBStore, run_a: str, run_b: str, show_records: int, fail_on_regression: bool, alpha: float, as_json: bool
) -> None:
    """Compare two runs record by record: deltas (B − A) with 95% intervals, paired p-values,
    regressions and records now failing with an error (errored cells count as failures)."""
    from agenttrace.evaluation.compare import compare_runs

    result = compare_runs(store, run_a, run_b)
    if result.scorers.empty:
        raise EvaluationError("the two runs share no scorer with values to compare")
    failures = regression_failures(result, alpha) if fail_on_regression else []
    if result.dataset_a != result.dataset_b:
        click.echo(f"warning: A evaluated {result.dataset_a}, B evaluated {result.dataset_b}", err=True)
    if as_json:
        emit_json({**result.to_dict(), "gates": {"passed": not failures, "failures": failures}})
    else:
        print_comparison(result, show_records)
    if failures:
        click.echo("regression: " + "; ".join(failures), err=True)
        sys.exit(1)


@eval_group.command("report")
@click.argument("run_ref")
@click.option("--compare", "compare_to", default=None, metavar="RUN_A", help="Add the comparison against this run (A).")
@click.option("--output", "-o", required=True, metavar="PATH", help="The HTML file to write.")
@click.option(
    "--trace-url", default=None, metavar="URL",
    help="Link trace ids to a running UI, e.g. http://127.0.0.1:8318/ui/traces/ (default: ids as text).",
)  # fmt: skip
@store_option
def report_command(
    store: DuckDBStore, run_ref: str, compare_to: str | None, output: str, trace_url: str | None
) -> None:
    """Write one self-contained HTML file (inline CSS and SVG, no scripts) for a run: summary,
    per-scorer distributions, worst records with rationales and trace ids, and the comparison
    when asked. Something to attach to a CI run or a pull request."""
    from agenttrace.reports import write_eval_report

    path = write_eval_report(store, run_ref, output, compare_to=compare_to, trace_url=trace_url)
    click.echo(f"wrote {path}")
