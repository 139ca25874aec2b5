"""Graded text similarity in 0..1: edit similarity, SQuAD token F1, ROUGE-L and sentence BLEU.

Each takes the best score over the acceptable reference answers, as SQuAD does. The edit, F1 and
ROUGE-L scorers compare SQuAD-normalised text; BLEU does not, because sacrebleu tokenises and
(optionally) lowercases in its own documented way and scores are only comparable under it.
The string algorithms come from rapidfuzz and sacrebleu rather than being written here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import sacrebleu
from rapidfuzz.distance import LCSseq, Levenshtein

from agenttrace.records import Score

from ._common import HeuristicScorer, TextScorer, as_text, clip, reference_answers

__all__ = ["Bleu", "EditSimilarity", "RougeL", "TokenF1"]


class EditSimilarity(TextScorer):
    """Normalised Levenshtein similarity: 1 - distance / length of the longer text."""

    name = "edit_similarity"

    def score(self, *, outputs: Any = None, expectations: Any = None) -> Score:
        got = self.normalize(as_text(outputs))
        refs = [self.normalize(a) for a in reference_answers(expectations, self.name)]
        ref = max(refs, key=lambda r: Levenshtein.normalized_similarity(got, r))
        similarity = Levenshtein.normalized_similarity(got, ref)
        distance = Levenshtein.distance(got, ref)
        return Score(similarity, rationale=f"{distance} edits from {clip(ref, 60)!r} ({similarity:.2f} similar)")


class _TokenOverlap(TextScorer):
    """An F-measure over the tokens of the output and each reference; the best reference wins."""

    def score(self, *, outputs: Any = None, expectations: Any = None) -> Score:
        predicted = self.normalize(as_text(outputs)).split()
        answers = reference_answers(expectations, self.name)
        scores = [self._measure(predicted, self.normalize(answer).split()) for answer in answers]
        return max(scores, key=lambda s: s.value)

    def _measure(self, predicted: list[str], gold: list[str]) -> Score:
        raise NotImplementedError


class TokenF1(_TokenOverlap):
    """SQuAD token F1: the harmonic mean of token precision and recall, counting repeated tokens."""

    name = "token_f1"

    def _measure(self, predicted: list[str], gold: list[str]) -> Score:
        shared = sum((Counter(predicted) & Counter(gold)).values())
        return _f_score(shared, "shared tokens", predicted, gold)


class RougeL(_TokenOverlap):
    """ROUGE-L F-measure: precision and recall of the longest common token subsequence."""

    name = "rouge_l"

    def _measure(self, predicted: list[str], gold: list[str]) -> Score:
        lcs = int(LCSseq.similarity(predicted, gold))
        return _f_score(lcs, "tokens in the longest common subsequence", predicted, gold)


class Bleu(HeuristicScorer):
    """Sentence BLEU from sacrebleu, divided by 100; every reference answer is a BLEU reference.

    Defaults are sacrebleu's sentence-level ones: 13a tokenisation, exponential smoothing and
    effective order, so a short answer is not zeroed for lacking 4-grams.
    """

    name = "bleu"

    def __init__(
        self,
        *,
        lowercase: bool = False,
        tokenize: str = "13a",
        smooth_method: str = "exp",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.lowercase = lowercase
        self.tokenize = tokenize
        self.smooth_method = smooth_method

    def score(self, *, outputs: Any = None, expectations: Any = None) -> Score:
        references = reference_answers(expectations, self.name)
        hypothesis = as_text(outputs)
        if not hypothesis.strip():
            return Score(0.0, rationale="the output is empty")
        result = sacrebleu.sentence_bleu(
            hypothesis,
            references,
            smooth_method=self.smooth_method,
            lowercase=self.lowercase,
            tokenize=self.tokenize,
        )
        precisions = "/".join(f"{p:.1f}" for p in result.precisions)
        # sacrebleu's float arithmetic can land a hair above 100 for identical text.
        value = min(max(result.score / 100.0, 0.0), 1.0)
        detail = f"n-gram precisions {precisions}, brevity penalty {result.bp:.2f}"
        return Score(value, rationale=f"BLEU {result.score:.1f}: {detail}")


def _f_score(overlap: int, what: str, predicted: list[str], gold: list[str]) -> Score:
    """F1 of an overlap count; two empty texts agree fully, one empty text not at all."""
    counts = f"{overlap} {what}; {len(predicted)} predicted, {len(gold)} expected"
    if not predicted or not gold:
        return Score(float(predicted == gold), rationale=f"{counts} (an empty text matches only another)")
    if overlap == 0:
        return Score(0.0, rationale=counts)
    precision, recall = overlap / len(predicted), overlap / len(gold)
    f1 = 2 * precision * recall / (precision + recall)
    return Score(f1, rationale=f"{counts}: precision {precision:.2f}, recall {recall:.2f}")
