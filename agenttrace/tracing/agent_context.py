"""The active agent: which registered version (or free-form label) new traces are stamped with.

One ContextVar holds a frozen `ActiveAgent` whose span attributes are built once, when it is set.
`spans.start` reads it only when it opens a local root (one ContextVar.get per trace, nothing per
child span) and copies those attributes onto the root, where the store folds them into the trace's
agent_name, agent_version and agent_version_id columns. Like every ContextVar it follows asyncio
tasks; a thread started inside a trace carries the trace (and so its stamp) through
`agenttrace.context.wrap`.

A registered version carries its version id; a free-form label carries none, which is how a trace
records that its agent is unregistered. This layer cannot import the registry (an engine), so
`AgentStamp` - what `@trace(agent=...)` holds - looks a "name@ref" label up in the store itself, once,
at the first call, and never raises: an unknown name stays a free-form label, and a lookup that
fails is an internal error that leaves the label unregistered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from agenttrace.errors import AgentTraceError
from agenttrace.otel import conventions as cv
from agenttrace.tracing.runtime import get_runtime, internal_error

logger = logging.getLogger("agenttrace")

__all__ = ["AGENT_VERSION_ID", "ActiveAgent", "AgentStamp", "active_agent", "restore_agent", "use_agent"]

# The span attribute the store lifts into traces.agent_version_id (declared in agenttrace/schema.py).
AGENT_VERSION_ID = cv.AGENT_VERSION_ID


@dataclass(frozen=True, slots=True)
class ActiveAgent:
    """An agent identity as traces carry it; `version_id` is None for a free-form label."""

    name: str
    version: str | None = None
    version_id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, name: str, version: str | int | None = None, version_id: str | None = None) -> ActiveAgent:
        attributes = {cv.AGENT_NAME: str(name)}
        if version is not None:
            attributes[cv.AGENT_VERSION] = str(version)
        if version_id is not None:
            attributes[AGENT_VERSION_ID] = version_id
        return cls(str(name), None if version is None else str(version), version_id, attributes)

    @property
    def registered(self) -> bool:
        return self.version_id is not None


_active: ContextVar[ActiveAgent | None] = ContextVar("agenttrace_active_agent", default=None)


def active_agent() -> ActiveAgent | None:
    """The agent new traces in this context are stamped with, if any."""
    return _active.get()


def use_agent(agent: ActiveAgent | None) -> Token[ActiveAgent | None]:
    """Stamp traces started in this context with `agent` (None: no stamp); returns a token to restore."""
    return _active.set(agent)


def restore_agent(token: Token[ActiveAgent | None]) -> None:
    _active.reset(token)


def identity_of(agent: Any) -> ActiveAgent | None:
    """An ActiveAgent from an object that already is one or carries name/version/version_id, else None."""
    if isinstance(agent, ActiveAgent):
        return agent
    if hasattr(agent, "name") and hasattr(agent, "version") and hasattr(agent, "version_id"):
        return ActiveAgent.of(agent.name, agent.version, agent.version_id)
    return None


class AgentStamp:
    """What `@trace(agent=...)` stamps: resolved at the first call, then the same for every call.

    Accepts an ActiveAgent, a registered version or loaded agent (anything with name, version and
    version_id), a ("name", "version") pair, or "name", "name@alias", "name@3", "name/3". Labels
    are looked up in the store once (an alias moved later is not followed until the process
    restarts); a name the store does not know is a free-form label.
    """

    __slots__ = ("_agent", "_attributes", "_lock")

    def __init__(self, agent: Any) -> None:
        self._agent = agent
        self._attributes: Mapping[str, str] | None = None
        self._lock = threading.Lock()
        known = identity_of(agent)
        if known is not None:
            self._attributes = known.attributes
        elif not isinstance(agent, str | tuple):
            raise TypeError(f"trace(agent={agent!r}): give 'name', 'name@version', (name, version) or an agent version")

    def attributes(self) -> Mapping[str, str]:
        resolved = self._attributes
        if resolved is None:
            with self._lock:
                if self._attributes is None:
                    self._attributes = self._resolve().attributes
                resolved = self._attributes
        return resolved

    def _resolve(self) -> ActiveAgent:
        name, ref = split_label(self._agent)
        label = ActiveAgent.of(name, ref)
        store = get_runtime().store
        if store is None:
            return label
        try:
            found = store.find_agent_version(name, ref)
        except AgentTraceError as exc:  # a registered name with an unknown version or alias
            logger.warning("trace(agent=%r) is recorded as an unregistered label: %s", self._agent, exc)
            return label
        except Exception as exc:
            internal_error("resolve trace(agent=...)", exc)
            return label
        if found is None:
            return label
        return ActiveAgent.of(found["agent_name"], found["version"], found["version_id"])


def split_label(agent: str | tuple[Any, Any]) -> tuple[str, str | None]:
    """("name", ref) from "name", "name@ref", "name/3" or a (name, version) pair."""
    if isinstance(agent, tuple):
        name, version = agent
        return str(name), None if version is None else str(version)
    if "@" in agent:
        name, _, ref = agent.partition("@")
        return name, ref or None
    name, sep, number = agent.rpartition("/")
    if sep and number.isdigit():
        return name, number
    return agent, None
