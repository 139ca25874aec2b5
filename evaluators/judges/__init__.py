"""LLM judges: scorers that ask an OpenAI-compatible model, with retries, rate adaptation and a cache.

The engine imports from here only. Built-in judges are listed in BUILTIN_JUDGES (name → class, each
constructible with no arguments, the model read from AGENTTRACE_JUDGE_MODEL at construction);
`make_judge` builds a custom one from a jinja2 template. Share one JudgeClient between judges
(``client=``) so one limiter and one cache see all the traffic.
"""

from evaluators.judges.builtin import (
    BUILTIN_JUDGES,
    ChunkRelevanceJudge,
    CorrectnessJudge,
    GroundednessJudge,
    GuidelinesJudge,
    RelevanceToQueryJudge,
    SafetyJudge,
    ToolCallCorrectnessJudge,
)
from evaluators.judges.cache import InMemoryJudgeCache, JudgeCache, cache_key
from evaluators.judges.client import JudgeCall, JudgeClient, JudgeReply
from evaluators.judges.errors import JudgeConfigError, JudgeError
from evaluators.judges.judge import Judge, make_judge
from evaluators.judges.limiter import AdaptiveLimiter
from evaluators.judges.pairwise import PairwiseJudge
from evaluators.judges.parsing import parse_verdict

__all__ = [
    "AdaptiveLimiter",
    "BUILTIN_JUDGES",
    "ChunkRelevanceJudge",
    "CorrectnessJudge",
    "GroundednessJudge",
    "GuidelinesJudge",
    "InMemoryJudgeCache",
    "Judge",
    "JudgeCache",
    "JudgeCall",
    "JudgeClient",
    "JudgeConfigError",
    "JudgeError",
    "JudgeReply",
    "PairwiseJudge",
    "RelevanceToQueryJudge",
    "SafetyJudge",
    "ToolCallCorrectnessJudge",
    "cache_key",
    "make_judge",
    "parse_verdict",
]
