"""Where a run's artifact files live: a small repository interface and its file:// implementation.

A run records its artifact folder's URI when it starts (`<root>/<run_id>`), so moving the
configured root later does not lose earlier runs' files. The root defaults to a folder next to
the store (`traces.duckdb` -> `traces-artifacts/`) and is set by the `artifact_root` setting.
Only `file://` URIs (or plain paths) are served for now; an object store would implement the
same three methods of `ArtifactRepository`.

Paths inside a run are relative POSIX paths. `..`, absolute paths and paths that resolve through
a symlink to outside the run's folder are refused (ArtifactPathError) on the way in and out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlparse

from agenttrace.errors import ArtifactPathError, ConfigError

__all__ = ["ArtifactRepository", "LocalArtifactRepository", "default_root", "relative_path", "repository"]

_CHUNK = 1 << 20


class ArtifactRepository(Protocol):
    """One run's artifact folder. Called on the user's thread; raises AgentTraceError subclasses."""

    uri: str

    def put(self, source: Path, dest: str) -> tuple[int, str]:
        """Copy a local file to `dest` (a checked relative path); returns (size in bytes, sha256)."""
        ...

    def get(self, path: str, dst: Path) -> Path:
        """Copy the file or folder at `path` ('' for everything) into the local folder `dst`."""
        ...

    def sha256(self, path: str) -> str:
        """The sha256 of the stored file at `path`, to check a download against the record."""
        ...


def relative_path(path: str | os.PathLike[str], what: str = "artifact path") -> str:
    """`path` as a normalised relative POSIX path; ArtifactPathError if it leaves its folder."""
    text = os.fspath(path).replace("\\", "/")
    pure = PurePosixPath(text)
    if pure.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise ArtifactPathError(f"{what} {text!r} is absolute; give a path relative to the run's artifact folder")
    if ".." in pure.parts:
        raise ArtifactPathError(f"{what} {text!r} climbs out of the run's artifact folder with '..'; remove it")
    return "/".join(p for p in pure.parts if p not in ("", "."))


class LocalArtifactRepository:
    """Artifacts in a local folder (the `file://` scheme)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.uri = folder.as_uri()

    def _inside(self, rel: str) -> Path:
        """The absolute target of `rel`; refused if a symlink on the way leads out of the folder."""
        base = self.folder.resolve()
        target = (base / rel).resolve()
        if target != base and base not in target.parents:
            raise ArtifactPathError(
                f"artifact path {rel!r} resolves to {target}, outside the run's folder {base} (through a symlink); "
                "use a path that stays inside it"
            )
        return target

    def put(self, source: Path, dest: str) -> tuple[int, str]:
        target = self._inside(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._inside(dest)  # the folders just made cannot have changed where it leads, but a race could
        digest = hashlib.sha256()
        size = 0
        partial = target.with_name(target.name + ".partial")
        with source.open("rb") as src, partial.open("wb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        os.replace(partial, target)
        return size, digest.hexdigest()

    def get(self, path: str, dst: Path) -> Path:
        source = self._inside(path)
        if not source.exists():
            raise ArtifactPathError(f"no artifact {path!r} in {self.folder}")
        dst.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            target = dst / (source.name if path else "")
            shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
            return target
        target = dst / source.name
        shutil.copyfile(source, target)
        return target

    def sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self._inside(path).open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()


def default_root(store_path: Path) -> str:
    """`<store folder>/<store name>-artifacts` as a file:// URI."""
    return store_path.with_name(store_path.stem + "-artifacts").as_uri()


def root_uri(setting: str | None, store_path: Path) -> str:
    """The artifact root as a file:// URI, from the setting (a path or file:// URI) or the default."""
    if setting is None:
        return default_root(store_path)
    parsed = urlparse(setting)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and setting[1:2] == ":"):
        path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(setting)
        return path.resolve().as_uri()
    raise ConfigError(f"artifact_root {setting!r}: only file:// URIs and local paths are supported for now")


def repository(uri: str) -> ArtifactRepository:
    """The repository serving a run's artifact folder URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ConfigError(f"artifact URI {uri!r}: only file:// is supported for now")
    return LocalArtifactRepository(Path(unquote(parsed.path)))
