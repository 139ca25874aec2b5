"""Carrying the trace context into threads.

OpenTelemetry's context lives in contextvars, which a new thread does not inherit. `wrap(fn)`
captures the caller's context when it is called and re-attaches it around each call of `fn`,
so spans started in a worker thread nest under the span that submitted the work.
`ContextThreadPoolExecutor` does the same for every submitted task.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context

__all__ = ["ContextThreadPoolExecutor", "wrap"]

P = ParamSpec("P")
R = TypeVar("R")


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind `fn` to the current trace context, for use from another thread."""
    captured = otel_context.get_current()

    @functools.wraps(fn)
    def in_context(*args: P.args, **kwargs: P.kwargs) -> R:
        token = otel_context.attach(captured)
        try:
            return fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return in_context


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run in the context of the code that submitted them."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        return super().submit(wrap(fn), *args, **kwargs)
