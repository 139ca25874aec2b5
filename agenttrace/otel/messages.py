"""Chat messages in one shape, whichever convention brought them, and back out to each convention.

The stored shape of an LLM span's inputs and outputs is the OpenTelemetry GenAI one
(`gen_ai.input.messages` / `gen_ai.output.messages`), a list of messages:

    {"role": "system" | "user" | "assistant" | "tool",
     "parts": [{"type": "text", "content": "..."},
               {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {...}},
               {"type": "tool_call_response", "id": "call_1", "response": ...},
               {...any other part (images, files) as the sender gave it...}],
     "name": "...",            # optional
     "finish_reason": "stop"}  # optional, output messages

Read from: OpenAI chat messages (`content` text or parts, `tool_calls`, `tool_call_id`), an OpenAI
chat request (`{"messages": [...]}`) or reply (`{"choices": [...]}`), OpenInference's indexed
`llm.input_messages.N.message.*`, the GenAI JSON attributes, older GenAI indexed attributes
(`gen_ai.prompt.N.*`, `gen_ai.completion.N.*`) and per-message events. The original attributes are
kept on the span as they came; only the inputs/outputs columns take this shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agenttrace.jsontext import dumps, loads

__all__ = [
    "from_events",
    "from_indexed",
    "from_openai_reply",
    "from_payload",
    "indexed",
    "json_value",
    "message",
    "messages",
    "to_openinference",
]

_NUMBER = re.compile(r"^\d+$")


def json_value(value: Any) -> Any:
    """A JSON string's value (tool arguments, event bodies); anything else, or JSON nested past what
    the parsers take, as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _text_part(text: Any) -> dict[str, Any]:
    return {"type": "text", "content": text if isinstance(text, str) else dumps(text)}


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, Mapping) and item.get("type") in ("text", "input_text", "output_text"):
                parts.append(_text_part(item.get("text", item.get("content"))))
            elif isinstance(item, Mapping):
                parts.append(dict(item))
            else:
                parts.append(_text_part(item))
        return parts
    return [_text_part(content)]


def _tool_call_part(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    function = function if isinstance(function, Mapping) else call
    return {
        "type": "tool_call",
        "id": call.get("id") or call.get("call_id"),
        "name": function.get("name"),
        "arguments": json_value(function.get("arguments")),
    }


def message(value: Any, default_role: str | None = None) -> dict[str, Any]:
    """One message in the stored shape, from the stored shape itself or from OpenAI's."""
    if not isinstance(value, Mapping):
        return {"role": default_role, "parts": _content_parts(value)}
    role = value.get("role") or default_role
    if isinstance(value.get("parts"), list):
        parts = [dict(p) if isinstance(p, Mapping) else _text_part(p) for p in value["parts"]]
    elif role == "tool" and value.get("tool_call_id") is not None:
        parts = [
            {"type": "tool_call_response", "id": value["tool_call_id"], "response": json_value(value.get("content"))}
        ]
    else:
        inner = value.get("message")  # a GenAI choice event: {"message": {...}, "finish_reason": ...}
        if isinstance(inner, str | Mapping) and "content" not in value:
            nested = message(json_value(inner), role or "assistant")
            role, parts = nested["role"], nested["parts"]
        else:
            parts = _content_parts(value.get("content"))
            refusal = value.get("refusal")  # OpenAI's refusal replaces the content
            if isinstance(refusal, str) and refusal and not parts:
                parts.append(_text_part(refusal))
        calls = value.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, Mapping):
                parts.append(_tool_call_part(call))
    out: dict[str, Any] = {"role": role, "parts": parts}
    for key in ("name", "finish_reason"):
        if value.get(key) is not None:
            out[key] = value[key]
    return out


def messages(values: Any, default_role: str | None = None) -> list[dict[str, Any]] | None:
    """A list of messages in the stored shape, or None when `values` is not a list of messages."""
    if isinstance(values, str):
        values = json_value(values)
    if not isinstance(values, list) or not values:
        return None
    if not all(isinstance(v, Mapping) and ("role" in v or "parts" in v or "content" in v) for v in values):
        return None
    return [message(v, default_role) for v in values]


def from_payload(value: Any, side: str) -> list[dict[str, Any]] | None:
    """Messages inside a chat request or reply given as a whole (OpenInference's `input.value`)."""
    role = "user" if side == "in" else "assistant"
    if isinstance(value, str):
        value = json_value(value)
        if isinstance(value, str):  # plain text: the one message of a completion-style call
            return [message(value, role)] if value else None
    if isinstance(value, list):
        return messages(value, role)
    if not isinstance(value, Mapping):
        return None
    if side == "in" and isinstance(value.get("messages"), list):
        return messages(value["messages"])
    if side == "out":
        return from_openai_reply(value)
    return None


