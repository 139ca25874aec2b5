"""`@trace`: one decorator for functions, methods, coroutines, generators and callable objects.

The kind of callable is decided once, at decoration time, and so are the span name, the static
attributes and the way arguments become inputs; the per-call path only builds the inputs dict,
starts a span and ends it. The user's function is always called outside our error guard, so it
behaves exactly as untraced: same return value, same exception, called once.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar, overload

from opentelemetry import context as otel_context

from agenttrace.records import SpanType
from agenttrace.tracing.agent_context import AgentStamp
from agenttrace.tracing.runtime import get_runtime
from agenttrace.tracing.spans import checked_attributes, end_error, end_ok, start_with_inputs

__all__ = ["trace"]

P = ParamSpec("P")
R = TypeVar("R")
MAX_GENERATOR_ITEMS = 1000
_SKIPPED_FIRST = ("self", "cls")


def _inputs_builder(fn: Callable[..., Any]) -> Callable[[tuple, dict], dict[str, Any]]:
    """Return a function mapping (args, kwargs) to {parameter: value} with defaults applied."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return lambda args, kwargs: {"args": list(args), "kwargs": dict(kwargs)}
    params = list(sig.parameters.values())
    skip = params[0].name if params and params[0].name in _SKIPPED_FIRST else None
    simple = all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
    if simple:
        names = tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)
        defaults = {p.name: p.default for p in params if p.default is not p.empty}

        def build_simple(args: tuple, kwargs: dict) -> dict[str, Any]:
            bound = dict(zip(names, args, strict=False))
            if kwargs:
                bound.update(kwargs)
            for name, value in defaults.items():
                if name not in bound:
                    bound[name] = value
            if skip is not None:
                bound.pop(skip, None)
            return bound

        return build_simple

    def build_general(args: tuple, kwargs: dict) -> dict[str, Any]:
        try:
            bound = sig.bind_partial(*args, **kwargs)
        except TypeError:  # the call itself will raise; record what was passed
            return {"args": list(args), "kwargs": dict(kwargs)}
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        if skip is not None:
            arguments.pop(skip, None)
        return arguments

    return build_general


