"""What every blob store checks while and after bytes arrive, in one place.

Each store hashes as it appends and calls these, so the local and in-memory stores (and the
object store to come) refuse the same bytes with the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from attestations.digests import Digest
from attestations.hashing import StreamDigests, StreamHasher
from registry.errors import IntegrityFailure, StorageError


@dataclass(frozen=True, slots=True)
class Expected:
    """What the caller knows of the blob before its bytes arrive."""

    sha256: Digest | None
    size: int | None
    git_sha1: str | None
    label: str

    @classmethod
    def of(
        cls,
        *,
        sha256: Digest | None,
        size: int | None,
        git_sha1: str | None,
        label: str,
    ) -> Expected:
        label = label or "blob"
        if git_sha1 is not None and size is None:
            raise StorageError(f"{label}: a git blob id can only be checked with a known size")
        return cls(sha256=sha256, size=size, git_sha1=git_sha1, label=label)

    def new_hasher(self) -> StreamHasher:
        return StreamHasher(git_blob_size=self.size if self.git_sha1 is not None else None)

    def check_size_so_far(self, size: int) -> None:
        """Refuse as soon as more bytes than listed arrived."""
        if self.size is not None and size > self.size:
            raise IntegrityFailure(
                f"{self.label}: source sent more than the {self.size} bytes it listed"
            )

    def check(self, result: StreamDigests) -> None:
        """Refuse the finished bytes unless size and every expected digest match."""
        if self.size is not None and result.size != self.size:
            raise IntegrityFailure(f"{self.label}: expected {self.size} bytes, got {result.size}")
        if self.sha256 is not None and result.sha256 != self.sha256:
            raise IntegrityFailure(
                f"{self.label}: sha256 mismatch: expected {self.sha256}, got {result.sha256}"
            )
        if self.git_sha1 is not None and result.git_sha1 != self.git_sha1:
            raise IntegrityFailure(
                f"{self.label}: git blob id mismatch: expected {self.git_sha1}, "
                f"got {result.git_sha1}"
            )
