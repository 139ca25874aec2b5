"""Reading other instrumentations' conventions back into our columns.

Order, for every fact: our own `agenttrace.*` attribute, then OpenInference, then the current
OpenTelemetry GenAI names, then older GenAI names (`gen_ai.prompt.N.*`, prompt/completion events),
then OpenLLMetry's `traceloop.*` / `llm.usage.*`. Inputs and outputs become valid JSON text: a value
that is JSON already is kept as sent; any other string is stored as a JSON string.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from agenttrace.otel import conventions as cv

__all__ = ["SpanFacts", "dumps", "facts_of"]


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is; anything JSON has no type for becomes its str()."""
    return orjson.dumps(value, default=str).decode()


def _json_text(text: str) -> tuple[str, Any] | None:
    """(text the store accepts, parsed value) if `text` is JSON, else None.

    orjson checks the common case fast and strictly. What it refuses goes through Python's parser
    (without NaN and Infinity, which the store's JSON type refuses), which also reads numbers past
    a double's range and lone surrogate escapes ("\\ud800", e.g. JavaScript's JSON.stringify of a
    string cut inside an emoji); the store refuses those escapes, so such text is re-encoded with
    the lone halves replaced, keeping its structure.
    """
    try:
        return text, orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        value = _strict_loads(text)
    except (ValueError, RecursionError):
        return None
    if _SURROGATE_ESCAPE.search(text):
        text = json.dumps(value, ensure_ascii=False).encode("utf-8", "replace").decode("utf-8")
    return text, value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_strict_loads = json.JSONDecoder(parse_constant=_no_constants).decode
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


MODEL_KEYS = ("llm.model_name", "gen_ai.request.model", "gen_ai.response.model", "llm.request.model")
INPUT_TOKEN_KEYS = (
    "llm.token_count.prompt", "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
    "llm.usage.prompt_tokens",
)  # fmt: skip
OUTPUT_TOKEN_KEYS = (
    "llm.token_count.completion", "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
)  # fmt: skip
_JSON_MIME = "application/json"
_TRACELOOP_KINDS = {"workflow": "CHAIN", "task": "CHAIN", "agent": "AGENT", "tool": "TOOL"}
_LLM_REQUEST_TYPES = {"chat": "LLM", "completion": "LLM", "embedding": "EMBEDDING", "rerank": "RERANKER"}
_INDEXED = re.compile(r"^(gen_ai\.(?:prompt|completion))\.(\d+)\.(\w+)$")
_OI_MESSAGE = re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(\w+)$")
# Older GenAI event conventions: one event per message.
_PROMPT_EVENTS = {
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
}


@dataclass(slots=True)
class SpanFacts:
    span_type: str
    inputs: str | None
    outputs: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    session_id: str | None
    user_id: str | None
    tags: str | None
    metadata: str | None
    agent_name: str | None


def facts_of(attrs: dict[str, Any], events: list[dict[str, Any]]) -> SpanFacts:
    """What our columns need, from whichever conventions the span speaks."""
    get = attrs.get
    inputs = _payload(
        get, cv.INPUTS, "input.value", "input.mime_type", "traceloop.entity.input", "gen_ai.input.messages"
    )
    outputs = _payload(
        get, cv.OUTPUTS, "output.value", "output.mime_type", "traceloop.entity.output", "gen_ai.output.messages"
    )
    if inputs is None or outputs is None:
        older_in, older_out = _older_messages(attrs, events)
        inputs = inputs if inputs is not None else older_in
        outputs = outputs if outputs is not None else older_out
    tags = get(cv.TRACE_TAGS)
    openinference_tags = get("tag.tags")
    metadata = get(cv.TRACE_METADATA)
    other_metadata = get("metadata")
    return SpanFacts(
        _span_type(attrs),
        inputs,
        outputs,
        _text(_first(get, MODEL_KEYS)),
        _int(_first(get, INPUT_TOKEN_KEYS)),
        _int(_first(get, OUTPUT_TOKEN_KEYS)),
        _text(get(cv.SESSION_ID) or get("gen_ai.conversation.id")),
        _text(get(cv.USER_ID)),
        None if tags is None and openinference_tags is None else _tags(tags, openinference_tags),
        (None if metadata is None else _json_object(metadata))
        or (None if other_metadata is None else _json_object(other_metadata)),
        _text(get(cv.AGENT_NAME) or get("gen_ai.agent.name")),
    )


