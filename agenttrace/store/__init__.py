"""The DuckDB store: the only place SQL lives.

`DuckDBStore` is the facade the rest of agenttrace uses. Each method opens the file for its own
unit of work and closes it again (see `_connection`), so other processes can read between batches.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from agenttrace.errors import StoreError, TraceNotFoundError
from agenttrace.records import Assessment, Trace
from agenttrace.store import _connection, _queries, _writer
from agenttrace.store._filters import FIELDS as FILTER_FIELDS
from agenttrace.store._queries import TRACE_FRAME_COLUMNS
from agenttrace.store._schema import LATEST_VERSION
from agenttrace.store._writer import SPAN_COLUMNS, TRACE_COLUMNS

__all__ = [
    "FILTER_FIELDS",
    "LATEST_VERSION",
    "SPAN_COLUMNS",
    "TRACE_COLUMNS",
    "TRACE_FRAME_COLUMNS",
    "DuckDBStore",
]


class DuckDBStore:
    """One DuckDB file holding traces, spans and assessments.

    Thread-safe: calls from several threads are serialised per process. Methods raise StoreError
    subclasses (never raw DuckDB errors) with the original chained.
    """

    def __init__(self, path: str | Path, *, lock_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    def __repr__(self) -> str:
        return f"DuckDBStore({str(self.path)!r})"

    def _connect(self, read_only: bool = False, hold: bool = False) -> Any:
        return _connection.connect(self.path, read_only=read_only, timeout_s=self.lock_timeout_s, hold=hold)

    def _run(self, read_only: bool, work: Any, *args: Any, hold: bool = False) -> Any:
        with self._connect(read_only, hold) as con:
            try:
                return work(con, *args)
            except duckdb.Error as exc:
                raise StoreError(f"store {self.path}: {exc}") from exc

    def initialise(self) -> None:
        """Create or migrate the file now, so a bad location is reported at once."""
        with self._connect(read_only=False):
            pass

    def append_spans(self, columns: Mapping[str, Sequence[Any]]) -> int:
        """Append a batch of spans given as columns (see SPAN_COLUMNS and TRACE_COLUMNS)."""
        batch = _writer.to_arrow(columns)
        self._run(False, _writer.append_batch, batch, time.time_ns(), hold=True)
        return batch.num_rows

    def release(self) -> None:
        """Close a connection held between batches, checkpointing the file and freeing it."""
        _connection.release(self.path)

    def add_counter(self, name: str, delta: int) -> None:
        self._run(False, _writer.add_counter, name, delta)

    def search_traces(
        self,
        filter_string: str | None = None,
        experiments: Sequence[str] | None = None,
        order_by: list[str] | str | None = None,
        max_results: int = 100,
    ) -> pd.DataFrame:
        return self._run(True, _queries.search_frame, filter_string, experiments, order_by, max_results)

    def get_trace(self, trace_id: str) -> Trace:
        return self._run(True, _queries.load_trace, trace_id)

    def count_traces(self) -> int:
        return self._run(True, _queries.count_traces)

    def log_assessment(
        self,
        trace_id: str,
        name: str,
        value: Any,
        *,
        kind: str,
        rationale: str | None = None,
        source_type: str = "HUMAN",
        source_id: str | None = None,
        span_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        error: str | None = None,
        eval_run_id: str | None = None,
    ) -> Assessment:
        assessment = Assessment(
            assessment_id=uuid.uuid4().hex, trace_id=trace_id, name=name, kind=kind, value=value,
            rationale=rationale, source_type=source_type, source_id=source_id, span_id=span_id,
            metadata=dict(metadata or {}), error=error, eval_run_id=eval_run_id, created_ns=time.time_ns(),
        )  # fmt: skip

        def work(con: duckdb.DuckDBPyConnection) -> None:
            if not _queries.trace_exists(con, trace_id):
                raise TraceNotFoundError(f"no trace with id {trace_id!r}; cannot attach {kind} {name!r} to it")
            _queries.insert_assessment(con, assessment)

        self._run(False, work)
        return assessment

    def delete_traces_before(self, cutoff_ns: int) -> int:
        return self._run(False, _queries.delete_before, cutoff_ns)

    def export_traces(self, path: str | Path, fmt: str, filter_string: str | None = None) -> int:
        if fmt not in ("jsonl", "parquet"):
            raise StoreError(f"unknown export format {fmt!r}; use jsonl or parquet")
        return self._run(True, _queries.export_traces, str(path), fmt, filter_string)

    def stats(self) -> dict[str, int]:
        return self._run(True, _queries.stats)
