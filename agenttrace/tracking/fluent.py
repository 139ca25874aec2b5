"""Module-level logging to the current run (`agenttrace.log_metric(...)` and friends).

Each function finds the current run through the context (one ContextVar read) and calls the
run's method; with no current run it raises RunStateError rather than starting one silently.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from agenttrace.tracking.runs import current

__all__ = [
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "set_tag",
    "set_tags",
]


def log_param(key: str, value: Any) -> None:
    """Log a param of the current run; logging it again with another value is refused."""
    current().log_params({key: value})


def log_params(params: Mapping[str, Any]) -> None:
    """Log params of the current run (all or none, if one conflicts with a logged value)."""
    current().log_params(params)


def log_metric(key: str, value: Any, step: int = 0, timestamp: float | None = None) -> None:
    """Log a metric value of the current run; `timestamp` in milliseconds since the epoch."""
    current().log_metric(key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, Any], step: int = 0, timestamp: float | None = None) -> None:
    """Log several metric values of the current run at one step."""
    current().log_metrics(metrics, step, timestamp)


def set_tag(key: str, value: Any) -> None:
    """Set a tag of the current run."""
    current().set_tags({key: value})


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set tags of the current run."""
    current().set_tags(tags)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> str:
    """Copy a file into the current run's artifact folder."""
    return current().log_artifact(local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> list[str]:
    """Copy a folder's files into the current run's artifact folder."""
    return current().log_artifacts(local_dir, artifact_path)


def log_dict(dictionary: Any, artifact_file: str) -> str:
    """Store an object as a JSON artifact of the current run."""
    return current().log_dict(dictionary, artifact_file)


def log_text(text: str, artifact_file: str) -> str:
    """Store text as an artifact of the current run."""
    return current().log_text(text, artifact_file)


def log_table(data: Any, artifact_file: str) -> str:
    """Store a DataFrame as a .json or .parquet artifact of the current run."""
    return current().log_table(data, artifact_file)
