"""Where a judge finds its endpoint: argument, then AGENTTRACE_JUDGE_*, then OPENAI_*.

Read when a judge (or a JudgeClient) is built, never at import, so tests and applications can set
the environment late. Each setting is declared once below with its two variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from evaluators.judges.errors import JudgeConfigError

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "MODEL_ENV",
    "JudgeSettings",
    "resolve_settings",
]

# (our variable, the OpenAI-wide fallback)
MODEL_ENV = ("AGENTTRACE_JUDGE_MODEL", "OPENAI_MODEL")
BASE_URL_ENV = ("AGENTTRACE_JUDGE_BASE_URL", "OPENAI_BASE_URL")
API_KEY_ENV = ("AGENTTRACE_JUDGE_API_KEY", "OPENAI_API_KEY")

# Local OpenAI-compatible servers (vLLM, llama.cpp, Ollama) ignore the key but the client wants one.
_PLACEHOLDER_KEY = "not-needed"


@dataclass(frozen=True, slots=True)
class JudgeSettings:
    """The endpoint a judge talks to."""

    model: str
    base_url: str | None
    api_key: str


def _first(arg: str | None, names: tuple[str, str], environ: Mapping[str, str]) -> str | None:
    if arg:
        return arg
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def resolve_settings(
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> JudgeSettings:
    """Resolve model, base URL and key with the precedence argument > AGENTTRACE_JUDGE_* > OPENAI_*.

    Raises:
        JudgeConfigError: no model is configured, or no key is configured for OpenAI itself.
    """
    environ = os.environ if environ is None else environ
    resolved_model = _first(model, MODEL_ENV, environ)
    if not resolved_model:
        raise JudgeConfigError(
            "no judge model configured; pass model=... or set AGENTTRACE_JUDGE_MODEL "
            "(or OPENAI_MODEL), e.g. AGENTTRACE_JUDGE_MODEL=gpt-4o-mini"
        )
    resolved_url = _first(base_url, BASE_URL_ENV, environ)
    resolved_key = _first(api_key, API_KEY_ENV, environ)
    if not resolved_key:
        if not resolved_url:
            raise JudgeConfigError(
                "no API key for the judge endpoint; pass api_key=... or set AGENTTRACE_JUDGE_API_KEY "
                "(or OPENAI_API_KEY), or point AGENTTRACE_JUDGE_BASE_URL at a local server"
            )
        resolved_key = _PLACEHOLDER_KEY
    return JudgeSettings(model=resolved_model, base_url=resolved_url, api_key=resolved_key)
