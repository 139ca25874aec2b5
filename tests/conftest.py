"""Shared fixtures: every test traces into its own temporary store, with internal errors raised."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import agenttrace
from agenttrace.records import Trace
from agenttrace.store import _connection
from agenttrace.tracing import runtime


@pytest.fixture(autouse=True)
def isolated_tracing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh runtime per test writing to tmp_path/traces.duckdb; no AGENTTRACE_* leaks in."""
    for name in list(os.environ):
        if name.startswith(("AGENTTRACE_", "OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    runtime.reset()
    _connection.forget_prepared()
    store = tmp_path / "traces.duckdb"
    agenttrace.configure(store=str(store), raise_internal_errors=True, schedule_delay_ms=50)
    yield store
    runtime.reset()
    _connection.forget_prepared()


@pytest.fixture
def store_path(isolated_tracing: Path) -> Path:
    return isolated_tracing


def only_trace() -> Trace:
    """Flush, then return the single stored trace (fails if there is not exactly one)."""
    frame = agenttrace.search_traces()
    assert len(frame) == 1, f"expected one trace, found {len(frame)}"
    return agenttrace.get_trace(frame.trace_id.iloc[0])


def shape(trace: Trace) -> list[tuple[int, str, str]]:
    """(depth, name, type) of every span in tree order: a compact whole-tree assertion."""
    return [(depth, s.name, s.span_type) for depth, s in trace.walk()]
