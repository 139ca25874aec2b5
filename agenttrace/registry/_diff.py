"""What changed between two versions of an agent: code files, config keys, prompt text.

Code is compared by the per-file hashes each version recorded (the registry keeps hashes, not
file contents, so a diff names the files that changed, not their lines). Config is compared key
by key, nested keys joined with dots; prompts as unified text diffs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from agenttrace.registry._versions import AgentVersion, get_agent_version

__all__ = ["VersionDiff", "diff_agent_versions", "file_changes"]


@dataclass(frozen=True)
class VersionDiff:
    """Differences from version `a` to version `b` of one agent."""

    name: str
    a: int
    b: int
    target: tuple[str, str] | None = None
    code: list[tuple[str, str]] = field(default_factory=list)  # (path, added|removed|changed)
    config: list[tuple[str, str, Any, Any]] = field(default_factory=list)  # (key, kind, a value, b value)
    prompts: dict[str, str] = field(default_factory=dict)  # prompt name -> unified diff
    git: tuple[str | None, str | None] | None = None

    @property
    def empty(self) -> bool:
        return not (self.target or self.code or self.config or self.prompts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "a": self.a,
            "b": self.b,
            "target": list(self.target) if self.target else None,
            "code": [{"path": p, "change": k} for p, k in self.code],
            "config": [{"key": k, "change": c, "a": va, "b": vb} for k, c, va, vb in self.config],
            "prompts": self.prompts,
            "git": list(self.git) if self.git else None,
        }

    def to_text(self) -> str:
        lines = [f"{self.name}: version {self.a} -> {self.b}"]
        if self.empty:
            return lines[0] + ": no differences in target, code, config or prompts"
        if self.target:
            lines.append(f"target: {self.target[0]} -> {self.target[1]}")
        if self.git:
            lines.append(f"git commit: {self.git[0] or '-'} -> {self.git[1] or '-'}")
        if self.code:
            lines.append("code files:")
            lines += [f"  {kind:8} {path}" for path, kind in self.code]
        if self.config:
            lines.append("config:")
            for key, kind, before, after in self.config:
                if kind == "changed":
                    lines.append(f"  changed  {key}: {before!r} -> {after!r}")
                else:
                    lines.append(f"  {kind:8} {key}: {after if kind == 'added' else before!r}")
        for prompt, text in self.prompts.items():
            lines.append(f"prompt {prompt}:")
            lines += ["  " + line for line in text.splitlines()]
        return "\n".join(lines)


def file_changes(a: dict[str, str], b: dict[str, str]) -> list[tuple[str, str]]:
    """(path, added|removed|changed) for files whose hashes differ between two versions."""
    changes = [(p, "removed") for p in a if p not in b]
    changes += [(p, "added") for p in b if p not in a]
    changes += [(p, "changed") for p in a if p in b and a[p] != b[p]]
    return sorted(changes)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value} if prefix else {}


def config_changes(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    flat_a, flat_b = _flatten(a), _flatten(b)
    changes = [(k, "removed", flat_a[k], None) for k in flat_a if k not in flat_b]
    changes += [(k, "added", None, flat_b[k]) for k in flat_b if k not in flat_a]
    changes += [(k, "changed", flat_a[k], flat_b[k]) for k in flat_a if k in flat_b and flat_a[k] != flat_b[k]]
    return sorted(changes, key=lambda c: c[0])


def prompt_changes(a: dict[str, str], b: dict[str, str]) -> dict[str, str]:
    out = {}
    for name in sorted(set(a) | set(b)):
        before, after = a.get(name), b.get(name)
        if before == after:
            continue
        diff = difflib.unified_diff(
            (before or "").splitlines(),
            (after or "").splitlines(),
            fromfile=f"{name} (a)" if before is not None else "/dev/null",
            tofile=f"{name} (b)" if after is not None else "/dev/null",
            lineterm="",
        )
        out[name] = "\n".join(diff)
    return out


def diff_versions(a: AgentVersion, b: AgentVersion) -> VersionDiff:
    return VersionDiff(
        name=a.name,
        a=a.version,
        b=b.version,
        target=(a.target, b.target) if a.target != b.target else None,
        code=file_changes(a.code_files, b.code_files),
        config=config_changes(a.config, b.config),
        prompts=prompt_changes(a.prompts, b.prompts),
        git=(a.git_commit, b.git_commit) if a.git_commit != b.git_commit else None,
    )


def diff_agent_versions(name: str, a: int | str, b: int | str) -> VersionDiff:
    """What changed from version `a` to `b` (numbers or aliases) of agent `name`."""
    return diff_versions(get_agent_version(name, a), get_agent_version(name, b))
