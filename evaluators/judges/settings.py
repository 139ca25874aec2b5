"""Where a judge finds its endpoint: agenttrace's settings, resolved when a judge is built.

The values come from `agenttrace.config`, the one place settings are read, with its one precedence:
argument, then AGENTTRACE_JUDGE_* (then OPENAI_*), then ``judge_model`` / ``judge_base_url`` /
``judge_api_key`` in agenttrace.toml. This module adds only what is particular to a judge: a model
is required, a key is required for OpenAI itself, and a local server gets a placeholder key.
Nothing is read at import, so tests and applications can set the environment late.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agenttrace.config import FALLBACK_ENV, env_name, resolve
from agenttrace.errors import ConfigError
from evaluators.judges.errors import JudgeConfigError

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "MODEL_ENV",
    "JudgeSettings",
    "resolve_settings",
]


def _variables(setting: str) -> tuple[str, str]:
    return env_name(setting), FALLBACK_ENV[setting]


# (our variable, the OpenAI-wide fallback), derived from the one declaration in agenttrace.config
MODEL_ENV = _variables("judge_model")
BASE_URL_ENV = _variables("judge_base_url")
API_KEY_ENV = _variables("judge_api_key")

# Local OpenAI-compatible servers (vLLM, llama.cpp, Ollama) ignore the key but the client wants one.
_PLACEHOLDER_KEY = "not-needed"


@dataclass(frozen=True, slots=True)
class JudgeSettings:
    """The endpoint a judge talks to."""

    model: str
    base_url: str | None
    api_key: str


def resolve_settings(
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> JudgeSettings:
    """Resolve model, base URL and key: argument > AGENTTRACE_JUDGE_* > OPENAI_* > agenttrace.toml.

    Args:
        model, base_url, api_key: explicit values; None or empty means "not given here".
        environ: the environment to read (os.environ when None); it also locates the config file.

    Raises:
        JudgeConfigError: no model is configured, no key is configured for OpenAI itself, the base
            URL is not http(s), or a setting is invalid (also a ConfigError).
    """
    given = {"judge_model": model, "judge_base_url": base_url, "judge_api_key": api_key}
    try:
        settings = resolve({name: value for name, value in given.items() if value}, environ)
    except ConfigError as exc:
        raise JudgeConfigError(f"cannot build a judge: {exc}") from exc
    if not settings.judge_model:
        raise JudgeConfigError(
            "no judge model configured; pass model=... or set AGENTTRACE_JUDGE_MODEL "
            "(or OPENAI_MODEL), e.g. AGENTTRACE_JUDGE_MODEL=gpt-4o-mini"
        )
    url = settings.judge_base_url
    if url is not None and not url.startswith(("http://", "https://")):
        raise JudgeConfigError(f"judge base URL must be http(s), e.g. http://localhost:8000/v1, not {url!r}")
    key = settings.judge_api_key
    if not key:
        if not url:
            raise JudgeConfigError(
                "no API key for the judge endpoint; pass api_key=... or set AGENTTRACE_JUDGE_API_KEY "
                "(or OPENAI_API_KEY), or point AGENTTRACE_JUDGE_BASE_URL at a local server"
            )
        key = _PLACEHOLDER_KEY
    return JudgeSettings(model=settings.judge_model, base_url=url, api_key=key)
