"""kill -9 under load loses about a second of work at most, and the store opens and scans clean.

Runs `benchmarks/crash_loss.py`'s measurement with three kills (the benchmark makes nine). The loss
is in seconds of the killed program's own work (calls lost / its calls per second), so it holds on a
slow or busy machine: no wall-clock bound.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def _crash_loss() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "crash_loss.py"
    spec = importlib.util.spec_from_file_location("crash_loss", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_kill_9_under_load_loses_at_most_about_a_second_of_work(monkeypatch: pytest.MonkeyPatch) -> None:
    # The loss is bounded by the flush interval plus a write. At the default 1 s interval the benchmark
    # measures a 0.38 s median; here the killed programs run at 0.5 s, so the 1 s bound still holds
    # when the suite's other worker takes half the machine (the write then takes longer).
    monkeypatch.setenv("AGENTTRACE_FLUSH_INTERVAL_S", "0.5")
    kills = _crash_loss().measure(3, seed=11)  # raises unless every store opens and scans clean
    losses = [k.lost_s for k in kills]
    assert all(k.finished > 0 for k in kills)
    assert statistics.median(losses) <= 1.0, [(k.finished, k.stored, round(k.lost_s, 2)) for k in kills]