@overload
def trace(fn: Callable[P, R]) -> Callable[P, R]: ...
@overload
def trace(
    fn: None = None,
    *,
    name: str | None = None,
    span_type: str | SpanType | None = None,
    attributes: dict[str, Any] | None = None,
    capture_inputs: bool = True,
    capture_outputs: bool = True,
    agent: Any = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def trace(
    fn: Any = None,
    *,
    name: str | None = None,
    span_type: str | SpanType | None = None,
    attributes: dict[str, Any] | None = None,
    capture_inputs: bool = True,
    capture_outputs: bool = True,
    agent: Any = None,
) -> Any:
    """Trace every call of a function as a span: inputs, outputs, timing, errors.

    Usable bare (`@trace`) or with options. Works on functions, methods, static and class methods,
    async functions, generators and async generators (the span covers the whole iteration and the
    output is the list of yielded items, capped), and on callable objects (`trace(obj)`).

    `agent` stamps the traces of an entry point with an agent: "name", "name@alias", "name/3",
    (name, version) or a registered version; a registered name is looked up once, at the first
    call, and an unregistered one is kept as a free-form label (see tracing/agent_context.py).
    """
    static = checked_attributes(span_type, attributes or {})
    stamp = None if agent is None else AgentStamp(agent)

    def decorate(target: Any) -> Any:
        if isinstance(target, type):
            raise TypeError(
                f"trace() cannot wrap the class {target.__name__}; decorate its methods, or trace an instance"
            )
        if isinstance(target, classmethod):
            return classmethod(decorate(target.__func__))
        if isinstance(target, staticmethod):
            return staticmethod(decorate(target.__func__))
        if not (inspect.isfunction(target) or inspect.ismethod(target)) and callable(target):
            call = target.__call__
            wrapped = _wrap(call, name or type(target).__name__, static, capture_inputs, capture_outputs, stamp)
            return wrapped
        if not callable(target):
            raise TypeError(f"trace() needs a function or callable object, got {type(target).__name__}")
        return _wrap(target, name or target.__name__, static, capture_inputs, capture_outputs, stamp)

    return decorate(fn) if fn is not None else decorate


def span_starter(
    span_name: str,
    static: dict[str, Any],
    inputs_of: Callable[[Any, Any], Any] | None,
    stamp: AgentStamp | None = None,
) -> Callable[[tuple, dict], Any]:
    """The `begin` of a traced call: (runtime, span, token), or None when tracing is off or failed to
    start. `static` are checked attributes (`checked_attributes`), the span type among them."""

    def begin(args: tuple, kwargs: dict) -> Any:
        rt = get_runtime()
        if not rt.enabled:
            return None
        attrs = dict(static)
        if stamp is not None:
            attrs.update(stamp.attributes())
        started = start_with_inputs(rt, span_name, attrs, inputs_of, args, kwargs)
        return None if started is None else (rt, *started)

    return begin


def _wrap(
    fn: Any, span_name: str, static: dict[str, Any], cap_in: bool, cap_out: bool, stamp: AgentStamp | None = None
) -> Any:
    begin = span_starter(span_name, static, _inputs_builder(fn) if cap_in else None, stamp)
    if inspect.isasyncgenfunction(fn):
        return traced_async_generator(fn, begin, cap_out)
    if inspect.isgeneratorfunction(fn):
        return traced_generator(fn, begin, cap_out)
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            state = begin(args, kwargs)
            if state is None:
                return await fn(*args, **kwargs)
            rt, s, token = state
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                end_error(s, token, exc)
                raise
            end_ok(rt, s, token, result, cap_out)
            return result

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state = begin(args, kwargs)
        if state is None:
            return fn(*args, **kwargs)
        rt, s, token = state
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            end_error(s, token, exc)
            raise
        end_ok(rt, s, token, result, cap_out)
        return result

    return wrapper


class _Collected:
    """Yielded items kept for the span's output, up to MAX_GENERATOR_ITEMS."""

    __slots__ = ("items", "more")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.more = 0

    def add(self, item: Any) -> None:
        if len(self.items) < MAX_GENERATOR_ITEMS:
            self.items.append(item)
        else:
            self.more += 1

    def output(self) -> Any:
        if self.more:
            return [*self.items, f"... {self.more} more items not kept"]
        return self.items


def _detached_start(begin: Callable, args: tuple, kwargs: dict) -> Any:
    """Start the span for a generator; it is made current only while the generator runs."""
    state = begin(args, kwargs)
    if state is None:
        return None
    rt, s, token = state
    ctx = otel_context.get_current()
    otel_context.detach(token)
    return rt, s, ctx


@contextlib.contextmanager
def _current(ctx: Any) -> Iterator[None]:
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def _ending(rt: Any, s: Any, ctx: Any, collected: _Collected, cap_out: bool) -> Iterator[None]:
    """Run a generator's clean-up after an early close inside its span, which ends whether the
    clean-up succeeds or not."""
    with _current(ctx):
        try:
            yield
        except BaseException as exc:
            end_error(s, None, exc)
            raise
        else:
            end_ok(rt, s, None, collected.output(), cap_out)


def traced_generator(fn: Any, begin: Callable, cap_out: bool) -> Any:
    @functools.wraps(fn)
    def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
        state = _detached_start(begin, args, kwargs)
        if state is None:
            return (yield from fn(*args, **kwargs))
        rt, s, ctx = state
        collected = _Collected()
        try:
            gen = fn(*args, **kwargs)  # runs none of the body; fails only on arguments that do not bind
        except BaseException as exc:
            end_error(s, None, exc)
            raise
        method, arg = gen.send, None
        while True:
            token = otel_context.attach(ctx)
            try:
                item = method(arg)
            except StopIteration as stop:
                otel_context.detach(token)
                end_ok(rt, s, None, collected.output(), cap_out)
                return stop.value
            except BaseException as exc:
                otel_context.detach(token)
                end_error(s, None, exc)
                raise
            otel_context.detach(token)
            collected.add(item)
            try:
                arg = yield item
                method = gen.send
            except GeneratorExit:  # closed early: the generator's own clean-up runs inside its span
                with _ending(rt, s, ctx, collected, cap_out):
                    gen.close()
                raise
            except BaseException as exc:
                method, arg = gen.throw, exc

    return gen_wrapper


def traced_async_generator(fn: Any, begin: Callable, cap_out: bool) -> Any:
    @functools.wraps(fn)
    async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
        state = _detached_start(begin, args, kwargs)
        if state is None:
            async for item in fn(*args, **kwargs):
                yield item
            return
        rt, s, ctx = state
        collected = _Collected()
        try:
            agen = fn(*args, **kwargs)  # runs none of the body; fails only on arguments that do not bind
        except BaseException as exc:
            end_error(s, None, exc)
            raise
        method, arg = agen.asend, None
        while True:
            token = otel_context.attach(ctx)
            try:
                item = await method(arg)
            except StopAsyncIteration:
                otel_context.detach(token)
                end_ok(rt, s, None, collected.output(), cap_out)
                return
            except BaseException as exc:
                otel_context.detach(token)
                end_error(s, None, exc)
                raise
            otel_context.detach(token)
            collected.add(item)
            try:
                arg = yield item
                method = agen.asend
            except GeneratorExit:
                with _ending(rt, s, ctx, collected, cap_out):
                    await agen.aclose()
                raise
            except BaseException as exc:
                method, arg = agen.athrow, exc

    return agen_wrapper
