"""`agenttrace scorers list`: every scorer the registry knows, built-in and third-party, with the
parameters `--scorer NAME:key=value` may set (read from each constructor's signature)."""

from __future__ import annotations

import inspect
from typing import Any

import click

from agenttrace.cli._common import json_option
from agenttrace.scoring import available_scorers, scorer_target


@click.group()
def scorers() -> None:
    """Discover the scorers that `eval run --scorer NAME[:key=value,...]` accepts."""


def _describe(name: str) -> dict[str, Any]:
    from agenttrace.evaluation.scorer_specs import parameters_of
    from evaluators.judges import Judge

    target = scorer_target(name)
    is_judge = isinstance(target, type) and issubclass(target, Judge)
    return {
        "name": name,
        "kind": "judge" if is_judge else "heuristic",
        "description": (inspect.getdoc(target) or "").split("\n\n")[0].replace("\n", " "),
        "parameters": [
            {"name": p.name, "default": None if p.required else p.default, "required": p.required, "type": p.annotation}
            for p in parameters_of(target)
        ],
    }


@scorers.command("list")
@json_option
def list_scorers(as_json: bool) -> None:
    """List registered scorers: kind, parameters (NAME:key=value) and a one-line description."""
    described = [_describe(name) for name in available_scorers()]
    if as_json:
        from agenttrace.cli._eval_report import emit_json

        emit_json({"scorers": described})
        return
    for s in described:
        params = ", ".join(
            f"{p['name']} (required)" if p["required"] else f"{p['name']}={p['default']!r}" for p in s["parameters"]
        )
        click.echo(f"{s['name']:<24} {s['kind']:<10} {s['description']}")
        if params:
            click.echo(f"{'':<24} {'':<10} parameters: {params}")
