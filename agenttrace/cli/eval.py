"""`agenttrace eval`: run an evaluation (a CI gate with --fail-under), list, show and compare runs."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from agenttrace.cli._common import shorten, store_option, text
from agenttrace.cli._render import console, run_line, scorer_table
from agenttrace.errors import EvaluationError
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


def _thresholds(items: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(
                f"{item!r}: use SCORER=NUMBER, like correctness=0.8", param_hint="--fail-under"
            ) from None
        if not sep:
            raise click.BadParameter(f"{item!r}: use SCORER=NUMBER", param_hint="--fail-under")
    return out


def _write_output(path: str, frame: Any) -> None:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}).to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, default_handler=str)


@eval_group.command("run")
@click.option("--data", required=True, help="Dataset: a .jsonl/.csv/.parquet file or a stored dataset name[@version].")
@click.option(
    "--agent",
    "agent_spec",
    required=True,
    help="What to evaluate: module:function, file.py:function, or a registered agent NAME, NAME@ALIAS, NAME/3.",
)
@click.option(
    "--scorer", "scorers", multiple=True, required=True, help="Scorer name (repeatable); see `agenttrace scorers list`."
)
@click.option("--judge-model", default=None, help="Model for LLM judges [default: AGENTTRACE_JUDGE_MODEL].")
@click.option(
    "--judge-base-url", default=None, help="OpenAI-compatible endpoint for judges [default: OPENAI_BASE_URL]."
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1), help="Records in flight.")
@click.option("--fail-under", "fail_under", multiple=True, help="SCORER=MIN: exit 1 if its mean/pass rate is lower.")
@click.option("--output", "-o", default=None, help="Write per-record results (.jsonl, .csv or .parquet).")
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
    output: str | None,
    run_name: str | None,
    agent_version: str | None,
) -> None:
    """Run the agent over the dataset, score every answer, print a summary; exit 1 if a threshold fails."""
    import agenttrace

    thresholds = _thresholds(fail_under)
    unknown = sorted(set(thresholds) - set(scorers))
    if unknown:
        raise click.BadParameter(f"{unknown[0]!r} is not one of the --scorer names", param_hint="--fail-under")
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
            progress=True,
        )
    except KeyboardInterrupt:
        click.echo("interrupted: the results so far are kept; see `agenttrace eval list`", err=True)
        sys.exit(130)
    out = console()
    out.print(scorer_table(result.metrics))
    click.echo(run_line(result.metrics))
    click.echo(f"eval run {result.eval_run_id}")
    if output:
        _write_output(output, result.tables["eval_results"])
        click.echo(f"wrote {len(result.tables['eval_results'])} rows to {output}")
    failed = []
    for name, minimum in thresholds.items():
        value = headline(result.metrics["scorers"].get(name, {}))
        if value is None or not value >= minimum:  # NaN fails too
            failed.append(f"{name} = {value if value is None else round(value, 4)} < {minimum}")
    if failed:
        click.echo("threshold failed: " + "; ".join(failed), err=True)
        sys.exit(1)


@eval_group.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@store_option
def list_runs(store: DuckDBStore, limit: int) -> None:
    """List evaluation runs, newest first."""
    frame = store.list_eval_runs(limit)
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
@click.option("--json", "as_json", is_flag=True, help="Print the run and its records as JSON.")
@store_option
def show(store: DuckDBStore, run_ref: str, rows: int, as_json: bool) -> None:
    """Show one run (by id, id prefix or name): its summary and per-record scores."""
    info, records = store.load_eval_run(run_ref)
    if as_json:
        click.echo(json.dumps({"run": info, "records": records}, default=str, indent=2))
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


@eval_group.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--show-records", default=10, show_default=True, help="Regressed/improved records to list.")
@store_option
def compare(store: DuckDBStore, run_a: str, run_b: str, show_records: int) -> None:
    """Compare two runs record by record: deltas (B − A), paired p-values, regressions."""
    from agenttrace.evaluation.compare import compare_runs

    result = compare_runs(store, run_a, run_b)
    if result.scorers.empty:
        raise EvaluationError("the two runs share no scorer with values to compare")
    table = Table(title=f"A = {result.run_a[:12]}  B = {result.run_b[:12]}")
    for column in ("scorer", "A", "B", "B − A", "p-value", "pairs"):
        table.add_column(column, justify="left" if column == "scorer" else "right")
    for row in result.scorers.to_dict(orient="records"):
        table.add_row(
            row["scorer"],
            *(f"{row[k]:.3f}" if row[k] is not None else "" for k in ("a", "b", "delta")),
            f"{row['p_value']:.3g}" if row["p_value"] is not None else "",
            str(row["pairs"]),
        )
    out = console()
    out.print(table)
    for label, frame in (("regressed", result.regressed), ("improved", result.improved)):
        click.echo(f"{label}: {len(frame)} record-scores")
        for row in frame.head(show_records).to_dict(orient="records"):
            click.echo(f"  {row['record_id']}  {row['scorer']}: {row['a']:.3f} -> {row['b']:.3f}")
