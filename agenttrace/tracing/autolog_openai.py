"""OpenAI auto-tracing: each call of the real `openai` client becomes an LLM (or EMBEDDING) span.

`instrument()` replaces `create` on the client's resource classes (chat completions, responses,
embeddings; sync and async) with a wrapper, once: a second call does nothing, and
`instrument(disable=True)` puts the originals back. The wrapper starts a span under the current
one, records the request (model, messages, parameters) and, from the reply, the output, finish
reasons, response model and token usage, in the GenAI attribute names. A streamed reply
(`stream=True`) is handed back wrapped: the span stays open while the caller iterates and closes
with the chunks assembled into one output. Errors from openai mark the span ERROR and propagate
unchanged; a failure of ours is sent to the runtime guard and the call goes on untraced.
"""

from __future__ import annotations

import functools
import importlib
import threading
from typing import Any

from opentelemetry import context as otel_context

from agenttrace.otel import messages
from agenttrace.tracing.autolog_streams import AsyncTracedStream, TracedStream, plain, response_facts
from agenttrace.tracing.runtime import get_runtime, internal_error
from agenttrace.tracing.spans import end_error, end_ok, start

__all__ = ["instrument", "is_instrumented"]

# (module, class, operation) of every method we wrap; the method is always `create`.
_TARGETS = (
    ("openai.resources.chat.completions", "Completions", "chat"),
    ("openai.resources.chat.completions", "AsyncCompletions", "chat"),
    ("openai.resources.responses", "Responses", "responses"),
    ("openai.resources.responses", "AsyncResponses", "responses"),
    ("openai.resources.embeddings", "Embeddings", "embeddings"),
    ("openai.resources.embeddings", "AsyncEmbeddings", "embeddings"),
)
_SKIPPED_KWARGS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "max_output_tokens", "seed",
           "frequency_penalty", "presence_penalty", "stop", "n")  # fmt: skip
_ORIGINAL = "__agenttrace_original__"
_lock = threading.Lock()


def is_instrumented() -> bool:
    cls = _load(_TARGETS[0])
    return cls is not None and hasattr(cls.create, _ORIGINAL)


def instrument(disable: bool = False) -> None:
    """Wrap the openai client's create methods (idempotent); disable=True restores them."""
    with _lock:
        for target in _TARGETS:
            cls = _load(target)
            if cls is None:
                continue
            current = cls.__dict__.get("create")
            wrapped = hasattr(current, _ORIGINAL)
            if disable and wrapped:
                cls.create = getattr(current, _ORIGINAL)
            elif not disable and not wrapped and current is not None:
                cls.create = _wrap(current, target[2], target[1].startswith("Async"))


def _load(target: tuple[str, str, str]) -> Any:
    try:
        return getattr(importlib.import_module(target[0]), target[1])
    except (ImportError, AttributeError):
        return None  # an openai version without this resource


def _wrap(original: Any, operation: str, is_async: bool) -> Any:
    if is_async:

        @functools.wraps(original)
        async def acreate(self: Any, *args: Any, **kwargs: Any) -> Any:
            began = _begin(operation, kwargs)
            if began is None:
                return await original(self, *args, **kwargs)
            try:
                result = await original(self, *args, **kwargs)
            except BaseException as exc:
                end_error(began[0], began[1], exc)
                raise
            return _finish(began, operation, kwargs, result, is_async=True)

        setattr(acreate, _ORIGINAL, original)
        return acreate

    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        began = _begin(operation, kwargs)
        if began is None:
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            end_error(began[0], began[1], exc)
            raise
        return _finish(began, operation, kwargs, result, is_async=False)

    setattr(create, _ORIGINAL, original)
    return create


def _begin(operation: str, kwargs: dict[str, Any]) -> tuple[Any, object, Any] | None:
    """Start the span, or None when tracing is off or failed (the call then runs untraced)."""
    try:
        rt = get_runtime()
        if not rt.enabled:
            return None
        model = kwargs.get("model")
        genai_operation = "embeddings" if operation == "embeddings" else "chat"
        attributes: dict[str, Any] = {
            "agenttrace.span_type": "EMBEDDING" if operation == "embeddings" else "LLM",
            "agenttrace.inputs": rt.serializer.to_json(_request_inputs(operation, kwargs)),
            "gen_ai.operation.name": genai_operation,
            "gen_ai.provider.name": "openai",
        }
        if kwargs.get("tools") is not None:
            attributes["gen_ai.tool.definitions"] = rt.serializer.to_json(kwargs["tools"])
        if isinstance(model, str):
            attributes["gen_ai.request.model"] = model
        for name in _PARAMS:
            value = kwargs.get(name)
            if isinstance(value, int | float | str) and not isinstance(value, bool):
                attributes[f"gen_ai.request.{name}"] = value
        if kwargs.get("stream"):
            attributes["gen_ai.request.stream"] = True
        name = f"{genai_operation} {model}" if isinstance(model, str) else f"openai {operation}"
        state = start(rt, name, attributes)
        return None if state is None else (state[0], state[1], rt)
    except Exception as exc:
        internal_error("openai autolog start", exc)
        return None


def _request_inputs(operation: str, kwargs: dict[str, Any]) -> Any:
    """A chat call's messages in the stored message shape; an embeddings call's arguments as given.

    The request parameters are GenAI attributes of the span (`gen_ai.request.*`), so the inputs
    of an LLM span are its messages alone, as for spans of every other instrumentation. Messages
    may be the SDK's own objects (a reply passed back in a tool loop): they are dumped first.
    """
    if operation == "chat":
        found = messages.messages(plain(kwargs.get("messages")))
        if found is not None:
            return found
    if operation == "responses":
        found = messages.from_payload(plain(kwargs.get("input")), "in") or []
        instructions = kwargs.get("instructions")
        if isinstance(instructions, str):
            found.insert(0, messages.message(instructions, "system"))
        if found:
            return found
    return {k: v for k, v in kwargs.items() if k not in _SKIPPED_KWARGS}


def _finish(began: tuple[Any, object, Any], operation: str, kwargs: dict[str, Any], result: Any, is_async: bool) -> Any:
    span, token, rt = began
    if kwargs.get("stream") and hasattr(result, "__aiter__" if is_async else "__iter__"):
        try:
            otel_context.detach(token)  # type: ignore[arg-type]  # the span lives on, no longer current
            stream_cls = AsyncTracedStream if is_async else TracedStream
            return stream_cls(result, span, rt, operation)
        except Exception as exc:
            internal_error("openai autolog stream", exc)
            return result
    try:
        output, attributes = response_facts(operation, result)
        if attributes and span.is_recording():
            span.set_attributes(attributes)
    except Exception as exc:
        internal_error("openai autolog response", exc)
        output = None
    end_ok(rt, span, token, output, capture=output is not None)
    return result
