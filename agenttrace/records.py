"""Plain records shared by every layer: spans, traces, assessments and scores.

They carry decoded Python values (inputs and outputs are objects, not JSON text) and know nothing
of DuckDB or OpenTelemetry, so the store, the bridge and the engines can all speak them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from agenttrace.errors import InvalidArgumentError

__all__ = ["Assessment", "Score", "SpanRecord", "SpanStatus", "SpanType", "Trace", "TraceInfo", "parse_source"]


class SpanType(StrEnum):
    """What a span does; the names follow MLflow and OpenInference span kinds."""

    AGENT = "AGENT"
    CHAIN = "CHAIN"
    LLM = "LLM"
    TOOL = "TOOL"
    RETRIEVER = "RETRIEVER"
    EMBEDDING = "EMBEDDING"
    RERANKER = "RERANKER"
    PARSER = "PARSER"
    GUARDRAIL = "GUARDRAIL"
    EVALUATOR = "EVALUATOR"
    UNKNOWN = "UNKNOWN"


class SpanStatus(StrEnum):
    OK = "OK"
    ERROR = "ERROR"
    UNSET = "UNSET"
    IN_PROGRESS = "IN_PROGRESS"


def _ns_to_datetime(ns: int | None) -> datetime | None:
    return None if ns is None else datetime.fromtimestamp(ns / 1e9, tz=UTC)


@dataclass(slots=True)
class SpanRecord:
    """One stored span, with inputs and outputs decoded from JSON (columns: `agenttrace.schema`)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    span_type: str
    status: str
    start_time_ns: int
    end_time_ns: int
    inputs: Any = None
    outputs: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    status_message: str | None = None
    model: str | None = None
    provider: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None

    @property
    def start_time(self) -> datetime:
        return _ns_to_datetime(self.start_time_ns)  # type: ignore[return-value]

    @property
    def end_time(self) -> datetime:
        return _ns_to_datetime(self.end_time_ns)  # type: ignore[return-value]

    @property
    def duration_ms(self) -> float:
        return (self.end_time_ns - self.start_time_ns) / 1e6


@dataclass(slots=True)
class TraceInfo:
    """The summary row of a trace, as the `traces` table holds it (see `agenttrace.schema`)."""

    trace_id: str
    name: str | None
    status: str
    start_time_ns: int | None
    end_time_ns: int | None
    duration_ms: float | None
    experiment: str | None = None
    run_id: str | None = None
    inputs: Any = None
    outputs: Any = None
    session_id: str | None = None
    user_id: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    span_count: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    agent_name: str | None = None
    agent_version: str | None = None
    agent_version_id: str | None = None

    @property
    def start_time(self) -> datetime | None:
        return _ns_to_datetime(self.start_time_ns)


SOURCE_TYPES = ("HUMAN", "CODE", "LLM_JUDGE")


def parse_source(source: str | None) -> tuple[str, str | None]:
    """An assessment's source as (type, id): "human", "code" or "llm_judge", optionally ":<id>".

    None is a human without an id; "llm_judge:gpt-4o" is ("LLM_JUDGE", "gpt-4o").
    """
    if source is None:
        return "HUMAN", None
    kind, _, ident = source.partition(":")
    if kind.upper() not in SOURCE_TYPES:
        raise InvalidArgumentError(
            f"source {source!r}: start it with human, code or llm_judge (e.g. 'llm_judge:gpt-4o')"
        )
    return kind.upper(), ident or None


@dataclass(slots=True)
class Assessment:
    """Feedback or an expectation attached to a trace (and optionally one span)."""

    assessment_id: str
    trace_id: str
    name: str
    kind: str  # "feedback" or "expectation"
    value: Any
    rationale: str | None = None
    source_type: str = "HUMAN"  # HUMAN, CODE or LLM_JUDGE
    source_id: str | None = None
    span_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    eval_run_id: str | None = None
    created_ns: int = 0


@dataclass(slots=True)
class Trace:
    """A whole trace: its summary and its spans, walkable as a tree."""

    info: TraceInfo
    spans: list[SpanRecord]
    assessments: list[Assessment] = field(default_factory=list)

    @property
    def trace_id(self) -> str:
        return self.info.trace_id

    @property
    def root(self) -> SpanRecord | None:
        """The span without a stored parent (the earliest one if several)."""
        roots = self._roots()
        return roots[0] if roots else None

    def _roots(self) -> list[SpanRecord]:
        ids = {s.span_id for s in self.spans}
        return [s for s in self.spans if s.parent_span_id is None or s.parent_span_id not in ids]

    def children(self, span: SpanRecord) -> list[SpanRecord]:
        return [s for s in self.spans if s.parent_span_id == span.span_id]

    def walk(self) -> Iterator[tuple[int, SpanRecord]]:
        """Yield (depth, span) in depth-first order, children by start time."""
        by_parent: dict[str | None, list[SpanRecord]] = {}
        for s in sorted(self.spans, key=lambda s: (s.start_time_ns, s.span_id)):
            by_parent.setdefault(s.parent_span_id, []).append(s)
        stack = [(0, s) for s in reversed(self._roots())]
        while stack:
            depth, span = stack.pop()
            yield depth, span
            stack.extend((depth + 1, c) for c in reversed(by_parent.get(span.span_id, [])))

    def __iter__(self) -> Iterator[SpanRecord]:
        return (span for _, span in self.walk())

    def spans_of_type(self, span_type: str | SpanType) -> list[SpanRecord]:
        return [s for s in self if s.span_type == str(span_type)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "info": asdict(self.info),
            "spans": [asdict(s) for s in self],
            "assessments": [asdict(a) for a in self.assessments],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def to_text(self, width: int = 60) -> str:
        """A readable tree: type, name, duration, status and shortened inputs/outputs."""
        lines = [f"trace {self.info.trace_id}  {self.info.status}  {_fmt_ms(self.info.duration_ms)}"]
        for depth, s in self.walk():
            mark = "" if s.status != SpanStatus.ERROR else f"  ERROR {s.status_message or ''}".rstrip()
            lines.append(f"{'  ' * (depth + 1)}[{s.span_type}] {s.name}  {_fmt_ms(s.duration_ms)}{mark}")
            pad = "  " * (depth + 2)
            if s.inputs is not None:
                lines.append(f"{pad}in:  {_short(s.inputs, width)}")
            if s.outputs is not None:
                lines.append(f"{pad}out: {_short(s.outputs, width)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _fmt_ms(ms: float | None) -> str:
    return "?" if ms is None else f"{ms:.1f} ms"


def _short(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(slots=True)
class Score:
    """What a scorer returns: a value with an optional label, rationale and metadata."""

    value: Any
    rationale: str | None = None
    label: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    error: str | None = None
