"""JudgeClient: one chat completion for a judge, with cache, retries, backoff and adaptive concurrency.

It wraps the real ``openai.OpenAI`` client (its own retries turned off) so any OpenAI-compatible
endpoint works: OpenAI, Azure-style gateways, vLLM, llama.cpp, Ollama. One client is meant to be
shared by all worker threads of an evaluation, so that its AdaptiveLimiter sees all the traffic.

Retried: HTTP 429, 5xx, timeouts and connection errors, with exponential backoff and jitter, or
the endpoint's Retry-After when it sends one. Not retried: other 4xx, except that a 400/422 while
asking for ``response_format={"type": "json_object"}`` is retried once without it, and when that
works the client stops asking for it (many local servers reject the parameter).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import openai

from evaluators.judges.cache import InMemoryJudgeCache, JudgeCache, cache_key
from evaluators.judges.errors import JudgeError
from evaluators.judges.limiter import AdaptiveLimiter
from evaluators.judges.settings import resolve_settings

__all__ = ["JudgeCall", "JudgeClient", "JudgeReply", "Message"]

logger = logging.getLogger(__name__)

Message = Mapping[str, str]
_RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_OVERLOAD_STATUS = frozenset({429, 503})
_FORMAT_REJECTED_STATUS = frozenset({400, 422})


@dataclass(frozen=True, slots=True)
class JudgeReply:
    """What the judge model answered. On a cache hit the token counts are 0: nothing was spent."""

    text: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float
    cached: bool


@dataclass(frozen=True, slots=True)
class JudgeCall:
    """One `JudgeClient.complete` call as the ``on_call`` hook sees it (after all its retries)."""

    model: str
    messages: list[dict[str, str]]
    reply_text: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float
    cached: bool
    error: str | None
    attempts: int
    start_time_ns: int
    end_time_ns: int
    parameters: dict[str, Any] = field(default_factory=dict)
    judge: str | None = None  # the name of the judge that asked, when a Judge made the call


class JudgeClient:
    """Chat completions for judges, shared safely by many threads.

    Args:
        model, base_url, api_key: the endpoint; when omitted, read from AGENTTRACE_JUDGE_* then
            OPENAI_* when the client is built.
        cache: a JudgeCache; None means a private in-memory cache; False turns caching off.
        on_call: called with a JudgeCall after every `complete`, on the calling thread; if it
            raises, the error is logged and the judge goes on.
        timeout: seconds for one HTTP attempt.
        temperature: the sampling temperature asked for (0: as repeatable as the model allows); it
            is part of the cache key, so replies at one temperature never answer another.
        max_retries: retries after the first attempt for 429, 5xx, timeouts and connection errors.
        max_concurrency: most calls in flight at once; the limiter lowers it while the endpoint
            answers 429/503 and raises it again after ``increase_after`` successes.
        backoff_base, backoff_max: seconds; attempt n waits about base * 2**n, capped.
        max_retry_after: the longest Retry-After honoured, in seconds.
        json_mode: ask for ``response_format={"type": "json_object"}``.
        limiter: share one AdaptiveLimiter between several clients of one endpoint.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        cache: JudgeCache | Literal[False] | None = None,
        on_call: Callable[[JudgeCall], object] | None = None,
        timeout: float = 60.0,
        temperature: float = 0,
        max_retries: int = 5,
        max_concurrency: int = 16,
        increase_after: int = 10,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 60.0,
        json_mode: bool = True,
        limiter: AdaptiveLimiter | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        settings = resolve_settings(model, base_url, api_key, environ)
        self.model = settings.model
        self.base_url = settings.base_url
        self.cache: JudgeCache | None = InMemoryJudgeCache() if cache is None else (cache or None)
        # True when no cache was chosen: an evaluation may then put its store-backed cache here.
        self.cache_is_default = cache is None
        self.temperature = temperature
        self.on_call = on_call
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.limiter = limiter or AdaptiveLimiter(max_concurrency, increase_after)
        self._json_mode_requested = json_mode
        self._json_mode = json_mode
        self._openai = openai.OpenAI(
            api_key=settings.api_key, base_url=settings.base_url, timeout=timeout, max_retries=0
        )

    @property
    def json_mode(self) -> bool:
        """Whether requests still carry response_format (False once the endpoint rejected it)."""
        return self._json_mode

    @property
    def parameters(self) -> dict[str, Any]:
        """The request parameters that, with model and messages, make the cache key."""
        params: dict[str, Any] = {"temperature": self.temperature}
        if self._json_mode_requested:
            params["response_format"] = {"type": "json_object"}
        return params

    def close(self) -> None:
        self._openai.close()

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<JudgeClient model={self.model!r} base_url={self.base_url!r}>"

    def complete(
        self,
        messages: Sequence[Message],
        *,
        accept: Callable[[str], bool] | None = None,
        judge: str | None = None,
    ) -> JudgeReply:
        """Ask the model; return its reply (from the cache when the same request was answered).

        Args:
            messages: chat messages ({"role", "content"}).
            accept: if given, a fresh reply is cached only when ``accept(text)`` is true, so a
                reply that the judge cannot use is never served again from the cache.
            judge: the asking judge's name, passed on to the on_call hook.

        Raises:
            JudgeError: the endpoint refused, kept failing past max_retries, or timed out.
        """
        msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        params = self.parameters
        key = cache_key(self.model, msgs, params)
        start_ns, t0 = time.time_ns(), time.perf_counter()
        attempts = 0
        reply: JudgeReply | None = None
        error: str | None = None
        try:
            hit = self._cache_get(key)
            if hit is not None:
                reply = self._from_cache(hit, t0)
                if reply is not None:
                    return reply
            text, model, tokens_in, tokens_out, attempts = self._request(msgs)
            reply = JudgeReply(text, model, tokens_in, tokens_out, _ms_since(t0), cached=False)
            if accept is None or _safe_accept(accept, text):
                self._cache_put(key, reply)
            return reply
        except JudgeError as exc:
            attempts = exc.attempts or attempts
            error = f"{type(exc).__name__}: {exc}"
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._notify(msgs, params, reply, error, attempts, start_ns, t0, judge)

    # -- the HTTP loop -------------------------------------------------------------------------

    def _request(self, msgs: list[dict[str, str]]) -> tuple[str, str, int | None, int | None, int]:
        attempts = 0
        retries = 0
        use_format = self._json_mode
        format_dropped = False
        while True:
            attempts += 1
            slot = self.limiter.acquire()
            try:
                completion = self._create(msgs, use_format)
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status in _OVERLOAD_STATUS:
                    self.limiter.overloaded(slot)
                else:
                    self.limiter.release(slot)
                if use_format and status in _FORMAT_REJECTED_STATUS:
                    logger.info("judge endpoint rejected response_format (HTTP %s); retrying without", status)
                    use_format, format_dropped = False, True
                    continue
                if status not in _RETRYABLE_STATUS:
                    also = " (with and without response_format)" if format_dropped else ""
                    raise JudgeError(
                        f"judge endpoint {self._where()} refused the request with HTTP {status}{also}: {exc.message}",
                        reason=f"http_{status}",
                        status_code=status,
                        attempts=attempts,
                    ) from exc
                failure: Exception = exc
            except openai.APIConnectionError as exc:  # APITimeoutError is a subclass
                self.limiter.release(slot)
                failure = exc
            except openai.OpenAIError as exc:  # e.g. a response that is not a chat completion
                self.limiter.release(slot)
                raise JudgeError(
                    f"judge endpoint {self._where()} gave an unusable response: {exc}",
                    reason="bad_response",
                    attempts=attempts,
                ) from exc
            except BaseException:
                self.limiter.release(slot)
                raise
            else:
                self.limiter.succeeded(slot)
                if format_dropped:
                    self._json_mode = False  # remembered for this client; a plain bool store
                return (*_unpack(completion, self.model), attempts)
            if retries >= self.max_retries:
                raise self._gave_up(failure, attempts) from failure
            delay = self._delay(retries, failure)
            retries += 1
            logger.debug("judge call failed (%s); retry %d in %.2f s", _reason(failure), retries, delay)
            time.sleep(delay)

    def _create(self, msgs: list[dict[str, str]], use_format: bool) -> Any:
        extra: dict[str, Any] = {"response_format": {"type": "json_object"}} if use_format else {}
        return self._openai.chat.completions.create(
            model=self.model,
            messages=msgs,  # type: ignore[arg-type]
            temperature=self.temperature,
            **extra,
        )

    def _delay(self, retry: int, failure: Exception) -> float:
        retry_after = _retry_after(failure)
        if retry_after is not None:
            wait = min(retry_after, self.max_retry_after)
            return wait + random.uniform(0, 0.1 * wait)
        wait = min(self.backoff_max, self.backoff_base * 2**retry)
        return wait / 2 + random.uniform(0, wait / 2)

    def _gave_up(self, failure: Exception, attempts: int) -> JudgeError:
        reason = _reason(failure)
        status = failure.status_code if isinstance(failure, openai.APIStatusError) else None
        what = {
            "timeout": "timed out",
            "connection": "could not be reached",
        }.get(reason, f"answered HTTP {status}")
        hint = (
            "lower the evaluation concurrency, raise max_retries or check the quota"
            if status in _OVERLOAD_STATUS
            else "check the endpoint, or raise timeout / max_retries"
        )
        return JudgeError(
            f"judge endpoint {self._where()} {what} on all {attempts} attempts "
            f"({self.max_retries} retries); {hint}. Last error: {_message(failure)}",
            reason=reason,
            status_code=status,
            attempts=attempts,
        )

    def _where(self) -> str:
        return self.base_url or "api.openai.com"

    # -- cache and hook ------------------------------------------------------------------------

    def _cache_get(self, key: str) -> str | None:
        if self.cache is None:
            return None
        try:
            return self.cache.get(key)
        except Exception:
            logger.warning("judge cache get failed; calling the endpoint", exc_info=True)
            return None

    def _cache_put(self, key: str, reply: JudgeReply) -> None:
        if self.cache is None:
            return
        value = json.dumps(
            {
                "text": reply.text,
                "model": reply.model,
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
            }
        )
        try:
            self.cache.put(key, value)
        except Exception:
            logger.warning("judge cache put failed; reply not cached", exc_info=True)

    def _from_cache(self, value: str, t0: float) -> JudgeReply | None:
        try:
            data = json.loads(value)
            model = str(data.get("model") or self.model)
            return JudgeReply(str(data["text"]), model, 0, 0, _ms_since(t0), cached=True)
        except (ValueError, KeyError, TypeError):
            logger.warning("judge cache held an unreadable value; calling the endpoint")
            return None

    def _notify(
        self,
        msgs: list[dict[str, str]],
        params: dict[str, Any],
        reply: JudgeReply | None,
        error: str | None,
        attempts: int,
        start_ns: int,
        t0: float,
        judge: str | None,
    ) -> None:
        if self.on_call is None:
            return
        latency = reply.latency_ms if reply is not None else _ms_since(t0)
        call = JudgeCall(
            model=reply.model if reply is not None else self.model,
            messages=msgs,
            reply_text=reply.text if reply is not None else None,
            input_tokens=reply.input_tokens if reply is not None else None,
            output_tokens=reply.output_tokens if reply is not None else None,
            latency_ms=latency,
            cached=reply.cached if reply is not None else False,
            error=error,
            attempts=attempts,
            start_time_ns=start_ns,
            end_time_ns=start_ns + int(latency * 1e6),
            parameters=params,
            judge=judge,
        )
        try:
            self.on_call(call)
        except Exception:
            logger.warning("judge on_call hook raised; ignoring it", exc_info=True)


