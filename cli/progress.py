"""Progress on stderr: a live bar on a terminal, quiet otherwise (DESIGN §4)."""

from __future__ import annotations

import sys
import threading

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class TerminalProgress:
    """Implements `registry.progress.Progress` with a rich bar on stderr."""

    def __init__(self, *, verbose: bool = False) -> None:
        self._console = Console(stderr=True)
        self._verbose = verbose
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._lock = threading.Lock()
        self._files_left = 0

    def begin(self, *, files: int, total_bytes: int, description: str) -> None:
        self._files_left = files
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self._label(description), total=total_bytes or None)
        self._description = description

    def _label(self, description: str) -> str:
        short = description if len(description) <= 28 else "…" + description[-27:]
        return f"{short} [{self._files_left} left]"

    def advance(self, nbytes: int) -> None:
        if self._bar is not None and self._task is not None and nbytes:
            self._bar.advance(self._task, nbytes)

    def file_done(self, path: str, *, reused: bool) -> None:
        with self._lock:
            self._files_left -= 1
            if self._bar is not None and self._task is not None:
                self._bar.update(self._task, description=self._label(self._description))
                if self._verbose:
                    self._bar.console.print(f"  {'reused' if reused else 'stored'} {path}")

    def end(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class LineProgress:
    """For a stderr that is not a terminal: no bar; with -v, one line per file."""

    def __init__(self, *, verbose: bool = False) -> None:
        self._verbose = verbose

    def begin(self, *, files: int, total_bytes: int, description: str) -> None:
        if self._verbose:
            print(f"mirroring {description}: {files} files, {total_bytes} bytes", file=sys.stderr)

    def advance(self, nbytes: int) -> None:
        pass

    def file_done(self, path: str, *, reused: bool) -> None:
        if self._verbose:
            print(f"  {'reused' if reused else 'stored'} {path}", file=sys.stderr)

    def end(self) -> None:
        pass


def make_progress(*, verbose: bool) -> TerminalProgress | LineProgress:
    if sys.stderr.isatty():
        return TerminalProgress(verbose=verbose)
    return LineProgress(verbose=verbose)
