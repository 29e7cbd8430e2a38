"""Hugging Face Hub source, through the real `huggingface_hub` client.

1. Pin: `HfApi.model_info(repo, revision=R).sha` turns a branch or tag into a commit; every
   later request names that commit, so the bytes cannot move under us mid-mirror.
2. List: `HfApi.list_repo_tree(recursive=True)` at the commit gives every file with its size,
   its LFS sha256 (`lfs.oid`) or, for files kept in git proper, its git blob sha1 (`oid`).
   (`siblings` in model info is not used: the client itself no longer trusts it.)
3. Fetch: `huggingface_hub.file_download.http_get` streams `/resolve/{commit}/{path}` straight
   into our hashing blob upload; it resumes dropped connections with `Range` on its own, and
   we resume an interrupted mirror from the partial upload. The client checks only sizes;
   the blob store checks sha256 (LFS) or the git blob sha1 (everything else) while writing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import NoReturn

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import hf_hub_url, http_get
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils._headers import build_hf_headers
from huggingface_hub.utils.tqdm import disable_progress_bars

from attestations.manifest import is_ignored
from registry.errors import (
    AuthenticationRequired,
    InputError,
    NotFound,
    StorageError,
    UpstreamError,
)
from registry.mirror.base import ByteSink, RemoteFile, Snapshot, SourceSpec, checked_path
from registry.settings import Limits

DEFAULT_ENDPOINT = "https://huggingface.co"
_HEX40 = frozenset("0123456789abcdef")


def _is_hex(text: str | None, length: int) -> bool:
    return text is not None and len(text) == length and set(text) <= _HEX40


class HuggingFaceSource:
    def __init__(
        self, spec: SourceSpec, *, endpoint: str | None, token: str | None, limits: Limits
    ) -> None:
        self.spec = spec
        self.endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self._token = token
        self._limits = limits
        self._api = HfApi(endpoint=self.endpoint, token=token)
        # Our own progress display covers downloads; the client's tqdm bars would interleave.
        disable_progress_bars()
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)

    # -- resolve ----------------------------------------------------------------------------

    def resolve(self) -> Snapshot:
        uri = self.spec.uri
        try:
            info = self._api.model_info(self.spec.repo_id, revision=self.spec.revision)
            commit = info.sha
            if not _is_hex(commit, 40):
                raise UpstreamError(f"{uri}: the hub did not return a commit for the revision")
            assert commit is not None
            entries = list(
                self._api.list_repo_tree(
                    self.spec.repo_id, revision=commit, recursive=True, expand=False
                )
            )
        except HfHubHTTPError as exc:
            self._raise_http(exc, what=uri)
        except httpx2.HTTPError as exc:
            raise UpstreamError(f"{uri}: cannot reach {self.endpoint}: {exc}") from exc
        return Snapshot(
            uri=uri,
            requested_revision=self.spec.revision,
            commit=commit,
            files=tuple(self._remote_files(entries)),
        )

    def _remote_files(self, entries: Sequence[object]) -> list[RemoteFile]:
        files: list[RemoteFile] = []
        for entry in entries:
            if not isinstance(entry, RepoFile):
                continue  # folders are implied by file paths
            path = checked_path(entry.path, where=self.spec.uri)
            if is_ignored(path):
                continue
            if len(files) >= self._limits.max_files:
                raise InputError(f"{self.spec.uri}: more than {self._limits.max_files} files")
            size = entry.size
            if not isinstance(size, int) or not 0 <= size <= self._limits.max_file_size:
                raise InputError(f"{self.spec.uri}: {path}: listed size {size!r} is out of bounds")
            if entry.lfs is not None:
                sha256 = str(entry.lfs.sha256).lower()
                if not _is_hex(sha256, 64) or entry.lfs.size != size:
                    raise UpstreamError(f"{self.spec.uri}: {path}: malformed LFS entry in listing")
                files.append(RemoteFile(path=path, size=size, sha256=sha256))
            else:
                oid = str(entry.blob_id).lower()
                if not _is_hex(oid, 40):
                    raise UpstreamError(f"{self.spec.uri}: {path}: malformed git oid in listing")
                files.append(RemoteFile(path=path, size=size, git_blob_sha1=oid))
        return files

    # -- fetch ------------------------------------------------------------------------------

    def fetch(self, snapshot: Snapshot, file: RemoteFile, sink: ByteSink) -> None:
        url = hf_hub_url(
            self.spec.repo_id, file.path, revision=snapshot.commit, endpoint=self.endpoint
        )
        headers = build_hf_headers(token=self._token)
        headers["Accept-Encoding"] = "identity"  # sizes and digests are of the raw bytes
        where = f"{snapshot.uri}: {file.path}"
        try:
            http_get(
                url,
                HttpGetFile(sink),  # type: ignore[arg-type]  # file-like enough for http_get
                resume_size=sink.resume_offset,
                headers=headers,
                expected_size=file.size,
                displayed_filename=file.path,
            )
        except HfHubHTTPError as exc:
            self._raise_http(exc, what=where)
        except httpx2.HTTPError as exc:
            raise UpstreamError(
                f"{where}: transfer failed: {exc.__class__.__name__}: {exc}"
            ) from exc
        except OSError as exc:
            # http_get reports a size mismatch after its retries as a plain OSError.
            raise UpstreamError(f"{where}: transfer failed: {exc}") from exc

    # -- errors -----------------------------------------------------------------------------

    def _raise_http(self, exc: HfHubHTTPError, *, what: str) -> NoReturn:
        status = exc.response.status_code if exc.response is not None else None
        server_message = getattr(exc, "server_message", None) or ""
        detail = f" ({server_message.strip()})" if server_message.strip() else ""
        if isinstance(exc, GatedRepoError):
            hint = (
                "set HF_TOKEN to a token with access"
                if not self._token
                else "the token has no access"
            )
            raise AuthenticationRequired(f"{what}: gated repository: {hint}{detail}") from exc
        if isinstance(exc, RevisionNotFoundError):
            rev = self.spec.revision or "main"
            raise NotFound(f"{what}: unknown revision {rev!r}") from exc
        if isinstance(exc, RepositoryNotFoundError):
            raise NotFound(f"{what}: repository not found (or private: set HF_TOKEN)") from exc
        if status in (401, 403):
            hint = "set HF_TOKEN" if not self._token else "the token was refused"
            raise AuthenticationRequired(f"{what}: HTTP {status}: {hint}{detail}") from exc
        if status == 404:
            raise UpstreamError(f"{what}: listed by the hub but not served (HTTP 404)") from exc
        raise UpstreamError(f"{what}: HTTP {status}{detail}") from exc


class HttpGetFile:
    """What `http_get` needs of a file, over an append-only sink.

    When a server ignores the Range header, `http_get` rewinds its file with
    `seek(tell() - resume_size)` then `truncate()` and takes the body from byte 0. The sink
    has no seek: rewinding to 0 is a `restart()` (the partial upload is aborted and a new one
    begun); staying where it is does nothing; any other position is refused.
    """

    def __init__(self, sink: ByteSink) -> None:
        self._sink = sink
        self._rewind_to: int | None = None

    def write(self, data: bytes | memoryview, /) -> int:
        if self._rewind_to is not None:
            raise StorageError("a write after seek without truncate in an append-only upload")
        return self._sink.write(data)

    def tell(self) -> int:
        return self._rewind_to if self._rewind_to is not None else self._sink.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        here = self._sink.tell()
        target = offset if whence == os.SEEK_SET else here + offset
        if whence not in (os.SEEK_SET, os.SEEK_CUR) or target not in (0, here):
            raise StorageError("unsupported seek in an append-only upload")
        self._rewind_to = None if target == here else target
        return target

    def truncate(self, size: int | None = None, /) -> int:
        here = self._sink.tell()
        target = size if size is not None else self._rewind_to
        self._rewind_to = None
        if target is None or target == here:
            return here
        if target != 0:
            raise StorageError("unsupported truncate in an append-only upload")
        self._sink.restart()
        return 0

    def flush(self) -> None:
        """Nothing is buffered here."""
