"""load_agent(): a registered version back as a callable, and set_active_agent() for traces.

How the target receives its version's config and prompts: by keyword, `config=` and `prompts=`,
each only when the target's signature names that parameter (a `**kwargs` catch-all does not count,
so a target that never asked for them is called exactly as before), and only when the caller did
not pass one. Each call gets its own deep copy of the config, so a target that mutates it cannot
change the next call. The loaded callable's signature is the target's without those two
parameters, so `evaluate()` checks dataset inputs against what callers really pass.

Every call runs in an AGENT span carrying the version (name, number and version id) and with the
version as the active agent, so the trace is stamped with it whether or not the target is traced.
A generator or async generator target returns its (async) generator, traced as the decorator
traces one: the span starts when iteration starts, covers it whole and its outputs are the items
yielded. Its body's spans nest under that span, which carries the version; the version is not the
active agent while it runs (a context variable set inside a generator would leak to its caller).

The fingerprint of the code on disk is compared with the version's when loading: a mismatch warns
(`AgentCodeChangedWarning`, listing the changed files) or, with `strict=True`, refuses.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Callable
from contextvars import Token
from types import TracebackType
from typing import Any

from agenttrace.errors import AgentImportError, FingerprintMismatchError
from agenttrace.registry._diff import file_changes
from agenttrace.registry._fingerprint import code_fingerprint, import_target, resolve_target
from agenttrace.registry._versions import AgentVersion, _live_targets, _store, get_agent_version, parse_ref
from agenttrace.tracing.agent_context import ActiveAgent, identity_of, restore_agent, split_label, use_agent
from agenttrace.tracing.decorator import span_starter, traced_async_generator, traced_generator
from agenttrace.tracing.spans import checked_attributes, span

__all__ = [
    "AgentCodeChangedWarning",
    "AsyncGeneratorLoadedAgent",
    "AsyncLoadedAgent",
    "GeneratorLoadedAgent",
    "LoadedAgent",
    "call_kind",
    "load_agent",
    "set_active_agent",
]

_BOUND = ("config", "prompts")


class AgentCodeChangedWarning(UserWarning):
    """The code on disk differs from the code a loaded version was registered with."""


class LoadedAgent:
    """A registered version as a callable: the target bound to the version's config and prompts."""

    def __init__(self, version: AgentVersion, fn: Callable[..., Any]) -> None:
        self.agent_version = version
        self.name = version.name
        self.version = version.version
        self.version_id = version.version_id
        self.config = version.config
        self.prompts = version.prompts
        self.fn = fn
        self.identity = ActiveAgent.of(version.name, version.version, version.version_id)
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None
        params = signature.parameters if signature is not None else {}
        self._binds = tuple(p for p in _BOUND if p in params and params[p].kind is not inspect.Parameter.VAR_KEYWORD)
        if signature is not None:
            self.__signature__ = signature.replace(parameters=[p for n, p in params.items() if n not in self._binds])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}/{self.version} -> {self.agent_version.target}>"

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        inputs = {**({"args": list(args)} if args else {}), **kwargs}
        call = dict(kwargs)
        if "config" in self._binds and "config" not in call:
            call["config"] = copy.deepcopy(self.config)
        if "prompts" in self._binds and "prompts" not in call:
            call["prompts"] = dict(self.prompts)
        return inputs, call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inputs, call = self._arguments(args, kwargs)
        token = use_agent(self.identity)
        try:
            with span(self.name, span_type="AGENT", inputs=inputs, attributes=self.identity.attributes) as live:
                result = self.fn(*args, **call)
                live.set_outputs(result)
                return result
        finally:
            restore_agent(token)


class AsyncLoadedAgent(LoadedAgent):
    """LoadedAgent for a coroutine function: awaiting the call runs the target."""

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inputs, call = self._arguments(args, kwargs)
        token = use_agent(self.identity)
        try:
            async with span(self.name, span_type="AGENT", inputs=inputs, attributes=self.identity.attributes) as live:
                result = await self.fn(*args, **call)
                live.set_outputs(result)
                return result
        finally:
            restore_agent(token)


