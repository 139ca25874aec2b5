"""Ranking metrics over retrieved documents with binary relevance: recall@k, precision@k, MRR, nDCG@k.

The ranked list comes from what the agent actually retrieved — the outputs of the trace's
RETRIEVER spans, in start order — so the metric scores the retrieval the trace recorded, not a
list the agent chose to report. Without a trace (or a trace with no RETRIEVER spans) the list is
read from ``outputs["retrieved_doc_ids"]``, or from the outputs themselves when they are a list.
Ids are compared as strings and a document retrieved twice counts once, at its first rank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from agenttrace.errors import InvalidArgumentError
from agenttrace.records import Score, SpanType, Trace

from ._common import HeuristicScorer, clip, expectation, text_list

__all__ = ["MRR", "NDCG", "PrecisionAtK", "RecallAtK"]

_ID_KEYS = ("id", "doc_id", "document_id")
_LIST_KEYS = ("retrieved_doc_ids", "documents")


def retrieved_doc_ids(outputs: Any = None, trace: Trace | None = None, span_name: str | None = None) -> list[str]:
    """The ranked, de-duplicated document ids a record retrieved (see the module docstring)."""
    spans = []
    if trace is not None:
        spans = sorted(
            (
                s
                for s in trace.spans
                if s.span_type == SpanType.RETRIEVER and (span_name is None or s.name == span_name)
            ),
            key=lambda s: (s.start_time_ns, s.span_id),
        )
    ids = [i for s in spans for i in _ids_in(s.outputs)] if spans else _ids_in(outputs)
    return list(dict.fromkeys(ids))


def _ids_in(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        key = next((k for k in _LIST_KEYS if k in value), None)
        return [] if key is None else _ids_in(value[key])
    if isinstance(value, list | tuple):
        return [_doc_id(item) for item in value]
    return []


def _doc_id(item: Any) -> str:
    if isinstance(item, str | int):
        return str(item)
    if isinstance(item, Mapping):
        for where in (item, item.get("metadata")):
            if isinstance(where, Mapping):
                for key in _ID_KEYS:
                    if where.get(key) is not None:
                        return str(where[key])
    raise InvalidArgumentError(
        f"a retrieved document has no id: {clip(repr(item), 60)}; "
        f"give each document one of {', '.join(_ID_KEYS)} (or the same under 'metadata')"
    )


class _RankingScorer(HeuristicScorer):
    """Shared reading of the ranked list and the relevant ids; ``k`` of None means the whole list."""

    def __init__(self, k: int | None = 5, *, span_name: str | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise InvalidArgumentError(f"{type(self).__name__}: k must be a positive integer, got {k!r}")
        self.k = k
        self.span_name = span_name

    def _inputs(self, outputs: Any, expectations: Any, trace: Trace | None) -> tuple[list[str], set[str]]:
        """Return the top-k retrieved ids and the set of relevant ids."""
        _, value = expectation(expectations, self.name, "relevant_doc_ids")
        relevant = set(text_list(value, self.name, "relevant_doc_ids"))
        ranked = retrieved_doc_ids(outputs, trace, self.span_name)
        return ranked[: self.k], relevant

    @property
    def _top(self) -> str:
        return "retrieved list" if self.k is None else f"top {self.k}"


class RecallAtK(_RankingScorer):
    """Share of the relevant documents that appear in the top k retrieved."""

    name = "recall_at_k"

    def score(self, *, outputs: Any = None, expectations: Any = None, trace: Trace | None = None) -> Score:
        top, relevant = self._inputs(outputs, expectations, trace)
        missing = sorted(relevant - set(top))
        found = len(relevant) - len(missing)
        rationale = f"{found} of {len(relevant)} relevant documents in the {self._top}"
        if missing:
            rationale += f"; missing {', '.join(clip(m, 30) for m in missing[:10])}"
        return Score(found / len(relevant), rationale=rationale)


class PrecisionAtK(_RankingScorer):
    """Share of the top k slots holding a relevant document; empty slots count as misses."""

    name = "precision_at_k"

    def score(self, *, outputs: Any = None, expectations: Any = None, trace: Trace | None = None) -> Score:
        top, relevant = self._inputs(outputs, expectations, trace)
        hits = sum(doc in relevant for doc in top)
        slots = self.k if self.k is not None else len(top)
        value = hits / slots if slots else 0.0
        return Score(value, rationale=f"{hits} of the {self._top} are relevant ({len(top)} retrieved)")


class MRR(_RankingScorer):
    """Reciprocal rank of the first relevant document (0 when none is retrieved)."""

    name = "mrr"

    def __init__(self, k: int | None = None, *, span_name: str | None = None, name: str | None = None) -> None:
        super().__init__(k, span_name=span_name, name=name)

    def score(self, *, outputs: Any = None, expectations: Any = None, trace: Trace | None = None) -> Score:
        top, relevant = self._inputs(outputs, expectations, trace)
        rank = next((i for i, doc in enumerate(top, start=1) if doc in relevant), None)
        if rank is None:
            return Score(0.0, rationale=f"no relevant document in the {self._top} ({len(top)} retrieved)")
        return Score(1.0 / rank, rationale=f"first relevant document {clip(top[rank - 1], 30)} at rank {rank}")


class NDCG(_RankingScorer):
    """Normalised discounted cumulative gain at k with binary relevance (gain 1 / log2(rank + 1))."""

    name = "ndcg"

    def score(self, *, outputs: Any = None, expectations: Any = None, trace: Trace | None = None) -> Score:
        top, relevant = self._inputs(outputs, expectations, trace)
        ranks = [i for i, doc in enumerate(top, start=1) if doc in relevant]
        dcg = sum(1.0 / math.log2(rank + 1) for rank in ranks)
        ideal = min(len(relevant), self.k if self.k is not None else len(relevant))
        idcg = sum(1.0 / math.log2(rank + 1) for rank in range(1, ideal + 1))
        shown = ", ".join(map(str, ranks)) or "none"
        return Score(
            dcg / idcg,
            rationale=f"relevant at ranks {shown} of the {self._top}; DCG {dcg:.3f} of ideal {idcg:.3f}",
        )