def from_openai_reply(reply: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Output messages of an OpenAI chat completion (`choices`) or Responses reply (`output`)."""
    choices = reply.get("choices")
    if isinstance(choices, list):
        out = []
        for choice in choices:
            if isinstance(choice, Mapping) and isinstance(choice.get("message"), Mapping):
                msg = message(choice["message"], "assistant")
                if choice.get("finish_reason") is not None:
                    msg["finish_reason"] = choice["finish_reason"]
                out.append(msg)
        return out or None
    output = reply.get("output")
    if isinstance(output, list):
        parts: list[dict[str, Any]] = []
        for item in output:
            if not isinstance(item, Mapping):
                continue
            if item.get("type") == "message":
                parts.extend(_content_parts(item.get("content")))
            elif item.get("type") == "function_call":
                parts.append(_tool_call_part(item))
        if parts:
            reply_message: dict[str, Any] = {"role": "assistant", "parts": parts}
            if isinstance(reply.get("status"), str):
                reply_message["finish_reason"] = reply["status"]
            return [reply_message]
    return None


# Indexed conventions nest a handful of levels (message, tool call, function, name); a key nested
# deeper, or an index longer than this, is no message field and is left in the attributes alone.
_MAX_KEY_DEPTH = 8
_MAX_INDEX_DIGITS = 9


def _unflatten(flat: Mapping[str, Any]) -> Any:
    """{"0.role": "user", "0.tool_calls.0.id": "c"} -> [{"role": "user", "tool_calls": [{"id": "c"}]}]."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        steps = key.split(".")
        if len(steps) > _MAX_KEY_DEPTH:
            continue
        *path, last = steps
        for step in path:
            node = node.setdefault(step, {})
            if not isinstance(node, dict):
                break
        else:
            node[last] = value
    return _lists(tree)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(_NUMBER.match(k) and len(k) <= _MAX_INDEX_DIGITS for k in node):
        return [_lists(node[k]) for k in sorted(node, key=int)]
    return {k: _lists(v) for k, v in node.items()}


# OpenInference nests each field under a wrapper name; these are dropped when reading.
_WRAPPERS = ("message", "tool_call", "message_content", "document")


def _unwrap(node: Any) -> Any:
    if isinstance(node, list):
        return [_unwrap(v) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1 and next(iter(node)) in _WRAPPERS:
        return _unwrap(next(iter(node.values())))
    out = {k: _unwrap(v) for k, v in node.items()}
    contents = out.pop("contents", None)
    if isinstance(contents, list) and "content" not in out:
        out["content"] = contents
    return out


def indexed(attributes: Mapping[str, Any], prefix: str) -> list[Any] | None:
    """The list that indexed attributes under `prefix` spell (`retrieval.documents.` -> documents)."""
    flat = {k[len(prefix) :]: v for k, v in attributes.items() if k.startswith(prefix)}
    if not flat:
        return None
    tree = _unwrap(_unflatten(flat))
    return tree if isinstance(tree, list) else None


def from_indexed(attributes: Mapping[str, Any], prefix: str, default_role: str) -> list[dict[str, Any]] | None:
    """Messages from indexed attributes under `prefix` (`llm.input_messages.`, `gen_ai.prompt.`...)."""
    tree = indexed(attributes, prefix)
    return None if tree is None else messages(tree, default_role)


_ROLE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def from_events(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """(input, output) messages from older GenAI events: one event per message or per prompt."""
    found_in: list[dict[str, Any]] = []
    found_out: list[dict[str, Any]] = []
    for event in events:
        name, attrs = event["name"], event.get("attributes") or {}
        if name == "gen_ai.content.prompt" and "gen_ai.prompt" in attrs:
            found_in.extend(messages(attrs["gen_ai.prompt"]) or [message(attrs["gen_ai.prompt"], "user")])
        elif name == "gen_ai.content.completion" and "gen_ai.completion" in attrs:
            found_out.extend(messages(attrs["gen_ai.completion"]) or [message(attrs["gen_ai.completion"], "assistant")])
        elif name in _ROLE_EVENTS:
            found_in.append(message({"role": _ROLE_EVENTS[name], **attrs}))
        elif name == "gen_ai.choice":
            found_out.append(message(dict(attrs), "assistant"))
    return found_in or None, found_out or None


def to_openinference(msgs: list[Any], side: str) -> dict[str, Any]:
    """OpenInference's indexed attributes for stored-shape messages (Phoenix shows them as a chat)."""
    prefix = f"llm.{'input' if side == 'in' else 'output'}_messages"
    out: dict[str, Any] = {}
    for i, msg in enumerate(msgs):
        if not isinstance(msg, Mapping):
            continue
        base = f"{prefix}.{i}.message"
        if msg.get("role"):
            out[f"{base}.role"] = str(msg["role"])
        texts, calls = [], 0
        for part in msg.get("parts") or ():
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("content", "")))
            elif kind == "tool_call":
                call = f"{base}.tool_calls.{calls}.tool_call"
                calls += 1
                if part.get("id") is not None:
                    out[f"{call}.id"] = str(part["id"])
                out[f"{call}.function.name"] = str(part.get("name") or "")
                args = part.get("arguments")
                out[f"{call}.function.arguments"] = args if isinstance(args, str) else dumps(args)
            elif kind == "tool_call_response":
                if part.get("id") is not None:
                    out[f"{base}.tool_call_id"] = str(part["id"])
                response = part.get("response")
                texts.append(response if isinstance(response, str) else dumps(response))
        if texts:
            out[f"{base}.content"] = "\n".join(texts)
        if msg.get("name"):
            out[f"{base}.name"] = str(msg["name"])
    return out
