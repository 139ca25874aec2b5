"""Logging files to a run: single files, folders, and small JSON, text and table artifacts.

Every file goes through the run's repository (`artifacts.ArtifactRepository`), which copies it,
measures it and hashes it in one pass; the store records path, size and sha256. Generated
artifacts (`log_dict`, `log_text`, `log_table`) are written to a temporary file first, so they
take the same path as user files. Folders are walked without following symlinks, and a symlink
inside one that points out of it is refused rather than copied: it would copy a file the user did
not put in the folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agenttrace.errors import ArtifactPathError, TrackingError
from agenttrace.jsontext import dumps
from agenttrace.tracking.artifacts import ArtifactRepository, relative_path

if TYPE_CHECKING:
    from agenttrace.store import DuckDBStore

__all__ = ["ArtifactLogger"]


class ArtifactLogger:
    """The artifact half of an active run (mixed into ActiveRun)."""

    store: DuckDBStore
    run_id: str
    artifacts: ArtifactRepository

    def _check_open(self) -> None:
        raise NotImplementedError

    def _put(self, source: Path, dest: str) -> str:
        size, sha256 = self.artifacts.put(source, dest)
        self.store.record_artifact(self.run_id, dest, size, sha256)
        return dest

    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> str:
        """Copy one file into the run's folder (under `artifact_path`, a relative folder); returns its path there."""
        self._check_open()
        source = Path(local_path)
        if not source.is_file():
            raise TrackingError(f"{source} is not a file; log folders with log_artifacts()")
        folder = relative_path(artifact_path or "", "artifact_path")
        return self._put(source, f"{folder}/{source.name}" if folder else source.name)

    def log_artifacts(self, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> list[str]:
        """Copy every file under a folder, keeping its layout; returns their paths in the run's folder."""
        self._check_open()
        base = Path(local_dir)
        if not base.is_dir():
            raise TrackingError(f"{base} is not a folder; log single files with log_artifact()")
        folder = relative_path(artifact_path or "", "artifact_path")
        files = list(_files(base))  # checked before anything is copied
        logged = []
        for source in files:
            rel = source.relative_to(base).as_posix()
            logged.append(self._put(source, f"{folder}/{rel}" if folder else rel))
        return logged

    def log_text(self, text: str, artifact_file: str) -> str:
        """Store `text` (UTF-8) as the file `artifact_file` in the run's folder."""
        return self._generated(artifact_file, lambda path: path.write_text(text, encoding="utf-8"))

    def log_dict(self, dictionary: Any, artifact_file: str) -> str:
        """Store a JSON-serialisable object as the JSON file `artifact_file`."""
        # agenttrace's one JSON encoding (NaN as null, anything else as its str), re-indented to read
        encoded = json.dumps(json.loads(dumps(dictionary)), indent=2, ensure_ascii=False)
        return self.log_text(encoded, artifact_file)

    def log_table(self, data: Any, artifact_file: str) -> str:
        """Store a DataFrame (or dict of columns) as `.json` (pandas' split layout) or `.parquet`."""
        import pandas as pd

        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        suffix = Path(artifact_file).suffix.lower()
        if suffix == ".json":
            return self._generated(artifact_file, lambda path: frame.to_json(path, orient="split", index=False))
        if suffix == ".parquet":
            return self._generated(artifact_file, lambda path: frame.to_parquet(path, index=False))
        raise TrackingError(f"log_table writes .json or .parquet files, not {artifact_file!r}")

    def _generated(self, artifact_file: str, write: Any) -> str:
        self._check_open()
        dest = relative_path(artifact_file, "artifact_file")
        if not dest:
            raise ArtifactPathError("artifact_file must name a file, e.g. 'config.json'")
        with tempfile.TemporaryDirectory(prefix="agenttrace-artifact-") as tmp:
            path = Path(tmp) / Path(dest).name
            write(path)
            return self._put(path, dest)


def _files(base: Path) -> Iterator[Path]:
    """Files under `base`, sorted; a symlink leading out of `base` is refused."""
    root = base.resolve()
    for folder, dirs, names in os.walk(base):
        dirs.sort()
        for name in [*sorted(names), *(d for d in dirs if os.path.islink(os.path.join(folder, d)))]:
            path = Path(folder, name)
            if path.is_symlink():
                target = path.resolve()
                if target != root and root not in target.parents:
                    raise ArtifactPathError(
                        f"{path} is a symlink to {target}, outside {base}; nothing was logged - "
                        "copy the file into the folder or log it with log_artifact()"
                    )
                if target.is_dir():
                    continue  # a link to a folder inside: its files are logged where they are
            yield path
