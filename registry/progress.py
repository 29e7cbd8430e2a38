"""Progress reporting port: the service reports, the CLI (or a job runner) displays."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def begin(self, *, files: int, total_bytes: int, description: str) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, path: str, *, reused: bool) -> None: ...
    def end(self) -> None: ...


class NoProgress:
    def begin(self, *, files: int, total_bytes: int, description: str) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def file_done(self, path: str, *, reused: bool) -> None:
        pass

    def end(self) -> None:
        pass
