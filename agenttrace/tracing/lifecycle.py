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
- A Python signal handler runs on the main thread between bytecodes, so a SIGTERM that lands just
  before the main thread blocks in C (a multiprocessing Pool worker waiting for its next task, as
  every `with Pool()` ends with `terminate()`) would wait for ever where the default action would
  have ended the process at once: the pool hangs. So the process's signal wakeup fd (when nothing
  else uses it) feeds a watcher thread; when a SIGTERM arrives that should end the process and the
  main thread has not started our handler within `_MAIN_THREAD_GRACE_S`, the watcher writes and
  ends the process itself.
"""

from __future__ import annotations

import ctypes
import logging
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

_MAIN_THREAD_GRACE_S = 0.2  # the main thread runs a handler within microseconds unless blocked in C
_watch_fds: tuple[int, int] | None = None  # (read, write) ends of the wakeup pipe the watcher reads
_handler_started = threading.Event()  # our handler began on the main thread, about to end the process
_ending = threading.Lock()  # held by whichever thread (main or watcher) writes and ends the process
_ending_thread: int | None = None  # which one holds it
logger = logging.getLogger("agenttrace")


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
    _start_watch()


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
    _handler_started.set()
    if _take_ending():
        signal.signal(signum, signal.SIG_DFL)
        _write_then_end(signum)
    elif _ending_thread != threading.get_ident():
        threading.Event().wait()  # the watcher is writing and will end the process: run no more code
    # else an outer call of this handler, on this thread, is already at it


def _take_ending() -> bool:
    global _ending_thread
    if not _ending.acquire(blocking=False):
        return False
    _ending_thread = threading.get_ident()
    return True


def _ends_the_process() -> bool:
    previous = _previous_sigterm
    return signal.getsignal(signal.SIGTERM) is _on_sigterm and not callable(previous) and previous != signal.SIG_IGN


def _write_then_end(signum: int) -> None:
    """Write what is queued (bounded by `exit_timeout_s`), then die by `signum`'s default action."""
    try:
        rt = _current()
        if rt is not None:
            rt.shutdown(exiting=True)
    finally:  # whatever the write did, the signal must still end the process
        os.kill(os.getpid(), signum)


def _start_watch() -> None:
    """Feed the process's signal wakeup fd to a watcher thread, unless the program already uses it."""
    global _watch_fds
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # Python requires it: a signal handler must never block
    try:
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (ValueError, OSError):
        previous = None
    if previous != -1:  # not the main thread, or the program's event loop reads it: leave it theirs
        if previous is not None:
            signal.set_wakeup_fd(previous)
        os.close(read_fd)
        os.close(write_fd)
        return
    _watch_fds = (read_fd, write_fd)
    threading.Thread(target=_watch, args=(read_fd,), name="agenttrace-sigterm-watch", daemon=True).start()


def _watch(read_fd: int) -> None:
    while True:
        try:
            received = os.read(read_fd, 64)  # one byte per signal that has a Python handler
        except OSError:
            return  # closed after a fork (the child watches its own pipe)
        if not received:
            return
        if signal.SIGTERM not in received or not _ends_the_process():
            continue  # the program's own handler, or ignored: the main thread does what it says
        if not _handler_started.wait(_MAIN_THREAD_GRACE_S) and _take_ending():
            logger.debug("agenttrace: the main thread is blocked; writing and ending on SIGTERM from the watcher")
            try:
                _reset_to_default(signal.SIGTERM)
                signum = signal.SIGTERM
            except Exception:  # the default action cannot be restored: end the process all the same
                signum = signal.SIGKILL
            _write_then_end(signum)


def _reset_to_default(signum: int) -> None:
    # signal.signal() works on the main thread only, and the main thread is the one that is stuck.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.signal.restype = ctypes.c_void_p
    libc.signal(signum, None)  # SIG_DFL


def _watch_in_child() -> None:
    """A forked child must never write into its parent's pipe: the parent's watcher would act on it."""
    global _watch_fds, _handler_started, _ending, _ending_thread
    _handler_started, _ending, _ending_thread = threading.Event(), threading.Lock(), None
    inherited, _watch_fds = _watch_fds, None
    if inherited is None:
        return
    current = signal.set_wakeup_fd(-1)
    for fd in inherited:
        os.close(fd)
    if current != inherited[1]:
        signal.set_wakeup_fd(current)  # the program replaced ours after we set it: keep theirs
        return
    _start_watch()


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


_forks.at_fork(after_in_child=_watch_in_child)  # a hook of its own: its failure must not skip the next
_forks.at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
