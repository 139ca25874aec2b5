"""The DuckDB store: the only place SQL lives.

`DuckDBStore` is the facade the rest of agenttrace uses. Each method opens the file for its own
unit of work and closes it again (see `_connection`), so other processes can read between batches.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from agenttrace import config
from agenttrace.errors import AgentTraceError, BatchRejectedError, StoreError, TraceNotFoundError
from agenttrace.records import Assessment, Trace
from agenttrace.store import (
    _connection,
    _encryption,
    _evaluation,
    _ingest,
    _lineage,
    _maintenance,
    _monitors,
    _queries,
    _registry,
    _run_search,
    _tracking,
    _ui_queries,
    _writer,
)
from agenttrace.store._filters import FIELDS as FILTER_FIELDS
from agenttrace.store._queries import TRACE_FRAME_COLUMNS
from agenttrace.store._schema import LATEST_VERSION

# DuckDBStore's default key: the encryption_key / encryption_key_file setting (environment, then file).
KEY_FROM_SETTINGS: Any = object()

if TYPE_CHECKING:  # pandas loads only when a DataFrame is asked for
    import pandas as pd

# Spans to append: rows (dicts by column name) or columns (lists by column name).
SpanBatch = Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]

# Errors caused by the values written rather than by the store: the same write without the
# offending row would succeed.
_VALUE_ERRORS = (
    duckdb.ConversionException,
    duckdb.ConstraintException,
    duckdb.InvalidInputException,
    pa.ArrowException,
    ValueError,
    TypeError,
    OverflowError,
)

__all__ = [
    "FILTER_FIELDS",
    "KEY_FROM_SETTINGS",
    "LATEST_VERSION",
    "TRACE_FRAME_COLUMNS",
    "DuckDBStore",
]


class DuckDBStore:
    """One DuckDB file holding traces, spans and assessments.

    Thread-safe: calls from several threads are serialised per process. Methods raise StoreError
    subclasses (never raw DuckDB errors) with the original chained.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        lock_timeout_s: float = 10.0,
        encryption_key: Any = KEY_FROM_SETTINGS,
        settings: config.Settings | None = None,
    ) -> None:
        # Resolved once: a relative path must not follow the program into another folder.
        self.path = Path(path).resolve()
        self.lock_timeout_s = lock_timeout_s
        self._known_experiments: set[str] = set()
        # The key (None: a plain file); by default the encryption_key(_file) setting of `settings` (the
        # runtime's, configure() arguments included) or else of the environment and file, unless a key
        # was given explicitly for this file in this process: a setting never replaces that.
        if encryption_key is KEY_FROM_SETTINGS:
            _encryption.set_key(self.path, config.encryption_key(settings or config.resolve()), explicit=False)
        else:
            _encryption.set_key(self.path, encryption_key)

    def __repr__(self) -> str:
        return f"DuckDBStore({str(self.path)!r})"

    def _connect(self, read_only: bool = False, hold: bool = False) -> Any:
        return _connection.connect(self.path, read_only=read_only, timeout_s=self.lock_timeout_s, hold=hold)

    def _run(self, read_only: bool, work: Any, *args: Any, hold: bool = False) -> Any:
        with self._connect(read_only, hold) as con:
            try:
                return work(con, *args)
            except AgentTraceError:
                raise  # ours already says what was wrong (a bad argument, an unknown id)
            except _VALUE_ERRORS as exc:
                if read_only:  # a read has no values written: say what the query met instead
                    raise StoreError(f"store {self.path} could not answer the query: {exc}") from exc
                raise BatchRejectedError(f"store {self.path} refused the values written: {exc}") from exc
            except duckdb.Error as exc:
                raise StoreError(f"store {self.path}: {exc}") from exc
            except RuntimeError as exc:
                # DuckDB turns Ctrl-C during a query into RuntimeError("Query interrupted"): give
                # the program back its KeyboardInterrupt, so Ctrl-C means the same with or without us.
                if isinstance(exc.__cause__, KeyboardInterrupt):
                    raise KeyboardInterrupt from exc
                raise

    def initialise(self) -> None:
        """Create or migrate the file now, so a bad location is reported at once."""
        with self._connect(read_only=False):
            pass

    def append_spans(self, batch: SpanBatch) -> int:
        """Append spans given as rows or columns keyed by `agenttrace.schema.SPAN_COLUMNS` names."""
        return self._append_table(self.batch_table(batch))

    @staticmethod
    def batch_table(batch: SpanBatch) -> pa.Table:
        """The Arrow table the store appends; BatchRejectedError for values of the wrong type."""
        try:
            return _writer.to_arrow(batch)
        except _VALUE_ERRORS as exc:
            raise BatchRejectedError(f"spans with values of the wrong type: {exc}") from exc

    def _append_table(self, batch: pa.Table) -> int:
        experiments = set(batch.column("experiment").unique().to_pylist()) - {None}
        fresh = not experiments <= self._known_experiments
        self._run(False, _writer.append_batch, batch, time.time_ns(), fresh, hold=True)
        self._known_experiments |= experiments
        return batch.num_rows

    def append_new_spans(self, batch: pa.Table | SpanBatch) -> int:
        """Append only the spans (by trace_id, span_id) not stored yet; returns how many were new.

        For OTLP ingest, where a sender may re-send a batch; one writer thread must call it. The
        batch is rows, columns or a table from `batch_table`.
        """
        table = batch if isinstance(batch, pa.Table) else self.batch_table(batch)
        known = self._run(False, _ingest.existing_span_keys, table, hold=True)
        fresh = _ingest.without_known(table, known)
        return self._append_table(fresh) if fresh.num_rows else 0

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
            assessment_id=uuid.uuid4().hex,
            trace_id=trace_id,
            name=name,
            kind=kind,
            value=value,
            rationale=rationale,
            source_type=source_type,
            source_id=source_id,
            span_id=span_id,
            metadata=dict(metadata or {}),
            error=error,
            eval_run_id=eval_run_id,
            created_ns=time.time_ns(),
        )

        def work(con: duckdb.DuckDBPyConnection) -> None:
            if not _queries.trace_exists(con, trace_id):
                raise TraceNotFoundError(f"no trace with id {trace_id!r}; cannot attach {kind} {name!r} to it")
            _queries.insert_assessments(con, [assessment])

        self._run(False, work)
        return assessment

    def delete_traces_before(self, cutoff_ns: int) -> int:
        return self._run(False, _queries.delete_before, cutoff_ns)

    # --- maintenance (see _maintenance): whole-file work, each holding the file while it runs ---

    def _whole_file(self, work: Any, *args: Any) -> Any:
        try:
            return work(*args)
        except duckdb.Error as exc:
            raise StoreError(f"store {self.path}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"store {self.path}: {exc}; check free space and permissions") from exc

    def backup(self, dest: str | Path) -> dict[str, tuple[int, int]]:
        """A consistent, verified copy at `dest` (same key); per-table (rows, hash) of the copy."""
        key = _encryption.key_for(self.path)
        return self._whole_file(_maintenance.backup, self.path, key, Path(dest), self.lock_timeout_s)

    def restore(self, source: str | Path, force: bool = False) -> dict[str, tuple[int, int]]:
        """Replace this store with a backup; StoreError if the store has newer writes and not `force`."""
        key = _encryption.key_for(self.path)
        return self._whole_file(_maintenance.restore, Path(source), self.path, key, force, self.lock_timeout_s)

    def rewrite(self, new_key: Any = KEY_FROM_SETTINGS) -> dict[str, Any]:
        """Rewrite the file (verified, swapped in): compacts it, and encrypts, decrypts or re-keys with `new_key`."""
        old = _encryption.key_for(self.path)
        new = old if new_key is KEY_FROM_SETTINGS else new_key
        return self._whole_file(_maintenance.rewrite_in_place, self.path, old, new, self.lock_timeout_s)

    def check(self, on_table: Any = None) -> list[str]:
        """Read every row of every table and test cross-table facts; the problems found."""
        return self._run(True, _maintenance.check, on_table)

    def apply_retention(self, max_age_s: float) -> int:
        """Delete traces that started more than `max_age_s` seconds ago; how many."""
        return self.delete_traces_before(time.time_ns() - int(max_age_s * 1e9))

    def retention_schedule(self, max_age_s: float, every_s: float | None = None) -> _maintenance.RetentionSchedule:
        """Apply retention now, then every `every_s` seconds (default: a tenth of the age, 1 s to 1 h), in a thread."""
        every = every_s if every_s is not None else min(3600.0, max(1.0, max_age_s / 10))
        return _maintenance.RetentionSchedule(self.apply_retention, max_age_s, every)

    def export_traces(self, path: str | Path, fmt: str, filter_string: str | None = None) -> int:
        if fmt not in ("jsonl", "parquet"):
            raise StoreError(f"unknown export format {fmt!r}; use jsonl or parquet")
        return self._run(True, _queries.export_traces, str(path), fmt, filter_string)

    def stats(self) -> dict[str, int]:
        return self._run(True, _queries.stats)

    # --- evaluation -------------------------------------------------------------------------

    def save_dataset(
        self, name: str, version: str, digest: str, source: str | None, records: Sequence[dict[str, Any]]
    ) -> bool:
        """Store a dataset version (records with id, inputs, expectations, tags); False if it exists."""
        return self._run(False, _evaluation.save_dataset, name, version, digest, source, records, time.time_ns())

    def load_dataset(self, name: str, version: str | None = None) -> tuple[str, list[dict[str, Any]]]:
        return self._run(True, _evaluation.load_dataset, name, version)

    def list_datasets(self) -> pd.DataFrame:
        return self._run(True, _evaluation.list_datasets)

    def start_eval_run(self, run: dict[str, Any]) -> None:
        self._run(False, _evaluation.start_eval_run, run)

    def add_eval_records(
        self, eval_run_id: str, rows: Sequence[dict[str, Any]], assessments: Sequence[Assessment]
    ) -> None:
        self._run(False, _evaluation.add_eval_records, eval_run_id, rows, assessments, hold=True)

    def finish_eval_run(self, eval_run_id: str, status: str, summary: dict[str, Any]) -> None:
        self._run(False, _evaluation.finish_eval_run, eval_run_id, status, time.time_ns(), summary)

    def list_eval_runs(self, limit: int = 20) -> pd.DataFrame:
        return self._run(True, _evaluation.list_eval_runs, limit)

    def load_eval_run(self, ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """An eval run (by id, unique id prefix or name) and its per-record rows."""
        return self._run(True, _evaluation.load_eval_run, ref)

    def judge_cache_load(self) -> dict[str, str]:
        """Every cached judge reply, key to value."""
        return self._run(True, _evaluation.judge_cache_load)

    def judge_cache_put_many(self, entries: dict[str, str]) -> None:
        self._run(False, _evaluation.judge_cache_put_many, entries, time.time_ns(), hold=True)

    # --- agent registry and lineage (see _registry, _lineage) --------------------------------

    def register_agent_version(self, entry: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Store a version unless the agent has one with the same identity: (version, created)."""
        try:
            return self._run(False, _registry.register_version, entry, time.time_ns())
        except BatchRejectedError as exc:
            if not isinstance(exc.__cause__, duckdb.ConstraintException):
                raise
            # The identity's UNIQUE constraint caught a race the file lock did not: read the winner.
            return self._run(False, _registry.register_version, entry, time.time_ns())

    def get_agent(self, name: str) -> dict[str, Any]:
        return self._run(True, _registry.get_agent, name)

    def get_agent_version(self, name: str, ref: int | str | None = None) -> dict[str, Any]:
        """A version by number, alias, "latest" or None (the latest); AgentNotFoundError lists what exists."""
        return self._run(True, _registry.get_version, name, ref)

    def find_agent_version(self, name: str, ref: str | None) -> dict[str, Any] | None:
        """Like get_agent_version, but None when `name` is not a registered agent at all."""
        return self._run(True, _registry.find_version_id, name, ref)

    def list_agents(self, filter_string: str | None = None, limit: int = 50, offset: int = 0) -> pd.DataFrame:
        return self._run(True, _registry.list_agents, filter_string, limit, offset)

    def list_agent_versions(
        self, name: str, filter_string: str | None = None, limit: int = 50, offset: int = 0
    ) -> pd.DataFrame:
        return self._run(True, _registry.list_versions, name, filter_string, limit, offset)

    def agent_versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of one agent, oldest first, with config, prompts and code files."""
        return self._run(True, _registry.versions_of, [name])

    def set_agent_alias(self, name: str, alias: str, ref: int | str) -> int:
        return self._run(False, _registry.set_alias, name, alias, ref, time.time_ns())

    def delete_agent_alias(self, name: str, alias: str) -> None:
        self._run(False, _registry.delete_alias, name, alias)

    def update_agent(
        self,
        name: str,
        version: int | str | None = None,
        description: str | None = None,
        tags: dict[str, str | None] | None = None,
    ) -> None:
        self._run(False, _registry.update_agent, name, version, description, tags, time.time_ns())

    def delete_agent_version(self, name: str, version: int | str) -> int:
        return self._run(False, _registry.delete_version, name, version)

    def delete_agent(self, name: str) -> int:
        return self._run(False, _registry.delete_agent, name)

    def link_eval_run_agent(self, eval_run_id: str, version_id: str) -> None:
        self._run(False, _registry.link_eval_run, eval_run_id, version_id)

    def agent_eval_runs(self, name: str, dataset: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        return self._run(True, _lineage.eval_runs_of, name, dataset)

    def lineage(self, ref: str) -> dict[str, Any]:
        return self._run(True, _lineage.lineage, ref)

    def agent_history_parts(self, name: str) -> dict[str, Any]:
        """The agent, its versions, per-version trace figures and linked eval runs, in one read."""
        return self._run(True, _lineage.history_parts, name)

    # --- experiments and runs (see _tracking, _run_search) -----------------------------------
    # A run's writes come in bursts (start, params, tags, end), so they hold the connection like
    # span batches do: opening and closing the file per write checkpoints it every time.

    def get_experiment(self, ref: str | int) -> dict[str, Any]:
        """An experiment by name or id; ExperimentNotFoundError lists the ones that exist."""
        return self._run(True, _tracking.get_experiment, ref)

    def create_experiment(
        self, name: str, tags: Mapping[str, str] | None = None, description: str | None = None
    ) -> int:
        return self._run(False, _tracking.create_experiment, name, tags, description, time.time_ns())

    def set_experiment_lifecycle(self, ref: str, lifecycle: str) -> dict[str, Any]:
        return self._run(False, _tracking.set_experiment_lifecycle, ref, lifecycle, time.time_ns())

    def list_experiments(
        self, filter_string: str | None = None, lifecycle: str | None = "active", limit: int = 100, offset: int = 0
    ) -> pd.DataFrame:
        return self._run(True, _tracking.list_experiments, filter_string, lifecycle, limit, offset)

    def create_run(self, run: Mapping[str, Any], tags: Mapping[str, str]) -> int:
        """Insert a RUNNING run in `run["experiment"]` (created if new, refused if deleted); its experiment id."""
        return self._run(False, _tracking.create_run, run, tags, time.time_ns(), hold=True)

    def end_run(self, run_id: str, status: str) -> None:
        self._run(False, _tracking.end_run, run_id, status, time.time_ns(), hold=True)

    def get_run(self, ref: str) -> dict[str, Any]:
        """A run (full id or unique 6+ character prefix) with its params, latest metrics and tags."""
        return self._run(True, _tracking.get_run, ref)

    def delete_run(self, ref: str) -> str:
        return self._run(False, _tracking.delete_run, ref)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        self._run(False, _tracking.log_params, run_id, params, hold=True)

    def set_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._run(False, _tracking.set_tags, run_id, tags, hold=True)

    def append_metrics(self, batch: pa.Table) -> None:
        """Append metrics given as an Arrow table of `_tracking.METRIC_SCHEMA`, in one transaction."""
        self._run(False, _tracking.append_metrics, batch, hold=True)

    def metric_history(self, ref: str, key: str) -> pd.DataFrame:
        return self._run(True, _tracking.metric_history, ref, key)

    def record_artifact(self, run_id: str, path: str, size: int, sha256: str) -> None:
        self._run(False, _tracking.record_artifact, run_id, path, size, sha256, time.time_ns(), hold=True)

    def list_artifacts(self, ref: str) -> list[dict[str, Any]]:
        return self._run(True, _tracking.list_artifacts, ref)

    def link_eval_run_to_run(self, eval_run_id: str, run_id: str) -> None:
        self._run(False, _tracking.link_eval_run, eval_run_id, run_id, hold=True)

    def search_runs(
        self,
        filter_string: str | None = None,
        experiments: Sequence[str] | None = None,
        order_by: list[str] | str | None = None,
        max_results: int = 1000,
        offset: int = 0,
    ) -> pd.DataFrame:
        return self._run(True, _run_search.search_runs, filter_string, experiments, order_by, max_results, offset)

    # --- web UI pages (see _ui_queries): one page at a time, sorted and filtered in DuckDB --------

    def ui_trace_page(
        self,
        filter_string: str | None = None,
        experiments: Sequence[str] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        order_by: list[str] | str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], bool, dict[str, dict[str, Any]], list[str]]:
        """(trace rows, whether more follow, latest feedback per row, experiment names) in one read."""

        def work(con: duckdb.DuckDBPyConnection) -> Any:
            rows, more = _ui_queries.trace_page(
                con, filter_string, experiments, since_ns, until_ns, order_by, offset, limit
            )
            scores = _ui_queries.latest_feedback(con, [r["trace_id"] for r in rows])
            return rows, more, scores, _ui_queries.experiment_names(con)

        return self._run(True, work)

    def ui_session_page(
        self,
        filter_string: str | None = None,
        experiments: Sequence[str] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], bool]:
        args = (filter_string, experiments, since_ns, until_ns, offset, limit)
        return self._run(True, _ui_queries.session_page, *args)

    def ui_session_traces(self, session_id: str, limit: int = 500) -> list[dict[str, Any]]:
        return self._run(True, _ui_queries.session_traces, session_id, limit)

    def ui_trace_view(self, trace_id: str, span_id: str | None = None, max_spans: int = 5_000) -> dict[str, Any]:
        """A trace for its page: spans without payloads, one span whole, assessments (see _ui_queries)."""
        return self._run(True, _ui_queries.trace_view, trace_id, span_id, max_spans)

    def delete_trace(self, trace_id: str) -> bool:
        """Delete one trace with its spans and assessments; False if there was none."""
        return self._run(False, _ui_queries.delete_trace, trace_id)

    def ui_eval_page(
        self, ref: str, sort: str = "position", descending: bool = False, offset: int = 0, limit: int = 200
    ) -> tuple[dict[str, Any], list[dict[str, Any]], int, dict[str, list[Any]], list[dict[str, Any]]]:
        """(run, a sorted page of its records, record count, every value per scorer, recent runs) in one read."""

        def work(con: duckdb.DuckDBPyConnection) -> Any:
            run, records, total = _ui_queries.eval_page(con, ref, sort, descending, offset, limit)
            values = _ui_queries.eval_score_values(con, run["eval_run_id"], run["scorers"])
            return run, records, total, values, _ui_queries.recent_eval_runs(con, 50)

        return self._run(True, work)

    def eval_trace_ids(self, ref: str) -> dict[str, str | None]:
        """record id -> trace id of one eval run."""
        return self._run(True, _ui_queries.eval_trace_ids, ref)

    # --- online monitors (see _monitors) -----------------------------------------------------

    def add_monitor(self, monitor: dict[str, Any]) -> None:
        self._run(False, _monitors.add_monitor, monitor)

    def list_monitors(self, agent: str | None = None) -> list[dict[str, Any]]:
        return self._run(True, _monitors.list_monitors, agent)

    def get_monitor(self, ref: str) -> dict[str, Any]:
        return self._run(True, _monitors.get_monitor, ref)

    def remove_monitor(self, ref: str) -> str:
        return self._run(False, _monitors.remove_monitor, ref)

    def claim_monitor_work(
        self, monitor: dict[str, Any], version: str | None, owner: str, lease_s: float, limit: int
    ) -> list[dict[str, Any]]:
        """Claim unscored traces of a monitor's sample (claims older than `lease_s` are taken back)."""
        now = time.time_ns()
        stale = now - int(lease_s * 1e9)
        return self._run(False, _monitors.claim_work, monitor, version, owner, now, stale, limit, hold=True)

    def finish_monitor_work(self, scorer_name: str, owner: str, assessments: Sequence[Assessment]) -> int:
        return self._run(False, _monitors.finish_work, scorer_name, owner, assessments, hold=True)

    def release_monitor_work(self, scorer_name: str, owner: str, trace_ids: Sequence[str]) -> None:
        self._run(False, _monitors.release_work, scorer_name, owner, trace_ids)

    def quality_frames(self, agent: str, window_ns: int, since_ns: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self._run(True, _monitors.quality_frames, agent, window_ns, since_ns)
