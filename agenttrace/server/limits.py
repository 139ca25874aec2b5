"""What the receivers share: the budget of request bytes in flight, and the counts and log of refusals.

OTLP/HTTP and OTLP/gRPC take requests concurrently, and each request is held in memory (its body,
then its decoded spans) until its spans are stored. Without a bound, 32 senders of 15 MB bodies
held 1.46 GB. `BytesInFlight` is one budget for both receivers: a request reserves its bytes
before it is read (HTTP, from Content-Length) or as soon as it is handed over (gRPC), and gives
them back once it is answered. Beyond the budget a request is refused at once with 503 +
Retry-After (RESOURCE_EXHAUSTED over gRPC), which every OTLP sender retries; one request alone is
always admitted, so a body under the size limit can never be refused forever.

`IngestCounts` is what `/api/health` shows of both receivers, and every refusal is logged (the
first of each kind at once, then at most one line a minute with the count since), so a server that
turns senders away says so without flooding its log.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from dataclasses import dataclass, field

__all__ = ["BytesInFlight", "IngestCounts"]

logger = logging.getLogger("agenttrace")

_LOG_EVERY_S = 60.0


class BytesInFlight:
    """A budget of bytes held by requests being received, converted or stored (thread-safe).

    A request that does not fit waits, in turn, up to `wait_s` for others to finish (unread, so
    TCP holds its sender back at no cost to us) before it is refused: refused at once, 32 senders
    of 15 MB bodies re-sent theirs hundreds of times, each re-sent body read and thrown away.
    `wait_s` stays under the 10 s request timeout OpenTelemetry's exporters default to.
    `retry_after` spreads the retries over the time the bytes held should take, at the rate
    requests have been finishing.
    """

    def __init__(self, limit: int, wait_s: float = 5.0) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self.held = 0
        self.waiting = 0
        self._cond = threading.Condition()
        self._queue: collections.deque[object] = collections.deque()  # waiting requests, first come first
        self._rate = 20.0 * 2**20  # bytes a second finished; a guess until measured
        self._window = (time.monotonic(), 0)

    def _take(self, n: int, ticket: object | None) -> bool:
        """Reserve n bytes if they fit and no earlier request waits (call with the lock held)."""
        if self._queue and self._queue[0] is not ticket:
            return False
        if self.held and self.held + n > self.limit:
            return False
        self.held += n
        return True

    def try_reserve(self, n: int) -> bool:
        """Reserve n bytes now; False (nothing reserved) when others hold the budget or wait for it."""
        with self._cond:
            return self._take(n, None)

    def reserve(self, n: int) -> bool:
        """Reserve n bytes, waiting in turn up to `wait_s` for room (for threads: gRPC's)."""
        ticket = object()
        with self._cond:
            if self._take(n, None):
                return True
            self._queue.append(ticket)
            self.waiting += n
            try:
                return self._cond.wait_for(lambda: self._take(n, ticket), self.wait_s)
            finally:
                self._queue.remove(ticket)
                self.waiting -= n
                self._cond.notify_all()  # the next in line may fit now

    async def reserve_async(self, n: int) -> bool:
        """`reserve` for the event loop: polls, so a waiting request never blocks others."""
        ticket = object()
        with self._cond:
            if self._take(n, None):
                return True
            self._queue.append(ticket)
            self.waiting += n
        deadline = time.monotonic() + self.wait_s
        try:
            while True:
                await asyncio.sleep(0.01)
                with self._cond:
                    if self._take(n, ticket):
                        return True
                if time.monotonic() >= deadline:
                    return False
        finally:
            with self._cond:
                self._queue.remove(ticket)
                self.waiting -= n
                self._cond.notify_all()

    def release(self, n: int) -> None:
        with self._cond:
            self.held -= n
            start, done = self._window
            now, done = time.monotonic(), done + n
            if now - start > 10.0:  # idle for a while: start measuring afresh
                self._window = (now, 0)
            elif now - start >= 1.0:
                self._rate = 0.5 * self._rate + 0.5 * done / (now - start)
                self._window = (now, 0)
            else:
                self._window = (start, done)
            self._cond.notify_all()

    def retry_after(self) -> int:
        """Seconds a refused sender should wait: the bytes now held at the measured rate, 1 to 5.

        Not the bytes waiting too: every refused sender would be told the same long wait and come
        back together to a server left idle meanwhile.
        """
        with self._cond:
            return max(1, min(5, round(self.held / max(self._rate, 1.0))))


@dataclass
class IngestCounts:
    """Counts of what the OTLP receivers took and refused, over HTTP and gRPC together."""

    spans_received: int = 0  # spans in requests that were decoded
    spans_rejected: int = 0  # spans left out of a decoded request (no ids), in partial_success
    spans_refused: int = 0  # spans the store refused on their values (400, or partial_success)
    bad_requests: int = 0  # bodies that are not an OTLP request (400 / INVALID_ARGUMENT)
    too_large: int = 0  # requests above the body limit (413 / RESOURCE_EXHAUSTED)
    busy: int = 0  # requests refused because the bytes in flight were at the bound (503)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _logged: dict[str, tuple[float, int]] = field(default_factory=dict, repr=False)

    def received(self, accepted: int, rejected: int) -> None:
        with self._lock:
            self.spans_received += accepted + rejected
            self.spans_rejected += rejected

    def refused(self, kind: str, detail: str, spans: int = 0) -> None:
        """Count one refused request (`kind` is a counter's name) and log it, rate-limited."""
        with self._lock:
            setattr(self, kind, getattr(self, kind) + (spans or 1))
            last, since = self._logged.get(kind, (0.0, 0))
            now = time.monotonic()
            if last and now - last < _LOG_EVERY_S:
                self._logged[kind] = (last, since + 1)
                return
            self._logged[kind] = (now, 0)
        more = f" ({since} more like it in the last minute)" if since else ""
        logger.warning("agenttrace server refused a request: %s%s", detail, more)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                "spans_received": self.spans_received, "spans_rejected": self.spans_rejected,
                "spans_refused": self.spans_refused, "bad_requests": self.bad_requests,
                "requests_too_large": self.too_large, "requests_busy": self.busy,
            }  # fmt: skip
