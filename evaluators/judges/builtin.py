"""The built-in judges, one class each, all constructible with no arguments (model from the env).

| name                  | reads                                  | value                              |
| --------------------- | -------------------------------------- | ---------------------------------- |
| correctness           | inputs, outputs, expected_answer/facts | bool                               |
| relevance_to_query    | inputs, outputs                        | bool                               |
| groundedness          | outputs + RETRIEVER spans of the trace | bool                               |
| chunk_relevance       | inputs + each retrieved chunk          | float: share of relevant chunks    |
| safety                | outputs                                | bool (True = safe)                 |
| guidelines            | inputs, outputs, rules                 | bool: all rules followed           |
| tool_call_correctness | inputs, TOOL spans, expected calls     | bool                               |
| pairwise              | inputs, outputs vs baseline_output     | "A" / "B" / "tie"                  |

chunk_relevance returns ONE Score (the share of relevant chunks, i.e. context precision) with each
chunk's verdict in ``metadata["chunks"]``, rather than a list of Scores: chunk ids differ from
record to record, so per-chunk scores would make columns that cannot be aggregated.
guidelines asks once per rule, so a failed rule is named reliably; its metadata lists every rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from agenttrace.records import Score, Trace
from evaluators.judges.context import (
    request_text,
    require,
    response_text,
    retrieved_documents,
    tool_calls,
)
from evaluators.judges.judge import Judge, Usage
from evaluators.judges.pairwise import PairwiseJudge

__all__ = [
    "BUILTIN_JUDGES",
    "ChunkRelevanceJudge",
    "CorrectnessJudge",
    "GroundednessJudge",
    "GuidelinesJudge",
    "RelevanceToQueryJudge",
    "SafetyJudge",
    "ToolCallCorrectnessJudge",
]


def _expectations(expectations: Any) -> Mapping[str, Any]:
    return expectations if isinstance(expectations, Mapping) else {}


class CorrectnessJudge(Judge):
    """Is the output correct against ``expected_answer`` (or ``expected_response``) or
    ``expected_facts`` (a list of statements) in expectations?"""

    name = "correctness"
    template = "correctness.jinja"

    def score(self, *, inputs: Any = None, outputs: Any = None, expectations: Any = None) -> Score:
        exp = _expectations(expectations)
        answer = exp.get("expected_answer", exp.get("expected_response"))
        facts = exp.get("expected_facts")
        if isinstance(facts, str):
            facts = [facts]
        require(
            self.name,
            "an expected answer",
            answer or facts,
            'give expectations={"expected_answer": ...} or {"expected_facts": [...]}',
        )
        output = require(self.name, "the outputs", response_text(outputs, None), "the record has no outputs")
        return self.judge(
            request=request_text(inputs, None) or "(not given)",
            output=output,
            expected_answer=None if answer is None else str(answer),
            expected_facts=facts,
        )


class RelevanceToQueryJudge(Judge):
    """Does the output address the request (regardless of correctness)?"""

    name = "relevance_to_query"
    template = "relevance_to_query.jinja"

    def score(self, *, inputs: Any = None, outputs: Any = None) -> Score:
        request = require(self.name, "the inputs", request_text(inputs, None), "the record has no inputs")
        output = require(self.name, "the outputs", response_text(outputs, None), "the record has no outputs")
        return self.judge(request=request, output=output)


class GroundednessJudge(Judge):
    """Is every claim of the output supported by the documents the trace's RETRIEVER spans returned?"""

    name = "groundedness"
    template = "groundedness.jinja"

    def score(self, *, inputs: Any = None, outputs: Any = None, trace: Trace | None = None) -> Score:
        trace = require(self.name, "a trace", trace, "it reads the documents of RETRIEVER spans")
        documents = require(
            self.name,
            "retrieved documents",
            retrieved_documents(trace),
            f"trace {trace.trace_id} has no RETRIEVER span with documents in its outputs",
        )
        output = require(self.name, "the outputs", response_text(outputs, trace), "the record has no outputs")
        score = self.judge(request=request_text(inputs, trace), output=output, documents=documents)
        score.metadata["documents"] = len(documents)
        return score


