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

import logging
import threading
import time
from dataclasses import dataclass, field

__all__ = ["BytesInFlight", "IngestCounts"]

logger = logging.getLogger("agenttrace")

_LOG_EVERY_S = 60.0


class BytesInFlight:
    """A budget of bytes held by requests being received, converted or stored (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def try_reserve(self, n: int) -> bool:
        """Reserve n bytes; False (nothing reserved) when others already hold the budget."""
        with self._lock:
            if self.held and self.held + n > self.limit:
                return False
            self.held += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.held -= n


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
