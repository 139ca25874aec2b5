"""What `agenttrace eval` hands to CI: JSON documents, JUnit files, result files, comparison tables.

Machine-readable output has two rules. `--json` prints exactly one JSON document on stdout, with
NaN and infinities as null (strict parsers refuse them) and everything else (progress, warnings,
"wrote N rows") on stderr. Files keep values as the run produced them: a dict or list cell of a
CSV is its JSON text, never Python's repr, so it reads back as the same value.

JUnit (the format GitHub, GitLab and Jenkins test reporters read): one test case per record. A
record fails when a gated scorer fails on it (a boolean False, or a number under that scorer's
--fail-under minimum); it is an error when its prediction or a gated scorer raised. With no
--fail-under every scorer is gated. Under `--errors ignore` errored records are reported as
skipped, matching the summary that leaves them out.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from agenttrace.cli._render import console

__all__ = ["comparison_lines", "comparison_table", "emit_json", "error_warning", "json_safe", "write_junit"]


def json_safe(value: Any) -> Any:
    """Plain JSON values: NaN/inf become None, numpy scalars and timestamps become Python values."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is not None and not isinstance(value, str | int | float | bool) and hasattr(value, "isoformat"):
        return value.isoformat()
    try:
        import pandas as pd

        if value is not None and not isinstance(value, str | int | float | bool) and pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def emit_json(document: Any) -> None:
    """The one JSON document of a --json command, on stdout."""
    click.echo(json.dumps(json_safe(document), indent=2, default=str, allow_nan=False, ensure_ascii=False))


def error_warning(metrics: Mapping[str, Any], errors: str) -> str | None:
    """One warning line when records errored, saying how they were counted."""
    run = metrics.get("run", {})
    errored = int(run.get("errored_records") or 0)
    if not errored:
        return None
    how = "count as failures (--errors ignore leaves them out)"
    if errors != "fail":
        how = "are left out (--errors ignore)"
    predictions = int(run.get("prediction_errors") or 0)
    return (
        f"warning: {errored} of {run.get('records')} records errored ({predictions} in the agent, "
        f"{errored - predictions} only in scorers); their cells {how}"
    )


def write_output(path: str, frame: Any) -> None:
    """Per-record results as .csv (dict/list cells as JSON text), .parquet or JSON lines."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        out = frame.copy()
        for column in out.columns:
            if out[column].dtype == object:
                out[column] = [_csv_cell(v) for v in out[column]]
        out.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}).to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, default_handler=str)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(json_safe(value), ensure_ascii=False, default=str)
    return value


def _record_outcome(row: Mapping[str, Any], names: list[str], thresholds: Mapping[str, float]) -> tuple[str, str]:
    """('ok'|'failure'|'error', message) for one record's row of the results table."""
    if json_safe(row.get("error")):
        return "error", f"prediction failed: {row['error']}"
    errors, failures = [], []
    for name in names:
        error = json_safe(row.get(f"{name}/error"))
        if error:
            errors.append(f"{name}: {error}")
            continue
        value, why = json_safe(row.get(name)), json_safe(row.get(f"{name}/rationale")) or ""
        minimum = thresholds.get(name)
        if value is False or (
            minimum is not None and isinstance(value, int | float) and not isinstance(value, bool) and value < minimum
        ):
            shown = value if minimum is None else f"{value} < {minimum}"
            failures.append(f"{name} = {shown}: {why}".rstrip(": "))
    if errors:
        return "error", "; ".join(errors)
    if failures:
        return "failure", "; ".join(failures)
    return "ok", ""


def write_junit(
    path: str, frame: Any, scorers: list[str], thresholds: Mapping[str, float], suite: str, errors: str
) -> dict[str, int]:
    """One <testcase> per record; returns the counts written (tests, failures, errors, skipped)."""
    gated = [n for n in scorers if n in thresholds] if thresholds else list(scorers)
    cases, counts = [], {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seconds = 0.0
    for row in frame.to_dict(orient="records"):
        case = ET.Element("testcase", classname=f"agenttrace.eval.{suite}", name=str(row["record_id"]))
        latency = json_safe(row.get("latency_ms"))
        if isinstance(latency, int | float):
            case.set("time", f"{latency / 1000:.3f}")
            seconds += latency / 1000
        outcome, message = _record_outcome(row, gated, thresholds)
        if outcome == "error" and errors == "ignore":
            outcome = "skipped"
        if outcome != "ok":
            tag = {"failure": "failure", "error": "error", "skipped": "skipped"}[outcome]
            child = ET.SubElement(case, tag, message=message[:500])
            if tag != "skipped":
                child.set("type", tag)
                child.text = message
            counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[outcome]] += 1
        counts["tests"] += 1
        cases.append(case)
    root = ET.Element("testsuites", {k: str(v) for k, v in counts.items() if k != "skipped"})
    attributes = {
        "name": f"agenttrace eval {suite}",
        "time": f"{seconds:.3f}",
        **{k: str(v) for k, v in counts.items()},
    }
    suite_element = ET.SubElement(root, "testsuite", attributes)
    suite_element.extend(cases)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return counts


def comparison_table(result: Any) -> Table:
    table = Table(title=f"A = {result.run_a[:12]}  B = {result.run_b[:12]}")
    for column in ("scorer", "A", "B", "B − A", "95% CI", "p-value", "pairs", "new errors"):
        table.add_column(column, justify="left" if column == "scorer" else "right")
    for row in result.scorers.to_dict(orient="records"):
        row = json_safe(row)
        low, high = row.get("ci95_low"), row.get("ci95_high")
        table.add_row(
            row["scorer"],
            *(f"{row[k]:.3f}" if row[k] is not None else "" for k in ("a", "b", "delta")),
            f"{low:+.3f} – {high:+.3f}" if low is not None and high is not None else "",
            f"{row['p_value']:.3g}" if row["p_value"] is not None else "",
            str(row["pairs"]),
            str(row.get("new_errors") or 0),
        )
    return table


def comparison_lines(result: Any, show_records: int) -> list[str]:
    """The record sections under the table: regressed, now failing with an error, improved."""
    lines = []
    plain_regressions = result.regressed[result.regressed.error.isna()]
    sections = (
        ("regressed", plain_regressions),
        ("now failing with an error", result.new_errors),
        ("improved", result.improved),
    )
    for label, frame in sections:
        lines.append(f"{label}: {len(frame)} record-scores")
        for row in frame.head(show_records).to_dict(orient="records"):
            row = json_safe(row)
            if label == "now failing with an error":
                lines.append(f"  {row['record_id']}  {row['scorer']}: {str(row['error'])[:100]}")
            elif row.get("error"):
                lines.append(f"  {row['record_id']}  {row['scorer']}: error fixed -> {_num(row['b'])}")
            else:
                lines.append(f"  {row['record_id']}  {row['scorer']}: {_num(row['a'])} -> {_num(row['b'])}")
    return lines


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else str(value)


def print_comparison(result: Any, show_records: int) -> None:
    console().print(comparison_table(result))
    for line in comparison_lines(result, show_records):
        click.echo(line)
