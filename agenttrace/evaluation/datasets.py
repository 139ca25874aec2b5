"""Versioned evaluation datasets in the store: a version is the content digest of its records."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from agenttrace.errors import DatasetError
from agenttrace.evaluation.data import EvalRecord, digest_of, load_data, records_from_frame
from agenttrace.tracing.readback import current_store

__all__ = ["Dataset", "create", "dataset_ref", "list_datasets", "load_dataset"]


@dataclass(frozen=True)
class Dataset:
    """One stored version of a dataset; iterate it for record dicts."""

    name: str
    version: str
    records: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.records)


def _from_traces(frame: pd.DataFrame) -> list[EvalRecord]:
    """Production traces to records: root inputs as inputs, the output as a draft expectation."""
    records, _ = records_from_frame(frame, "traces")
    for record in records:
        record.source_trace_id = record.trace_id
        record.expectations = {"expected_response": record.outputs, **record.expectations}
        record.id = f"trace-{record.trace_id}"
    return records


def create(name: str, source: Any) -> Dataset:
    """Store `source` (records, a file path, a DataFrame or a search_traces result) as a version.

    Creating identical content again returns the same version and stores nothing new.
    """
    if not name or "@" in name:
        raise DatasetError(f"dataset name {name!r} must be non-empty and without '@'")
    store = current_store()
    if isinstance(source, pd.DataFrame) and {"trace_id", "outputs"} <= set(source.columns):
        records = _from_traces(source)
        origin = "traces"
    else:
        loaded = load_data(source, store.load_dataset)
        records, origin = loaded.records, loaded.source
    if not records:
        raise DatasetError(f"dataset {name!r} would be empty; give it at least one record")
    digest = digest_of(records)
    version = digest[:12]
    store.save_dataset(name, version, digest, origin, [r.as_dict() for r in records])
    return load_dataset(name, version)


def load_dataset(name: str, version: str | None = None) -> Dataset:
    """A stored dataset version (the newest when `version` is None)."""
    version, records = current_store().load_dataset(name, version)
    return Dataset(name, version, records)


def list_datasets() -> pd.DataFrame:
    """Every stored dataset version: name, version, record_count, source, created (oldest first)."""
    return current_store().list_datasets()


def dataset_ref(data: Any, store: Any) -> tuple[str, str]:
    """(name, version) that evaluating ``data`` would record, computed without running anything.

    The version is the content digest evaluate() stores, so a baseline check made before a run
    agrees with the run it guards.
    """
    loaded = load_data(data, store.load_dataset)
    return loaded.name, loaded.stored_version or digest_of(loaded.records)[:12]
