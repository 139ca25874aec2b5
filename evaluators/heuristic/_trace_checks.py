"""Checks on how the agent ran rather than what it answered: budgets, tool use and failed spans.

They read the recorded trace, so they judge what happened, not what the agent says happened.
A record without a trace cannot be judged and raises, which the engine records as the cell's
error — a pass there would hide a broken tracing setup.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import zip_longest
from typing import Any

from agenttrace.errors import InvalidArgumentError
from agenttrace.records import Score, SpanRecord, SpanStatus, SpanType, Trace

from ._common import HeuristicScorer, clip, expectation

__all__ = ["LatencyUnder", "NoErrorSpans", "TokensUnder", "ToolCalled", "ToolSequence"]


def _require(trace: Trace | None, scorer: str) -> Trace:
    if trace is None:
        raise InvalidArgumentError(f"{scorer} needs the record's trace; score records produced by a traced run")
    return trace


def _tool_calls(trace: Trace) -> list[SpanRecord]:
    """TOOL spans in the order they started (not tree order: parallel calls under different parents)."""
    tools = (s for s in trace.spans if s.span_type == SpanType.TOOL)
    return sorted(tools, key=lambda s: (s.start_time_ns, s.span_id))


def _expected_tools(expectations: Any, scorer: str) -> list[str]:
    """Names in ``expectations["expected_tool_calls"]``: tool names, or dicts with a ``name``."""
    _, value = expectation(expectations, scorer, "expected_tool_calls")
    items = [value] if isinstance(value, str | Mapping) else list(value)
    names = []
    for item in items:
        name = item.get("name", item.get("tool_name")) if isinstance(item, Mapping) else item
        if not isinstance(name, str):
            raise InvalidArgumentError(
                f"{scorer}: each entry of expectations['expected_tool_calls'] must be a tool name "
                f"or a dict with a 'name'; got {clip(repr(item), 60)}"
            )
        names.append(name)
    return names


def _check_limit(scorer: str, label: str, limit: float) -> float:
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
        raise InvalidArgumentError(f"{scorer}: {label} must be a non-negative number, got {limit!r}")
    return limit


class LatencyUnder(HeuristicScorer):
    """Passes when the trace took at most ``max_ms`` milliseconds."""

    name = "latency_under"
    aggregation = "boolean"

    def __init__(self, max_ms: float = 30_000, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.max_ms = _check_limit(type(self).__name__, "max_ms", max_ms)

    def score(self, *, trace: Trace | None = None) -> Score:
        trace = _require(trace, self.name)
        duration = trace.info.duration_ms
        if duration is None and trace.spans:
            # The summary row lacks a duration (e.g. not yet finalised): span bounds still tell it.
            start = min(s.start_time_ns for s in trace.spans)
            duration = (max(s.end_time_ns for s in trace.spans) - start) / 1e6
        if duration is None:
            raise InvalidArgumentError(f"{self.name}: the trace records no duration and has no spans")
        verdict = duration <= self.max_ms
        relation = "within" if verdict else "over"
        return Score(
            verdict,
            rationale=f"took {duration:.1f} ms, {relation} the {self.max_ms:g} ms limit",
            metadata={"duration_ms": duration},
        )


class TokensUnder(HeuristicScorer):
    """Passes when the trace used at most ``max_tokens`` tokens.

    The trace summary's ``total_tokens`` is used; without it, the spans' input and output tokens
    are summed. A trace with no token counts at all raises rather than passing: "no LLM call" and
    "token usage not recorded" look the same, and only the second is common.
    """

    name = "tokens_under"
    aggregation = "boolean"

    def __init__(self, max_tokens: int = 100_000, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.max_tokens = _check_limit(type(self).__name__, "max_tokens", max_tokens)

    def score(self, *, trace: Trace | None = None) -> Score:
        trace = _require(trace, self.name)
        total = trace.info.total_tokens
        source = "trace total"
        if total is None:
            counts = [n for s in trace.spans for n in (s.input_tokens, s.output_tokens) if n is not None]
            if not counts:
                raise InvalidArgumentError(f"{self.name}: the trace records no token counts, on the trace or its spans")
            total, source = sum(counts), "sum over spans"
        verdict = total <= self.max_tokens
        relation = "within" if verdict else "over"
        return Score(
            verdict,
            rationale=f"used {total} tokens ({source}), {relation} the {self.max_tokens:g} limit",
            metadata={"total_tokens": total},
        )


class ToolCalled(HeuristicScorer):
    """Passes when a TOOL span is named ``tool_name`` — or, without one, each expected tool.

    Without ``tool_name`` the names come from ``expectations["expected_tool_calls"]``; an empty
    list there means no tool is required and passes (ToolSequence is the check that none was used).
    """

    name = "tool_called"
    aggregation = "boolean"

    def __init__(self, tool_name: str | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.tool_name = tool_name

    def score(self, *, expectations: Any = None, trace: Trace | None = None) -> Score:
        trace = _require(trace, self.name)
        wanted = [self.tool_name] if self.tool_name is not None else _expected_tools(expectations, self.name)
        called = list(dict.fromkeys(s.name for s in _tool_calls(trace)))
        missing = [name for name in wanted if name not in called]
        seen = ", ".join(called) or "none"
        if not wanted:
            return Score(True, rationale=f"no tool expected; tools called: {seen}")
        if missing:
            return Score(False, rationale=f"never called {', '.join(missing)}; tools called: {seen}")
        return Score(True, rationale=f"called {', '.join(dict.fromkeys(wanted))}")


class ToolSequence(HeuristicScorer):
    """Passes when the TOOL spans, in start order, are exactly the expected tool calls.

    The expected sequence is ``expectations["expected_tool_calls"]``; an empty list asserts that no
    tool was called.
    """

    name = "tool_sequence"
    aggregation = "boolean"

    def score(self, *, expectations: Any = None, trace: Trace | None = None) -> Score:
        trace = _require(trace, self.name)
        expected = _expected_tools(expectations, self.name)
        actual = [s.name for s in _tool_calls(trace)]
        shown = f"expected [{_arrows(expected)}], got [{_arrows(actual)}]"
        if actual == expected:
            return Score(True, rationale=f"tool calls match: [{_arrows(actual)}]")
        at, (want, got) = next((i, p) for i, p in enumerate(zip_longest(expected, actual)) if p[0] != p[1])
        first = f"first difference at call {at + 1}: expected {want or 'no call'}, got {got or 'no call'}"
        return Score(False, rationale=f"{shown}; {first}", metadata={"expected": expected, "actual": actual})


class NoErrorSpans(HeuristicScorer):
    """Passes when no span (and not the trace itself) has status ERROR; the rationale names failures."""

    name = "no_error_spans"
    aggregation = "boolean"

    def score(self, *, trace: Trace | None = None) -> Score:
        trace = _require(trace, self.name)
        failed = [s for s in trace if s.status == SpanStatus.ERROR]
        if failed:
            listed = "; ".join(
                f"{s.name}" + (f" ({clip(s.status_message, 60)})" if s.status_message else "") for s in failed[:5]
            )
            noun = "span" if len(failed) == 1 else "spans"
            return Score(False, rationale=f"{len(failed)} {noun} failed: {listed}")
        if trace.info.status == SpanStatus.ERROR:
            return Score(False, rationale="no span failed but the trace is marked ERROR")
        return Score(True, rationale=f"none of the {len(trace.spans)} spans failed")


def _arrows(names: list[str]) -> str:
    return " -> ".join(names)
