"""A blob store in process memory: the same contract as the local store, for tests.

`memory://NAME` in MODELCTL_BLOB_STORE names one store per process (`memory://` the default
one), so an embedded registry, its worker and its server in one process see the same blobs.
Nothing survives the process. Bytes are copied on publish and on open, so no caller can
change a blob after it was verified.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from attestations.digests import Digest
from registry.blobs.base import BlobEntry, LeftoverUpload, StoredBlob, blob_key
from registry.blobs.checks import Expected
from registry.errors import NotFound, StorageError


class MemoryBlobStore:
    def __init__(self) -> None:
        self._blobs: dict[Digest, bytes] = {}
        self._published: dict[Digest, datetime] = {}
        self._partials: dict[str, bytes] = {}  # resume key -> bytes kept by an abort
        self._live: set[MemoryBlobUpload] = set()
        self._lock = threading.Lock()

    # -- reader ---------------------------------------------------------------------------

    def exists(self, digest: Digest) -> bool:
        with self._lock:
            return digest in self._blobs

    def size(self, digest: Digest) -> int:
        return len(self._get(digest))

    def open(self, digest: Digest) -> BinaryIO:
        return io.BytesIO(self._get(digest))

    def _get(self, digest: Digest) -> bytes:
        with self._lock:
            data = self._blobs.get(digest)
        if data is None:
            raise NotFound(f"blob {digest} is not in the store")
        return data

    # -- writer ---------------------------------------------------------------------------

    def free_space(self) -> int | None:
        return None

    def upload(
        self,
        *,
        expected_sha256: Digest | None = None,
        expected_size: int | None = None,
        expected_git_sha1: str | None = None,
        resume_key: str | None = None,
        label: str = "",
    ) -> MemoryBlobUpload:
        expected = Expected.of(
            sha256=expected_sha256, size=expected_size, git_sha1=expected_git_sha1, label=label
        )
        partial = b""
        if resume_key is not None:
            with self._lock:
                partial = self._partials.pop(resume_key, b"")
            if expected.size is not None and len(partial) > expected.size:
                partial = b""  # not a prefix of this blob: start again
        upload = MemoryBlobUpload(self, expected, resume_key, partial)
        with self._lock:
            self._live.add(upload)
        return upload

    def in_flight(self) -> list[str]:
        """Uploads not yet finished plus partials kept for resuming (what tests call leftovers)."""
        with self._lock:
            return sorted([f"live:{u.label}" for u in self._live] + list(self._partials))

    def _finish(self, upload: MemoryBlobUpload, *, keep: bytes | None = None) -> None:
        with self._lock:
            self._live.discard(upload)
            if keep is not None and upload.resume_key is not None:
                self._partials[upload.resume_key] = keep

    def _publish(self, digest: Digest, data: bytes) -> bool:
        with self._lock:
            if digest in self._blobs:
                return False
            self._blobs[digest] = data
            self._published[digest] = datetime.now(UTC)
            return True

    # -- sweeping (modelctl gc) -----------------------------------------------------------

    def list_blobs(self) -> Iterator[BlobEntry]:
        with self._lock:
            entries = [BlobEntry(d, len(b), self._published[d]) for d, b in self._blobs.items()]
        yield from entries

    def delete(self, digest: Digest) -> None:
        with self._lock:
            self._blobs.pop(digest, None)
            self._published.pop(digest, None)

    def leftover_uploads(self) -> list[LeftoverUpload]:
        return []  # nothing outlives the process that started it

    def remove_upload(self, leftover: LeftoverUpload) -> None:
        return


class MemoryBlobUpload:
    def __init__(
        self, store: MemoryBlobStore, expected: Expected, resume_key: str | None, partial: bytes
    ) -> None:
        self._store = store
        self._expected = expected
        self.label = expected.label
        self.resume_key = resume_key
        self._buffer = bytearray(partial)
        self._hasher = expected.new_hasher()
        self._hasher.update(partial)
        self.resume_offset = len(partial)
        self._done = False

    def write(self, data: bytes | memoryview, /) -> int:
        if self._done:
            raise StorageError(f"{self.label}: upload already finished")
        view = memoryview(data)
        self._hasher.update(view)
        self._buffer += view
        self._expected.check_size_so_far(self._hasher.size)
        return len(view)

    def tell(self) -> int:
        return self._hasher.size

    def commit(self) -> StoredBlob:
        if self._done:
            raise StorageError(f"{self.label}: upload already finished")
        self._done = True
        self._store._finish(self)
        result = self._hasher.result()
        self._expected.check(result)
        created = self._store._publish(result.sha256, bytes(self._buffer))
        self._buffer = bytearray()
        return StoredBlob(
            digest=result.sha256,
            size=result.size,
            key=blob_key(result.sha256),
            git_sha1=result.git_sha1,
            created=created,
        )

    def abort(self, *, keep_partial: bool = False) -> None:
        if self._done:
            return
        self._done = True
        self._store._finish(self, keep=bytes(self._buffer) if keep_partial else None)
        self._buffer = bytearray()

    def __enter__(self) -> MemoryBlobUpload:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object, /) -> None:
        if not self._done:
            self.abort(keep_partial=False)