class GeneratorLoadedAgent(LoadedAgent):
    """LoadedAgent for a generator function: the call returns the target's generator, traced.

    The AGENT span starts when iteration starts and ends when it ends (exhausted, failed or
    closed), with the items as its outputs, as `@trace` traces a generator.
    """

    def __init__(self, version: AgentVersion, fn: Callable[..., Any]) -> None:
        super().__init__(version, fn)
        self._static = checked_attributes("AGENT", self.identity.attributes)

    def _begin(self, inputs: dict[str, Any]) -> Callable[[tuple, dict], Any]:
        """The decorator's `begin` for one call: the version's AGENT span, with the caller's inputs
        (not the target's arguments, which include the bound config and prompts)."""
        return span_starter(self.name, self._static, lambda _args, _kwargs: inputs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inputs, call = self._arguments(args, kwargs)
        return traced_generator(self.fn, self._begin(inputs), True)(*args, **call)


class AsyncGeneratorLoadedAgent(GeneratorLoadedAgent):
    """LoadedAgent for an async generator function: the call returns its async generator, traced."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inputs, call = self._arguments(args, kwargs)
        return traced_async_generator(self.fn, self._begin(inputs), True)(*args, **call)


_LOADED_BY_KIND: dict[str, type[LoadedAgent]] = {
    "sync": LoadedAgent,
    "async": AsyncLoadedAgent,
    "generator": GeneratorLoadedAgent,
    "async_generator": AsyncGeneratorLoadedAgent,
}


def call_kind(fn: Any, *, unwrap: bool = False) -> str:
    """How calling `fn` runs it: "sync", "async", "generator" or "async_generator" (a callable
    object is what its `__call__` is).

    `load_agent` asks about `fn` itself, since its wrapper calls `fn` and relies on what that call
    returns (a sync wrapper around a generator may return a list). Serving asks with `unwrap`: it
    consumes any iterable a generator kind returns, and awaits what a sync wrapper of a coroutine
    function returns.
    """
    target = inspect.unwrap(fn) if unwrap else fn
    if inspect.isasyncgenfunction(target):
        return "async_generator"
    if inspect.isgeneratorfunction(target):
        return "generator"
    if inspect.iscoroutinefunction(target):
        return "async"
    if not inspect.isfunction(target) and not inspect.ismethod(target) and not isinstance(target, type):
        call = vars(type(target)).get("__call__")  # a callable object's own method
        if call is not None:
            return call_kind(call, unwrap=unwrap)
    return "sync"


def load_agent(ref: str, *, strict: bool = False) -> LoadedAgent:
    """A registered version as a callable: "name@alias", "name/3" or "name" (the latest version).

    Args:
        ref: which version.
        strict: refuse (FingerprintMismatchError) instead of warning when the code on disk differs
            from the version's fingerprint.

    Raises:
        AgentNotFoundError: unknown agent, version or alias (the message lists what exists).
        AgentImportError: the target does not import here.
    """
    name, which = parse_ref(ref)
    version = get_agent_version(name, which)
    fn = _live_targets.get(version.version_id)
    if fn is None:
        if ":" not in version.target or "<locals>" in version.target:
            raise AgentImportError(
                f"{version.ref} was registered from an object with no import path ({version.target}); "
                "it loads only in the process that registered it - register a module-level function or "
                "'package.module:attribute' to load it anywhere"
            )
        fn = import_target(version.target)
    _check_code(version, fn, strict)
    return _LOADED_BY_KIND[call_kind(fn)](version, fn)


def _check_code(version: AgentVersion, fn: Callable[..., Any], strict: bool) -> None:
    on_disk = code_fingerprint(resolve_target(fn).module)
    if on_disk.digest == version.code_digest:
        return
    changes = file_changes(version.code_files, on_disk.files)
    listed = ", ".join(f"{path} ({kind})" for path, kind in changes[:10]) or "(files moved)"
    message = (
        f"the code of {version.ref} on disk differs from what was registered: {listed}; "
        "register it again for a new version, or check out the registered commit "
        f"{version.git_commit or '(not in git)'}"
    )
    if strict:
        raise FingerprintMismatchError(message)
    warnings.warn(message, AgentCodeChangedWarning, stacklevel=3)


class ActiveAgentScope:
    """What set_active_agent returns: the agent now active, and a way back (also a `with` block)."""

    def __init__(self, agent: ActiveAgent | None, token: Token[ActiveAgent | None]) -> None:
        self.agent = agent
        self._token: Token[ActiveAgent | None] | None = token

    def reset(self) -> None:
        """Make the agent active before this call active again."""
        if self._token is not None:
            restore_agent(self._token)
            self._token = None

    def __enter__(self) -> ActiveAgent | None:
        return self.agent

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.reset()


def set_active_agent(name: str | None, version: int | str | None = None) -> ActiveAgentScope:
    """Stamp traces started from now on in this context (thread or task) with an agent version.

    A registered agent resolves `version` as load_agent does (a number, an alias, None for the
    latest) and its traces carry the version id; a name that is not registered is a free-form
    label, recorded as unregistered. `name=None` clears the stamp. Use the result in a `with`
    block, or call its `reset()`, to restore the previous agent.
    """
    if name is None:
        return ActiveAgentScope(None, use_agent(None))
    ref = None if version is None else str(version)
    if ref is None and ("@" in name or "/" in name):
        name, ref = parse_ref(name)
    found = _store().find_agent_version(name, ref)
    if found is None:
        agent = ActiveAgent.of(name, ref)
    else:
        agent = ActiveAgent.of(found["agent_name"], found["version"], found["version_id"])
    return ActiveAgentScope(agent, use_agent(agent))


def registered_agent(
    agent: Any, predict_fn: Any, name: str | None, version: str | None
) -> tuple[str | None, str | None, str | None]:
    """(name, version, version id) that evaluate(agent=...) stamps on its run and its traces.

    `name`/`version` are the engine's reading of the `agent` label. A registered version (an
    AgentVersion or a loaded agent, given as `agent`, or as `predict_fn` when `agent` is None) is
    taken as it is. A label whose name is registered resolves as load_agent does ("name" is the
    latest; an unknown version or alias raises, listing what exists); a label whose name is not
    registered stays a free-form label, with no version id: that is how "unregistered" is recorded.
    """
    known = identity_of(agent if agent is not None else predict_fn)
    if known is not None and known.registered:
        return known.name, known.version, known.version_id
    if name is None:
        return None, None, None
    if version is None:
        name, version = split_label(name)
    found = _store().find_agent_version(name, version)
    if found is None:
        return name, version, None
    return found["agent_name"], str(found["version"]), found["version_id"]
