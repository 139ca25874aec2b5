"""Fork handling in one place: every piece of state a process holds says here how it crosses a fork.

A forked child inherits the parent's memory but only the thread that forked: locks another thread
held stay locked forever, threads are gone, and a database connection belongs to the parent's file
lock and threads. So whoever owns such state (the store's connections, the metric buffer, the tracing
runtime) registers three hooks, run around `os.fork()` (and so around multiprocessing's fork start
method): `before` in the parent (make the state safe to copy), `after_in_parent` (undo that) and
`after_in_child` (start fresh, never touching what the parent owns). `before` hooks run in the reverse
order of registration and the others in order, as `os.register_at_fork` does, so a higher layer
(registered later) is quiesced first and restarted last. A hook that fails is logged, never raised:
a fork must not fail because of tracing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

__all__ = ["FORK_WAIT_S", "at_fork"]

logger = logging.getLogger("agenttrace")

# How long a `before` hook may wait for work in progress (a write holding a lock) before the fork
# goes ahead without it: a fork must not hang on tracing.
FORK_WAIT_S = 5.0

Hook = Callable[[], None]
_before: list[Hook] = []
_parent: list[Hook] = []
_child: list[Hook] = []


def at_fork(
    *, before: Hook | None = None, after_in_parent: Hook | None = None, after_in_child: Hook | None = None
) -> None:
    """Register hooks run around every fork of this process (see the module docstring)."""
    if before is not None:
        _before.insert(0, before)
    if after_in_parent is not None:
        _parent.append(after_in_parent)
    if after_in_child is not None:
        _child.append(after_in_child)


def _run(hooks: list[Hook]) -> None:
    for hook in list(hooks):
        try:
            hook()
        except Exception as exc:  # a fork must go on; the state's owner logs what it could not do
            logger.warning("agenttrace fork hook %s failed: %r", getattr(hook, "__qualname__", hook), exc)


os.register_at_fork(
    before=lambda: _run(_before), after_in_parent=lambda: _run(_parent), after_in_child=lambda: _run(_child)
)
