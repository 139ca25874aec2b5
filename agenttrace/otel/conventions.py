"""The one conventions mapper: span attributes and events to our columns, for every path in.

Our own spans (the store exporter) and spans from any other instrumentation (OTLP ingest, or
other tracers' spans through `capture_global`) both go through `map_span`, so a span is stored
alike whichever way it arrives.

Precedence, for every fact: our own `agenttrace.*` attribute, then OpenInference, then the current
OpenTelemetry GenAI names, then deprecated GenAI names (`gen_ai.system`, `gen_ai.usage.prompt_tokens`,
`gen_ai.prompt.N.*`, per-message events), then OpenLLMetry's `llm.*` / `traceloop.*`.

What lands in the columns:
- inputs/outputs: valid JSON text. Chat messages of LLM spans take the one shape of
  `agenttrace.otel.messages`; retrieved documents (OpenInference `retrieval.documents.*`) become a
  RETRIEVER span's outputs as `[{"id", "content", "score", "metadata"}]`; a GenAI tool call's
  arguments and result become a TOOL span's inputs and outputs.
- `attributes`: every attribute as it came, less ours (lifted into columns) and less the copies of
  ours that our own OTLP export adds for other tools (so a payload is stored once).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from agenttrace.jsontext import dumps
from agenttrace.otel import messages as msg
from agenttrace.records import SpanType
from agenttrace.schema import SPAN_COLUMNS

__all__ = ["LIFTED", "json_text", "map_span", "span_type_of"]

# Our own span attributes.
SPAN_TYPE = "agenttrace.span_type"
INPUTS = "agenttrace.inputs"
OUTPUTS = "agenttrace.outputs"
LOCAL_ROOT = "agenttrace.local_root"
TRACE_TAGS = "agenttrace.trace.tags"
TRACE_METADATA = "agenttrace.trace.metadata"
AGENT_NAME = "agenttrace.agent.name"
ALWAYS_SAMPLE = "agenttrace.always_sample"  # on a root: keep this trace whatever the sample rate
# Columns lifted as text from one attribute of ours, as the schema declares them.
LIFTED_COLUMNS: tuple[tuple[str, str], ...] = tuple((c.name, c.attribute) for c in SPAN_COLUMNS if c.attribute)
_BY_COLUMN = dict(LIFTED_COLUMNS)
EXPERIMENT = _BY_COLUMN["experiment"]
RUN_ID = _BY_COLUMN["run_id"]
AGENT_VERSION = _BY_COLUMN["agent_version"]
AGENT_VERSION_ID = _BY_COLUMN["agent_version_id"]

# Shared with OpenInference, so exported spans carry the names other tools know.
SESSION_ID = "session.id"
USER_ID = "user.id"
OPENINFERENCE_KIND = "openinference.span.kind"
GENAI_OPERATION = "gen_ai.operation.name"

# Attributes of ours, lifted into their own columns and not repeated in the `attributes` JSON.
LIFTED = frozenset(
    {ALWAYS_SAMPLE, SPAN_TYPE, INPUTS, OUTPUTS, LOCAL_ROOT, TRACE_TAGS, TRACE_METADATA, AGENT_NAME,
     *_BY_COLUMN.values()}
)  # fmt: skip

MODEL_KEYS = ("llm.model_name", "gen_ai.request.model", "gen_ai.response.model", "llm.request.model",
              "llm.response.model")  # fmt: skip
PROVIDER_KEYS = ("llm.provider", "llm.system", "gen_ai.provider.name", "gen_ai.system")
INPUT_TOKEN_KEYS = ("llm.token_count.prompt", "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                    "llm.usage.prompt_tokens")  # fmt: skip
OUTPUT_TOKEN_KEYS = ("llm.token_count.completion", "gen_ai.usage.output_tokens",
                     "gen_ai.usage.completion_tokens", "llm.usage.completion_tokens")  # fmt: skip

_OPENINFERENCE_TYPES = {
    "LLM": "LLM", "CHAIN": "CHAIN", "TOOL": "TOOL", "RETRIEVER": "RETRIEVER", "EMBEDDING": "EMBEDDING",
    "AGENT": "AGENT", "RERANKER": "RERANKER", "GUARDRAIL": "GUARDRAIL", "EVALUATOR": "EVALUATOR",
}  # fmt: skip
_GENAI_OPERATION_TYPES = {
    "chat": "LLM", "text_completion": "LLM", "generate_content": "LLM", "embeddings": "EMBEDDING",
    "execute_tool": "TOOL", "invoke_agent": "AGENT", "create_agent": "AGENT", "retrieval": "RETRIEVER",
}  # fmt: skip
_TRACELOOP_KINDS = {"workflow": "CHAIN", "task": "CHAIN", "agent": "AGENT", "tool": "TOOL"}
_LLM_REQUEST_TYPES = {"chat": "LLM", "completion": "LLM", "embedding": "EMBEDDING", "rerank": "RERANKER"}
_JSON_MIME = "application/json"
_OUR_TYPES = frozenset(t.value for t in SpanType)


def span_type_of(attributes: Mapping[str, Any]) -> str:
    """Ours, else OpenInference's kind, else the GenAI operation, else OpenLLMetry's kind or request
    type, else LLM for a span that names a GenAI provider and nothing more.

    A value a convention does not know (an OpenInference PROMPT, a new GenAI operation) falls
    through to the next convention rather than deciding UNKNOWN.
    """
    get = attributes.get
    ours = get(SPAN_TYPE)
    if isinstance(ours, str) and ours.upper() in _OUR_TYPES:
        return ours.upper()
    kind = get(OPENINFERENCE_KIND)
    if isinstance(kind, str) and kind.upper() in _OPENINFERENCE_TYPES:
        return _OPENINFERENCE_TYPES[kind.upper()]
    operation = get(GENAI_OPERATION)
    if isinstance(operation, str) and operation in _GENAI_OPERATION_TYPES:
        return _GENAI_OPERATION_TYPES[operation]
    kind = get("traceloop.span.kind")
    if isinstance(kind, str) and kind.lower() in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[kind.lower()]
    request_type = get("llm.request.type")
    if isinstance(request_type, str) and request_type.lower() in _LLM_REQUEST_TYPES:
        return _LLM_REQUEST_TYPES[request_type.lower()]
    if "gen_ai.system" in attributes or "gen_ai.provider.name" in attributes:
        return "LLM"
    return "UNKNOWN"


# The facts read from the first of several attributes, in precedence order, as one table: each
# attribute read names its fact and its rank, so `map_span` finds them all in one pass over the
# span's attributes instead of asking for every name each convention might use (about thirty
# lookups, nearly all misses, for every span ingested).
_FIRST_OF: dict[str, tuple[str, int]] = {
    key: (fact, rank)
    for fact, keys in (
        ("model", MODEL_KEYS),
        ("provider", PROVIDER_KEYS),
        ("input_tokens", INPUT_TOKEN_KEYS),
        ("output_tokens", OUTPUT_TOKEN_KEYS),
        ("session_id", (SESSION_ID, "gen_ai.conversation.id")),
        ("user_id", (USER_ID,)),
        ("agent_name", (AGENT_NAME, "gen_ai.agent.name")),
        *((column, (attribute,)) for column, attribute in LIFTED_COLUMNS),
    )
    for rank, key in enumerate(keys)
}
_COUNTS = frozenset({"input_tokens", "output_tokens"})
# Facts whose attribute counts only when set (an empty session id falls through to the next name).
_TRUTHY = frozenset({"session_id", "agent_name"})


def map_span(attrs: Mapping[str, Any], events: list[dict[str, Any]], trusted: bool) -> dict[str, Any]:
    """Our columns from whichever conventions the span speaks (see the module docstring).

    `trusted` says our own payload attributes are JSON text made by our serializer (spans of this
    process); spans from outside have them checked like any other JSON they send.
    """
    facts: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    rest: dict[str, Any] = {}  # the attributes JSON: all but ours (one pass reads facts and rest)
    first_of, lifted = _FIRST_OF, LIFTED
    for key, value in attrs.items():
        if key not in lifted:
            rest[key] = value
        slot = first_of.get(key)
        if slot is None or value is None:
            continue
        fact, rank = slot
        if rank < ranks.get(fact, 99) and (value or fact not in _TRUTHY):
            facts[fact] = value
            ranks[fact] = rank
    for fact, value in facts.items():
        if fact in _COUNTS:
            facts[fact] = _int(value)
        elif not isinstance(value, str):
            facts[fact] = str(value)  # attributes anyone may set (user.id = 42) still fit a VARCHAR
    get = attrs.get
    span_type = span_type_of(attrs)
    facts["span_type"] = span_type
    facts["inputs"], facts["outputs"] = _payloads(attrs, events, span_type, trusted)
    tags = get(TRACE_TAGS)
    if tags is None:
        tags = get("tag.tags")
        if tags is not None:
            facts["tags"] = _openinference_tags(tags)
    else:
        facts["tags"] = _json_object(tags)
    metadata = get(TRACE_METADATA)
    if metadata is None:
        metadata = get("metadata")
    if metadata is not None:
        facts["metadata"] = _json_object(metadata)
    if not trusted and len(rest) < len(attrs):
        _drop_payload_copies(attrs, rest, span_type)
    facts["attributes"] = dumps(rest) if rest else "{}"
    return facts


# --- inputs and outputs -------------------------------------------------------------------------


def _payloads(
    attrs: Mapping[str, Any], events: list[dict[str, Any]], span_type: str, trusted: bool
) -> tuple[str | None, str | None]:
    get = attrs.get
    ours_in, ours_out = get(INPUTS), get(OUTPUTS)
    if trusted:
        inputs, outputs = _text(ours_in), _text(ours_out)
    else:
        inputs = None if ours_in is None else as_json(ours_in, True)
        outputs = None if ours_out is None else as_json(ours_out, True)
    if inputs is not None and outputs is not None:
        return inputs, outputs
    if span_type == "LLM":
        found_in, found_out = _chat(attrs, events)
        inputs = inputs if inputs is not None or found_in is None else dumps(found_in)
        outputs = outputs if outputs is not None or found_out is None else dumps(found_out)
    elif span_type == "RETRIEVER" and outputs is None:
        documents = _documents(attrs)
        outputs = None if documents is None else dumps(documents)
    if inputs is None:
        inputs = _generic(get, "input", ("gen_ai.tool.call.arguments", "traceloop.entity.input"))
    if outputs is None:
        outputs = _generic(get, "output", ("gen_ai.tool.call.result", "traceloop.entity.output"))
    return inputs, outputs


# Where each side's chat messages are read from, in precedence order (see the module docstring):
# ("indexed", prefix, role) for indexed attributes, ("payload", key, _) for a request or reply given
# whole, ("messages", key, _) for GenAI's JSON list, ("events", _, _) for deprecated per-message events.
_CHAT_SOURCES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "in": (("indexed", "llm.input_messages.", "user"), ("payload", "input.value", ""),
           ("messages", "gen_ai.input.messages", ""), ("indexed", "gen_ai.prompt.", "user"), ("events", "", ""),
           ("payload", "traceloop.entity.input", "")),
    "out": (("indexed", "llm.output_messages.", "assistant"), ("payload", "output.value", ""),
            ("messages", "gen_ai.output.messages", ""), ("indexed", "gen_ai.completion.", "assistant"),
            ("events", "", ""), ("payload", "traceloop.entity.output", "")),
}  # fmt: skip


def _chat(attrs: Mapping[str, Any], events: list[dict[str, Any]]) -> tuple[Any, Any]:
    """(input, output) messages, each from the first convention that has them."""
    from_events = msg.from_events(events) if events else (None, None)
    return _messages_of(attrs, "in", from_events[0]), _messages_of(attrs, "out", from_events[1])


def _messages_of(attrs: Mapping[str, Any], side: str, from_events: Any) -> Any:
    for kind, key, role in _CHAT_SOURCES[side]:
        if kind == "indexed":
            found = msg.from_indexed(attrs, key, role)
        elif kind == "payload":
            found = msg.from_payload(attrs.get(key), side)
        elif kind == "messages":
            found = msg.messages(attrs.get(key))
        else:
            found = from_events
        if found:
            return found
    return None


def _documents(attrs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    documents = msg.indexed(attrs, "retrieval.documents.")
    if not documents:
        return None
    out = []
    for doc in documents:
        if isinstance(doc, dict):
            metadata = doc.get("metadata")
            item = {k: doc[k] for k in ("id", "content", "score") if k in doc}
            if metadata is not None:
                item["metadata"] = msg.json_value(metadata)
            out.append(item)
    return out or None


def _generic(get: Callable[[str], Any], side: str, others: tuple[str, ...]) -> str | None:
    """OpenInference's `input.value` (JSON when its mime type says so), else the others in order."""
    value = get(f"{side}.value")
    if value is not None:
        return as_json(value, get(f"{side}.mime_type") == _JSON_MIME)
    for key in others:
        value = get(key)
        if value is not None:
            return as_json(value, True)
    return None


