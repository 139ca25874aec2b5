"""Reads and notes in client mode: the same calls as on a local store, answered by the server's REST API.

A process with `uri` set sends its spans to `agenttrace server` and opens no file, so
`search_traces`, `get_trace`, `log_feedback` and `log_expectation` go to `/api/...` instead, with
the same bearer token as the spans. Results have the local shapes (a DataFrame with the same
columns, `Trace` and `Assessment` records), and the server's errors come back as the same
exception types a local store raises.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from agenttrace import errors
from agenttrace.records import Assessment, SpanRecord, Trace, TraceInfo
from agenttrace.schema import TRACE_COLUMNS, Kind

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ServerReads"]

_PUBLIC = [c for c in TRACE_COLUMNS if c.public]
_TIME_COLUMNS = tuple(c.name[: -len("_ns")] for c in _PUBLIC if c.name.endswith("_time_ns"))
_COUNT_COLUMNS = tuple(c.name for c in _PUBLIC if c.kind is Kind.INT64 and not c.name.endswith("_time_ns"))
MAX_RESULTS = 10_000  # the server's page limit (api.py)


class ServerReads:
    """The subset of `DuckDBStore` that readback uses, over HTTP to `agenttrace server`."""

    def __init__(self, uri: str, auth_token: str | None = None, timeout_s: float = 30.0) -> None:
        self.uri = uri.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {auth_token}"} if auth_token else {}
        self._local = threading.local()  # a requests.Session per thread: sessions are not thread-safe

    def __repr__(self) -> str:
        return f"ServerReads({self.uri!r})"

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()  # OpenTelemetry's HTTP exporter brings requests
            session.headers.update(self._headers)
        return session

    def search_traces(
        self,
        filter_string: str | None = None,
        experiments: list[str] | None = None,
        order_by: list[str] | str | None = None,
        max_results: int = 100,
    ) -> pd.DataFrame:
        import pandas as pd

        from agenttrace.store import TRACE_FRAME_COLUMNS

        if max_results > MAX_RESULTS:
            raise errors.InvalidArgumentError(
                f"max_results is at most {MAX_RESULTS:,} through the server, got {max_results:,}"
            )
        params: dict[str, Any] = {"max_results": max_results}
        if filter_string:
            params["filter"] = filter_string
        if experiments:
            params["experiment"] = list(experiments)
        if order_by:
            params["order_by"] = [order_by] if isinstance(order_by, str) else list(order_by)
        rows = self._request("GET", "/api/traces", params=params)["traces"]
        # The dtypes a local search gives (DuckDB's): naive UTC times in microseconds; integer
        # counts as int64, or as pandas' nullable Int64 when some are missing.
        frame = pd.DataFrame(rows, columns=list(TRACE_FRAME_COLUMNS))
        for column in _TIME_COLUMNS:
            times = pd.to_datetime(frame[column], utc=True, format="ISO8601")
            frame[column] = times.dt.tz_localize(None).astype("datetime64[us]")
        for column in _COUNT_COLUMNS:
            frame[column] = frame[column].astype("Int64" if frame[column].isna().any() else "int64")
        return frame

    def get_trace(self, trace_id: str) -> Trace:
        if not trace_id or "/" in trace_id:  # no stored id looks so, and no route can carry it
            raise errors.TraceNotFoundError(
                f"no trace with id {trace_id!r} in the store; list ids with `agenttrace traces list`"
            )
        data = self._request("GET", f"/api/traces/{quote(trace_id, safe='')}")
        return Trace(
            info=_record(TraceInfo, data["info"]),
            spans=[_record(SpanRecord, s) for s in data["spans"]],
            assessments=[_record(Assessment, a) for a in data["assessments"]],
        )

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
        metadata: dict[str, Any] | None = None,
    ) -> Assessment:
        route = "feedback" if kind == "feedback" else "expectations"
        source = source_type.lower() + (f":{source_id}" if source_id else "")
        body = {"name": name, "value": value, "rationale": rationale, "source": source, "span_id": span_id,
                "metadata": metadata}  # fmt: skip
        # Encoded as the local store encodes values: anything else as its str(); JSON has no NaN.
        data = json.dumps(body, default=str).encode()
        path = f"/api/traces/{quote(trace_id, safe='')}/{route}"
        return _record(Assessment, self._request("POST", path, data=data, headers={"Content-Type": "application/json"}))

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._session().request(
                method, self.uri + path, timeout=self.timeout_s, allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            raise errors.StoreError(
                f"agenttrace server at {self.uri} {_no_answer(exc, self.timeout_s)}; "
                "start it with `agenttrace server` or fix AGENTTRACE_URI"
            ) from exc
        if not 200 <= response.status_code < 300:
            raise _error_from(response, self.uri)
        try:
            return response.json()
        except ValueError as exc:
            raise errors.StoreError(
                f"{self.uri}{path} answered {response.status_code} but not with JSON: is AGENTTRACE_URI the "
                f"address of `agenttrace server`? ({response.text[:200]!r})"
            ) from exc


def _no_answer(exc: requests.RequestException, timeout_s: float) -> str:
    """What went wrong reaching the server, by its real cause (a refusal is not a timeout)."""
    if isinstance(exc, requests.Timeout):  # ConnectTimeout is also a ConnectionError: test it first
        return f"did not answer within {timeout_s:g} s ({type(exc).__name__})"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"failed the TLS handshake ({exc})"
    if isinstance(exc, requests.ConnectionError):
        reason = _root_cause(exc)
        if isinstance(reason, ConnectionRefusedError):
            return "refused the connection: nothing is listening there"
        if isinstance(reason, socket.gaierror):
            return f"cannot be found: its host name does not resolve ({reason})"
        return f"could not be reached: {reason}"
    return f"could not be asked: {type(exc).__name__}: {exc}"


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause (urllib3 wraps the socket's error several times, some in `args` or `reason`)."""
    seen = {id(exc)}
    while True:
        reason = getattr(exc, "reason", None)
        nested = next(
            (e for e in (exc.__cause__, exc.__context__, *exc.args[:1], reason)
             if isinstance(e, BaseException) and id(e) not in seen),
            None,
        )  # fmt: skip
        if nested is None:
            return exc
        seen.add(id(nested))
        exc = nested


def _record(cls: type, data: dict[str, Any]) -> Any:
    """A record from its dict, ignoring keys a newer server may add."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def _error_from(response: requests.Response, uri: str) -> Exception:
    """The server's error as the exception a local store would have raised."""
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    message = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(message, str):  # FastAPI's own 4xx bodies ({"detail": ...}) and proxies' pages
        message = f"{response.status_code} {response.reason}: {response.text[:300]}"
    kind = getattr(errors, str(payload.get("type")) if isinstance(payload, dict) else "", None)
    if response.status_code == 401:
        return errors.ConfigError(f"agenttrace server at {uri} refused the token: {message}; set AGENTTRACE_AUTH_TOKEN")
    if isinstance(kind, type) and issubclass(kind, errors.AgentTraceError):
        return kind(message)
    if response.status_code in (400, 422):  # a plain ValueError on the server, or FastAPI's validation
        return errors.InvalidArgumentError(message)
    return errors.StoreError(f"agenttrace server at {uri}: {message}")
