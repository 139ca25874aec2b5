"""Runs: start one, log params, metrics, tags and artifacts to it, end it once.

`start_run()` writes the run's row at once (status RUNNING) and makes it the current run of the
calling context: `CURRENT_RUN` (agenttrace.tracing.context) holds it, so traces started inside
are stamped with its id and experiment, asyncio tasks inherit it, and `agenttrace.context.wrap`
carries it into threads. A run started while another is current is its child (parent_run_id).

As a context manager the run ends FINISHED, FAILED when the block raises, KILLED on Ctrl-C. A
plain `start_run()` is ended by `end_run()`, or at interpreter exit (FAILED/KILLED if the program
died of an uncaught exception). A process killed outright leaves the run RUNNING, and `runs
list` shows since when. Ending a run twice is an error; so is logging to an ended run.

Params and tags are written as they are logged (a param never changes: ParamConflictError);
metrics go through the buffer in `_metrics`, so a loop can log hundreds of thousands per second.
"""

from __future__ import annotations

import atexit
import getpass
import logging
import math
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from agenttrace.errors import InvalidMetricError, RunStateError, TrackingError
from agenttrace.store import DuckDBStore
from agenttrace.tracing.context import CURRENT_RUN, RunStamp
from agenttrace.tracing.runtime import get_runtime
from agenttrace.tracking import _metrics, artifacts
from agenttrace.tracking._artifact_files import ArtifactLogger

logger = logging.getLogger("agenttrace")

__all__ = ["STATUSES", "ActiveRun", "active_run", "end_run", "evaluation_run", "start_run", "tracking_store"]

STATUSES = ("FINISHED", "FAILED", "KILLED")
_MAX_KEY = 250
_active: dict[str, ActiveRun] = {}
_stores: dict[str, DuckDBStore] = {}
_lock = threading.Lock()
_atexit_registered = False


def tracking_store() -> DuckDBStore:
    """The store runs are written to: the tracing runtime's, or the configured file when tracing is off."""
    rt = get_runtime()
    if rt.store is not None:
        return rt.store
    settings = rt.settings
    if settings.uri is not None:
        raise TrackingError(
            f"runs are kept in a local store file; client mode (uri={settings.uri!r}) does not record them yet"
        )
    if settings.store is None:
        raise TrackingError("no store is configured (store=None); configure(store='agenttrace.duckdb') to record runs")
    with _lock:
        key = str(settings.store)
        if key not in _stores:
            _stores[key] = DuckDBStore(settings.store, lock_timeout_s=settings.lock_timeout_s, settings=settings)
        return _stores[key]


def check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > _MAX_KEY or "\n" in key:
        raise TrackingError(f"{what} name {key!r} must be non-empty text of at most {_MAX_KEY} characters, one line")
    return key


def _number(key: str, value: Any) -> float:
    """A metric value as a finite float; InvalidMetricError otherwise."""
    kind = type(value)
    if kind is float or kind is int:
        try:
            number = float(value)
        except OverflowError as exc:  # an int past a double's range
            raise InvalidMetricError(f"metric {key!r}: {value!r} is too large for a float") from exc
    elif isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, str | bytes):
        raise InvalidMetricError(f"metric {key!r}: {value!r} is not a number; log a finite int or float")
    else:
        try:
            number = float(value)  # numpy scalars, Decimal, Fraction
        except (OverflowError, ValueError) as exc:  # 10**400, a Decimal NaN signalling
            raise InvalidMetricError(f"metric {key!r}: {value!r} is not a finite float ({exc})") from exc
    if not math.isfinite(number):
        raise InvalidMetricError(f"metric {key!r}: {value!r} is not finite; NaN and infinity cannot be logged")
    return number


# The store keeps steps and nanosecond times in BIGINT: a value past these would stay in the metric
# buffer, failing every later write of the run's metrics, so it is refused when logged.
_MAX_STEP = 2**63
_MAX_TIMESTAMP_MS = 9_000_000_000_000  # the year 2255, in ms since the epoch


