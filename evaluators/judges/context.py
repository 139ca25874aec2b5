"""What judges read from a record: request and response text, retrieved documents, tool calls.

Retrieved documents are the outputs of RETRIEVER spans (a list of dicts with "id" and "text" or
"content", or plain strings); tool calls are TOOL spans (name = tool name, inputs = arguments).
When ``inputs`` or ``outputs`` are missing, the trace's root inputs/outputs stand in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agenttrace.records import SpanType, Trace
from evaluators.judges.errors import JudgeError

__all__ = [
    "Document",
    "as_text",
    "request_text",
    "require",
    "response_text",
    "retrieved_documents",
    "tool_calls",
]

_TEXT_KEYS = ("text", "content", "page_content", "document", "chunk")


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    text: str


def as_text(value: Any) -> str:
    """Readable text for a prompt: strings as they are, a one-field dict by its value, chat
    messages as "role: content" lines, anything else as indented JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        (only,) = value.values()
        if isinstance(only, str):
            return only
        if _is_messages(only):
            return _messages_text(only)
    if _is_messages(value):
        return _messages_text(value)
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, Mapping) and "role" in m and "content" in m for m in value)
    )


def _messages_text(messages: list[Mapping[str, Any]]) -> str:
    return "\n".join(f"{m['role']}: {as_text(m['content'])}" for m in messages)


def require(judge: str, what: str, value: Any, hint: str) -> Any:
    """Return ``value`` or raise a JudgeError saying which judge lacks what, and how to supply it."""
    if value is None or value == "" or value == [] or value == {}:
        raise JudgeError(f"judge {judge!r} needs {what}; {hint}", reason="missing_input")
    return value


def request_text(inputs: Any, trace: Trace | None) -> str | None:
    """The request as text: ``inputs``, else the trace's root inputs."""
    if inputs is None and trace is not None:
        inputs = _root_value(trace, "inputs")
    return None if inputs is None else as_text(inputs)


def response_text(outputs: Any, trace: Trace | None) -> str | None:
    """The response as text: ``outputs``, else the trace's root outputs."""
    if outputs is None and trace is not None:
        outputs = _root_value(trace, "outputs")
    return None if outputs is None else as_text(outputs)


def _root_value(trace: Trace, field: str) -> Any:
    value = getattr(trace.info, field)
    return value if value is not None else getattr(trace.root, field, None)


def retrieved_documents(trace: Trace) -> list[Document]:
    """Documents returned by every RETRIEVER span, in execution order; ids default to position."""
    docs: list[Document] = []
    for span in trace.spans_of_type(SpanType.RETRIEVER):
        items = span.outputs
        if isinstance(items, Mapping):
            items = items.get("documents", [items])
        if not isinstance(items, list):
            items = [] if items is None else [items]
        for item in items:
            doc = _document(item, f"{span.name}[{len(docs)}]")
            if doc is not None:
                docs.append(doc)
    return docs


def _document(item: Any, default_id: str) -> Document | None:
    if isinstance(item, str):
        return Document(default_id, item)
    if isinstance(item, Mapping):
        for key in _TEXT_KEYS:
            if isinstance(item.get(key), str):
                doc_id = item.get("id", item.get("doc_id", default_id))
                return Document(str(doc_id), item[key])
    return None


def tool_calls(trace: Trace) -> list[dict[str, Any]]:
    """Each TOOL span as {"name", "arguments", "output", "status"}, in execution order."""
    return [
        {"name": s.name, "arguments": s.inputs, "output": s.outputs, "status": s.status}
        for s in trace.spans_of_type(SpanType.TOOL)
    ]