def _first(get: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = get(key)
        if value is not None:
            return value
    return None


def _span_type(attrs: dict[str, Any]) -> str:
    found = cv.span_type_of(attrs)
    if found != "UNKNOWN":
        return found
    kind = attrs.get("traceloop.span.kind")
    if isinstance(kind, str) and kind.lower() in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[kind.lower()]
    request_type = attrs.get("llm.request.type")
    if isinstance(request_type, str) and request_type.lower() in _LLM_REQUEST_TYPES:
        return _LLM_REQUEST_TYPES[request_type.lower()]
    if "gen_ai.system" in attrs or "gen_ai.provider.name" in attrs:
        return "LLM"
    return "UNKNOWN"


def _payload(get: Any, ours: str, value_key: str, mime_key: str, traceloop_key: str, genai_key: str) -> str | None:
    """The first present of our attribute, OpenInference's value, OpenLLMetry's, GenAI messages, as JSON text.

    A string said to be JSON (ours, OpenLLMetry's, GenAI messages, or input.value with the JSON
    mime type) is kept as sent when it parses; a string that looks like an object or array is
    tried too; anything else is stored as a JSON string. Later keys are read only when the
    earlier ones are absent: this runs for every ingested span.
    """
    value = get(ours)
    if value is not None:
        return _as_json(value, True)
    value = get(value_key)
    if value is not None:
        return _as_json(value, get(mime_key) == _JSON_MIME)
    value = get(traceloop_key)
    if value is None:
        value = get(genai_key)
    return None if value is None else _as_json(value, True)


def _as_json(value: Any, is_json: bool) -> str:
    if isinstance(value, str) and (is_json or value.lstrip()[:1] in ("{", "[")):
        parsed = _json_text(value)
        if parsed is not None:
            return parsed[0]
    return dumps(value)


def _older_messages(attrs: dict[str, Any], events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """Messages from indexed attributes (gen_ai.prompt.N.*, llm.input_messages.N.*) or from events."""
    found: dict[str, dict[int, dict[str, Any]]] = {"in": {}, "out": {}}
    for key, value in attrs.items():
        if not key.startswith(("gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages.", "llm.output_messages.")):
            continue
        m = _INDEXED.match(key)
        if m:
            side = "in" if m.group(1) == "gen_ai.prompt" else "out"
        else:
            m = _OI_MESSAGE.match(key)
            if not m:
                continue
            side = "in" if m.group(1) == "input" else "out"
        found[side].setdefault(int(m.group(2)), {})[m.group(3)] = value
    for event in events:
        name, ev = event["name"], event["attributes"]
        if name == "gen_ai.content.prompt" and "gen_ai.prompt" in ev:
            found["in"].setdefault(len(found["in"]), {"content": ev["gen_ai.prompt"]})
        elif name == "gen_ai.content.completion" and "gen_ai.completion" in ev:
            found["out"].setdefault(len(found["out"]), {"content": ev["gen_ai.completion"]})
        elif name in _PROMPT_EVENTS:
            role = name.split(".")[1]
            found["in"].setdefault(len(found["in"]), {"role": role, **ev})
        elif name == "gen_ai.choice":
            found["out"].setdefault(len(found["out"]), dict(ev))
    return tuple(  # type: ignore[return-value]
        dumps([msgs[i] for i in sorted(msgs)]) if msgs else None for msgs in (found["in"], found["out"])
    )


def _tags(ours: Any, openinference: Any) -> str | None:
    mine = _json_object(ours)
    if mine is not None:
        return mine
    if isinstance(openinference, list) and openinference:
        tags = {}
        for tag in openinference:
            key, sep, value = str(tag).partition(":")
            tags[key] = value if sep else ""
        return dumps(tags)
    return None


def _json_object(value: Any) -> str | None:
    """JSON object text, or None (trace tags and metadata must be objects to be merged)."""
    if isinstance(value, dict):
        return dumps(value)
    if not isinstance(value, str):
        return None
    parsed = _json_text(value)
    return parsed[0] if parsed is not None and isinstance(parsed[1], dict) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):  # None is the common case: no exception for it
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -(2**63) <= number < 2**63 else None
