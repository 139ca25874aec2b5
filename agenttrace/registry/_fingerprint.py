"""What a version's code is: the target's import path, a hash of its package's files, git, versions.

The fingerprint covers the source files of the target's whole top-level package (or its one
module, or the script it was defined in), not only the function: a change in a helper, a prompt
template or a config file the agent reads is a change of the agent. Files are keyed by their path
relative to the package's parent folder, so the same code checked out elsewhere has the same
fingerprint. Git and the interpreter's package versions are recorded beside it but are not part
of the identity: re-registering the same code from another commit or virtualenv is the same version.
"""

from __future__ import annotations

import getpass
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import platform
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from agenttrace.errors import AgentImportError, RegistryError

__all__ = [
    "CodeFingerprint",
    "ResolvedTarget",
    "code_fingerprint",
    "environment",
    "identity_key",
    "import_target",
    "registered_by",
    "resolve_target",
]

# Suffixes hashed inside a package: code, and the text files agents commonly read at run time.
SOURCE_SUFFIXES = frozenset({".py", ".jinja", ".j2", ".txt", ".md", ".yaml", ".yml", ".json", ".toml"})
MAX_FILES = 5000
GIT_TIMEOUT_S = 5.0
KEY_PACKAGES = (
    "agenttrace", "openai", "anthropic", "litellm", "langchain", "langchain-core", "langgraph",
    "llama-index-core", "dspy", "pydantic", "transformers", "torch",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A callable and where it comes from: `spec` imports it again ("" when nothing can)."""

    obj: Callable[..., Any]
    spec: str
    module: ModuleType | None


@dataclass(frozen=True, slots=True)
class CodeFingerprint:
    root: str | None  # the folder or file hashed
    files: dict[str, str]  # relative path -> sha256
    digest: str
    git_commit: str | None
    git_dirty: bool | None


def import_target(spec: str) -> Callable[..., Any]:
    """The callable named by "pkg.module:attr" (attr may be dotted) or "path/to/file.py:attr"."""
    return _import(spec)[1]


def _import(spec: str) -> tuple[ModuleType, Callable[..., Any]]:
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise AgentImportError(f"target {spec!r}: write an import path as 'package.module:attribute'")
    try:
        if module_name.endswith(".py"):
            module = _import_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # the module's own code may raise anything while importing
        raise AgentImportError(
            f"target {spec!r} does not import: {type(exc).__name__}: {exc} - nothing was registered or loaded"
        ) from exc
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise AgentImportError(f"target {spec!r}: module {module_name!r} has no attribute {attr!r}")
        value = getattr(value, part)
    if not callable(value):
        raise AgentImportError(f"target {spec!r} is a {type(value).__name__}, not a callable")
    return module, value


def identity_key(spec: str, obj: Any) -> str:
    """The target as it enters a version's identity: no absolute paths, so a moved checkout matches."""
    if not spec:
        return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', type(obj).__qualname__)}"
    module_name, _, attr = spec.rpartition(":")
    return f"{Path(module_name).name}:{attr}" if module_name.endswith(".py") else spec


def _import_file(path: Path) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    name = f"agenttrace_agent_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def resolve_target(target: Any) -> ResolvedTarget:
    """A function, a callable object or an import path, with the spec that imports it again."""
    if isinstance(target, str):
        module, obj = _import(target)
        return ResolvedTarget(obj, target, module)
    if not callable(target):
        raise RegistryError(f"target {target!r} is neither callable nor an import path 'package.module:attribute'")
    is_routine = inspect.isroutine(target)
    owner = target if is_routine else type(target)
    found = sys.modules.get(getattr(owner, "__module__", "") or "")
    spec = ""
    if found is not None:
        prefix = _module_prefix(found)
        if is_routine and "<locals>" not in target.__qualname__ and prefix:
            spec = f"{prefix}:{target.__qualname__}"
        elif prefix:  # a callable object: importable only when it is a module-level attribute
            spec = next((f"{prefix}:{k}" for k, v in vars(found).items() if v is target), "")
    return ResolvedTarget(target, spec, found)


def _module_prefix(module: ModuleType) -> str:
    if module.__name__ != "__main__" and not module.__name__.startswith("agenttrace_agent_"):
        return module.__name__
    file = getattr(module, "__file__", None)
    return str(Path(file).resolve()) if file else ""


def _root(module: ModuleType | None) -> Path | None:
    """The folder of the module's top-level package, or the module's own file."""
    if module is None or not getattr(module, "__file__", None):
        return None
    file = Path(module.__file__).resolve()  # type: ignore[arg-type]
    top = sys.modules.get(module.__name__.split(".")[0])
    paths = list(getattr(top, "__path__", None) or []) if top is not None and module.__name__ != "__main__" else []
    for folder in paths:
        if file.is_relative_to(Path(folder).resolve()):
            return Path(folder).resolve()
    return file


def code_fingerprint(module: ModuleType | None) -> CodeFingerprint:
    root = _root(module)
    if root is None:  # a builtin or a callable defined at the prompt: nothing on disk to hash
        return CodeFingerprint(None, {}, hashlib.sha256(b"").hexdigest(), None, None)
    if root.is_file():
        paths = [root]
    else:
        paths = sorted(
            p for p in root.rglob("*")
            if p.suffix in SOURCE_SUFFIXES and p.is_file()
            and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(root).parts)
        )  # fmt: skip
        if len(paths) > MAX_FILES:
            raise RegistryError(
                f"the target's package {root} has {len(paths)} source files (more than {MAX_FILES}); "
                "register an entry point of your own package instead of one inside a large library"
            )
    base = root.parent
    files = {p.relative_to(base).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    digest = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(files.items())).encode()).hexdigest()
    commit, dirty = _git(root if root.is_dir() else root.parent)
    return CodeFingerprint(str(root), files, digest, commit, dirty)


def _git(folder: Path) -> tuple[str | None, bool | None]:
    """(HEAD commit, tree dirty) when `folder` is in a git checkout and git runs; else (None, None)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=GIT_TIMEOUT_S
        )
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):  # no git on PATH, or it hung
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip() or None, dirty


def environment(module: ModuleType | None) -> dict[str, Any]:
    """Python, the platform, and the installed versions of key packages and the target's own."""
    names = list(KEY_PACKAGES)
    if module is not None:
        top = module.__name__.split(".")[0]
        names += importlib.metadata.packages_distributions().get(top, [])
    packages = {}
    for name in names:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "platform": sys.platform, "packages": packages}


def registered_by() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name (some containers): still record the host
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
