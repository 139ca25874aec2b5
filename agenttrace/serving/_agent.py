"""The version being served: its kind, its request model, and the holder that swaps it.

A request body is checked against a pydantic model made from the agent's signature (the
loaded agent's, so `config`/`prompts`, which the registry binds, are not request parameters):
annotated parameters are validated and converted as FastAPI would, unannotated ones take any
JSON, an annotation pydantic cannot describe takes any JSON too. The same model is the request
schema in the OpenAPI document.

`AgentHolder.current` is read once per request, so a swap by `--follow-alias` takes effect
between requests: a request in flight finishes on the version it started with.
"""

from __future__ import annotations

import inspect
import logging
import threading
import typing
from dataclasses import dataclass, field
from typing import Any

import pydantic

from agenttrace.registry import LoadedAgent, call_kind, load_agent
from agenttrace.registry._versions import get_agent_version, parse_ref

logger = logging.getLogger("agenttrace")

__all__ = ["AgentHolder", "BadRequest", "ServedAgent"]


class BadRequest(Exception):
    """A request body the agent cannot be called with (HTTP 400); the message says why."""

    status = 400


class BodyTooLarge(BadRequest):
    """A request body over the server's `--max-body-mb` (HTTP 413), refused before it is all read."""

    status = 413


def _hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(inspect.unwrap(fn))
    except Exception:  # a forward reference that does not resolve: those parameters take any JSON
        return {}


def _annotation(hints: dict[str, Any], name: str) -> Any:
    hint = hints.get(name, Any)
    try:
        pydantic.TypeAdapter(hint).json_schema()
    except Exception:
        return Any
    return hint


def _request_model(loaded: LoadedAgent) -> tuple[type[pydantic.BaseModel], bool, set[str]]:
    signature = inspect.signature(loaded)
    hints = _hints(loaded.fn)
    fields: dict[str, Any] = {}
    open_ended = False
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            open_ended = True
        elif p.kind is not p.VAR_POSITIONAL:
            default = ... if p.default is p.empty else p.default
            fields[p.name] = (_annotation(hints, p.name), default)
    config = pydantic.ConfigDict(extra="allow" if open_ended else "forbid", arbitrary_types_allowed=True)
    model = pydantic.create_model(f"{_safe(loaded.name)}Request", __config__=config, **fields)
    return model, open_ended, set(fields)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").title().replace("_", "") or "Agent"


@dataclass
class ServedAgent:
    """One loaded version, ready to be called with a request body."""

    ref: str
    alias: str | None
    loaded: LoadedAgent
    kind: str
    model: type[pydantic.BaseModel]
    parameters: set[str]
    open_ended: bool
    # The serving layer's root-span attributes per route, checked once (see serving._invoke).
    root_attributes: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(cls, ref: str) -> ServedAgent:
        """Resolve NAME@ALIAS, NAME/VERSION or NAME (latest) with the registry and load it."""
        _, which = parse_ref(ref)
        loaded = load_agent(ref)
        alias = which if which is not None and not which.isdigit() and "@" in ref else None
        model, open_ended, parameters = _request_model(loaded)
        return cls(ref, alias, loaded, call_kind(loaded.fn, unwrap=True), model, parameters, open_ended)

    @property
    def streams(self) -> bool:
        return self.kind in ("generator", "async_generator")

    @property
    def label(self) -> str:
        return f"{self.loaded.name}/{self.loaded.version}"

    def arguments(self, payload: Any) -> dict[str, Any]:
        """Keyword arguments for the agent from a decoded JSON body; BadRequest when they do not fit."""
        if not isinstance(payload, dict):
            raise BadRequest(
                f"the body must be a JSON object of the agent's parameters ({self.expected()}) "
                'or {"inputs": {...}}'
            )
        if set(payload) == {"inputs"} and "inputs" not in self.parameters and isinstance(payload["inputs"], dict):
            payload = payload["inputs"]
        try:
            checked = self.model.model_validate(payload)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'body'}: "
                f"{'not a parameter of the agent' if e['type'] == 'extra_forbidden' else e['msg']}"
                for e in exc.errors()[:10]
            )
            raise BadRequest(
                f"the body does not match the agent's parameters ({self.expected()}): {problems}"
            ) from None
        values = {name: getattr(checked, name) for name in checked.model_fields_set if name in self.parameters}
        if self.open_ended and checked.model_extra:
            values.update(checked.model_extra)
        return values

    def expected(self) -> str:
        shown = []
        for name, info in self.model.model_fields.items():
            shown.append(name if info.is_required() else f"{name}?")
        return ", ".join(shown) + (", **kwargs" if self.open_ended else "") or "no parameters"

    def version_info(self) -> dict[str, Any]:
        v = self.loaded.agent_version
        return {
            "agent": v.name,
            "version": v.version,
            "version_id": v.version_id,
            "ref": self.ref,
            "alias": self.alias,
            "target": v.target,
            "code_digest": v.code_digest,
            "git_commit": v.git_commit,
            "streaming": self.streams,
        }


class AgentHolder:
    """The served version, and (with follow) a thread that re-resolves the alias and swaps it."""

    def __init__(self, served: ServedAgent, follow_interval_s: float | None = None) -> None:
        self.current = served
        self.follow_interval_s = follow_interval_s if served.alias is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_alias(self) -> bool:
        """Re-resolve the alias now; swap to its version if it moved. True when it swapped."""
        served = self.current
        if served.alias is None:
            return False
        try:
            found = get_agent_version(served.loaded.name, served.alias)
            if found.version_id == served.loaded.version_id:
                return False
            fresh = ServedAgent.load(f"{served.loaded.name}/{found.version}")
        except Exception as exc:  # the alias deleted, the new version does not import: keep serving
            logger.warning(
                "agenttrace serve: could not follow %s (%s); still serving %s", served.ref, exc, served.label
            )
            return False
        fresh.ref, fresh.alias = served.ref, served.alias
        self.current = fresh  # one reference assignment: requests read it once, at their start
        logger.warning("agenttrace serve: %s now points at %s; serving it", served.ref, fresh.label)
        return True

    def start(self) -> None:
        if self.follow_interval_s is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="agenttrace-follow-alias", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        assert self.follow_interval_s is not None
        while not self._stop.wait(self.follow_interval_s):
            self.check_alias()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
