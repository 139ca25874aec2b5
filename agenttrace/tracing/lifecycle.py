"""The traced process's life: fork, SIGTERM and multiprocessing children lose no spans silently.

- Fork: a child starts with the runtime's settings but its own counts and queues (OpenTelemetry's
  batch processor empties its queue at fork; ours resets through `agenttrace._forks`, which the
  store's connections and the metric buffer use too). Before the fork the parent lets a write in
  progress finish (pyarrow and DuckDB locks copied mid-write would hang the child). The child
  writes its own spans to the store.
- multiprocessing children leave through `os._exit` (fork and forkserver start methods), so the
  interpreter's exit hooks never run there: a multiprocessing finaliser shuts the runtime down
  instead, which writes what is queued and reports what could not be.
- SIGTERM: Python's default action kills the process without exit hooks. The first runtime of a
  process (built on the main thread) installs a handler that writes what is queued, bounded by
  `exit_timeout_s`, and then does what the program asked for: calls the handler the program had
  installed, ignores the signal if it was ignored, or ends the process by the default action (so
  the exit status still says SIGTERM). A handler the program installs later replaces ours, as it
  would any other; its own exit then runs the exit hooks.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol

from agenttrace import _forks

__all__ = ["install"]


class _Runtime(Protocol):
    def shutdown(self, exiting: bool = False) -> None: ...

    def flush_for_exit(self) -> bool: ...

    def at_fork_child(self) -> None: ...

    def before_fork(self) -> None: ...

    def after_fork_in_parent(self) -> None: ...


_current: Callable[[], _Runtime | None] = lambda: None  # noqa: E731 - replaced by install()
_previous_sigterm: Any = None
_sigterm_installed = False
_anchor = type("_Anchor", (), {})()  # multiprocessing's registries hold weak references to an object


def install(current: Callable[[], _Runtime | None]) -> None:
    """Watch the process for the runtime `current()` returns (called when a runtime is built)."""
    global _current
    _current = current
    _install_sigterm()
    _finalise_in_multiprocessing_child()


def _install_sigterm() -> None:
    global _previous_sigterm, _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return  # signal handlers can be set from the main thread only
    try:
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # an embedded interpreter without signals
        return
    _previous_sigterm, _sigterm_installed = previous, True


def _on_sigterm(signum: int, frame: Any) -> None:
    previous = _previous_sigterm
    rt = _current()
    if callable(previous):
        if rt is not None:
            rt.flush_for_exit()  # the program's handler decides whether the process ends
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    # The default action (SIG_DFL, or a handler set outside Python): write, then end as SIGTERM would.
    if rt is not None:
        rt.shutdown(exiting=True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _finalise_in_multiprocessing_child() -> None:
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.parent_process() is not None:
        _add_finaliser(_anchor)


def _add_finaliser(_: object) -> None:
    from multiprocessing import util

    util.Finalize(_anchor, _shutdown_at_exit, exitpriority=10)


def _shutdown_at_exit() -> None:
    rt = _current()
    if rt is not None:
        rt.shutdown(exiting=True)


def _before_fork() -> None:
    rt = _current()
    if rt is not None:
        rt.before_fork()


def _after_fork_in_parent() -> None:
    rt = _current()
    if rt is not None:
        rt.after_fork_in_parent()


def _after_fork_in_child() -> None:
    rt = _current()
    if rt is not None:
        rt.at_fork_child()
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        # A multiprocessing child clears inherited finalisers after this hook, then runs its
        # after-fork callbacks: the finaliser is added there, so it survives the clear.
        util.register_after_fork(_anchor, _add_finaliser)


_forks.at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