class ChunkRelevanceJudge(Judge):
    """The share of retrieved chunks relevant to the request, one judge call per chunk."""

    name = "chunk_relevance"
    template = "chunk_relevance.jinja"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aggregation = "numeric"  # each call is yes/no, the Score is a share

    def score(self, *, inputs: Any = None, trace: Trace | None = None) -> Score:
        trace = require(self.name, "a trace", trace, "it reads the documents of RETRIEVER spans")
        request = require(self.name, "the inputs", request_text(inputs, trace), "the record has no inputs")
        documents = require(
            self.name,
            "retrieved documents",
            retrieved_documents(trace),
            f"trace {trace.trace_id} has no RETRIEVER span with documents in its outputs",
        )
        usage = Usage()
        chunks = []
        for doc in documents:
            verdict = self.ask(self.render(request=request, chunk=doc), usage)
            chunks.append({"id": doc.id, "relevant": verdict.value, "rationale": verdict.rationale})
        relevant = [c for c in chunks if c["relevant"]]
        irrelevant = ", ".join(str(c["id"]) for c in chunks if not c["relevant"])
        rationale = f"{len(relevant)} of {len(chunks)} retrieved chunks are relevant" + (
            f"; not relevant: {irrelevant}" if irrelevant else ""
        )
        usage.extra["chunks"] = chunks
        return Score(len(relevant) / len(chunks), rationale, None, usage.metadata())


class SafetyJudge(Judge):
    """Is the output free of harmful content? True means safe."""

    name = "safety"
    template = "safety.jinja"

    def score(self, *, outputs: Any = None) -> Score:
        output = require(self.name, "the outputs", response_text(outputs, None), "the record has no outputs")
        return self.judge(output=output)


def _rules(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [str(v) for v in value.values()]
    return [str(v) for v in value]


class GuidelinesJudge(Judge):
    """Does the output follow every natural-language rule? One call per rule; all must pass.

    Args:
        guidelines: rules for every record (a string or a list); ``expectations["guidelines"]``
            adds per-record rules.
    """

    name = "guidelines"
    template = "guidelines.jinja"

    def __init__(self, guidelines: str | Sequence[str] | None = None, **kwargs: Any) -> None:
        self.guidelines = _rules(guidelines)
        super().__init__(**kwargs)

    def score(self, *, inputs: Any = None, outputs: Any = None, expectations: Any = None) -> Score:
        rules = [*self.guidelines, *_rules(_expectations(expectations).get("guidelines"))]
        require(
            self.name,
            "at least one guideline",
            rules,
            'pass GuidelinesJudge(guidelines=[...]) or give expectations={"guidelines": [...]}',
        )
        output = require(self.name, "the outputs", response_text(outputs, None), "the record has no outputs")
        request = request_text(inputs, None)
        usage = Usage()
        results = []
        for rule in rules:
            verdict = self.ask(self.render(request=request, output=output, guideline=rule), usage)
            results.append({"guideline": rule, "passed": verdict.value, "rationale": verdict.rationale})
        failed = [r for r in results if not r["passed"]]
        if failed:
            lines = [f"- {r['guideline']}: {r['rationale'] or 'no reason given'}" for r in failed]
            rationale = f"Failed {len(failed)} of {len(results)} guidelines:\n" + "\n".join(lines)
        else:
            rationale = f"All {len(results)} guidelines followed."
        usage.extra["guidelines"] = results
        return Score(not failed, rationale, "fail" if failed else "pass", usage.metadata())


def _call_line(name: Any, arguments: Any) -> str:
    if arguments is None:
        return str(name)
    return f"{name}({json.dumps(arguments, ensure_ascii=False, sort_keys=True, default=str)})"


def _expected_lines(expected: Any) -> list[str]:
    lines = []
    for call in expected if isinstance(expected, list | tuple) else [expected]:
        if isinstance(call, Mapping):
            name = call.get("name", call.get("tool_name", call.get("tool")))
            lines.append(_call_line(name, call.get("arguments", call.get("args"))))
        else:
            lines.append(str(call))
    return lines


class ToolCallCorrectnessJudge(Judge):
    """Were the right tools called with the right arguments? Compared with
    ``expectations["expected_tool_calls"]`` (dicts with "name" and optional "arguments", or names)
    when given, else judged for plausibility against the request."""

    name = "tool_call_correctness"
    template = "tool_call_correctness.jinja"

    def score(self, *, inputs: Any = None, expectations: Any = None, trace: Trace | None = None) -> Score:
        trace = require(self.name, "a trace", trace, "it reads the TOOL spans of the trace")
        request = require(self.name, "the inputs", request_text(inputs, trace), "the record has no inputs")
        calls = tool_calls(trace)
        lines = [
            _call_line(c["name"], c["arguments"]) + (" -> failed" if c["status"] == "ERROR" else "") for c in calls
        ]
        expected = _expectations(expectations).get("expected_tool_calls")
        score = self.judge(request=request, calls=lines, expected_calls=_expected_lines(expected) if expected else None)
        score.metadata["tool_calls"] = [c["name"] for c in calls]
        return score


BUILTIN_JUDGES: dict[str, type[Judge]] = {
    cls.name: cls
    for cls in (
        CorrectnessJudge,
        RelevanceToQueryJudge,
        GroundednessJudge,
        ChunkRelevanceJudge,
        SafetyJudge,
        GuidelinesJudge,
        ToolCallCorrectnessJudge,
        PairwiseJudge,
    )
}
