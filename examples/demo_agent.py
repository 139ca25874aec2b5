"""A small deterministic demo agent: no network, no API key, every step traced with agenttrace.

It answers questions about Pathlight (the fictional product of the fictional Fernwick Labs) from
``datasets/rag_qa/corpus.jsonl``:

    answer(question)                       AGENT      entry point
      plan(question)                       CHAIN      -> steps, including the search query
      search_docs(query, k=3)              RETRIEVER  -> BM25 top-k documents
      call_llm(messages)                   LLM        -> a *stub* LLM: the retrieved sentence that
                                                         best overlaps the question

Run it:

    python examples/demo_agent.py "How much does the Team plan cost?"
    python examples/demo_agent.py --check      # containment / retrieval hit rate on the datasets
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import agenttrace

DATASETS = Path(__file__).resolve().parent.parent / "datasets"
CORPUS_PATH = DATASETS / "rag_qa" / "corpus.jsonl"
MODEL = "stub-llm-1"
NO_ANSWER = "I could not find the answer in the Pathlight documentation."

_STOPWORDS = frozenset(
    """a about after all also an and any are as at be been before being both but by can could did do
    does for from get gets had has have how i if in into is it its me my of on or our so than that the
    their them then there these they this those to under up was we were what when where which who whom
    why will with would you your""".split()
)
_WORD = re.compile(r"\w+(?:[.'’]\w+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def tokenize(text: str) -> list[str]:
    """Lower-cased content words with a crude plural strip ("plans" -> "plan")."""
    out = []
    for tok in _WORD.findall(text.lower()):
        if tok in _STOPWORDS:
            continue
        if len(tok) > 3 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


class _Corpus:
    """The documents plus a BM25 index over title + text."""

    def __init__(self, path: Path) -> None:
        with open(path, encoding="utf-8") as f:
            self.docs = [json.loads(line) for line in f if line.strip()]
        self.tfs = [Counter(tokenize(d["title"] + " " + d["text"])) for d in self.docs]
        self.lengths = [sum(tf.values()) for tf in self.tfs]
        self.avg_len = sum(self.lengths) / len(self.lengths)
        df = Counter(term for tf in self.tfs for term in tf)
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        self.max_idf = math.log(1 + (n + 0.5) / 0.5)  # idf of a term seen in no document

    def bm25(self, query_terms: list[str], i: int, k1: float = 1.2, b: float = 0.75) -> float:
        tf, norm = self.tfs[i], k1 * (1 - b + b * self.lengths[i] / self.avg_len)
        return sum(self.idf.get(t, 0.0) * tf[t] * (k1 + 1) / (tf[t] + norm) for t in query_terms if t in tf)


_CORPUS: _Corpus | None = None


def corpus() -> _Corpus:
    """Load and index the corpus once, on first use."""
    global _CORPUS
    if _CORPUS is None:
        _CORPUS = _Corpus(CORPUS_PATH)
    return _CORPUS


@agenttrace.trace(span_type="CHAIN")
def plan(question: str) -> list[dict[str, Any]]:
    """Decide the steps: one documentation search on the question's content words, then an LLM call."""
    query = " ".join(w for w in dict.fromkeys(_WORD.findall(question.lower())) if w not in _STOPWORDS)
    return [{"step": "search_docs", "query": query or question}, {"step": "call_llm"}]


@agenttrace.trace(span_type="RETRIEVER")
def search_docs(query: str, k: int = 3) -> list[dict[str, Any]]:
    """The k documents with the highest BM25 score for the query (ties broken by id)."""
    c, terms = corpus(), tokenize(query)
    scored = sorted((-c.bm25(terms, i), d["id"], i) for i, d in enumerate(c.docs))
    return [
        {"id": c.docs[i]["id"], "title": c.docs[i]["title"], "text": c.docs[i]["text"], "score": round(-s, 4)}
        for s, _, i in scored[:k]
        if s < 0
    ]


@agenttrace.trace(span_type="LLM")
def call_llm(messages: list[dict[str, str]]) -> str:
    """A stub chat model: replies with the context sentence sharing the most (idf-weighted) words
    with the question. Deterministic; reports a model name and word-count "token" usage."""
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    question, _, context = user.partition("\n\nContext:\n")
    q_terms = set(tokenize(question.removeprefix("Question:")))
    c, best, best_score = corpus(), NO_ANSWER, 0.0
    for line in context.splitlines():
        text = line.split("] ", 1)[-1]  # drop the "[doc-07 Title]" label
        for sentence in _SENTENCE_END.split(text):
            overlap = q_terms & set(tokenize(sentence))
            score = sum(c.idf.get(t, c.max_idf) for t in overlap)
            if score > best_score:  # strict: the earlier (higher-ranked) sentence wins ties
                best, best_score = sentence, score
    span = agenttrace.get_current_span()
    if span is not None:
        span.set_attributes(
            {
                "gen_ai.request.model": MODEL,
                "gen_ai.usage.input_tokens": sum(len(m.get("content", "").split()) for m in messages),
                "gen_ai.usage.output_tokens": len(best.split()),
            }
        )
    return best


@agenttrace.trace(span_type="AGENT")
def answer(question: str) -> str:
    """Answer a question about Pathlight from its documentation."""
    docs: list[dict[str, Any]] = []
    for step in plan(question):
        if step["step"] == "search_docs":
            docs += [d for d in search_docs(step["query"], k=3) if d["id"] not in {x["id"] for x in docs}]
    context = "\n".join(f"[{d['id']} {d['title']}] {d['text']}" for d in docs)
    messages = [
        {"role": "system", "content": "Answer in one sentence using only the context."},
        {"role": "user", "content": f"Question: {question}\n\nContext:\n{context}"},
    ]
    return call_llm(messages)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _check() -> None:
    """Containment rate on qa + rag_qa and top-3 retrieval hit rate on rag_qa."""
    for name in ("qa/qa.jsonl", "rag_qa/rag_qa.jsonl"):
        rows = _read_jsonl(DATASETS / name)
        misses = [
            r
            for r in rows
            if r["expectations"]["expected_answer"].lower() not in answer(r["inputs"]["question"]).lower()
        ]
        print(
            f"{name}: answer contained in {len(rows) - len(misses)}/{len(rows)} "
            f"({1 - len(misses) / len(rows):.1%}); misses: {[r['id'] for r in misses]}"
        )
    rows = _read_jsonl(DATASETS / "rag_qa" / "rag_qa.jsonl")
    hits = [
        r
        for r in rows
        if set(r["expectations"]["relevant_doc_ids"])
        & {d["id"] for d in search_docs(plan(r["inputs"]["question"])[0]["query"], k=3)}
    ]
    print(f"rag_qa retrieval: relevant doc in top 3 for {len(hits)}/{len(rows)} = {len(hits) / len(rows):.1%}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        _check()
    else:
        print(answer(" ".join(sys.argv[1:]) or "How much does the Team plan cost?"))