def _stamp_ns(step: Any, timestamp: Any) -> tuple[int, int]:
    if type(step) is not int:
        if isinstance(step, bool) or not hasattr(step, "__index__"):
            raise InvalidMetricError(f"step must be an integer, got {step!r}")
        step = int(step)
    if not -_MAX_STEP <= step < _MAX_STEP:
        raise InvalidMetricError(f"step {step} is outside the 64-bit range the store keeps")
    if timestamp is None:
        return step, time.time_ns()
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise InvalidMetricError(f"timestamp must be milliseconds since the epoch (a number), got {timestamp!r}")
    if not (isinstance(timestamp, int) or math.isfinite(timestamp)) or not 0 <= timestamp < _MAX_TIMESTAMP_MS:
        raise InvalidMetricError(
            f"timestamp {timestamp!r} is not milliseconds since the epoch (0 to {_MAX_TIMESTAMP_MS:,}); "
            "give time.time() * 1000"
        )
    return step, int(timestamp * 1_000_000)


class ActiveRun(ArtifactLogger):
    """A run this process started: log to it, end it once. Also a context manager."""

    def __init__(self, store: DuckDBStore, info: dict[str, Any], stamp: RunStamp) -> None:
        self.store = store
        self.info = info
        self.run_id: str = info["run_id"]
        self.name: str | None = info.get("name")
        self.experiment: str = info["experiment"]
        self.experiment_id: int = info["experiment_id"]
        self.parent_run_id: str | None = info.get("parent_run_id")
        self.stamp = stamp
        self.status = "RUNNING"
        self.artifacts = artifacts.repository(info["artifact_uri"])
        self._buffer = _metrics.buffer_for(store)
        self._metric_keys: set[str] = set()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"<ActiveRun {self.run_id} name={self.name!r} experiment={self.experiment!r} status={self.status}>"

    def _check_open(self) -> None:
        if self.status != "RUNNING":
            raise RunStateError(f"run {self.run_id} has ended ({self.status}); start a new run to log more")

    # --- params, tags, metrics --------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params (stored as text); one logged before with another value is refused."""
        self._check_open()
        values = {check_key(k, "param"): str(v) for k, v in params.items()}
        if values:
            self.store.log_params(self.run_id, values)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (text); setting one again replaces its value."""
        self._check_open()
        values = {check_key(k, "tag"): str(v) for k, v in tags.items()}
        if values:
            self.store.set_run_tags(self.run_id, values)

    def log_metric(self, key: str, value: Any, step: int = 0, timestamp: float | None = None) -> None:
        """Buffer one value of a metric; `timestamp` is in milliseconds since the epoch (default: now)."""
        if self.status != "RUNNING":
            self._check_open()
        if key not in self._metric_keys:
            self._metric_keys.add(check_key(key, "metric"))
        number = _number(key, value)
        if type(step) is int and timestamp is None and -_MAX_STEP <= step < _MAX_STEP:
            self._buffer.add((self.run_id, key, number, step, time.time_ns()))
            return
        step, stamp = _stamp_ns(step, timestamp)
        self._buffer.add((self.run_id, key, number, step, stamp))

    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0, timestamp: float | None = None) -> None:
        """Buffer several metrics at one step; nothing is logged if any value is invalid."""
        self._check_open()
        step, stamp = _stamp_ns(step, timestamp)
        rows = [(self.run_id, check_key(k, "metric"), _number(k, v), step, stamp) for k, v in metrics.items()]
        self._buffer.add_many(rows)

    # --- ending -----------------------------------------------------------------------------

    def end(self, status: str = "FINISHED") -> None:
        """End the run with FINISHED, FAILED or KILLED; its buffered metrics are written first."""
        if status not in STATUSES:
            raise TrackingError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        if self.status != "RUNNING":
            raise RunStateError(f"run {self.run_id} ended already ({self.status}); a run ends once")
        self._buffer.flush()
        self.store.end_run(self.run_id, status)
        self.status = status
        with _lock:
            _active.pop(self.run_id, None)
        if CURRENT_RUN.get() is self.stamp:
            CURRENT_RUN.set(self.stamp.parent)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.status != "RUNNING":
            return  # ended inside the block by end_run()
        if exc_type is None:
            self.end("FINISHED")
        else:
            try:
                self.end("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")
            except Exception as inner:  # the block's own exception is the one to raise
                logger.warning("agenttrace could not end run %s after %s: %s", self.run_id, exc_type.__name__, inner)


def start_run(
    name: str | None = None,
    experiment: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    parent_run_id: str | None = None,
) -> ActiveRun:
    """Start a run and make it current; use it as a context manager or end it with `end_run()`.

    Args:
        name: a display name (need not be unique).
        experiment: the experiment's name, created if new (default: the configured experiment, or the
            parent run's); a deleted experiment is refused.
        tags: text tags, settable later with `set_tags`.
        description: free text.
        parent_run_id: the parent run; by default the current run, if any.
    """
    store = tracking_store()
    parent = CURRENT_RUN.get()
    if parent_run_id is None and parent is not None:
        parent_run_id = parent.run_id
    if experiment is None:
        experiment = (
            parent.experiment if parent is not None and parent.experiment else get_runtime().settings.experiment
        )
    run_id = uuid.uuid4().hex
    root = artifacts.root_uri(get_runtime().settings.artifact_root, store.path)
    info = {
        "run_id": run_id,
        "experiment": experiment,
        "name": name,
        "parent_run_id": parent_run_id,
        "description": description,
        "start_time_ns": time.time_ns(),
        "user_name": _user(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "source": _source(),
        "artifact_uri": f"{root.rstrip('/')}/{run_id}",
    }
    info["experiment_id"] = store.create_run(info, {check_key(k, "tag"): str(v) for k, v in (tags or {}).items()})
    stamp = RunStamp(run_id, experiment, parent)
    run = ActiveRun(store, info, stamp)
    with _lock:
        _active[run_id] = run
    _register_atexit()
    CURRENT_RUN.set(stamp)
    return run


def _source() -> str | None:
    """The script the run came from (None for `python -c` and interactive sessions)."""
    script = sys.argv[0] if sys.argv else ""
    return os.path.abspath(script) if script and os.path.isfile(script) else None


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd entry)
        return None


def active_run() -> ActiveRun | None:
    """The current run of this context (thread or task), or None."""
    stamp = CURRENT_RUN.get()
    return None if stamp is None else _active.get(stamp.run_id)


def current() -> ActiveRun:
    """The current run; RunStateError when there is none."""
    stamp = CURRENT_RUN.get()
    run = None if stamp is None else _active.get(stamp.run_id)
    if run is None:
        raise RunStateError("no active run; start one with `with agenttrace.start_run():` or agenttrace.start_run()")
    return run


def end_run(status: str = "FINISHED") -> None:
    """End the current run; RunStateError when there is none (ended already, or never started)."""
    current().end(status)


_EVAL_STATUS = {"FINISHED": "FINISHED", "INTERRUPTED": "KILLED"}


def evaluation_run(name: str, experiment: str | None) -> tuple[ActiveRun, ActiveRun | None]:
    """(the run an evaluation belongs to, the run started for it if there was no current one).

    Each eval run belongs to exactly one run: the caller's current run, or one of its own that
    `end_evaluation_run` ends with the evaluation.
    """
    found = active_run()
    if found is not None:
        return found, None
    owned = start_run(name=name, experiment=experiment, tags={"agenttrace.source": "evaluate"})
    return owned, owned


def end_evaluation_run(owned: ActiveRun | None, eval_status: str) -> None:
    """End a run started by `evaluation_run`: FINISHED, KILLED when interrupted, else FAILED."""
    if owned is not None and owned.status == "RUNNING":
        owned.end(_EVAL_STATUS.get(eval_status, "FAILED"))


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_at_exit)
        _atexit_registered = True


def _at_exit() -> None:
    """End this process's open runs: FAILED or KILLED if the program died of an exception."""
    died = getattr(sys, "last_value", None)
    status = "FINISHED" if died is None else "KILLED" if isinstance(died, KeyboardInterrupt) else "FAILED"
    for run in list(_active.values()):
        if run._pid == os.getpid() and run.status == "RUNNING":
            try:
                run.end(status)
            except Exception as exc:  # the store is gone; the run stays RUNNING, as after a crash
                logger.warning("agenttrace could not end run %s at exit: %s", run.run_id, exc)
    _metrics.flush_all(raise_errors=False)


def forget_active_runs() -> None:
    """Drop this process's record of open runs without ending them (tests and notebooks)."""
    with _lock:
        _active.clear()
        _stores.clear()
    CURRENT_RUN.set(None)