def as_json(value: Any, is_json: bool) -> str:
    """Valid JSON text for the store: a JSON string kept as sent when it parses, else encoded.

    A string said to be JSON, or looking like an object or array, is kept as sent when it parses;
    anything else is stored as a JSON string.
    """
    if isinstance(value, str) and (is_json or value.lstrip()[:1] in ("{", "[")):
        parsed = json_text(value)
        if parsed is not None:
            return parsed[0]
    return dumps(value)


def json_text(text: str) -> tuple[str, Any] | None:
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


# --- trace facts and the rest -------------------------------------------------------------------


def _openinference_tags(value: Any) -> str | None:
    if isinstance(value, list | tuple) and value:
        tags = {}
        for tag in value:
            key, sep, val = str(tag).partition(":")
            tags[key] = val if sep else ""
        return dumps(tags)
    return None


def _json_object(value: Any) -> str | None:
    """JSON object text, or None (trace tags and metadata must be objects to be merged)."""
    if isinstance(value, dict):
        return dumps(value)
    if not isinstance(value, str):
        return None
    parsed = json_text(value)
    return parsed[0] if parsed is not None and isinstance(parsed[1], dict) else None


# Prefixes of the message and document forms of our payloads that our own export adds.
_PAYLOAD_COPIES = ("llm.input_messages.", "llm.output_messages.", "gen_ai.input.", "gen_ai.output.",
                   "retrieval.documents.")  # fmt: skip