def _unpack(completion: Any, default_model: str) -> tuple[str, str, int | None, int | None]:
    choices = getattr(completion, "choices", None) or []
    message = choices[0].message if choices else None
    text = (getattr(message, "content", None) or "") if message is not None else ""
    usage = getattr(completion, "usage", None)
    tokens_in = getattr(usage, "prompt_tokens", None) if usage is not None else None
    tokens_out = getattr(usage, "completion_tokens", None) if usage is not None else None
    return text, getattr(completion, "model", None) or default_model, tokens_in, tokens_out


def _safe_accept(accept: Callable[[str], bool], text: str) -> bool:
    try:
        return bool(accept(text))
    except Exception:
        return False


def _reason(failure: Exception) -> str:
    if isinstance(failure, openai.APITimeoutError):
        return "timeout"
    if isinstance(failure, openai.APIStatusError):
        return f"http_{failure.status_code}"
    if isinstance(failure, openai.APIConnectionError):
        return "connection"
    return type(failure).__name__


def _message(failure: Exception) -> str:
    return getattr(failure, "message", None) or str(failure)


def _retry_after(failure: Exception) -> float | None:
    """Seconds from retry-after-ms or Retry-After (seconds, fractional allowed, or an HTTP date)."""
    response = getattr(failure, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000
