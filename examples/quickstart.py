"""Quickstart: trace a small agent end to end, then evaluate it on a shipped dataset.

    python examples/quickstart.py

The demo agent (examples/demo_agent.py) plans, retrieves documents with a search tool, calls a
stubbed LLM and answers; every step is a span. Traces and results land in ./agenttrace.duckdb (or
wherever AGENTTRACE_STORE points). Heuristic scorers need no key; when OPENAI_API_KEY or
OPENAI_BASE_URL is set, LLM judges (correctness, groundedness) run too, with the model from
AGENTTRACE_JUDGE_MODEL (default gpt-4o-mini).
"""

from __future__ import annotations

import os
from pathlib import Path

from demo_agent import answer

import agenttrace

DATASET = Path(__file__).resolve().parent.parent / "datasets" / "rag_qa" / "rag_qa.jsonl"


def main() -> None:
    # 1. Trace: every call of the agent is a trace with plan, retrieval and LLM spans.
    question = "How much does the Team plan cost?"
    print(f"Q: {question}\nA: {answer(question)}\n")
    trace = agenttrace.get_trace(agenttrace.search_traces(max_results=1).trace_id[0])
    print(trace.to_text(width=70), "\n")

    # 2. Evaluate: run the agent over the dataset, score each answer, link scores to traces.
    scorers = ["contains", "token_f1", "recall_at_k", "no_error_spans"]
    judge_model = None
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        scorers += ["correctness", "groundedness"]
        judge_model = os.environ.get("AGENTTRACE_JUDGE_MODEL", "gpt-4o-mini")
    result = agenttrace.evaluate(DATASET, answer, scorers=scorers, agent=("demo_agent", "v1"), judge_model=judge_model)

    print(f"evaluated {result.metrics['run']['records']} records (eval run {result.eval_run_id[:12]}):")
    for name, summary in result.metrics["scorers"].items():
        value = summary.get("pass_rate", summary.get("mean"))
        kind = "pass rate" if "pass_rate" in summary else "mean"
        low, high = summary.get("ci95", (None, None))
        shown = "n/a" if value is None else f"{value:.3f} {kind} (95% CI {low:.3f}–{high:.3f})"
        print(f"  {name:<16} {shown}  errors {summary['errors']}")
    run = result.metrics["run"]
    print(
        f"  latency p50 {run['latency_p50_ms']:.2f} ms, p95 {run['latency_p95_ms']:.2f} ms,",
        f"tokens {run['total_tokens']}",
    )
    worst = result.tables["eval_results"].sort_values("token_f1").iloc[0]
    print(f"\nlowest token_f1: {worst.record_id}: {worst.outputs!r}")
    print("\nnext: agenttrace traces list · agenttrace eval list · agenttrace eval show", result.eval_run_id[:12])


if __name__ == "__main__":
    main()
