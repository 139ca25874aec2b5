"""Reading openai replies into span facts, and the stream wrappers that assemble chunks.

`response_facts` turns a reply object (chat completion, response, embeddings) into the span's
output and GenAI attributes. `TracedStream` / `AsyncTracedStream` stand in for openai's `Stream`
objects: they pass every chunk through unchanged, collect it, and end the span once the stream is
exhausted, closed, left (`with`), fails, or is dropped.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

from opentelemetry.trace import Span

from agenttrace.otel import messages
from agenttrace.tracing.runtime import internal_error
from agenttrace.tracing.spans import end_error, end_ok

__all__ = ["AsyncTracedStream", "TracedStream", "plain", "response_facts"]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _dump(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else obj


def plain(obj: Any) -> Any:
    """The SDK's objects (pydantic models), however nested in lists and dicts, as plain values."""
    obj = _dump(obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def _usage(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {}
    found = {}
    for ours, names in (("gen_ai.usage.input_tokens", ("prompt_tokens", "input_tokens")),
                        ("gen_ai.usage.output_tokens", ("completion_tokens", "output_tokens"))):  # fmt: skip
        for name in names:
            value = _get(usage, name)
            if isinstance(value, int):
                found[ours] = value
                break
    return found


def response_facts(operation: str, result: Any) -> tuple[Any, dict[str, Any]]:
    """(output for the span, GenAI attributes) of a non-streamed reply."""
    attributes: dict[str, Any] = {}
    for ours, name in (("gen_ai.response.model", "model"), ("gen_ai.response.id", "id")):
        value = _get(result, name)
        if isinstance(value, str):
            attributes[ours] = value
    attributes.update(_usage(_get(result, "usage")))
    if operation == "chat":
        choices = [_dump(c) for c in _get(result, "choices") or []]
        reasons = [str(_get(c, "finish_reason")) for c in choices if _get(c, "finish_reason") is not None]
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
        return messages.from_openai_reply({"choices": choices}), attributes
    if operation == "responses":
        status = _get(result, "status")
        if isinstance(status, str):
            attributes["gen_ai.response.finish_reasons"] = [status]
        reply = {"output": _dump(_get(result, "output")), "status": status}
        text = _get(result, "output_text")
        found = messages.from_openai_reply(reply)
        if found is None and isinstance(text, str):
            found = [messages.message(text, "assistant")]
        return found, attributes
    data: list[Any] = list(_get(result, "data") or [])
    first = _get(data[0], "embedding") if data else None
    dimensions = len(first) if isinstance(first, Sized) else None
    return {"embeddings": len(data), "dimensions": dimensions}, attributes


class _Collector:
    """Assembles chat chunks (content, tool calls, finish reasons, usage) or response events."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.content: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.reasons: list[str] = []
        self.attributes: dict[str, Any] = {}
        self.final: Any = None
        self.chunks = 0

    def add(self, chunk: Any) -> None:
        self.chunks += 1
        if self.operation == "responses":
            kind = _get(chunk, "type")
            if kind == "response.output_text.delta":
                self.content.append(str(_get(chunk, "delta") or ""))
            elif kind in ("response.completed", "response.incomplete", "response.failed"):
                self.final = _get(chunk, "response")
            return
        for ours, name in (("gen_ai.response.model", "model"), ("gen_ai.response.id", "id")):
            value = _get(chunk, name)
            if isinstance(value, str):
                self.attributes[ours] = value
        self.attributes.update(_usage(_get(chunk, "usage")))
        for choice in _get(chunk, "choices") or []:
            delta = _get(choice, "delta")
            if _get(delta, "content"):
                self.content.append(_get(delta, "content"))
            for call in _get(delta, "tool_calls") or []:
                slot = self.tool_calls.setdefault(_get(call, "index", 0), {"id": None, "name": "", "arguments": ""})
                slot["id"] = _get(call, "id") or slot["id"]
                function = _get(call, "function")
                slot["name"] += _get(function, "name") or ""
                slot["arguments"] += _get(function, "arguments") or ""
            if _get(choice, "finish_reason"):
                self.reasons.append(str(_get(choice, "finish_reason")))

    def result(self) -> tuple[Any, dict[str, Any]]:
        if self.final is not None:
            return response_facts("responses", self.final)
        attributes = dict(self.attributes)
        if self.reasons:
            attributes["gen_ai.response.finish_reasons"] = self.reasons
        attributes["agenttrace.stream.chunks"] = self.chunks
        output: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.tool_calls:
            output["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        if self.reasons:
            output["finish_reason"] = self.reasons[-1]
        return [messages.message(output, "assistant")], attributes


class _StreamBase:
    def __init__(self, stream: Any, span: Span, rt: Any, operation: str) -> None:
        self._stream = stream
        self._span = span
        self._rt = rt
        self._collector = _Collector(operation)
        self._ended = False

    def __getattr__(self, name: str) -> Any:  # `response`, `_iterator`, ... of the real stream
        if name == "_stream":  # not set yet (a copy, or __del__ after a failed __init__): no recursion
            raise AttributeError(name)
        return getattr(self._stream, name)

    def _collect(self, chunk: Any) -> None:
        try:
            self._collector.add(chunk)
        except Exception as exc:
            internal_error("openai autolog chunk", exc)

    def _end(self, exc: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        if exc is not None:
            end_error(self._span, None, exc)
            return
        try:
            output, attributes = self._collector.result()
            if self._span.is_recording():
                self._span.set_attributes(attributes)
        except Exception as inner:
            internal_error("openai autolog stream end", inner)
            output = None
        end_ok(self._rt, self._span, None, output, capture=output is not None)

    def __del__(self) -> None:
        try:
            self._end()
        except Exception:  # noqa: S110 - never raise from a finaliser
            pass


class TracedStream(_StreamBase):
    """openai's `Stream`, traced: iterate it, use it in `with`, close it, as the original."""

    def __iter__(self) -> TracedStream:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._stream)
        except StopIteration:
            self._end()
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        self._collect(chunk)
        return chunk

    def __enter__(self) -> TracedStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._end()


class AsyncTracedStream(_StreamBase):
    """openai's `AsyncStream`, traced."""

    def __aiter__(self) -> AsyncTracedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            self._end()
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        self._collect(chunk)
        return chunk

    async def __aenter__(self) -> AsyncTracedStream:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._stream.close()
        finally:
            self._end()
