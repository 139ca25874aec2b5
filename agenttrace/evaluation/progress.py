"""The evaluation progress bar: rich, on stderr, only when a person is watching (a terminal).

Always stderr, never stdout (rich's default console): `eval run --json` promises one JSON document
on stdout and nothing else, so a CI job can pipe it straight into a parser.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressBar:
    def __init__(self, total: int, label: str, enabled: bool | None) -> None:
        show = sys.stderr.isatty() if enabled is None else enabled
        self._progress = (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            if show
            else None
        )
        self._task = self._progress.add_task(label, total=total) if self._progress else None

    def __enter__(self) -> ProgressBar:
        if self._progress:
            self._progress.start()
        return self

    def advance(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress:
            self._progress.stop()
