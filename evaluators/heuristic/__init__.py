"""Heuristic scorers: deterministic checks that need no model, for text, JSON, retrieval and traces.

Every scorer is a `agenttrace.scoring.Scorer` subclass configured through keyword arguments and
returns a `Score` whose rationale says why. A record missing the expectation a scorer needs
raises InvalidArgumentError (a ValueError) naming the key, which the evaluation engine records as
that cell's error; so do bad constructor arguments, when the scorer is built.

The implementation modules are private so code can move between them freely; import from here.
`BUILTIN_HEURISTICS` maps registry names to the classes that build with no arguments, for
registration through the ``agenttrace.scorers`` entry-point group.
"""

from __future__ import annotations

from agenttrace.scoring import Scorer

from ._common import Normalization
from ._overlap import Bleu, EditSimilarity, RougeL, TokenF1
from ._retrieval import MRR, NDCG, PrecisionAtK, RecallAtK
from ._structured import JsonSchema, JsonValid
from ._text import Contains, ContainsAll, ContainsAny, ExactMatch, RegexMatch
from ._trace_checks import LatencyUnder, NoErrorSpans, TokensUnder, ToolCalled, ToolSequence

__all__ = [
    "BUILTIN_HEURISTICS",
    "Bleu",
    "Contains",
    "ContainsAll",
    "ContainsAny",
    "EditSimilarity",
    "ExactMatch",
    "JsonSchema",
    "JsonValid",
    "LatencyUnder",
    "MRR",
    "NDCG",
    "NoErrorSpans",
    "Normalization",
    "PrecisionAtK",
    "RecallAtK",
    "RegexMatch",
    "RougeL",
    "TokenF1",
    "TokensUnder",
    "ToolCalled",
    "ToolSequence",
]

# RegexMatch and JsonSchema are left out: they cannot be built without a pattern or a schema.
BUILTIN_HEURISTICS: dict[str, type[Scorer]] = {
    cls.name: cls
    for cls in (
        ExactMatch,
        Contains,
        ContainsAll,
        ContainsAny,
        EditSimilarity,
        TokenF1,
        RougeL,
        Bleu,
        JsonValid,
        RecallAtK,
        PrecisionAtK,
        MRR,
        NDCG,
        NoErrorSpans,
        ToolCalled,
        ToolSequence,
        LatencyUnder,
        TokensUnder,
    )
}
