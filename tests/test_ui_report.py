"""One-file HTML reports (`agenttrace eval report`, `eval run --report`), the SVG charts, and `agenttrace ui`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agenttrace.cli import cli
from agenttrace.reports import charts
from agenttrace.reports._eval import worst_records
from tests.browser import Built, copy_of_store
from tests.server_harness import http

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Built]:
    return copy_of_store(tmp_path_factory, "ui-report")


def _external_references(html: str) -> list[str]:
    """Every src/href that would make a browser fetch something."""
    return re.findall(r'(?:src|href)\s*=\s*"(?!#)([^"]*)"', html)


def test_eval_report_writes_one_self_contained_file(built: tuple[Path, Built], tmp_path: Path) -> None:
    path, ids = built
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli, ["eval", "report", ids.run_b, "--compare", ids.run_a, "-o", str(out), "--store", str(path)]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "<script" not in html and _external_references(html) == []
    assert html.count('<svg class="chart"') == 3  # a distribution per scorer and the comparison
    worst = html[html.index('id="worst"') : html.index('id="comparison"')]
    assert "q2" in worst and "q5" in worst and "differs from" in worst  # rationales of the failing records
    assert re.search(r"<code title=\"agenttrace traces show [0-9a-f]{32}\">", worst)
    comparison = html[html.index('id="comparison"') :]
    assert "Regressed (4)" in comparison  # q2 and q5 on both scorers


def test_trace_url_turns_trace_ids_into_links(built: tuple[Path, Built], tmp_path: Path) -> None:
    path, ids = built
    out = tmp_path / "linked.html"
    args = ["eval", "report", ids.run_b, "-o", str(out), "--trace-url", "http://ci.example:8318/ui/traces/"]
    assert CliRunner().invoke(cli, [*args, "--store", str(path)]).exit_code == 0
    links = _external_references(out.read_text(encoding="utf-8"))
    assert links and all(re.fullmatch(r"http://ci\.example:8318/ui/traces/[0-9a-f]{32}", link) for link in links)


def test_unknown_run_is_one_error_line(built: tuple[Path, Built], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["eval", "report", "nope", "-o", str(tmp_path / "x.html"), "--store", str(built[0])]
    )
    assert result.exit_code == 1 and "no eval run 'nope'" in result.output
    assert not (tmp_path / "x.html").exists()


def test_eval_run_report_writes_the_report_in_the_same_step(tmp_path: Path) -> None:
    store, out = tmp_path / "run.duckdb", tmp_path / "ci.html"
    args = ["eval", "run", "--data", str(ROOT / "datasets" / "rag_qa" / "rag_qa.jsonl"),
            "--agent", f"{ROOT / 'examples' / 'demo_agent.py'}:answer", "--scorer", "contains",
            "--name", "ci-run", "--report", str(out), "--store", str(store)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "Eval report: ci-run" in html and '<svg class="chart"' in html


def test_worst_records_puts_errors_first_and_leaves_out_the_best() -> None:
    def record(rid: str, position: int, value: object, error: str | None = None) -> dict[str, object]:
        return {"record_id": rid, "position": position, "scores": {"s": {"value": value, "error": error}}}

    records = [record("a", 0, 1.0), record("b", 1, 0.2), record("c", 2, None, "boom"), record("d", 3, 0.5)]
    assert [r["record_id"] for r in worst_records(records, "s")] == ["c", "b", "d"]  # type: ignore[arg-type]
    assert worst_records([record("a", 0, True), record("b", 1, True)], "s") == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "bars", "labels"),
    [
        ([True, False, True, None], 3, ["fail", "pass", "error"]),
        ([0.0, 0.05, 0.5, 1.0], 10, ["0", "0.1", "0.2"]),
        (["good", "bad", "good"], 2, ["good", "bad"]),
        ([], 0, []),
    ],
)
def test_histogram_bins_each_kind_of_score(values: list[object], bars: int, labels: list[str]) -> None:
    svg = str(charts.histogram(values, "s"))
    assert svg.count('class="bar"') == bars
    shown = re.findall(r'text-anchor="middle" fill="#555">([^<]*)</text>', svg)
    assert shown[: len(labels)] == labels


def test_chart_text_is_escaped() -> None:
    svg = str(charts.histogram(["<script>x</script>"], "<img src=x onerror=alert(1)>"))
    line = str(charts.line_chart({"<b>": [(0, 1), (1, 2)]}, "<i>"))
    assert "<script>" not in svg and "<img" not in svg and "&lt;img" in svg
    assert "<b>" not in line and "<i>" not in line


def test_agenttrace_ui_serves_the_pages_and_prints_its_url(built: tuple[Path, Built]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttrace", "ui", "--port", "0", "--store", str(built[0])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"agenttrace UI on (http://\S+)/ui/", line)
        assert match, line
        status, _, body = http(match.group(1) + "/ui/evals")
        assert status == 200 and b"candidate" in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_agenttrace_ui_refuses_a_public_address_without_a_token() -> None:
    result = CliRunner().invoke(cli, ["ui", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2 and "--auth-token" in result.output
