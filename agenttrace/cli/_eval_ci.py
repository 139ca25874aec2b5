"""The CI side of `agenttrace eval run`: options, checks made before anything runs, and the verdict.

Everything that can be refused is refused before the agent runs, so a typo in a CI file costs
seconds, not a whole evaluation: thresholds that are not numbers or name no --scorer, an error
budget that is not N or P%, scorer parameters the scorer does not take (resolved by evaluate()
before the first record), and a --baseline run over another dataset version (refused naming
both, unless --allow-dataset-change). After the run one function decides the exit code from the
thresholds, the error budget and the baseline comparison, and prints or emits the outcome.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from agenttrace.cli._eval_report import (
    emit_json,
    error_warning,
    print_comparison,
    write_junit,
    write_output,
)
from agenttrace.cli._render import console, run_line, scorer_table
from agenttrace.errors import InvalidArgumentError
from agenttrace.evaluation.gates import (
    ErrorBudget,
    check_thresholds,
    parse_error_budget,
    parse_thresholds,
    regression_failures,
)
from agenttrace.evaluation.scorer_specs import parse_spec, spec_name
from agenttrace.store import DuckDBStore

__all__ = ["RunChecks", "judge_options", "prepare", "regression_options", "report"]


def judge_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--judge-timeout, --judge-retries, --judge-temperature, --judge-max-concurrency → judge_settings."""

    @click.option("--judge-timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds per judge call.")
    @click.option("--judge-retries", type=click.IntRange(min=0), help="Retries on 429, 5xx and timeouts [default: 5].")
    @click.option("--judge-temperature", type=click.FloatRange(min=0), help="Judge sampling temperature [default: 0].")
    @click.option(
        "--judge-max-concurrency",
        type=click.IntRange(min=1),
        help="Most judge calls in flight per endpoint [default: --concurrency].",
    )
    @functools.wraps(fn)
    def wrapper(
        *args: Any,
        judge_timeout: float | None,
        judge_retries: int | None,
        judge_temperature: float | None,
        judge_max_concurrency: int | None,
        **kwargs: Any,
    ) -> Any:
        given = {
            "timeout": judge_timeout,
            "max_retries": judge_retries,
            "temperature": judge_temperature,
            "max_concurrency": judge_max_concurrency,
        }
        return fn(*args, judge_settings={k: v for k, v in given.items() if v is not None}, **kwargs)

    return wrapper


def regression_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--fail-on-regression and --alpha, shared by `eval compare` and `eval run --baseline`."""

    @click.option(
        "--fail-on-regression",
        is_flag=True,
        help="Exit 1 if a scorer regressed significantly (p < alpha) or a record now fails with an error.",
    )
    @click.option(
        "--alpha",
        default=0.05,
        show_default=True,
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        help="Significance level for --fail-on-regression.",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


@dataclass
class RunChecks:
    """What `prepare` validated: the gates to apply after the run."""

    thresholds: dict[str, float]
    errors: str = "fail"
    budget: ErrorBudget | None = None
    baseline: str | None = None  # the baseline's eval_run_id
    names: list[str] = field(default_factory=list)
    suite: str = "run"  # the dataset's name, for JUnit's test suite and class names


def prepare(
    store: DuckDBStore,
    data: str,
    scorers: tuple[str, ...],
    fail_under: tuple[str, ...],
    errors: str,
    max_errors: str | None,
    baseline: str | None,
    allow_dataset_change: bool,
) -> RunChecks:
    """Refuse bad gate arguments before the run; see the module docstring."""
    try:
        thresholds = parse_thresholds(fail_under)
    except InvalidArgumentError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-under") from None
    try:
        names = [spec_name(s) for s in scorers]
        for spec in scorers:
            parse_spec(spec)
    except InvalidArgumentError as exc:
        raise click.BadParameter(str(exc), param_hint="--scorer") from None
    unknown = sorted(set(thresholds) - set(names))
    if unknown:
        raise click.BadParameter(
            f"{unknown[0]!r} is not one of the --scorer names ({', '.join(names)})", param_hint="--fail-under"
        )
    try:
        budget = parse_error_budget(max_errors) if max_errors is not None else None
    except InvalidArgumentError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-errors") from None
    baseline_id = None
    if baseline is not None:
        from agenttrace.evaluation.datasets import dataset_ref

        info, _ = store.load_eval_run(baseline)
        baseline_id = info["eval_run_id"]
        name, version = dataset_ref(data, store)
        theirs = f"{info['dataset_name']}@{info['dataset_version']}"
        if info["dataset_version"] != version and not allow_dataset_change:
            raise InvalidArgumentError(
                f"baseline run {baseline_id[:12]} evaluated dataset {theirs}, this run would evaluate "
                f"{name}@{version}; records would be compared across versions. Evaluate the same dataset "
                "version, or pass --allow-dataset-change to compare anyway"
            )
    suite = Path(data).stem if Path(data).suffix else data.partition("@")[0]
    return RunChecks(thresholds, errors, budget, baseline_id, names, suite)


def report(
    store: DuckDBStore,
    result: Any,
    checks: RunChecks,
    *,
    output: str | None,
    junit: str | None,
    as_json: bool,
    fail_on_regression: bool,
    alpha: float,
    show_records: int = 10,
) -> int:
    """Print (or emit as JSON) the run, write the files asked for, and return the exit code."""
    table = result.tables["eval_results"]
    failures = check_thresholds(result.metrics, checks.thresholds, checks.errors, checks.budget)
    comparison = None
    if checks.baseline is not None:
        from agenttrace.evaluation.compare import compare_runs

        comparison = compare_runs(store, checks.baseline, result.eval_run_id)
        if fail_on_regression:
            failures += regression_failures(comparison, alpha)
    warning = error_warning(result.metrics, checks.errors)
    if output:
        write_output(output, table)
        click.echo(f"wrote {len(table)} rows to {output}", err=True)
    junit_counts = None
    if junit:
        names = list(result.metrics.get("scorers", {}))
        junit_counts = write_junit(junit, table, names, checks.thresholds, checks.suite, checks.errors)
        click.echo(f"wrote JUnit results for {junit_counts['tests']} records to {junit}", err=True)
    if as_json:
        emit_json(
            {
                "eval_run_id": result.eval_run_id,
                "status": result.status,
                "metrics": result.metrics,
                "gates": {"passed": not failures, "failures": failures, "errors": checks.errors},
                "comparison": comparison.to_dict() if comparison is not None else None,
                "junit": junit_counts,
            }
        )
    else:
        console().print(scorer_table(result.metrics))
        click.echo(run_line(result.metrics))
        click.echo(f"eval run {result.eval_run_id}  {result.status}")
        if comparison is not None:
            print_comparison(comparison, show_records)
    if warning:
        click.echo(warning, err=True)
    if failures:
        click.echo("threshold failed: " + "; ".join(failures), err=True)
        return 1
    return 0


def exit_with(code: int) -> None:
    if code:
        sys.exit(code)