_COPY_VALUES = ((INPUTS, "input.value", "input.mime_type"), (OUTPUTS, "output.value", "output.mime_type"))
# The span types our OTLP export gives message or document forms of its payloads (otlp_export).
PAYLOAD_FORM_TYPES = frozenset({"LLM", "RETRIEVER"})
_COPY_KEY = re.compile("^(?:" + "|".join(re.escape(p) for p in _PAYLOAD_COPIES) + ")", re.M)


def _drop_payload_copies(attrs: Mapping[str, Any], rest: dict[str, Any], span_type: str) -> None:
    """Keep each payload once, for a span from outside that carries ours (it has our attributes):
    `input.value`/`output.value` equal to ours, and the message and document forms our export
    derives from ours, are dropped. Small copies (the span kind, the GenAI operation) stay as sent.
    Runs for every ingested span of ours, so the common case is two comparisons, and for LLM and
    RETRIEVER spans (the only ones our export gives those forms) one scan of the keys, joined."""
    for key, copy, mime in _COPY_VALUES:
        value = attrs.get(key)
        if value is not None and rest.get(copy) == value:
            del rest[copy]
            if rest.get(mime) == _JSON_MIME:
                del rest[mime]
    if span_type in PAYLOAD_FORM_TYPES and _COPY_KEY.search("\n".join(rest)):
        from agenttrace.otel.otlp_export import with_conventions  # both directions share these names

        ours = {k: v for k, v in attrs.items() if k in LIFTED}
        for key, value in with_conventions(ours).items():
            if key.startswith(_PAYLOAD_COPIES) and rest.get(key) == value:
                del rest[key]


def _text(value: Any) -> str | None:
    """Attributes anyone may set (user.id = 42) still fit a VARCHAR column."""
    return value if value is None or isinstance(value, str) else str(value)


# A token count above this is no count (a trillion tokens in one call): stored as unknown, so the
# sums over a trace can never overflow BIGINT, whatever a sender wrote.
MAX_COUNT = 10**12


def _int(value: Any) -> int | None:
    """A count, or None when it is not a whole number from 0 to MAX_COUNT."""
    if value is None or isinstance(value, bool):  # None is the common case: no exception for it
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number <= MAX_COUNT else None
