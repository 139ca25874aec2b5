"""Resolving the scorers of an evaluation, and wiring LLM judges to one shared client.

Names resolve through the scorer registry (entry points), so built-in and third-party scorers are
found alike; a name may carry parameters ("recall_at_k:k=5", see scorer_specs). Judges named here
share one JudgeClient: one adaptive limiter per endpoint sees all the traffic, replies are cached
in the store, and every call is recorded as an EVALUATOR trace of its own. Judges the user built
(make_judge) get the same store cache and traces for the run (see JudgeWiring).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from agenttrace.errors import InvalidArgumentError, UnknownScorerError
from agenttrace.evaluation.scorer_specs import build_with, parse_spec
from agenttrace.scoring import Scorer, as_scorers, available_scorers, scorer, scorer_target
from agenttrace.store import DuckDBStore
from agenttrace.tracing.spans import record_span
from evaluators.judges import AdaptiveLimiter, Judge, JudgeCall, JudgeClient
from evaluators.judges.settings import resolve_settings

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


JUDGE_OPTIONS = ("timeout", "max_retries", "temperature", "max_concurrency")


def check_judge_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate judge settings: timeout (s), max_retries, temperature, max_concurrency (per endpoint)."""
    given = dict(options or {})
    unknown = sorted(set(given) - set(JUDGE_OPTIONS))
    if unknown:
        raise InvalidArgumentError(f"judge option {unknown[0]!r} is not one of {', '.join(JUDGE_OPTIONS)}")
    for key, value in given.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise InvalidArgumentError(f"judge option {key}={value!r}: give a non-negative number")
    if given.get("max_concurrency") == 0 or given.get("timeout") == 0:
        raise InvalidArgumentError("judge options timeout and max_concurrency must be above 0")
    return given


class JudgeWiring:
    """The judges of one evaluation: a shared client for judges named by string, the store-backed
    reply cache for every judge, and one concurrency limiter per endpoint.

    Judges the user built (make_judge, a Judge instance) keep their own client and settings, but
    for the run their default in-memory cache is replaced by the store cache (keyed, as always,
    by model + rendered messages + parameters), their calls are recorded as EVALUATOR traces like
    built-in ones, and a client talking to the same endpoint as another shares its limiter, so
    ``max_concurrency`` bounds each endpoint, not each judge. `close()` flushes the cache and puts
    every borrowed attribute back.
    """

    def __init__(
        self,
        store: DuckDBStore | None,
        options: Mapping[str, Any],
        model: str | None,
        base_url: str | None,
        api_key: str | None,
        concurrency: int,
    ) -> None:
        self.cache = StoreJudgeCache(store) if store is not None else None
        self.options = dict(options)
        self.endpoint = (model, base_url, api_key)
        self.max_concurrency = int(self.options.pop("max_concurrency", max(concurrency, 1)))
        self.explicit_concurrency = "max_concurrency" in options
        self.client: JudgeClient | None = None
        self._limiters: dict[str | None, AdaptiveLimiter] = {}
        self._borrowed: list[tuple[JudgeClient, dict[str, Any]]] = []

    def shared_client(self) -> JudgeClient:
        if self.client is None:
            model, base_url, api_key = self.endpoint
            endpoint = resolve_settings(model, base_url, api_key).base_url
            self.client = JudgeClient(
                model,
                base_url,
                api_key,
                cache=self.cache,
                on_call=record_judge_call,
                limiter=self._limiter(endpoint, force=True),
                **self.options,
            )
        return self.client

    def _limiter(self, base_url: str | None, force: bool = False) -> AdaptiveLimiter | None:
        if base_url not in self._limiters and (force or self.explicit_concurrency):
            self._limiters[base_url] = AdaptiveLimiter(self.max_concurrency)
        return self._limiters.get(base_url)

    def adopt(self, judge: Judge) -> None:
        """Wire a judge built outside the run: store cache, EVALUATOR traces, the endpoint's limiter."""
        client = judge.client
        if client is self.client or any(c is client for c, _ in self._borrowed):
            return
        saved = {"cache": client.cache, "on_call": client.on_call, "limiter": client.limiter}
        self._borrowed.append((client, saved))
        if client.cache_is_default and self.cache is not None:
            client.cache = self.cache
        if client.on_call is None:
            client.on_call = record_judge_call
        limiter = self._limiter(client.base_url)
        if limiter is not None:
            client.limiter = limiter

    def close(self) -> None:
        """Flush new replies to the store, give borrowed clients back their own settings, close ours."""
        try:
            if self.cache is not None:
                self.cache.flush()
        finally:
            for client, saved in self._borrowed:
                for key, value in saved.items():
                    setattr(client, key, value)
            self._borrowed.clear()
            if self.client is not None:
                self.client.close()


def resolve_scorers(
    specs: Iterable[Any],
    *,
    store: DuckDBStore | None,
    judge_model: str | None = None,
    judge_base_url: str | None = None,
    judge_api_key: str | None = None,
    concurrency: int = 8,
    judge_options: Mapping[str, Any] | None = None,
) -> tuple[list[Scorer], JudgeWiring]:
    """Scorer objects for names (with parameters: "recall_at_k:k=5"), functions and instances.

    Judges named here share one client; judges given as objects are adopted (see JudgeWiring).
    The caller must `close()` the wiring when the run ends.
    """
    specs = list(specs)
    if not specs:
        raise UnknownScorerError(f"no scorers given; pick some of: {', '.join(available_scorers())}")
    wiring = JudgeWiring(
        store, check_judge_options(judge_options), judge_model, judge_base_url, judge_api_key, concurrency
    )
    resolved: list[Scorer] = []
    for spec in specs:
        if isinstance(spec, str):
            name, params = parse_spec(spec)
            target = scorer_target(name)
            if isinstance(target, type) and issubclass(target, Judge):
                resolved.append(build_with(name, target, params, client=wiring.shared_client()))
            elif params:
                resolved.extend(as_scorers([build_with(name, target, params)]))
            else:
                resolved.append(_no_argument_scorer(name, target))
        else:
            resolved.extend(as_scorers([spec]))
    for judge in resolved:
        if isinstance(judge, Judge):
            wiring.adopt(judge)
    names = [s.name for s in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        wiring.close()
        raise UnknownScorerError(f"two scorers are both named {duplicates[0]!r}; rename one (name=...)")
    return resolved, wiring


def _no_argument_scorer(name: str, target: Any) -> Scorer:
    """A registered scorer built with no arguments; one that needs some says which."""
    if isinstance(target, Scorer):
        return target
    if isinstance(target, type) and issubclass(target, Scorer):
        return build_with(name, target, {})  # one that needs a parameter raises, naming it and the syntax
    return scorer(target, name=name)


def judge_model_of(scorers: list[Scorer], judges: JudgeWiring | None) -> str | None:
    if judges is not None and judges.client is not None:
        return judges.client.model
    models = {s.client.model for s in scorers if isinstance(s, Judge)}
    return ", ".join(sorted(models)) or None
