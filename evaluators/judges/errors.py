"""Errors raised by the LLM judges, rooted in agenttrace's hierarchy.

    EvaluationError                  (agenttrace.errors)
    └── JudgeError                   a judge could not produce a score: endpoint, reply or record
        └── JudgeConfigError         a judge cannot be built (no model, bad template, bad output type);
                                     also a ConfigError, so either ``except`` catches it

A JudgeError says why in ``reason`` (a short machine-readable tag such as ``"http_429"``,
``"timeout"``, ``"connection"``, ``"unparseable"``, ``"invalid_value"``, ``"missing_input"``), keeps
the judge's last reply in ``raw_reply`` when there was one, and the HTTP status in ``status_code``.
openai errors are chained with ``raise ... from exc``.
"""

from __future__ import annotations

from agenttrace.errors import ConfigError, EvaluationError

__all__ = ["JudgeConfigError", "JudgeError"]


class JudgeError(EvaluationError):
    """A judge could not turn a record into a score; the message says why and what to do."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        raw_reply: str | None = None,
        status_code: int | None = None,
        attempts: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.raw_reply = raw_reply
        self.status_code = status_code
        self.attempts = attempts


class JudgeConfigError(JudgeError, ConfigError):
    """A judge cannot be built: no model configured, a bad template or an unknown output type."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="config")
