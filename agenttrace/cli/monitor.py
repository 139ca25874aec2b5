"""`agenttrace monitor`: scorers on a sample of an agent's live traces (see agenttrace.monitoring)."""

from __future__ import annotations

import json
import math
import signal
import sys
from datetime import datetime
from typing import Any

import click
from rich.table import Table

from agenttrace.cli._common import plain, store_option, text
from agenttrace.cli._render import console
from agenttrace.store import DuckDBStore


@click.group("monitor")
def monitor() -> None:
    """Score a sample of an agent's new traces continuously; quality over time and alerts."""


def _use(store: DuckDBStore) -> None:
    import agenttrace

    agenttrace.configure(store=str(store.path))


def _since_ns(text_value: str | None) -> int | None:
    if text_value is None:
        return None
    if text_value == "all":
        return 0
    try:
        moment = datetime.fromisoformat(text_value)
    except ValueError:
        raise click.BadParameter(
            f"{text_value!r}: give 'all' or an ISO date like 2026-11-01", param_hint="--since"
        ) from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1e9)


@monitor.command("add")
@click.option("--agent", required=True, help="The registered agent's name.")
@click.option("--version", default=None, help="Only this version or alias (an alias is followed as it moves).")
@click.option("--scorer", required=True, help="A scorer spec: exact_match, regex_match:pattern=^ok, correctness, ...")
@click.option("--sample", default=1.0, show_default=True, type=float, help="Fraction of traces scored, by trace id.")
@click.option("--filter", "filter_string", default=None, help="Only traces matching this trace filter.")
@click.option("--alert", "alerts", multiple=True, help="A breach condition, e.g. 'correctness<0.8' (repeatable).")
@click.option("--alert-window", default="1h", show_default=True, help="Window the alerts are computed over.")
@click.option("--webhook", default=None, help="POST each breach as JSON to this URL.")
@click.option("--judge-model", default=None, help="Model for a judge scorer (else AGENTTRACE_JUDGE_MODEL).")
@click.option("--since", default=None, help="Also score traces from this date ('all': the whole backlog).")
@click.option("--json", "as_json", is_flag=True, help="Print the monitor as JSON.")
@store_option
def add(
    store: DuckDBStore, agent: str, version: str | None, scorer: str, sample: float, filter_string: str | None,
    alerts: tuple[str, ...], alert_window: str, webhook: str | None, judge_model: str | None, since: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Register a scorer to run on a sample of AGENT's traces from now on."""
    from agenttrace.monitoring import add_monitor

    _use(store)
    found = add_monitor(
        agent, scorer, version=version, sample=sample, filter_string=filter_string, alerts=alerts,
        alert_window=alert_window, webhook=webhook, judge_model=judge_model, since_ns=_since_ns(since), store=store,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(found, default=str))
    else:
        click.echo(f"monitor {found['monitor_id']}: {scorer} on {agent}" + (f"/{version}" if version else ""))


@monitor.command("list")
@click.option("--agent", default=None, help="Only this agent's monitors.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@store_option
def list_(store: DuckDBStore, agent: str | None, as_json: bool) -> None:
    """List monitors with what they score and how many traces they have scored."""
    from agenttrace.monitoring import list_monitors

    rows = list_monitors(agent, store=store)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str))
        return
    table = Table("id", "agent", "version", "scorer", "sample", "filter", "alerts", "scored")
    for r in rows:
        alerts = ", ".join(f"{a['metric']}{a['op']}{a['threshold']:g}" for a in r["alerts"])
        table.add_row(
            r["monitor_id"], r["agent_name"], r["agent_version"] or "all", r["scorer"], f"{r['sample']:g}",
            r["filter"] or "", alerts, str(r["scored"]),
        )  # fmt: skip
    console().print(table)


@monitor.command("remove")
@click.argument("monitor_id")
@store_option
def remove(store: DuckDBStore, monitor_id: str) -> None:
    """Remove a monitor (its scores stay on the traces)."""
    from agenttrace.monitoring import remove_monitor

    click.echo(f"removed monitor {remove_monitor(monitor_id, store=store)}")


