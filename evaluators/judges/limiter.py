"""An adaptive concurrency gate (AIMD) shared by every thread that uses one JudgeClient.

The gate admits at most ``limit`` calls at once. An overload signal (HTTP 429 or 503) halves the
limit; ``increase_after`` successes in a row add one back; the limit stays within [1, max].

Only a call admitted since the last decrease may halve the limit again ("one decrease per
window", as TCP does): when 16 calls in flight all get a 429 from the same burst, the limit halves
once, not sixteen times down to 1. A call remembers the window it was admitted in through the
`Slot` that `acquire` returns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from agenttrace.errors import InvalidArgumentError

__all__ = ["AdaptiveLimiter", "Slot"]


@dataclass(frozen=True, slots=True)
class Slot:
    """A permission to make one call, tagged with the window it was granted in."""

    window: int


class AdaptiveLimiter:
    """A semaphore whose size adapts to the endpoint: halve on overload, grow by one on success.

    Thread-safe; ``acquire`` blocks while ``limit`` calls are in flight. Every ``acquire`` must be
    matched by exactly one of ``release`` / ``overloaded`` / ``succeeded``.
    """

    def __init__(self, max_concurrency: int = 16, increase_after: int = 10) -> None:
        if max_concurrency < 1:
            raise InvalidArgumentError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if increase_after < 1:
            raise InvalidArgumentError(f"increase_after must be at least 1, got {increase_after}")
        self.max_concurrency = max_concurrency
        self.increase_after = increase_after
        self._limit = max_concurrency
        self._in_flight = 0
        self._streak = 0
        self._window = 0
        self._cond = threading.Condition()

    @property
    def limit(self) -> int:
        """How many calls may be in flight now."""
        with self._cond:
            return self._limit

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def acquire(self, timeout: float | None = None) -> Slot:
        """Wait for a free place; raise TimeoutError if none frees within ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._in_flight < self._limit, timeout=timeout):
                raise TimeoutError(f"no judge call slot freed within {timeout} s")
            self._in_flight += 1
            return Slot(self._window)

    def succeeded(self, slot: Slot) -> None:
        """Release after a success; every ``increase_after`` successes in a row add one place."""
        with self._cond:
            self._in_flight -= 1
            self._streak += 1
            if self._streak >= self.increase_after:
                self._streak = 0
                if self._limit < self.max_concurrency:
                    self._limit += 1
            self._cond.notify_all()

    def overloaded(self, slot: Slot) -> None:
        """Release after a 429/503: halve the limit (once per window), never below 1."""
        with self._cond:
            self._in_flight -= 1
            self._streak = 0
            if slot.window == self._window:
                self._limit = max(1, self._limit // 2)
                self._window += 1
            self._cond.notify_all()

    def release(self, slot: Slot) -> None:
        """Release after an outcome that says nothing about load (bad request, parse error)."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()
