"""Streaming hashes: fed chunk by chunk while bytes move, never a second read."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from attestations.digests import Digest, git_blob_sha1

#: Large enough to amortise syscalls and the GIL release in hashlib; small enough to stay in L2.
CHUNK_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class StreamDigests:
    size: int
    sha256: Digest
    git_sha1: str | None


class StreamHasher:
    """sha256 (always) and git's blob sha1 (when the final size is known up front)."""

    __slots__ = ("_git", "_sha256", "size")

    def __init__(self, *, git_blob_size: int | None = None) -> None:
        self._sha256 = hashlib.sha256()
        self._git = git_blob_sha1(git_blob_size) if git_blob_size is not None else None
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self._sha256.update(data)
        if self._git is not None:
            self._git.update(data)
        self.size += len(data)

    def copy(self) -> StreamHasher:
        clone = StreamHasher.__new__(StreamHasher)
        clone._sha256 = self._sha256.copy()
        clone._git = self._git.copy() if self._git is not None else None
        clone.size = self.size
        return clone

    def result(self) -> StreamDigests:
        return StreamDigests(
            size=self.size,
            sha256=Digest(self._sha256.hexdigest()),
            git_sha1=self._git.hexdigest() if self._git is not None else None,
        )


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = CHUNK_SIZE) -> StreamDigests:
    """Hash a file in constant memory (one reusable buffer)."""
    hasher = StreamHasher()
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            hasher.update(view[:n])
    return hasher.result()
