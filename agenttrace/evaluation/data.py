"""Turning whatever `evaluate(data=...)` was given into validated records.

Accepted: a list of dicts, a pandas DataFrame (records, or the result of `search_traces`), a path to
a JSONL, JSON, CSV or Parquet file, or a stored dataset by name (`"name"` or `"name@version"`).
Each record has `inputs` (a dict of keyword arguments), optional `expectations`, `tags` and `id`.
Problems are reported with the file and line (or position) of the offending record, before anything
runs. Files are UTF-8, with or without a BOM. CSV cells are text unless a header types them (see
`_csv`), so `02134` stays `"02134"`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from agenttrace.errors import DatasetError
from agenttrace.evaluation._csv import read_csv_rows

__all__ = ["EvalRecord", "LoadedData", "digest_of", "load_data", "records_from_frame"]

_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass(slots=True)
class EvalRecord:
    id: str
    position: int
    inputs: dict[str, Any]
    expectations: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None  # set when scoring an existing trace
    outputs: Any = None  # known up front when scoring existing traces
    source_trace_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "inputs": self.inputs, "expectations": self.expectations, "tags": self.tags}
        if self.source_trace_id:
            out["source_trace_id"] = self.source_trace_id
        return out


@dataclass(slots=True)
class LoadedData:
    records: list[EvalRecord]
    name: str
    source: str
    from_traces: bool = False  # score existing traces instead of predicting
    stored_version: str | None = None  # set when the data came from the store already


def digest_of(records: Sequence[EvalRecord]) -> str:
    """Content digest of a dataset: the same records in the same order give the same digest."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(r.as_dict(), sort_keys=True, default=str, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def _record(raw: Any, position: int, where: str) -> EvalRecord:
    if not isinstance(raw, Mapping):
        raise DatasetError(f"{where}: a record must be an object with 'inputs', got {type(raw).__name__}")
    inputs = raw.get("inputs")
    if inputs is None:
        keys = ", ".join(sorted(map(str, raw))) or "nothing"
        raise DatasetError(f"{where}: record has no 'inputs' (it has {keys}); give each record an inputs object")
    if not isinstance(inputs, Mapping):
        raise DatasetError(f"{where}: 'inputs' must be an object of keyword arguments, got {type(inputs).__name__}")
    expectations = raw.get("expectations") or {}
    if not isinstance(expectations, Mapping):
        raise DatasetError(f"{where}: 'expectations' must be an object, got {type(expectations).__name__}")
    tags = raw.get("tags") or {}
    record_id = raw.get("id", raw.get("record_id"))
    return EvalRecord(
        id=str(record_id) if record_id is not None else str(position),
        position=position,
        inputs=dict(inputs),
        expectations=dict(expectations),
        tags=dict(tags) if isinstance(tags, Mapping) else {"tags": tags},
        source_trace_id=raw.get("source_trace_id"),
    )


def _check_unique(records: list[EvalRecord], source: str) -> list[EvalRecord]:
    seen: dict[str, int] = {}
    for r in records:
        if r.id in seen:
            raise DatasetError(f"{source}: record id {r.id!r} appears twice (positions {seen[r.id]} and {r.position})")
        seen[r.id] = r.position
    return records


def _read_jsonl(path: Path) -> list[EvalRecord]:
    records: list[EvalRecord] = []
    with path.open(encoding="utf-8-sig") as fh:  # -sig: a UTF-8 BOM (Windows editors) is skipped
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{line_no}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
            records.append(_record(raw, len(records), f"{path}:{line_no}"))
    return records


def _unflatten(row: Mapping[Any, Any], where: str = "") -> dict[str, Any]:
    """CSV/Parquet rows: `inputs` as JSON text, or `inputs.<name>` columns, likewise expectations.

    A frame's column labels need not be text (pandas allows any hashable), so each is read as str().
    """
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and pd.isna(value):
            continue
        head, _, rest = str(key).partition(".")
        if rest and head in ("inputs", "expectations", "tags"):
            out.setdefault(head, {})[rest] = value
        elif head in ("inputs", "expectations", "tags") and isinstance(value, str):
            try:
                out[head] = json.loads(value)
            except json.JSONDecodeError as exc:
                at = f"{where}: " if where else ""
                raise DatasetError(f"{at}column {key!r} holds text that is not JSON: {value[:60]!r}") from exc
        else:
            out[str(key)] = value
    return out


def records_from_frame(frame: pd.DataFrame, source: str) -> tuple[list[EvalRecord], bool]:
    """Records from a DataFrame; a search_traces frame (trace_id + outputs) means existing traces."""
    is_traces = {"trace_id", "inputs", "outputs"} <= set(frame.columns)
    records = []
    for position, row in enumerate(frame.to_dict(orient="records")):
        where = f"{source} row {position}"
        if is_traces:
            inputs = row.get("inputs")
            raw = {
                "id": row.get("record_id", row["trace_id"]),
                "inputs": inputs if isinstance(inputs, Mapping) else {"input": inputs},
                "expectations": row.get("expectations") or {},
            }
            record = _record(raw, position, where)
            record.trace_id, record.outputs = row["trace_id"], row.get("outputs")
        else:
            record = _record(_unflatten(row, where), position, where)
        records.append(record)
    return _check_unique(records, source), is_traces


def load_data(data: Any, store_loader: Any) -> LoadedData:
    """Normalise `data` into records; `store_loader(name, version)` reads stored datasets."""
    if isinstance(data, pd.DataFrame):
        records, from_traces = records_from_frame(data, "DataFrame")
        return LoadedData(records, "traces" if from_traces else "dataframe", "dataframe", from_traces)
    if isinstance(data, tuple) and len(data) == 2:
        name, version = data
        return _stored(str(name), str(version) if version else None, store_loader)
    if isinstance(data, str | Path):
        path = Path(data)
        if path.suffix.lower() in _FILE_SUFFIXES or path.exists():
            return LoadedData(_check_unique(_read_path(path), str(path)), path.stem, str(path))
        name, _, version = str(data).partition("@")
        return _stored(name, version or None, store_loader)
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        records = [_record(raw, i, f"record {i}") for i, raw in enumerate(data)]
        return LoadedData(_check_unique(records, "records"), "records", "records")
    raise DatasetError(
        f"cannot evaluate data of type {type(data).__name__}; pass a list of dicts, a DataFrame, a file path "
        "(.jsonl, .csv, .parquet) or a stored dataset name"
    )


def _stored(name: str, version: str | None, store_loader: Any) -> LoadedData:
    version, raw_records = store_loader(name, version)
    records = [_record(raw, i, f"dataset {name}@{version} record {i}") for i, raw in enumerate(raw_records)]
    return LoadedData(records, name, f"stored:{name}@{version}", stored_version=version)


def _read_path(path: Path) -> list[EvalRecord]:
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist; check the path (relative to {Path.cwd()})")
    try:
        return _read_file(path, path.suffix.lower())
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc


def _read_file(path: Path, suffix: str) -> list[EvalRecord]:
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        try:
            raw = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(raw, list):
            raise DatasetError(f"{path}: expected a JSON array of records")
        return [_record(r, i, f"{path} record {i}") for i, r in enumerate(raw)]
    if suffix == ".csv":
        rows = read_csv_rows(path)
        return [_record(_unflatten(row, f"{path}:{line}"), i, f"{path}:{line}") for i, (line, row) in enumerate(rows)]
    frame = pd.read_parquet(path)
    return records_from_frame(frame, str(path))[0]
