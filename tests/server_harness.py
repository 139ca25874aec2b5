"""Running `agenttrace server` for tests: in a thread of the test process, or as the real CLI.

    with ServerThread(store_path) as srv:        # srv.url = "http://127.0.0.1:PORT"
        status, headers, body = http(srv.url + "/api/health")

`http` is a bare http.client request (no retries, no redirects), so a test sees exactly what the
server answered.
"""

from __future__ import annotations

import http.client as httplib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from agenttrace.server import create_app
from agenttrace.store import DuckDBStore

__all__ = ["CliServer", "ServerThread", "http", "http_json"]


def http(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None, method: str | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    parts = urlsplit(url)
    con = httplib.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        con.request(method or ("POST" if body is not None else "GET"), path, body=body, headers=headers or {})
        response = con.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        con.close()


def http_json(url: str, payload: Any = None, token: str | None = None, method: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = None if payload is None else json.dumps(payload).encode()
    status, _, raw = http(url, body, headers, method)
    return status, json.loads(raw) if raw else None


class ServerThread:
    """create_app + uvicorn on an ephemeral 127.0.0.1 port, in a daemon thread."""

    def __init__(self, store_path: Path, *, store_class: type[DuckDBStore] = DuckDBStore, **app_options: Any) -> None:
        self.store = store_class(store_path)
        self.app_options = app_options

    def start(self) -> ServerThread:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.app = create_app(self.store, **self.app_options)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CliServer:
    """`python -m agenttrace server --port 0 ...` as a subprocess; reads the URL it prints."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.env = {**os.environ, **(env or {})}

    def start(self) -> CliServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agenttrace", "server", "--port", "0", *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()!r}")  # type: ignore[union-attr]
        self.url = m.group(1)
        self.lines = [line]
        return self

    def stop(self) -> tuple[int, str]:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err

    def __enter__(self) -> CliServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.stop()
