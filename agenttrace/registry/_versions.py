"""Registering agent versions, and reading, aliasing, tagging and deleting them.

A version is the identity of (target, code fingerprint, config, prompts): registering the same
four again returns the stored version, any change makes version N+1. The fingerprint is computed
before the store is opened (hashing files and asking git can take a while, and the store is held
only for the check-and-insert), so two processes racing to register the same thing contend only
for that short unit of work, and the second finds the first's version. See store/_registry.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from agenttrace.errors import RegistryError
from agenttrace.registry._fingerprint import (
    code_fingerprint,
    environment,
    identity_key,
    registered_by,
    resolve_target,
)
from agenttrace.store import DuckDBStore
from agenttrace.tracing import context as tracing_context
from agenttrace.tracing.readback import current_store

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AgentVersion",
    "delete_agent_version",
    "delete_alias",
    "get_agent_version",
    "list_agent_versions",
    "list_agents",
    "parse_ref",
    "register_agent",
    "set_alias",
    "update_agent",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
# Objects registered in this process, by version id: load_agent returns the very object when the
# target cannot be imported again (a lambda, a closure, an instance that is no module attribute).
_live_targets: dict[str, Callable[..., Any]] = {}


@dataclass(frozen=True)
class AgentVersion:
    """One registered version of an agent: what code, config and prompts it is, and where from."""

    name: str
    version: int
    version_id: str
    target: str
    config: dict[str, Any]
    prompts: dict[str, str]
    prompt_hashes: dict[str, str]
    code_digest: str
    code_files: dict[str, str]
    code_root: str | None
    git_commit: str | None
    git_dirty: bool | None
    environment: dict[str, Any]
    description: str | None
    tags: dict[str, str]
    created_by: str | None
    created_ns: int
    run_id: str | None
    aliases: list[str] = field(default_factory=list)
    is_new: bool = False  # True when this call registered it, False when it was found stored

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @classmethod
    def from_row(cls, row: Mapping[str, Any], is_new: bool = False) -> AgentVersion:
        prompts = row.get("prompts") or {}
        return cls(
            name=row["agent_name"],
            version=int(row["version"]),
            version_id=row["version_id"],
            target=row["target"],
            config=row.get("config") or {},
            prompts={k: v["text"] for k, v in prompts.items()},
            prompt_hashes={k: v["sha256"] for k, v in prompts.items()},
            code_digest=row["code_digest"],
            code_files=row.get("code_files") or {},
            code_root=row.get("code_root"),
            git_commit=row.get("git_commit"),
            git_dirty=row.get("git_dirty"),
            environment=row.get("environment") or {},
            description=row.get("description"),
            tags=row.get("tags") or {},
            created_by=row.get("created_by"),
            created_ns=int(row["created_ns"]),
            run_id=row.get("run_id"),
            aliases=list(row.get("aliases") or []),
            is_new=is_new,
        )


def check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise RegistryError(
            f"{kind} {value!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit "
            "(no '@' or '/', which separate aliases and versions)"
        )
    return value


def _canonical(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{what} must be JSON (dicts, lists, strings, finite numbers, booleans): {exc}") from exc


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _registering_run_id() -> str | None:
    """HOOK: the tracking run a registration is made from, read from the run engineer's contextvar.

    agenttrace.tracing.context.CURRENT_RUN holds the current run (a RunStamp with run_id); read
    defensively so the registry works with or without tracking in the tree.
    """
    current = getattr(tracing_context, "CURRENT_RUN", None)
    run = current.get() if current is not None else None
    return getattr(run, "run_id", None)


def register_agent(
    name: str,
    target: Any,
    config: Mapping[str, Any] | None = None,
    prompts: Mapping[str, str] | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> AgentVersion:
    """Register `target` with its config and prompts as a version of agent `name`.

    Args:
        name: the agent's name (letters, digits, '.', '_', '-').
        target: a function, a callable object, or an import path "package.module:attribute".
        config: JSON-able settings the target receives as `config=` (see `load_agent`).
        prompts: prompt templates by name, each hashed on its own; the target receives `prompts=`.
        description, tags: for this version (and for the agent when this creates it).

    Returns:
        The AgentVersion: the stored one (`is_new` False) when target, code, config and prompts
        are all unchanged, else a new version numbered one above the agent's last.
    """
    check_name("agent name", name)
    if config is not None and not isinstance(config, Mapping):
        raise RegistryError(f"config must be a mapping of settings, got {type(config).__name__}")
    if prompts is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise RegistryError("prompts must map names to template text (str -> str)")
    config_dict = dict(config or {})
    config_json = _canonical(config_dict, "config")
    prompt_map = {k: {"text": v, "sha256": _sha(v)} for k, v in sorted((prompts or {}).items())}
    resolved = resolve_target(target)  # an import path that does not import raises here: nothing stored
    code = code_fingerprint(resolved.module)
    target_key = identity_key(resolved.spec, resolved.obj)
    identity = _sha(_canonical(
        {"target": target_key, "code": code.digest, "config": config_json,
         "prompts": {k: v["sha256"] for k, v in prompt_map.items()}},
        "identity",
    ))  # fmt: skip
    tag_map = {str(k): str(v) for k, v in (tags or {}).items()}
    entry = {
        "version_id": uuid4().hex,
        "agent_name": name,
        "identity": identity,
        "target": resolved.spec or target_key,
        "code_digest": code.digest,
        "code_root": code.root,
        "code_files": code.files,
        "git_commit": code.git_commit,
        "git_dirty": code.git_dirty,
        "environment": environment(resolved.module),
        "config": config_dict,
        "prompts": prompt_map,
        "description": description,
        "tags": tag_map,
        "created_by": registered_by(),
        "run_id": _registering_run_id(),
        "agent_description": description,
        "agent_tags": tag_map,
    }
    row, created = _store().register_agent_version(entry)
    version = AgentVersion.from_row(row, is_new=created)
    _live_targets[version.version_id] = resolved.obj
    return version


def _store() -> DuckDBStore:
    return current_store()


def parse_ref(ref: str) -> tuple[str, str | None]:
    """("name", version-or-alias) from "name@alias", "name/3" or "name" (None: the latest)."""
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return check_name("agent name", name), alias or None
    name, sep, number = ref.rpartition("/")
    if sep:
        if not number.isdigit():
            raise RegistryError(f"{ref!r}: after '/' comes a version number, like {name}/3")
        return check_name("agent name", name), number
    return check_name("agent name", ref), None


def get_agent_version(name: str, version: int | str | None = None) -> AgentVersion:
    """A version by number, alias or "latest" (None: the latest); `name` may be a "name@alias" ref."""
    if version is None and ("@" in name or "/" in name):
        name, version = parse_ref(name)
    return AgentVersion.from_row(_store().get_agent_version(name, version))


def list_agents(filter_string: str | None = None, max_results: int = 100, offset: int = 0) -> pd.DataFrame:
    """Registered agents (name, description, tags, latest version, versions, aliases), by name."""
    return _store().list_agents(filter_string, max_results, offset)


def list_agent_versions(
    name: str, filter_string: str | None = None, max_results: int = 100, offset: int = 0
) -> pd.DataFrame:
    """The versions of one agent, newest first; `filter_string` over version, description, target,
    git_commit, created_by, run_id, created and tags.<key>."""
    return _store().list_agent_versions(name, filter_string, max_results, offset)


def set_alias(name: str, alias: str, version: int | str) -> int:
    """Point `alias` (e.g. "champion") at a version (a number, or another alias); returns the number."""
    check_name("alias", alias)
    if alias.isdigit() or alias == "latest":
        raise RegistryError(f"alias {alias!r} would read as a version; choose a name like 'champion'")
    return _store().set_agent_alias(name, alias, version)


def delete_alias(name: str, alias: str) -> None:
    _store().delete_agent_alias(name, alias)


def update_agent(
    name: str,
    version: int | str | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> None:
    """Set the description and merge tags of an agent, or of one version when `version` is given.

    A tag whose value is None is removed.
    """
    clean = {str(k): (None if v is None else str(v)) for k, v in (tags or {}).items()}
    _store().update_agent(name, version, description, clean)


def delete_agent_version(name: str, version: int) -> int:
    """Delete one version (refused while an alias points at it); its number is never reused."""
    return _store().delete_agent_version(name, version)
