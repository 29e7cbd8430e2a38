"""The blob store port.

A blob is immutable and named by the sha256 of its bytes. Writers hash while they write, and
a blob becomes visible only after its bytes were fsynced and its digest compared with the
expected one: there is never a partial or unverified blob under a digest's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol, Self

from attestations.digests import Digest


def blob_key(digest: Digest) -> str:
    """Storage key of a blob: `sha256/<2 hex>/<64 hex>` (DESIGN §3)."""
    return f"sha256/{digest.hex[:2]}/{digest.hex}"


@dataclass(frozen=True, slots=True)
class StoredBlob:
    digest: Digest
    size: int
    key: str
    git_sha1: str | None
    created: bool  # False when the store already held these bytes (dedup)


class BlobUpload(Protocol):
    """A writable, hashing sink for one blob. Use as a context manager; call `commit()`."""

    resume_offset: int

    def write(self, data: bytes | memoryview, /) -> int: ...
    def tell(self) -> int: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def truncate(self, size: int | None = None, /) -> int: ...
    def commit(self) -> StoredBlob: ...
    def abort(self, *, keep_partial: bool = False) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: object, exc: object, tb: object, /) -> None: ...


class BlobStore(Protocol):
    def upload(
        self,
        *,
        expected_sha256: Digest | None = None,
        expected_size: int | None = None,
        expected_git_sha1: str | None = None,
        resume_key: str | None = None,
        label: str = "",
    ) -> BlobUpload:
        """Start writing a blob.

        `resume_key` names a transfer that may have been interrupted before: its partial bytes
        are kept on failure and picked up by the next upload with the same key.
        `expected_git_sha1` (needs `expected_size`) checks git's blob id of the bytes too, for
        files a hub identifies only that way. `label` names the file in error messages.
        """
        ...

    def exists(self, digest: Digest) -> bool: ...

    def size(self, digest: Digest) -> int: ...

    def free_space(self) -> int | None:
        """Bytes that can still be written, or None where the store cannot tell."""
        ...

    def open(self, digest: Digest) -> BinaryIO:
        """Read a blob. The caller re-hashes what it serves."""
        ...
