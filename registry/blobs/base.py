"""The blob store ports: a reader and a writer.

A blob is immutable and named by the sha256 of its bytes. Writers hash while they write, and
a blob becomes visible only after its bytes were made durable and its digest compared with the
expected one: there is never a partial or unverified blob under a digest's name.

Uploads are append-only. An interrupted upload that was kept (`abort(keep_partial=True)` with
a `resume_key`) reports how many bytes it holds (`resume_offset`) when it is started again, and
the caller appends from there. There is no seek and no truncate, because an object store's
multipart upload cannot honour them: to throw partial bytes away, abort the upload and start a
new one. Code that only reads takes a `BlobReader` (serving, pull, scanners, gate, the remote
client); code that stores takes a `BlobStore` (both halves).

This module imports nothing of `registry`, so that the remote client can implement the reader
without pulling in the rest of the registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol, Self, runtime_checkable

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


class BlobReader(Protocol):
    """Read access to verified blobs. Every reader re-hashes what it passes on."""

    def exists(self, digest: Digest) -> bool: ...

    def size(self, digest: Digest) -> int:
        """The blob's size in bytes; `NotFound` when the store does not hold it."""
        ...

    def open(self, digest: Digest) -> BinaryIO:
        """Stream a blob from its first byte; `NotFound` when the store does not hold it.

        Range reads read and hash from the start (see `service.serving.verified_chunks`), so
        a reader needs no seek either.
        """
        ...


@runtime_checkable
class RangeReader(Protocol):
    """A store that can read part of a blob without the rest (an object store's ranged GET).

    Only a store whose objects exist under a digest's key solely after the digest was verified
    and a conditional create succeeded (the S3 store) offers it, because a range cannot be
    re-hashed against the whole blob's digest; serving uses it for `Range` requests, so that a
    client fetching a 10 GB shard in 64 pieces does not cost 64 whole-blob reads (ADR 0015).
    The local folder store does not offer it: there every range is re-hashed from the start.
    """

    def open_range(self, digest: Digest, start: int, end: int) -> BinaryIO:
        """Bytes `start..end` (inclusive) of the blob; `NotFound` when it is not stored."""
        ...


class BlobUpload(Protocol):
    """An append-only, hashing sink for one blob. Use as a context manager; call `commit()`."""

    #: Bytes an earlier, interrupted upload with the same resume key left; appending continues
    #: after them. 0 for a fresh upload.
    resume_offset: int

    def write(self, data: bytes | memoryview, /) -> int:
        """Append `data`; raises `IntegrityFailure` past the expected size."""
        ...

    def tell(self) -> int:
        """The current offset: every byte appended so far, resumed ones included."""
        ...

    def commit(self) -> StoredBlob:
        """Make the bytes durable, verify size and digests, then publish under the digest."""
        ...

    def abort(self, *, keep_partial: bool = False) -> None:
        """Give up. With `keep_partial` (and a resume key) the bytes wait for a later upload."""
        ...

    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: object, exc: object, tb: object, /) -> None: ...


class BlobWriter(Protocol):
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
        are kept on `abort(keep_partial=True)` and picked up by the next upload with the same
        key, whose `resume_offset` says how many there are. A kept partial longer than
        `expected_size` cannot be a prefix of the blob and is discarded.
        `expected_git_sha1` (needs `expected_size`) checks git's blob id of the bytes too, for
        files a hub identifies only that way. `label` names the file in error messages.
        """
        ...

    def free_space(self) -> int | None:
        """Bytes that can still be written, or None where the store cannot tell."""
        ...


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """A stored blob as a listing sees it (for `modelctl gc` and storage usage)."""

    digest: Digest
    size: int
    modified: datetime  # aware, UTC: when the bytes were published


@dataclass(frozen=True, slots=True)
class LeftoverUpload:
    """An upload a crashed or interrupted process left: a temp file, a temporary object, an
    unfinished multipart upload, or a partial kept for resuming."""

    name: str
    started: datetime  # aware, UTC
    resumable: bool  # a partial kept for a later mirror to resume


class BlobSweeper(Protocol):
    """What garbage collection needs: list, delete, and find leftover uploads."""

    def list_blobs(self) -> Iterator[BlobEntry]: ...

    def delete(self, digest: Digest) -> None:
        """Remove a blob; a blob that is already gone is not an error."""
        ...

    def leftover_uploads(self) -> list[LeftoverUpload]: ...

    def remove_upload(self, leftover: LeftoverUpload) -> None: ...


class BlobStore(BlobReader, BlobWriter, BlobSweeper, Protocol):
    """Both halves: what mirroring and the embedded registry hold."""
