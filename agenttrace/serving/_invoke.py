"""Calling the served agent for one request, under a trace, and answering in JSON or events.

Every request is one trace whose root is one AGENT span named after the agent (the request and
the agent's call are one span, so each request costs one span and its payloads are stored once):
its inputs are the agent's arguments, its outputs the agent's result, with the HTTP route and
status, the request id (the trace's `request_id` metadata), the session and user from
`x-session-id` / `x-user-id`, and the agent version stamped on it. Whatever the agent traces
nests below. The target is called with the registry's binding of the version's config and prompts
(what `load_agent`'s callable does, without its own span). A W3C `traceparent` header makes the
root a child of the caller's span, so a traced client and the served agent are one trace.

A successful request's span is ended at the moment the answer is ready (its outputs serialised
then), but stored, with its status, only once the answer is sent (`_RecordedAfter`): the caller does
not wait for that. A failed request's span is stored before the error answer. Sync agents run on a
thread pool (so a slow one holds a thread, not the event loop); async ones on the loop. A request
longer than the timeout is answered 504 and its trace marked ERROR; the agent's thread cannot be
stopped and finishes in the background. A result that is not JSON is encoded as the tracer encodes
payloads (never a 500 of ours). An agent that raises gets 500 with the error type and trace id; the
stack is in the trace only.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from agenttrace.jsontext import dumps
from agenttrace.otel import conventions as cv
from agenttrace.serving._agent import AgentHolder, BadRequest, BodyTooLarge, ServedAgent
from agenttrace.tracing.context import wrap
from agenttrace.tracing.serialize import Serializer
from agenttrace.tracing.spans import checked_attributes, span

__all__ = ["Invoker"]

_PROPAGATOR = TraceContextTextMapPropagator()
# The response is the agent's whole result: encoded like the tracer encodes payloads, but never
# redacted or truncated (redaction and caps are for what is stored, not what the caller asked for).
_RESPONSE = Serializer(max_bytes=1 << 62)
_DONE = object()
_READ = frozenset({b"x-request-id", b"x-session-id", b"x-user-id", b"traceparent", b"tracestate"})


def _json(status: int, body: dict[str, Any], headers: dict[str, str]) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error_body(served: ServedAgent, exc: BaseException, trace_id: str | None, timeout_s: float) -> dict[str, Any]:
    if isinstance(exc, TimeoutError):
        message = f"the agent did not answer within {timeout_s:g} s (raise the limit with --timeout)"
    else:
        message = f"the agent raised {type(exc).__name__}; the trace has the full error and stack"
    return {"error": message, "error_type": type(exc).__name__, "trace_id": trace_id, "agent_version": served.label}


class Invoker:
    """The request handlers, over an AgentHolder; one per app."""

    def __init__(self, holder: AgentHolder, timeout_s: float, threads: int, max_body_bytes: int) -> None:
        self.holder = holder
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="agenttrace-serve")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _too_large(self) -> BodyTooLarge:
        limit = self.max_body_bytes
        return BodyTooLarge(f"the body is over the server's limit of {limit:,} bytes (raise it with --max-body-mb)")

    async def _read(self, request: Request) -> bytes:
        """The body, refused as soon as it is known to be over the limit (never held whole in memory)."""
        limit = self.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large()
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    async def _body(self, request: Request, served: ServedAgent) -> dict[str, Any]:
        raw = await self._read(request)
        try:
            payload = json.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not JSON ({exc}); send the agent's parameters as a JSON object") from None
        if payload is None:
            payload = {}
        return served.arguments(payload)

    @staticmethod
    def _request_ids(request: Request) -> tuple[dict[str, str], str, dict[str, str]]:
        """(the headers we read, the request id, the response headers): the raw header list is read once."""
        seen = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"] if k in _READ}
        # An id to find the request by, not a secret: 128 random bits as OpenTelemetry makes trace ids,
        # without uuid4's system call and object (3 % of a traced request's time under load).
        request_id = seen.get("x-request-id") or f"{random.getrandbits(128):032x}"
        return seen, request_id, {"x-request-id": request_id}

    def _root(
        self, served: ServedAgent, route: str, arguments: dict[str, Any], seen: dict[str, str], request_id: str
    ) -> span:
        # The request's facts go on the root span as the attributes update_current_trace would set:
        # the span is the trace's root here, so there is nothing to merge with. What is the same for
        # every request of a version and route is checked once (a swapped version brings its own).
        static = served.root_attributes.get(route)
        if static is None:
            identity = {**served.loaded.identity.attributes, "http.request.method": "POST", "http.route": route}
            static = served.root_attributes[route] = checked_attributes("AGENT", identity)
        attributes = {**static, cv.TRACE_METADATA: dumps({"request_id": request_id})}
        if "x-session-id" in seen:
            attributes[cv.SESSION_ID] = seen["x-session-id"]
        if "x-user-id" in seen:
            attributes[cv.USER_ID] = seen["x-user-id"]
        # Deferred: the SDK starts the root once the request is over, so the caller does not wait for it.
        return span.of_checked(served.loaded.name, attributes, inputs=arguments, deferred=True)

    @staticmethod
    def _parent(seen: dict[str, str]) -> Token[Context] | None:
        """Attach the caller's context from a W3C traceparent header, if one came."""
        return otel_context.attach(_PROPAGATOR.extract(seen)) if "traceparent" in seen else None

    async def invoke(self, request: Request) -> Response:
        served = self.holder.current  # read once: a swap reaches the next request, not this one
        seen, request_id, headers = self._request_ids(request)
        try:
            arguments = await self._body(request, served)
        except BadRequest as exc:
            return _json(exc.status, {"error": str(exc), "error_type": type(exc).__name__}, headers)
        token = self._parent(seen)
        trace_id = None
        root = self._root(served, "/invocations", arguments, seen, request_id)
        try:
            with root as live:
                trace_id = live.trace_id
                try:
                    outputs = await asyncio.wait_for(self._call(served, arguments), self.timeout_s)
                except BaseException as exc:
                    live.set_attributes({"http.response.status_code": 504 if isinstance(exc, TimeoutError) else 500})
                    raise
                text = _RESPONSE.to_json(outputs)
                record = root.leave(outputs, text)  # the span ends now; it is stored once the answer is sent
        except Exception as exc:
            status = 504 if isinstance(exc, TimeoutError) else 500
            return _json(
                status, _error_body(served, exc, trace_id, self.timeout_s), {**headers, **_trace_header(trace_id)}
            )
        finally:
            if token is not None:
                otel_context.detach(token)
        body = f'{{"outputs": {text}, "trace_id": {json.dumps(trace_id)}, "agent_version": {json.dumps(served.label)}}}'
        return _RecordedAfter(body, {**headers, **_trace_header(trace_id)}, record)

    @staticmethod
    def _bound(served: ServedAgent, arguments: dict[str, Any]) -> dict[str, Any]:
        """The target's keyword arguments: the registry's own binding of the version's config= and prompts=."""
        return served.loaded._arguments((), arguments)[1]

    async def _call(self, served: ServedAgent, arguments: dict[str, Any]) -> Any:
        fn, call = served.loaded.fn, self._bound(served, arguments)
        if served.kind == "async":
            return await fn(**call)
        if served.kind == "async_generator":
            return [item async for item in fn(**call)]
        loop = asyncio.get_running_loop()
        if served.kind == "generator":
            return await loop.run_in_executor(self.pool, wrap(lambda: list(fn(**call))))
        return await loop.run_in_executor(self.pool, wrap(lambda: fn(**call)))

    def _gen(self, served: ServedAgent, arguments: dict[str, Any]) -> Generator[Any, None, None]:
        yield from served.loaded.fn(**self._bound(served, arguments))

    async def _agen(self, served: ServedAgent, arguments: dict[str, Any]) -> AsyncGenerator[Any, None]:
        async for item in served.loaded.fn(**self._bound(served, arguments)):
            yield item

    async def stream(self, request: Request) -> Response:
        served = self.holder.current
        seen, request_id, headers = self._request_ids(request)
        if not served.streams:
            message = f"{served.label} is not a generator agent; call POST /invocations for its one result"
            return _json(400, {"error": message, "error_type": "BadRequest"}, headers)
        try:
            arguments = await self._body(request, served)
        except BadRequest as exc:
            return _json(exc.status, {"error": str(exc), "error_type": type(exc).__name__}, headers)
        events = self._events(served, arguments, seen, request_id)
        return StreamingResponse(
            events, media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"}
        )

    async def _events(
        self, served: ServedAgent, arguments: dict[str, Any], seen: dict[str, str], request_id: str
    ) -> AsyncIterator[str]:
        token = self._parent(seen)
        try:
            with self._root(served, "/invocations/stream", arguments, seen, request_id) as live:
                yield _event("start", {"trace_id": live.trace_id, "agent_version": served.label})
                items: list[Any] = []
                try:
                    async for item in self._items(served, arguments):
                        items.append(item)
                        yield _event(None, json.loads(_RESPONSE.to_json(item)))
                except Exception as exc:
                    live.set_attributes({"http.response.status_code": 504 if isinstance(exc, TimeoutError) else 500})
                    yield _event("error", _error_body(served, exc, live.trace_id, self.timeout_s))
                    raise
                live.set_outputs(items)
                live.set_attributes({"http.response.status_code": 200})
                yield _event("end", {"trace_id": live.trace_id, "agent_version": served.label, "items": len(items)})
        except Exception:
            pass  # the error event was sent and the trace holds the stack; the server stays up
        finally:
            if token is not None:
                otel_context.detach(token)

    async def _items(self, served: ServedAgent, arguments: dict[str, Any]) -> AsyncIterator[Any]:
        """The agent's items; the timeout bounds the wait for each one."""
        if served.kind == "async_generator":
            agen = self._agen(served, arguments)
            try:
                while True:
                    try:
                        item = await asyncio.wait_for(anext(agen), self.timeout_s)
                    except StopAsyncIteration:
                        return
                    yield item
            finally:
                await agen.aclose()
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # the generator's spans nest under the request's root
        gen = context.run(self._gen, served, arguments)
        step: Callable[[], Any] = lambda: context.run(next, gen, _DONE)  # noqa: E731
        try:
            while True:
                item = await asyncio.wait_for(loop.run_in_executor(self.pool, step), self.timeout_s)
                if item is _DONE:
                    return
                yield item
        finally:
            self.pool.submit(lambda: context.run(gen.close))


class _RecordedAfter(Response):
    """A 200 answer whose span is stored once it is sent: storing it is work the caller need not
    wait for. The span is stored whatever happens to the sending (a client gone, a server shutting
    down that cancels it), so no trace is left without its root."""

    def __init__(self, body: str, headers: dict[str, str], record: Callable[[Mapping[str, Any]], None]) -> None:
        super().__init__(body, media_type="application/json", headers=headers)
        self._record = record

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._record({"http.response.status_code": 200})


def _event(name: str | None, data: Any) -> str:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(data)}\n\n"


def _trace_header(trace_id: str | None) -> dict[str, str]:
    return {"x-trace-id": trace_id} if trace_id else {}
