"""Auto-tracing of LLM client libraries: `agenttrace.autolog.openai()`.

Each function instruments one library once (calling it again does nothing) and takes
`disable=True` to restore the library. `configure(autolog=["openai"])` does the same at
configure time.
"""

from __future__ import annotations

__all__ = ["openai"]


def openai(disable: bool = False) -> None:
    """Trace every call of the `openai` client (chat completions, responses, embeddings; sync,
    async and streamed) as an LLM or EMBEDDING span nested under the current span."""
    from agenttrace.tracing.autolog_openai import instrument

    instrument(disable=disable)
