"""The `agenttrace` command line: one click group, one module per command group.

Errors are mapped to exit codes here and only here: an AgentTraceError prints one line
`error: <message>` on stderr and exits 1; usage errors exit 2 (click's own convention).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from agenttrace.cli.agents import agents
from agenttrace.cli.datasets import datasets
from agenttrace.cli.eval import eval_group
from agenttrace.cli.experiments import experiments
from agenttrace.cli.monitor import monitor
from agenttrace.cli.runs import runs
from agenttrace.cli.scorers import scorers
from agenttrace.cli.serve import serve
from agenttrace.cli.server import server
from agenttrace.cli.status import status
from agenttrace.cli.store import store
from agenttrace.cli.traces import traces
from agenttrace.cli.ui import ui
from agenttrace.errors import AgentTraceError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AgentTraceError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="agenttrace")
def cli() -> None:
    """agenttrace: trace and evaluate LLM agents, stored in one DuckDB file."""


cli.add_command(traces)
cli.add_command(status)
cli.add_command(server)
cli.add_command(eval_group)
cli.add_command(scorers)
cli.add_command(agents)
cli.add_command(runs)
cli.add_command(experiments)
cli.add_command(datasets)
cli.add_command(ui)
cli.add_command(serve)
cli.add_command(monitor)
cli.add_command(store)


def main() -> None:
    cli()
