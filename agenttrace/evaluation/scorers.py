"""Resolving the scorers of an evaluation, and wiring LLM judges to one shared client.

Names resolve through the scorer registry (entry points), so built-in and third-party scorers are
found alike. Judges named here share one JudgeClient: one adaptive limiter sees all the traffic,
replies are cached in the store, and every call is recorded as an EVALUATOR trace of its own.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterable
from typing import Any

from agenttrace.errors import UnknownScorerError
from agenttrace.scoring import Scorer, as_scorers, available_scorers, get_scorer, scorer_target
from agenttrace.store import DuckDBStore
from agenttrace.tracing.spans import record_span
from evaluators.judges import Judge, JudgeCall, JudgeClient

# The trace being scored on this thread, so a judge call can point back to it.
scoring_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "agenttrace_scoring", default=None
)


class StoreJudgeCache:
    """JudgeCache backed by the store's `judge_cache` table (same model + prompt → no second call).

    Judges call it from many threads at once, so it never puts a store round trip on each call:
    the table is read into memory once, on first use, and new replies are written in batches
    (every BATCH replies and at `flush()`), one transaction each.
    """

    BATCH = 200

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self._entries: dict[str, str] | None = None
        self._pending: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            if self._entries is None:
                self._entries = self.store.judge_cache_load()
            return self._entries.get(key)

    def put(self, key: str, value: str) -> None:
        with self._lock:
            if self._entries is None:
                self._entries = self.store.judge_cache_load()
            self._entries[key] = value
            self._pending[key] = value
            if len(self._pending) < self.BATCH:
                return
            pending, self._pending = self._pending, {}
        self.store.judge_cache_put_many(pending)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            self.store.judge_cache_put_many(pending)


def record_judge_call(call: JudgeCall) -> None:
    """Record a judge's call as its own EVALUATOR trace, never inside the agent's trace."""
    if call.cached:
        return  # no model was called: the score's metadata says it came from the cache
    context = scoring_context.get() or {}
    record_span(
        f"judge:{call.judge or 'judge'}",
        "EVALUATOR",
        call.start_time_ns,
        call.end_time_ns,
        inputs={"messages": call.messages},
        outputs=call.reply_text,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": call.model,
            **({"gen_ai.usage.input_tokens": call.input_tokens} if call.input_tokens is not None else {}),
            **({"gen_ai.usage.output_tokens": call.output_tokens} if call.output_tokens is not None else {}),
            "agenttrace.judge.cached": call.cached,
            "agenttrace.judge.attempts": call.attempts,
            **{f"agenttrace.{k}": v for k, v in context.items()},
        },
        error=call.error,
    )


def resolve_scorers(
    specs: Iterable[Any],
    *,
    store: DuckDBStore | None,
    judge_model: str | None = None,
    judge_base_url: str | None = None,
    judge_api_key: str | None = None,
    concurrency: int = 8,
) -> tuple[list[Scorer], JudgeClient | None]:
    """Scorer objects for names, functions and instances; judges named here share one client.

    The client's cache (a StoreJudgeCache when there is a store) must be flushed by the caller.
    """
    specs = list(specs)
    if not specs:
        raise UnknownScorerError(f"no scorers given; pick some of: {', '.join(available_scorers())}")
    client: JudgeClient | None = None
    resolved: list[Scorer] = []
    for spec in specs:
        if isinstance(spec, str):
            target = scorer_target(spec)
            if isinstance(target, type) and issubclass(target, Judge):
                if client is None:
                    client = JudgeClient(
                        judge_model,
                        judge_base_url,
                        judge_api_key,
                        cache=StoreJudgeCache(store) if store is not None else None,
                        on_call=record_judge_call,
                        max_concurrency=max(concurrency, 1),
                    )
                resolved.append(target(client=client))
            else:
                resolved.append(get_scorer(spec))
        else:
            resolved.extend(as_scorers([spec]))
    names = [s.name for s in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UnknownScorerError(f"two scorers are both named {duplicates[0]!r}; rename one (name=...)")
    return resolved, client


def judge_model_of(scorers: list[Scorer], client: JudgeClient | None) -> str | None:
    if client is not None:
        return client.model
    models = {s.client.model for s in scorers if isinstance(s, Judge)}
    return ", ".join(sorted(models)) or None
