"""The package's shape: the public API, the direction of imports between layers, the examples."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import agenttrace

ROOT = Path(__file__).resolve().parent.parent


def test_public_api_is_pinned() -> None:
    assert agenttrace.__all__ == sorted(agenttrace.__all__)
    assert set(agenttrace.__all__) == {
        "Score",
        "SpanType",
        "autolog",
        "compare_evals",
        "configure",
        "context",
        "datasets",
        "evaluate",
        "flush",
        "get_current_span",
        "get_current_trace_id",
        "get_trace",
        "load_dataset",
        "log_expectation",
        "log_feedback",
        "scorer",
        "search_traces",
        "span",
        "trace",
        "update_current_trace",
        # experiments and runs
        "active_run",
        "download_artifacts",
        "end_run",
        "get_metric_history",
        "get_run",
        "log_artifact",
        "log_artifacts",
        "log_dict",
        "log_metric",
        "log_metrics",
        "log_param",
        "log_params",
        "log_table",
        "log_text",
        "search_runs",
        "set_tag",
        "set_tags",
        "start_run",
        "tracking",
        # the agent registry
        "agent_history",
        "compare_versions",
        "delete_alias",
        "lineage",
        "load_agent",
        "register_agent",
        "set_active_agent",
        "set_alias",
        # online monitoring
        "quality_over_time",
    }
    missing = [name for name in agenttrace.__all__ if not hasattr(agenttrace, name)]
    assert not missing, missing


# A module may import from its own layer and the layers listed after it, never from those before.
LAYERS = [
    (
        "surface",
        (
            "agenttrace.cli",
            "agenttrace.server",
            "agenttrace.serving",
            "agenttrace.ui",
            "agenttrace.reports",
            "agenttrace.__main__",
        ),
    ),
    (
        "engines",
        (
            "agenttrace.evaluation",
            "agenttrace.registry",
            "agenttrace.tracking",
            "agenttrace.datasets",
            "agenttrace.monitoring",
        ),
    ),
    ("scorers", ("evaluators",)),
    ("capture", ("agenttrace.tracing", "agenttrace.context", "agenttrace.autolog")),
    ("bridge", ("agenttrace.otel",)),
    ("storage", ("agenttrace.store",)),
    (
        "base",
        (
            "agenttrace.config",
            "agenttrace.errors",
            "agenttrace.records",
            "agenttrace.scoring",
            "agenttrace.schema",
            "agenttrace.jsontext",
        ),
    ),
]


def _layer(module: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in ("agenttrace", "evaluators"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append((".".join(p for p in parts if p != "__init__"), path))
    return found


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module in ("agenttrace", "evaluators"):  # `from agenttrace import config` names a module
                names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_imports_point_downward(module: str, path: Path) -> None:
    own = _layer(module)
    if own is None:
        return  # the package root re-exports everything
    for imported in _imports(path):
        target = _layer(imported)
        assert target is None or target >= own, f"{module} ({LAYERS[own][0]}) imports {imported} ({LAYERS[target][0]})"
        if own == _layer("agenttrace.store"):
            assert not imported.startswith("opentelemetry"), f"{module} imports OpenTelemetry"
        if module.startswith("evaluators"):
            assert not imported.startswith("agenttrace") or imported in (
                "agenttrace.scoring",
                "agenttrace.records",
                "agenttrace.errors",
                "agenttrace.config",  # judges read their endpoint settings through the one settings module
            ), f"{module} imports {imported}"


def test_sql_lives_only_in_the_store() -> None:
    for module, path in _modules():
        if module.startswith("agenttrace.store"):
            continue
        text = path.read_text()
        for keyword in ("SELECT ", "INSERT INTO", "CREATE TABLE"):
            assert keyword not in text, f"{module} contains SQL ({keyword.strip()})"


@pytest.mark.parametrize("script", ["quickstart.py"])
def test_examples_run(script: str, tmp_path: Path) -> None:
    env = {**os.environ, "AGENTTRACE_STORE": str(tmp_path / "ex.duckdb")}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "[AGENT]" in out.stdout
