"""Pass/fail text checks: exact match, containment of the answer or of facts, and regex match.

All of them compare normalised text (SQuAD-style by default, see `Normalization`) because an agent
that answers "Paris." to "paris" has not failed. Containment matches whole words only: "4" is
not found in "1400" and "cat" is not found in "concatenate", the usual false passes of a plain
substring test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from agenttrace.errors import InvalidArgumentError
from agenttrace.records import Score

from ._common import HeuristicScorer, TextScorer, as_text, clip, expectation, reference_answers, text_list

__all__ = ["Contains", "ContainsAll", "ContainsAny", "ExactMatch", "RegexMatch"]


class ExactMatch(TextScorer):
    """Passes when the normalised output equals one of the normalised reference answers.

    The reference is ``expectations["expected_answer"]`` (or ``"expected_response"``); a list of
    answers means any of them is accepted.
    """

    name = "exact_match"
    aggregation = "boolean"

    def score(self, *, outputs: Any = None, expectations: Any = None) -> Score:
        answers = reference_answers(expectations, self.name)
        got = self.normalize(as_text(outputs))
        for answer in answers:
            if self.normalize(answer) == got:
                return Score(True, rationale=f"output matches the expected answer {clip(answer)!r}")
        if not got:
            return Score(False, rationale="the output is empty")
        wanted = " or ".join(repr(clip(self.normalize(a), 40)) for a in answers)
        return Score(False, rationale=f"normalised output {clip(got)!r} differs from {wanted}")


class Contains(TextScorer):
    """Passes when the output contains one of the reference answers as whole words."""

    name = "contains"
    aggregation = "boolean"

    def score(self, *, outputs: Any = None, expectations: Any = None) -> Score:
        answers = reference_answers(expectations, self.name)
        haystack = self.normalize(as_text(outputs))
        for answer in answers:
            if _contains(haystack, _needle(self, answer, "the expected answer")):
                return Score(True, rationale=f"output contains the expected answer {clip(answer)!r}")
        wanted = " or ".join(repr(clip(a, 40)) for a in answers)
        return Score(False, rationale=f"output does not contain {wanted}")


class _FactScorer(TextScorer):
    """Checks a list of facts, given at construction or read from ``expectations["expected_facts"]``."""

    def __init__(
        self,
        facts: Iterable[str] | None = None,
        *,
        name: str | None = None,
        ignore_case: bool = True,
        ignore_punctuation: bool = True,
        ignore_articles: bool = True,
        collapse_whitespace: bool = True,
    ) -> None:
        super().__init__(
            name=name,
            ignore_case=ignore_case,
            ignore_punctuation=ignore_punctuation,
            ignore_articles=ignore_articles,
            collapse_whitespace=collapse_whitespace,
        )
        # A lone string is one fact, not a sequence of one-letter facts.
        self.facts = None if facts is None else [facts] if isinstance(facts, str) else list(facts)
        if self.facts is not None and not self.facts:
            raise InvalidArgumentError(f"{type(self).__name__}: facts is empty; give at least one fact")

    def _split(self, outputs: Any, expectations: Any) -> tuple[list[str], list[str]]:
        """Return the facts found in the output and those missing from it."""
        facts, where = self.facts, "facts"
        if facts is None:
            _, value = expectation(expectations, self.name, "expected_facts")
            facts, where = text_list(value, self.name, "expected_facts"), "expectations['expected_facts']"
        haystack = self.normalize(as_text(outputs))
        found: list[str] = []
        missing: list[str] = []
        for fact in facts:
            (found if _contains(haystack, _needle(self, fact, where)) else missing).append(fact)
        return found, missing


class ContainsAll(_FactScorer):
    """Passes when every expected fact appears in the output; the rationale lists the missing ones."""

    name = "contains_all"
    aggregation = "boolean"

    def score(self, *, outputs: Any = None, expectations: Any = None) -> Score:
        found, missing = self._split(outputs, expectations)
        meta = {"found": found, "missing": missing}
        if not missing:
            return Score(True, rationale=f"all {len(found)} expected facts found", metadata=meta)
        total = len(found) + len(missing)
        listed = ", ".join(repr(clip(f, 40)) for f in missing)
        return Score(False, rationale=f"missing {len(missing)} of {total} expected facts: {listed}", metadata=meta)


class ContainsAny(_FactScorer):
    """Passes when at least one expected fact appears in the output."""

    name = "contains_any"
    aggregation = "boolean"

    def score(self, *, outputs: Any = None, expectations: Any = None) -> Score:
        found, missing = self._split(outputs, expectations)
        meta = {"found": found, "missing": missing}
        if found:
            listed = ", ".join(repr(clip(f, 40)) for f in found)
            return Score(True, rationale=f"found {len(found)} of {len(found) + len(missing)}: {listed}", metadata=meta)
        return Score(False, rationale=f"none of the {len(missing)} expected facts found", metadata=meta)


class RegexMatch(HeuristicScorer):
    """Passes when the pattern matches the output text (``re.search``, or the whole text if asked).

    The pattern is compiled once here, so a bad pattern fails when the scorer is built rather than
    once per record.
    """

    name = "regex_match"
    aggregation = "boolean"

    def __init__(
        self,
        pattern: str | re.Pattern[str],
        *,
        flags: int = 0,
        full_match: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        try:
            self.pattern = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
        except re.error as exc:
            raise InvalidArgumentError(f"RegexMatch: invalid pattern {pattern!r}: {exc}") from exc
        self.full_match = full_match

    def score(self, *, outputs: Any = None) -> Score:
        text = as_text(outputs)
        match = self.pattern.fullmatch(text) if self.full_match else self.pattern.search(text)
        shown = f"/{clip(self.pattern.pattern, 60)}/"
        if match is None:
            how = "the whole output" if self.full_match else "anywhere in the output"
            return Score(False, rationale=f"{shown} does not match {how}")
        return Score(True, rationale=f"{shown} matched {clip(match.group(0), 60)!r} at offset {match.start()}")


def _needle(scorer: TextScorer, text: str, where: str) -> str:
    """Normalise a text to look for; one that normalises to nothing would be found everywhere."""
    needle = scorer.normalize(text)
    if not needle:
        raise InvalidArgumentError(f"{scorer.name}: {text!r} in {where} is empty after normalisation")
    return needle


def _contains(haystack: str, needle: str) -> bool:
    """Whole-word containment: the needle may not start or end inside a word of the haystack."""
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack) is not None
