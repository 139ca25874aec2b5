"""What every heuristic scorer shares: turning outputs into text, finding expectations, normalising.

These live in one module so that two scorers reading the same record never disagree about what the
answer text was, which expectation key they needed, or whether "The Eiffel Tower." equals
"eiffel tower" — a disagreement nobody reading two columns of a results table could explain.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agenttrace.errors import InvalidArgumentError
from agenttrace.scoring import Scorer

__all__ = [
    "ANSWER_EXPECTATIONS",
    "ANSWER_KEYS",
    "HeuristicScorer",
    "Normalization",
    "TextScorer",
    "as_text",
    "clip",
    "expectation",
    "reference_answers",
    "text_list",
]

# A dict output holding exactly one of these keys is an answer wrapped in an envelope.
ANSWER_KEYS = ("answer", "output", "response")
# Where a record keeps the reference answer, in order of preference.
ANSWER_EXPECTATIONS = ("expected_answer", "expected_response")

_ARTICLES = re.compile(r"\b(?:a|an|the)\b", re.IGNORECASE)
_ASCII_PUNCTUATION = frozenset(string.punctuation)


class HeuristicScorer(Scorer):
    """A Scorer whose registry name can be overridden per instance.

    Two instances of one class with different settings (``RecallAtK(k=3)`` and ``RecallAtK(k=10)``)
    need different names or their columns would collide in the results table.
    """

    def __init__(self, *, name: str | None = None) -> None:
        if name is not None:
            self.name = name


def as_text(value: Any) -> str:
    """Render an output as the text a text comparison should see.

    Strings pass through and None is empty. A dict holding exactly one of ``answer``, ``output`` or
    ``response`` is an envelope around the answer, so that value is used (other keys, such as
    sources, are ignored); anything else is compared as its JSON text.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        present = [key for key in ANSWER_KEYS if key in value]
        if len(present) == 1:
            return as_text(value[present[0]])
    return json.dumps(value, ensure_ascii=False, default=str)


def expectation(expectations: Any, scorer: str, *keys: str) -> tuple[str, Any]:
    """Return ``(key, value)`` for the first of ``keys`` the record's expectations carry.

    Raises:
        InvalidArgumentError: none of the keys is present (or set to None); the message names them, and the
            engine records it as this cell's error.
    """
    if isinstance(expectations, Mapping):
        for key in keys:
            if expectations.get(key) is not None:
                return key, expectations[key]
    wanted = " or ".join(f"expectations[{key!r}]" for key in keys)
    raise InvalidArgumentError(f"{scorer} needs {wanted}; add it to the dataset record")


def text_list(value: Any, scorer: str, key: str) -> list[str]:
    """Read an expectation that may be one string or a list of them; an empty list is an error."""
    items = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
    if not items:
        raise InvalidArgumentError(f"{scorer}: expectations[{key!r}] is empty; give at least one value")
    return [as_text(item) for item in items]


def reference_answers(expectations: Any, scorer: str) -> list[str]:
    """The acceptable reference answers: ``expected_answer`` (or ``expected_response``), one or a list.

    A list means any of its answers is acceptable, as in SQuAD; scorers take the best match.
    """
    key, value = expectation(expectations, scorer, *ANSWER_EXPECTATIONS)
    return text_list(value, scorer, key)


@dataclass(frozen=True, slots=True)
class Normalization:
    """SQuAD-style text normalisation, each step switchable.

    The steps run in SQuAD's order: lowercase, delete punctuation (ASCII and Unicode, so curly
    quotes and dashes go too), replace the articles a/an/the with a space, collapse whitespace.
    """

    ignore_case: bool = True
    ignore_punctuation: bool = True
    ignore_articles: bool = True
    collapse_whitespace: bool = True

    def __call__(self, text: str) -> str:
        if self.ignore_case:
            text = text.lower()
        if self.ignore_punctuation:
            text = "".join(ch for ch in text if not _is_punctuation(ch))
        if self.ignore_articles:
            text = _ARTICLES.sub(" ", text)
        if self.collapse_whitespace:
            text = " ".join(text.split())
        return text


class TextScorer(HeuristicScorer):
    """A scorer that compares normalised text; the four switches are those of `Normalization`."""

    def __init__(
        self,
        *,
        name: str | None = None,
        ignore_case: bool = True,
        ignore_punctuation: bool = True,
        ignore_articles: bool = True,
        collapse_whitespace: bool = True,
    ) -> None:
        super().__init__(name=name)
        self.normalize = Normalization(ignore_case, ignore_punctuation, ignore_articles, collapse_whitespace)


def _is_punctuation(ch: str) -> bool:
    return ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P")


def clip(text: str, width: int = 80) -> str:
    """Shorten text for a rationale, which should stay one readable line."""
    return text if len(text) <= width else text[: width - 1] + "…"
