"""Carrying the trace context into threads.

OpenTelemetry's context lives in contextvars, which a new thread does not inherit. `wrap(fn)`
captures the caller's context when it is called and re-attaches it around each call of `fn`,
so spans started in a worker thread nest under the span that submitted the work.
`ContextThreadPoolExecutor` does the same for every submitted task.

The current tracking run lives here too, in CURRENT_RUN, because tracing reads it (the local root
of every trace is stamped with its run id) and tracing may not import the tracking engine above
it. It is a ContextVar, so asyncio tasks inherit it; `wrap` carries every ContextVar into threads
(the trace context, the run, the active agent). The engine (agenttrace.tracking) is the only writer.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

__all__ = ["CURRENT_RUN", "ContextThreadPoolExecutor", "RunStamp", "wrap"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RunStamp:
    """What tracing needs of the current run: its id and experiment, and the run it is nested in."""

    run_id: str
    experiment: str | None
    parent: RunStamp | None = None


CURRENT_RUN: ContextVar[RunStamp | None] = ContextVar("agenttrace_current_run", default=None)


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind `fn` to the caller's context (trace, run, active agent: every ContextVar), for another thread.

    Each call runs in its own copy of the captured context, so the wrapped function may run in
    several threads at once, and what it sets stays in that call.
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def in_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(fn, *args, **kwargs)

    return in_context


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run in the context of the code that submitted them."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        return super().submit(wrap(fn), *args, **kwargs)
