"""Any Python object to JSON text, never raising and never mutating the object.

The fast path is one `json.dumps` with a `default` hook for the common non-JSON types. Anything
that path cannot take (cycles, non-string keys, a hook that raised) goes through a defensive walk
that tracks visited containers and guards every `repr`. Payloads above the size limit are replaced
by a visible marker carrying the original size and a preview.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

__all__ = ["REDACTED", "TRUNCATED_KEY", "Serializer"]

TRUNCATED_KEY = "_agenttrace_truncated"
REDACTED = "[REDACTED]"
_MAX_ARRAY_ITEMS = 1000
_MAX_DEPTH = 50
# allow_nan=False: NaN is not JSON (DuckDB would refuse it); such values take the defensive path.
_plain_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _safe_repr(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception:
        return f"<unrepresentable {type(obj).__qualname__}>"


def safe_str(obj: Any) -> str:
    """str(obj), or a placeholder when its __str__ raises (user objects, and exceptions, may)."""
    try:
        return str(obj)
    except Exception:
        return f"<unprintable {type(obj).__name__}>"


def _bytes(value: bytes | bytearray | memoryview) -> str:
    raw = bytes(value)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


def _array_like(obj: Any) -> Any:
    """numpy arrays and scalars, without importing numpy."""
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():
        return obj.item()
    size = getattr(obj, "size", 0)
    if size <= _MAX_ARRAY_ITEMS:
        return obj.tolist()
    return {"__ndarray__": {"shape": list(obj.shape), "dtype": str(obj.dtype), "size": int(size)}}


def _pandas(obj: Any) -> Any:
    """A summary of a DataFrame or Series: shape, columns and the first rows."""
    head = obj.head(5)
    summary: dict[str, Any] = {"type": type(obj).__name__, "shape": list(obj.shape)}
    if hasattr(obj, "columns"):
        summary["columns"] = [str(c) for c in obj.columns]
        summary["head"] = json.loads(head.to_json(orient="records", date_format="iso", default_handler=str))
    else:
        summary["name"] = None if obj.name is None else str(obj.name)
        summary["head"] = json.loads(head.to_json(orient="values", date_format="iso", default_handler=str))
    return summary


def _default(obj: Any) -> Any:
    """Map one non-JSON object to something JSON can take; never raises itself on odd types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, uuid.UUID | PurePath):
        return str(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return _bytes(obj)
    if isinstance(obj, set | frozenset):
        items = list(obj)
        try:
            items.sort()
        except TypeError:
            pass
        return items
    module = type(obj).__module__
    if module.startswith("numpy") and hasattr(obj, "tolist"):
        return _array_like(obj)
    if module.startswith("pandas") and hasattr(obj, "head") and hasattr(obj, "shape"):
        return _pandas(obj)
    if hasattr(obj, "model_dump") and callable(obj.model_dump):  # pydantic v2
        return obj.model_dump(mode="json")
    if isinstance(obj, BaseException):
        return {"type": type(obj).__name__, "message": safe_str(obj)}
    if isinstance(obj, Iterator):
        return f"<{type(obj).__name__} not consumed>"
    return _safe_repr(obj)


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default).encode


def _walk(obj: Any, seen: set[int], depth: int) -> Any:
    """The defensive path: cycles marked, keys stringified, every hook guarded."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if depth > _MAX_DEPTH:
        return "<max depth>"
    if id(obj) in seen:
        return "<cycle>"
    if isinstance(obj, Mapping):
        seen.add(id(obj))
        try:
            return {_key(k): _walk(v, seen, depth + 1) for k, v in list(obj.items())}
        except Exception:
            return _safe_repr(obj)
        finally:
            seen.discard(id(obj))
    if isinstance(obj, list | tuple):
        seen.add(id(obj))
        try:
            return [_walk(v, seen, depth + 1) for v in obj]
        finally:
            seen.discard(id(obj))
    try:
        converted = _default(obj)
    except Exception:
        return _safe_repr(obj)
    if converted is obj or isinstance(converted, str):
        return converted
    seen.add(id(obj))
    try:
        return _walk(converted, seen, depth + 1)
    finally:
        seen.discard(id(obj))


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, enum.Enum):
        return str(key.value)
    return _safe_repr(key) if not isinstance(key, int | float | bool) else str(key)


def _redact_keys(obj: Any, keys: frozenset[str]) -> Any:
    if isinstance(obj, Mapping):
        return {k: REDACTED if str(k).lower() in keys else _redact_keys(v, keys) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact_keys(v, keys) for v in obj]
    return obj


class Serializer:
    """Turns payloads into capped JSON text according to the tracing settings."""

    def __init__(self, max_bytes: int, redact: Callable[[Any], Any] | Iterable[str] | None = None) -> None:
        self.max_bytes = max_bytes
        self._redact_fn: Callable[[Any], Any] | None = redact if callable(redact) else None
        self._redact_keys = frozenset(str(k).lower() for k in redact) if redact and not callable(redact) else None

    def to_json(self, value: Any) -> str:
        """Serialise a payload; never raises and never mutates `value`."""
        if self._redact_fn is not None:
            try:
                value = self._redact_fn(value)
            except Exception as exc:  # a failing redactor must not leak the raw value
                return _plain_dumps(f"<redaction failed: {type(exc).__name__}>")
        text = None
        if self._redact_keys is None:
            try:
                text = _dumps(value)
            except Exception:  # cycles, odd keys, NaN, a raising hook: take the defensive path
                text = None
        if text is None:
            try:
                safe = _walk(value, set(), 0)
                if self._redact_keys is not None:
                    safe = _redact_keys(safe, self._redact_keys)
                text = _plain_dumps(safe)
            except Exception as exc:  # e.g. an int of more digits than Python will print
                text = _plain_dumps(f"<unserializable {type(value).__name__}: {type(exc).__name__}>")
        return self._capped(text)

    def to_json_given(self, value: Any, text: str) -> str:
        """`to_json(value)` when `text` is already `value` as JSON, made by a Serializer with no cap
        and no redaction: without redaction here, `text` itself under this one's cap, so a value
        serialised for someone else is not serialised twice."""
        if self._redact_fn is None and self._redact_keys is None:
            return self._capped(text)
        return self.to_json(value)

    def _capped(self, text: str) -> str:
        if len(text) * 4 > self.max_bytes:  # only measure bytes when it could matter
            size = len(text.encode("utf-8"))
            if size > self.max_bytes:
                return self._truncated(text, size)
        return text

    def _truncated(self, text: str, size: int) -> str:
        preview = text.encode("utf-8")[: max(self.max_bytes - 120, 16)].decode("utf-8", errors="ignore")
        return _plain_dumps({TRUNCATED_KEY: True, "original_bytes": size, "preview": preview})
