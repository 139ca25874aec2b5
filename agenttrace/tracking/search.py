"""Reading runs and experiments back: search_runs, get_run, metric history, artifacts, experiments.

Every read first writes the metrics this process still buffers, so a value logged a moment ago is
always seen. Reads go to the same store runs are written to (`runs.tracking_store()`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agenttrace.errors import ArtifactPathError, TrackingError
from agenttrace.store import DuckDBStore
from agenttrace.tracking import _metrics, artifacts
from agenttrace.tracking.runs import tracking_store

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Run",
    "create_experiment",
    "delete_experiment",
    "download_artifacts",
    "get_experiment",
    "get_metric_history",
    "get_run",
    "list_artifacts",
    "restore_experiment",
    "search_experiments",
    "search_runs",
]


def _time(ns: int | None) -> datetime | None:
    return None if ns is None else datetime.fromtimestamp(ns / 1e9, UTC)


@dataclass(frozen=True, slots=True)
class Run:
    """A stored run with its params, latest metrics, tags and artifact records."""

    run_id: str
    experiment_id: int
    experiment: str
    name: str | None
    status: str
    start_time: datetime | None
    end_time: datetime | None
    parent_run_id: str | None = None
    description: str | None = None
    lifecycle: str = "active"
    user: str | None = None
    host: str | None = None
    pid: int | None = None
    source: str | None = None
    artifact_uri: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_stored(cls, row: Mapping[str, Any], files: list[dict[str, Any]]) -> Run:
        return cls(
            run_id=row["run_id"],
            experiment_id=row["experiment_id"],
            experiment=row["experiment"],
            name=row["name"],
            status=row["status"],
            start_time=_time(row["start_time_ns"]),
            end_time=_time(row["end_time_ns"]),
            parent_run_id=row["parent_run_id"],
            description=row["description"],
            lifecycle=row["lifecycle"],
            user=row["user_name"],
            host=row["host"],
            pid=row["pid"],
            source=row["source"],
            artifact_uri=row["artifact_uri"],
            params=row["params"],
            metrics=row["metrics"],
            tags=row["tags"],
            artifacts=files,
        )


def _store() -> DuckDBStore:
    store = tracking_store()
    _metrics.flush_all()
    return store


def search_runs(
    filter_string: str | None = None,
    experiment: str | Sequence[str] | None = None,
    order_by: list[str] | str | None = None,
    max_results: int = 1000,
    offset: int = 0,
) -> pd.DataFrame:
    """Runs as a DataFrame with `params.*`, `metrics.*` (latest value) and `tags.*` columns.

    Args:
        filter_string: the trace filter language over `params.x`, `metrics.x`, `tags.x`, `status`,
            `name`, `experiment`, `start_time`, `end_time`, `run_id`, `parent_run_id`, e.g.
            "metrics.accuracy > 0.9 AND params.lr = '0.1'".
        experiment: an experiment name or id, or several; default every active experiment.
        order_by: e.g. ["metrics.accuracy DESC", "start_time"]; default newest first.
        max_results: rows returned at most; `offset` skips rows for paging.
    """
    if max_results < 1 or offset < 0:
        raise TrackingError(f"max_results must be at least 1 and offset at least 0, got {max_results}, {offset}")
    experiments = [experiment] if isinstance(experiment, str | int) else experiment
    return _store().search_runs(filter_string, experiments, order_by, max_results, offset)


def get_run(run_id: str) -> Run:
    """A run by id (or a unique prefix of 6+ characters); RunNotFoundError lists recent ones."""
    store = _store()
    row = store.get_run(run_id)
    return Run.from_stored(row, store.list_artifacts(row["run_id"]))


def get_metric_history(run_id: str, key: str) -> pd.DataFrame:
    """Every logged value of one metric of a run: key, value, step, timestamp, by step."""
    return _store().metric_history(run_id, key)


def list_artifacts(run_id: str) -> list[dict[str, Any]]:
    """The artifact records of a run: path, size_bytes, sha256, created_ns."""
    return _store().list_artifacts(run_id)


def download_artifacts(run_id: str, path: str = "", dst: str | Path | None = None) -> Path:
    """Copy a run's artifact (or folder, or everything for '') to `dst` (default a new temporary folder).

    Files are checked against their recorded sha256; a mismatch raises TrackingError.
    Returns the local path of what was copied.
    """
    store = _store()
    row = store.get_run(run_id)
    rel = artifacts.relative_path(path)
    recorded = {a["path"]: a["sha256"] for a in store.list_artifacts(row["run_id"])}
    wanted = {p: s for p, s in recorded.items() if not rel or p == rel or p.startswith(rel + "/")}
    if not wanted:
        raise ArtifactPathError(
            f"run {row['run_id']} has no artifact {path!r}; its artifacts: {', '.join(sorted(recorded)) or '(none)'}"
        )
    repo = artifacts.repository(row["artifact_uri"])
    for name, sha256 in wanted.items():
        if repo.sha256(name) != sha256:
            raise TrackingError(
                f"artifact {name!r} of run {row['run_id']} changed since it was logged (sha256 differs)"
            )
    target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="agenttrace-artifacts-"))
    return repo.get(rel, target)


# --- experiments ----------------------------------------------------------------------------


def create_experiment(name: str, tags: Mapping[str, Any] | None = None, description: str | None = None) -> int:
    """Create an experiment; returns its id. An existing name (even deleted) is refused."""
    if not isinstance(name, str) or not name.strip():
        raise TrackingError(f"an experiment name must be non-empty text, got {name!r}")
    return tracking_store().create_experiment(name, {str(k): str(v) for k, v in (tags or {}).items()}, description)


def get_experiment(ref: str | int) -> dict[str, Any]:
    """An experiment by name or id; ExperimentNotFoundError lists the ones that exist."""
    return tracking_store().get_experiment(ref)


def delete_experiment(ref: str | int) -> dict[str, Any]:
    """Mark an experiment deleted: its runs leave searches and new runs in it are refused."""
    return tracking_store().set_experiment_lifecycle(str(ref), "deleted")


def restore_experiment(ref: str | int) -> dict[str, Any]:
    """Bring a deleted experiment back, with its runs."""
    return tracking_store().set_experiment_lifecycle(str(ref), "active")


def search_experiments(
    filter_string: str | None = None, lifecycle: str | None = "active", max_results: int = 100, offset: int = 0
) -> pd.DataFrame:
    """Experiments with their run counts; `lifecycle` is "active", "deleted" or None for both."""
    if lifecycle not in ("active", "deleted", None):
        raise TrackingError(f"lifecycle must be 'active', 'deleted' or None, not {lifecycle!r}")
    return tracking_store().list_experiments(filter_string, lifecycle, max_results, offset)
