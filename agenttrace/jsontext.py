"""The one JSON encoding of agenttrace: compact, UTF-8 kept as is, anything else as its str().

Attributes set by the decorator, by `span()`, by `update_current_trace`, by the OpenAI
instrumentation, values stored by the store and values read at ingest all go through `dumps`, so
the same value is the same text whichever API wrote it. orjson does the work; what it refuses
(integers past 64 bits, non-string keys of odd types) goes through the standard library with the
same compact separators. NaN and infinities become null, as JSON has no such numbers and the
store's JSON type refuses them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

__all__ = ["dumps", "loads"]

_OPTIONS = orjson.OPT_NON_STR_KEYS


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


_fallback = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False).encode


def dumps(value: Any) -> str:
    """Compact JSON text of `value`; never raises for a value of an unexpected type."""
    try:
        return orjson.dumps(value, default=str, option=_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):
        try:
            return _fallback(_no_nan(value))
        except (ValueError, TypeError, RecursionError):
            return orjson.dumps(str(value)).decode()


def loads(text: Any) -> Any:
    """The value of JSON text; None for None (and for pandas' NaN standing in for a missing value)."""
    if not isinstance(text, str | bytes):
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # numbers past 64 bits, which the standard parser reads
        return json.loads(text)
