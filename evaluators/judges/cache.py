"""The judge reply cache: a two-method Protocol, an in-memory default and the key function.

The key is a sha256 over the canonical JSON of model, messages and request parameters, so the same
prompt to the same model with the same settings is answered once. The engine backs the Protocol
with the store's ``judge_cache`` table; values are opaque strings (JSON written by JudgeClient).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["InMemoryJudgeCache", "JudgeCache", "cache_key"]


@runtime_checkable
class JudgeCache(Protocol):
    """Where judge replies are kept between calls.

    Called by JudgeClient from any of the engine's worker threads at once, so implementations must
    be thread-safe. They should not raise: a failing ``get`` or ``put`` is logged by the client and
    the call goes on uncached.
    """

    def get(self, key: str) -> str | None:
        """The stored value for ``key``, or None."""
        ...

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing any earlier value."""
        ...


class InMemoryJudgeCache:
    """A thread-safe LRU dict; the default cache of every JudgeClient (per client, per process)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._data: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, value: str) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


def cache_key(model: str, messages: Sequence[Mapping[str, Any]], parameters: Mapping[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of model, messages and parameters."""
    payload = {"model": model, "messages": list(messages), "parameters": dict(parameters)}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
