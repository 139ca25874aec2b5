"""`agenttrace scorers list`: every scorer the registry knows, built-in and third-party."""

from __future__ import annotations

import inspect

import click

from agenttrace.scoring import available_scorers, scorer_target


@click.group()
def scorers() -> None:
    """Discover the scorers that `eval run --scorer NAME` accepts."""


@scorers.command("list")
def list_scorers() -> None:
    """List registered scorers with their kind and a one-line description."""
    from evaluators.judges import Judge

    for name in available_scorers():
        target = scorer_target(name)
        doc = (inspect.getdoc(target) or "").split("\n\n")[0].replace("\n", " ")
        is_judge = isinstance(target, type) and issubclass(target, Judge)
        click.echo(f"{name:<24} {'judge' if is_judge else 'heuristic':<10} {doc}")
