"""Move a snapshot's files into the blob store: in parallel, hashed once, resumable.

Each file streams from its source into a blob upload that hashes as it writes and checks the
digests the source listed. A file whose listed sha256 is already in the store is not fetched
again. When any file fails, the others stop at their next chunk and the first real error is
raised; partial transfers are kept for a later mirror to resume unless their bytes were wrong.
Uploads only append: a source that must start a file over restarts its sink (abort, begin).
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from attestations.digests import Digest
from registry.blobs.base import BlobReader, BlobStore, BlobUpload, BlobWriter, StoredBlob, blob_key
from registry.errors import RegistryError, StorageError, UpstreamError
from registry.mirror.base import RemoteFile, Snapshot, Source
from registry.progress import NoProgress, Progress


class _Cancelled(Exception):
    """Another file failed; this transfer stops where it is."""


@dataclass(frozen=True, slots=True)
class FetchedFile:
    path: str
    blob: StoredBlob
    transferred: int


class UploadSink:
    """The `ByteSink` a source streams into: a blob upload that reports progress, stops when
    the batch is cancelled, and restarts by aborting its upload and beginning a new one (the
    upload itself only appends)."""

    def __init__(
        self,
        blobs: BlobWriter,
        *,
        expected_sha256: Digest | None = None,
        expected_size: int | None = None,
        expected_git_sha1: str | None = None,
        resume_key: str | None = None,
        label: str = "",
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        def begin() -> BlobUpload:
            return blobs.upload(
                expected_sha256=expected_sha256,
                expected_size=expected_size,
                expected_git_sha1=expected_git_sha1,
                resume_key=resume_key,
                label=label,
            )

        self._begin = begin
        self._upload = begin()
        self._progress = progress or NoProgress()
        self._cancel = cancel or threading.Event()
        self.resume_offset = self._upload.resume_offset
        self.transferred = 0

    def write(self, data: bytes | memoryview, /) -> int:
        if self._cancel.is_set():
            raise _Cancelled
        n = self._upload.write(data)
        self.transferred += n
        self._progress.advance(n)
        return n

    def tell(self) -> int:
        return self._upload.tell()

    def restart(self) -> None:
        """Throw away every byte received so far: abort the upload, begin an empty one."""
        self._upload.abort(keep_partial=False)
        self._upload = self._begin()
        self.resume_offset = self._upload.resume_offset  # 0: the partial is gone

    def commit(self) -> StoredBlob:
        return self._upload.commit()

    def abort(self, *, keep_partial: bool = False) -> None:
        self._upload.abort(keep_partial=keep_partial)

    def __enter__(self) -> UploadSink:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object, /) -> None:
        self._upload.__exit__(exc_type, exc, tb)


def fetch_files(
    source: Source,
    snapshot: Snapshot,
    files: list[RemoteFile],
    blobs: BlobStore,
    *,
    workers: int,
    progress: Progress,
) -> list[FetchedFile]:
    cancel = threading.Event()
    resumable = bool(snapshot.commit)  # a folder has no commit: its files may change
    _check_free_space(blobs, snapshot, files)

    def fetch_one(file: RemoteFile) -> FetchedFile:
        if cancel.is_set():
            raise _Cancelled
        reused = _already_stored(blobs, file)
        if reused is not None:
            progress.advance(reused.size)
            progress.file_done(file.path, reused=True)
            return FetchedFile(path=file.path, blob=reused, transferred=0)
        sink = UploadSink(
            blobs,
            expected_sha256=Digest(file.sha256) if file.sha256 else None,
            expected_size=file.size,
            expected_git_sha1=file.git_blob_sha1,
            resume_key=f"{snapshot.uri}@{snapshot.commit}:{file.path}" if resumable else None,
            label=f"{snapshot.uri}: {file.path}",
            progress=progress,
            cancel=cancel,
        )
        with sink:
            progress.advance(sink.resume_offset)
            try:
                if file.size is None or sink.resume_offset < file.size:
                    source.fetch(snapshot, file, sink)
            except (UpstreamError, _Cancelled, KeyboardInterrupt):
                sink.abort(keep_partial=resumable)
                raise
            blob = sink.commit()
        progress.file_done(file.path, reused=not blob.created)
        return FetchedFile(path=file.path, blob=blob, transferred=sink.transferred)

    # Largest first: the long transfers start at once and the small ones fill the gaps.
    ordered = sorted(files, key=lambda f: -(f.size or 0))
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="mirror")
    futures: list[Future[FetchedFile]] = []
    try:
        futures = [pool.submit(fetch_one, f) for f in ordered]
        wait(futures, return_when=FIRST_EXCEPTION)
    except BaseException:
        cancel.set()
        raise
    finally:
        if any(f.done() and not f.cancelled() and f.exception() for f in futures):
            cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
    errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
    real = [e for e in errors if not isinstance(e, _Cancelled)]
    if real:
        # Prefer our own errors (they name the file) over anything unexpected.
        ours = [e for e in real if isinstance(e, RegistryError)]
        raise (ours or real)[0]  # type: ignore[misc]
    return [f.result() for f in futures]


#: Room left over after a mirror, so that the database and other writers are not starved.
SPACE_MARGIN = 64 << 20


def _check_free_space(blobs: BlobStore, snapshot: Snapshot, files: list[RemoteFile]) -> None:
    """Refuse before downloading anything when the store cannot hold what is missing."""
    free = blobs.free_space()
    if free is None:
        return
    needed = sum(f.size or 0 for f in files if _already_stored(blobs, f) is None)
    if needed + SPACE_MARGIN > free:
        raise StorageError(
            f"{snapshot.uri}: not enough space in the blob store: "
            f"{needed} bytes to write, {free} bytes free"
        )


def _already_stored(blobs: BlobReader, file: RemoteFile) -> StoredBlob | None:
    """The stored blob for a file whose listed sha256 and size we already hold, if any."""
    if file.sha256 is None or file.size is None:
        return None
    digest = Digest(file.sha256)
    if not blobs.exists(digest) or blobs.size(digest) != file.size:
        return None
    return StoredBlob(
        digest=digest, size=file.size, key=blob_key(digest), git_sha1=None, created=False
    )
