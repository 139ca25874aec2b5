"""Running `agenttrace serve`: resolve the version, bind, print where it is, serve until stopped.

The socket is bound here so `--port 0` works and the URL is printed before the first request.
With `workers` above 1, uvicorn's supervisor starts that many processes on the one socket; each
resolves the same reference itself (the spec travels in SPEC_ENV) and traces into the same store.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from typing import Any

from agenttrace.server.run import _bind
from agenttrace.serving._agent import AgentHolder, ServedAgent
from agenttrace.serving.app import DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT_S, create_serving_app

__all__ = ["SPEC_ENV", "serve_agent", "worker_app"]

SPEC_ENV = "AGENTTRACE_SERVE_SPEC"


def _app(spec: dict[str, Any], served: ServedAgent | None = None) -> Any:
    served = served or ServedAgent.load(spec["ref"])
    holder = AgentHolder(served, spec.get("follow_interval_s"))
    app = create_serving_app(
        holder, auth_token=spec.get("auth_token"), timeout_s=spec["timeout_s"], threads=spec["threads"],
        max_body_bytes=spec["max_body_bytes"], host=spec["host"], allowed_hosts=tuple(spec["allowed_hosts"]),
    )  # fmt: skip
    # This process is ours (the CLI's server): what it holds now (FastAPI, pandas, pyarrow, the agent)
    # stays, so the collector stops walking it on every full collection (what of a version swapped
    # out by --follow-alias sits in reference cycles is then not freed: once per swap). Interleaved
    # scratch runs at 200 requests/s, traced / bare p50 in five windows: 1.18, 1.27, 1.23, 1.22, 1.24
    # without; 1.16, 1.21, 1.18, 1.17, 1.19 with.
    gc.collect()
    gc.freeze()
    return app


def worker_app() -> Any:
    """The app of one worker process (uvicorn's factory, with --workers above 1)."""
    import agenttrace

    spec = json.loads(os.environ[SPEC_ENV])
    if spec.get("store"):
        agenttrace.configure(store=spec["store"])
    return _app(spec)


def serve_agent(
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    threads: int = 32,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    follow_interval_s: float | None = None,
    auth_token: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
    store: str | None = None,
    on_ready: Callable[[str, ServedAgent], None] | None = None,
) -> None:
    """Serve a registered version (NAME@ALIAS, NAME/VERSION or NAME) until interrupted."""
    import uvicorn

    served = ServedAgent.load(ref)  # an unknown agent, version or alias fails here, before binding
    spec = {
        "ref": ref, "timeout_s": timeout_s, "threads": threads, "max_body_bytes": max_body_bytes,
        "follow_interval_s": follow_interval_s,
        "auth_token": auth_token, "store": store, "host": host, "allowed_hosts": list(allowed_hosts),
    }  # fmt: skip
    sock = _bind(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}"
    if on_ready is not None:
        on_ready(url, served)
    if workers <= 1:
        config = uvicorn.Config(_app(spec, served), log_level="warning", access_log=False, timeout_graceful_shutdown=10)
        uvicorn.Server(config).run(sockets=[sock])
        return
    from uvicorn.supervisors import Multiprocess

    os.environ[SPEC_ENV] = json.dumps(spec)
    config = uvicorn.Config(
        "agenttrace.serving.run:worker_app", factory=True, workers=workers, log_level="warning", access_log=False,
        timeout_graceful_shutdown=10,
    )  # fmt: skip
    Multiprocess(config, sockets=[sock]).run()
