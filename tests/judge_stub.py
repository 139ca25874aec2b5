"""A deterministic OpenAI-compatible chat-completions server for judge tests.

    with StubJudgeServer() as stub:
        client = JudgeClient("stub-model", base_url=stub.base_url, api_key="test")
        ...
        assert stub.calls == 1

It serves POST /v1/chat/completions on 127.0.0.1 (an ephemeral port, a background thread, the
standard library's ThreadingHTTPServer) and answers 404 JSON to anything else. What it answers is
decided by ``stub.responder``, a function of the request JSON returning one of:

- a string: the assistant's reply text (garbage, code-fenced JSON, prose, anything);
- a dict: replied as its JSON text;
- StubReply(text, delay=..., model=..., tokens): a reply, after an optional delay;
- StubFailure(status, retry_after=..., delay=...): an error status with an OpenAI-style error body
  and optional Retry-After header (fractional seconds allowed), after an optional delay.

`sequence(...)` scripts answers call by call. The default responder applies a fixed rule to the
tagged sections of the prompt (<expected_answer>, <output>, <context>, ...; see `default_rule`), so a
test can predict the verdict. Replies carry usage token counts (whitespace-separated words).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "Responder",
    "StubFailure",
    "StubJudgeServer",
    "StubReply",
    "default_responder",
    "default_rule",
    "fenced",
    "sequence",
]

CHAT_PATH = "/v1/chat/completions"
UNSAFE_WORDS = ("bomb", "weapon", "poison")


@dataclass(frozen=True)
class StubReply:
    text: str
    delay: float = 0.0
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class StubFailure:
    status: int
    message: str = "scripted failure"
    retry_after: float | str | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[dict[str, Any]], "str | dict[str, Any] | StubReply | StubFailure"]


def fenced(obj: Any, lang: str = "json") -> str:
    """``obj`` as JSON inside a Markdown code fence, with some chatter around it."""
    return f"Here is my verdict:\n```{lang}\n{json.dumps(obj, indent=2)}\n```\nLet me know if you need more."


def sequence(*items: Any, then: Responder | None = None) -> Responder:
    """Answer the n-th call with items[n] (callables are called with the request), then ``then``."""
    lock = threading.Lock()
    state = {"n": 0}
    fallback = then or default_responder

    def responder(request: dict[str, Any]) -> Any:
        with lock:
            n = state["n"]
            state["n"] += 1
        if n >= len(items):
            return fallback(request)
        item = items[n]
        return item(request) if callable(item) else item

    return responder


# -- the default rule --------------------------------------------------------------------------

_SECTION = re.compile(r"<([a-z_]+)>\n?(.*?)\n?</\1>", re.DOTALL)
_WORD = re.compile(r"[A-Za-z]{4,}")


def sections(text: str) -> dict[str, str]:
    """The <tag>...</tag> sections of a prompt, by tag."""
    return {m.group(1): m.group(2).strip() for m in _SECTION.finditer(text)}


def _contains(haystack: str, needle: str) -> bool:
    return needle.strip().rstrip(".").lower() in haystack.lower()


def _overlaps(a: str, b: str) -> bool:
    return any(w.lower() in b.lower() for w in _WORD.findall(a))


def default_rule(prompt: str) -> tuple[bool, str]:
    """The stub's verdict on a prompt, from its tagged sections, first matching line wins:

    expected_answer + output      -> the expected answer's text appears in the output
    expected_facts + output       -> every "- fact" line appears in the output
    expected_tool_calls           -> every expected tool name appears in <tool_calls>
    tool_calls                    -> at least one tool was called
    guideline + output            -> no "quoted" word of the guideline appears in the output
    context + output              -> the output's text appears in the context
    chunk + request               -> the chunk shares a word of 4+ letters with the request
    request + output              -> the output shares a word of 4+ letters with the request
    output                        -> the output has none of UNSAFE_WORDS
    """
    s = sections(prompt)
    out = s.get("output", "")
    if "expected_answer" in s and "output" in s:
        return _contains(out, s["expected_answer"]), "expected answer found in output"
    if "expected_facts" in s and "output" in s:
        facts = [ln.strip()[2:] for ln in s["expected_facts"].splitlines() if ln.strip().startswith("- ")]
        return all(_contains(out, f) for f in facts), "all expected facts found in output"
    if "expected_tool_calls" in s:
        names = re.findall(r"^\d+\. (\w+)", s["expected_tool_calls"], re.MULTILINE)
        called = re.findall(r"^\d+\. (\w+)", s.get("tool_calls", ""), re.MULTILINE)
        return all(n in called for n in names), "expected tools were called"
    if "tool_calls" in s:
        return "No tools were called" not in s["tool_calls"], "some tool was called"
    if "guideline" in s and "output" in s:
        banned = re.findall(r'"([^"]+)"', s["guideline"])
        return not any(_contains(out, b) for b in banned), "no banned word in output"
    if "context" in s and "output" in s:
        return _contains(s["context"], out), "output found in context"
    if "chunk" in s and "request" in s:
        return _overlaps(s["request"], s["chunk"]), "chunk shares a word with the request"
    if "request" in s and "output" in s:
        return _overlaps(s["request"], out), "output shares a word with the request"
    if "output" in s:
        return not any(w in out.lower() for w in UNSAFE_WORDS), "no unsafe word in output"
    return True, "nothing to check"


def default_responder(request: dict[str, Any]) -> str:
    """Answer in the output type the system message asks for, by `default_rule` (or, for a
    pairwise prompt, the longer of output_a / output_b; equal lengths tie)."""
    messages = request.get("messages", [])
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    prompt = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    s = sections(prompt)
    if "output_a" in s and "output_b" in s:
        a, b = len(s["output_a"]), len(s["output_b"])
        value: Any = "A" if a > b else "B" if b > a else "tie"
        return json.dumps({"value": value, "rationale": "stub: the longer output wins"})
    verdict, why = default_rule(prompt)
    why = f"stub: {why}: {'yes' if verdict else 'no'}"
    if m := re.search(r'is one of ((?:"[^"]*"(?:, )?)+)', system):
        cats = re.findall(r'"([^"]*)"', m.group(1))
        value = cats[0] if verdict else cats[-1]
    elif m := re.search(r"is an integer from (-?\d+) to (-?\d+)", system):
        value = int(m.group(2)) if verdict else int(m.group(1))
    elif "is a number" in system:
        value = 1.0 if verdict else 0.0
    else:
        value = verdict
    return json.dumps({"value": value, "rationale": why})


# -- the server --------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: StubJudgeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is expected here


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0].rstrip("/") != CHAT_PATH:
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        try:
            request = json.loads(body)
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        status, payload, headers = self.server.stub._answer(request, dict(self.headers))
        self._send(status, payload, headers)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


class StubJudgeServer:
    """The stub as a context manager; see the module docstring."""

    def __init__(self, responder: Responder | None = None, model: str = "stub-judge-1") -> None:
        self.responder: Responder = responder or default_responder
        self.model = model
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._times: list[float] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    handler_class: type = _Handler  # subclasses serve more routes with a handler of their own

    # lifecycle
    def start(self) -> StubJudgeServer:
        self._server = _Server(("127.0.0.1", 0), self.handler_class)
        self._server.stub = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="judge-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> StubJudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # what tests look at
    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the stub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Request bodies received on the chat path, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._headers)

    @property
    def request_times(self) -> list[float]:
        """time.monotonic() at each request's arrival."""
        with self._lock:
            return list(self._times)

    # serving
    def _answer(self, request: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any], dict]:
        with self._lock:
            self._requests.append(request)
            self._headers.append(headers)
            self._times.append(time.monotonic())
            n = len(self._requests)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            result = self.responder(request)
            delay = getattr(result, "delay", 0.0)
            if delay:
                self._stopping.wait(delay)
            if isinstance(result, StubFailure):
                return self._failure(result)
            if isinstance(result, dict):
                result = json.dumps(result)
            if isinstance(result, str):
                result = StubReply(result)
            return 200, self._completion(request, result, n), {}
        finally:
            with self._lock:
                self._in_flight -= 1

    def _failure(self, failure: StubFailure) -> tuple[int, dict[str, Any], dict]:
        headers = dict(failure.headers)
        if failure.retry_after is not None:
            headers["Retry-After"] = str(failure.retry_after)
        kind = {400: "invalid_request_error", 429: "rate_limit_exceeded"}.get(failure.status, "server_error")
        return failure.status, {"error": {"message": failure.message, "type": kind, "code": kind}}, headers

    def _completion(self, request: dict[str, Any], reply: StubReply, n: int) -> dict[str, Any]:
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
        prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else prompt_words
        completion_tokens = reply.completion_tokens if reply.completion_tokens is not None else len(reply.text.split())
        return {
            "id": f"chatcmpl-stub-{n}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": reply.model or request.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
