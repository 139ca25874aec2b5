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

from agenttrace.otel import conventions as cv

__all__ = ["SpanFacts", "facts_of"]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str).encode


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Strict JSON: NaN and Infinity are Python's extension, and the store's JSON type refuses them.
_loads = json.JSONDecoder(parse_constant=_no_constants).decode
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _json_text(text: str) -> tuple[str, Any] | None:
    """(text the store accepts, parsed value) if `text` is strict JSON, else None.

    Python's parser accepts a lone surrogate escape ("\\ud800"), which the store's JSON type
    refuses; such text is re-encoded with the lone halves replaced.
    """
    try:
        value = _loads(text)
    except (ValueError, RecursionError):
        return None
    if _SURROGATE_ESCAPE.search(text):
        text = json.dumps(value, ensure_ascii=False).encode("utf-8", "replace").decode("utf-8")
    return text, value


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
        (get(cv.INPUTS), True), (get("input.value"), get("input.mime_type") == _JSON_MIME),
        (get("traceloop.entity.input"), True), (get("gen_ai.input.messages"), True),
    )  # fmt: skip
    outputs = _payload(
        (get(cv.OUTPUTS), True), (get("output.value"), get("output.mime_type") == _JSON_MIME),
        (get("traceloop.entity.output"), True), (get("gen_ai.output.messages"), True),
    )  # fmt: skip
    if inputs is None or outputs is None:
        older_in, older_out = _older_messages(attrs, events)
        inputs = inputs if inputs is not None else older_in
        outputs = outputs if outputs is not None else older_out
    return SpanFacts(
        span_type=_span_type(attrs),
        inputs=inputs,
        outputs=outputs,
        model=_text(cv.first_of(attrs, MODEL_KEYS)),
        input_tokens=_int(cv.first_of(attrs, INPUT_TOKEN_KEYS)),
        output_tokens=_int(cv.first_of(attrs, OUTPUT_TOKEN_KEYS)),
        session_id=_text(get(cv.SESSION_ID) or get("gen_ai.conversation.id")),
        user_id=_text(get(cv.USER_ID)),
        tags=_tags(get(cv.TRACE_TAGS), get("tag.tags")),
        metadata=_json_object(get(cv.TRACE_METADATA)) or _json_object(get("metadata")),
        agent_name=_text(get(cv.AGENT_NAME) or get("gen_ai.agent.name")),
    )


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


def _payload(*candidates: tuple[Any, bool]) -> str | None:
    """The first present value as JSON text.

    A string said to be JSON (ours, OpenLLMetry's, GenAI messages, or input.value with the JSON
    mime type) is kept as sent when it parses; a string that looks like an object or array is
    tried too; anything else is stored as a JSON string.
    """
    for value, is_json in candidates:
        if value is None:
            continue
        if isinstance(value, str) and (is_json or value.lstrip()[:1] in ("{", "[")):
            parsed = _json_text(value)
            if parsed is not None:
                return parsed[0]
        return _dumps(value)
    return None


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
        _dumps([msgs[i] for i in sorted(msgs)]) if msgs else None for msgs in (found["in"], found["out"])
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
        return _dumps(tags)
    return None


def _json_object(value: Any) -> str | None:
    """JSON object text, or None (trace tags and metadata must be objects to be merged)."""
    if isinstance(value, dict):
        return _dumps(value)
    if not isinstance(value, str):
        return None
    parsed = _json_text(value)
    return parsed[0] if parsed is not None and isinstance(parsed[1], dict) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -(2**63) <= number < 2**63 else None