@monitor.command("run")
@click.option("--monitor", "monitors", multiple=True, help="Only these monitor ids (repeatable).")
@click.option("--follow", is_flag=True, help="Keep scoring new traces until stopped (Ctrl-C).")
@click.option(
    "--batch", default=None, type=click.IntRange(1, 100_000),
    help="Traces per claim [default: 5000 for code scorers, 10 per concurrent call for judges].",
)  # fmt: skip
@click.option(
    "--poll", "poll_s", default=5.0, show_default=True, type=click.FloatRange(min=0.01), help="Idle wait (s)."
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 256), help="Judge calls at once.")
@click.option("--judge-timeout", default=None, type=click.FloatRange(min=0.001), help="Seconds per judge attempt.")
@click.option("--judge-max-retries", default=None, type=click.IntRange(0, 100), help="Judge retries per call.")
@store_option
def run(
    store: DuckDBStore, monitors: tuple[str, ...], follow: bool, batch: int | None, poll_s: float, concurrency: int,
    judge_timeout: float | None, judge_max_retries: int | None,
) -> None:  # fmt: skip
    """Score the backlog of every monitor once (for cron), or keep going with --follow.

    Exits 1 when an alert breached (each breach printed, and POSTed to the monitor's webhook), or
    when a judge endpoint was unavailable and work was left for the next run.
    """
    from agenttrace.monitoring import Breach, post_webhook, run_monitors

    _use(store)
    hooks = {m["monitor_id"]: m.get("webhook") for m in store.list_monitors()}
    stopping = {"now": False}

    def notify(breach: Breach) -> None:
        click.echo(str(breach))
        sys.stdout.flush()
        url = hooks.get(breach.monitor_id) or next(
            (m.get("webhook") for m in store.list_monitors() if m["monitor_id"] == breach.monitor_id), None
        )
        if url:
            post_webhook(url, breach)

    def stop(signum: int, frame: Any) -> None:
        stopping["now"] = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        report = run_monitors(
            list(monitors) or None, follow=follow, batch=batch, poll_s=poll_s, concurrency=concurrency,
            judge_options={k: v for k, v in (("timeout", judge_timeout), ("max_retries", judge_max_retries))
                           if v is not None},
            store=store, notify=notify, should_stop=lambda: stopping["now"],
        )  # fmt: skip
    except KeyboardInterrupt:
        click.echo("monitor run stopped", err=True)
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
    rate = report.total / report.elapsed_s if report.elapsed_s > 0 else 0.0
    errors = sum(report.errors.values())
    click.echo(f"scored {report.total} traces in {report.elapsed_s:.2f} s ({rate:,.0f}/s); {errors} scorer errors")
    for monitor_id, why in report.deferred.items():
        click.echo(f"monitor {monitor_id}: work left for the next run: {why}", err=True)
    if report.breaches or report.deferred:
        sys.exit(1)


@monitor.command("report")
@click.option("--agent", required=True, help="The agent's name.")
@click.option("--window", default="1h", show_default=True, help="Window length: 1h, 1d, 15m, ...")
@click.option("--since", default=None, help="From this ISO date, or a duration back from now like 7d.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per window and version.")
@store_option
def report(store: DuckDBStore, agent: str, window: str, since: str | None, as_json: bool) -> None:
    """Per version and window: scores with 95% intervals, error rate, latency, tokens."""
    from agenttrace.monitoring import quality_over_time

    frame = quality_over_time(agent, window, since, store=store)
    if as_json:
        for row in frame.to_dict("records"):
            click.echo(json.dumps({k: plain(v) for k, v in row.items()}, default=str))
        return
    scorers = [c for c in frame.columns if f"{c}.low" in frame.columns]
    table = Table("window", "version", "traces", "errors", "p50 ms", "p95 ms", "tokens", *scorers)
    for row in frame.to_dict("records"):
        cells = []
        for s in scorers:
            value = plain(row[s])
            if value is None:
                cells.append("")
                continue
            low, high = plain(row[f"{s}.low"]), plain(row[f"{s}.high"])
            interval = f" [{low:.2f}, {high:.2f}]" if low is not None and not math.isnan(low) else ""
            cells.append(f"{value:.3f}{interval} n={int(row[f'{s}.n'])}")
        cells_head = [
            row["window_start"].strftime("%Y-%m-%d %H:%M"), text(row["agent_version"]), str(int(row["traces"])),
            f"{row['error_rate']:.1%}", _ms(row["latency_p50_ms"]), _ms(row["latency_p95_ms"]),
            text(row["total_tokens"]),
        ]  # fmt: skip
        table.add_row(*cells_head, *cells)
    console().print(table)


def _ms(value: Any) -> str:
    value = plain(value)
    return "" if value is None else f"{value:.1f}"
