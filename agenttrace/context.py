"""Public home of the thread-context helpers: `agenttrace.context.wrap(fn)` and the executor."""

from agenttrace.tracing.context import ContextThreadPoolExecutor, wrap

__all__ = ["ContextThreadPoolExecutor", "wrap"]
