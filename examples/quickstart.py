"""Quickstart: trace a small agent end to end, then read the traces back.

    python examples/quickstart.py

The demo agent (examples/demo_agent.py) plans, retrieves documents with a search tool, calls a
stubbed LLM and answers; every step is a span. Traces land in ./agenttrace.duckdb (or wherever
AGENTTRACE_STORE points) and can be browsed afterwards with `agenttrace traces list`.
"""

from __future__ import annotations

import agenttrace
from demo_agent import answer

QUESTIONS = [
    "How much does the Team plan cost?",
    "Where is Fernwick Labs based?",
    "What does the Pathlight query language look like?",
]


def main() -> None:
    for question in QUESTIONS:
        print(f"Q: {question}\nA: {answer(question)}\n")

    traces = agenttrace.search_traces(max_results=len(QUESTIONS))
    print(traces[["trace_id", "name", "status", "duration_ms", "span_count", "total_tokens"]].to_string(index=False))
    print()
    print(agenttrace.get_trace(traces.trace_id.iloc[0]).to_text(width=70))
    print("\nTraces are stored in ./agenttrace.duckdb (or $AGENTTRACE_STORE); try: agenttrace traces list")


if __name__ == "__main__":
    main()
