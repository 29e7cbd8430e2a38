"""ModelScope source, through the official `modelscope_hub` client (`ms://org/name[@rev]`).

Pinning a revision to a commit
------------------------------
ModelScope's `/api/v1` has no "resolve this ref to a commit" call. `list_repo_revisions`
(`GET /api/v1/models/{id}/revisions`) names branches and tags (`Revision`, `CreatedAt`: the
client reads nothing else), and the commit a file listing was made at shows only per file, in
the `Revision` field of `GET /api/v1/models/{id}/repo/files` (the client's own cache keys
files by it as "commit id"). So `resolve()` does this:

1. A full 40-hex commit id is the pin as it stands (the hub takes it as `Revision`).
2. Any other revision must be a branch or tag that `revisions` names (else `NotFound`). The
   default is `master`, ModelScope's default branch. The listing at that name must give one
   and the same 40-hex `Revision` on every file: that is the commit. If its files disagree
   (a hub that reports each file's last-change commit) or carry none, a `CommitId` that the
   revisions entry carries is used instead. If neither is there, the mirror is refused with
   `UpstreamError`: pass `ms://org/name@<commit>`.
3. Every file is then listed *at the commit*. For a named revision that listing must equal
   the one at the name (same paths, sizes, sha256). Otherwise the branch moved meanwhile or
   the hub's per-file commit was not the tree's, and we raise `UpstreamError`. The snapshot
   is the listing at the commit, and every download names the commit, not the branch, so
   bytes cannot change under us while we mirror.

Client parts used, and what we bypass
-------------------------------------
* `HubConfig`: the endpoint. An explicit argument wins, then `MODELSCOPE_ENDPOINT`,
  `MODELSCOPE_DOMAIN` and the `.cn` default. The token we pass (from `MODELSCOPE_API_TOKEN`
  via Settings) is the only one sent. A login persisted in `~/.modelscope` is deliberately
  not read: an empty token overrides it. We also avoid the client's one disk side effect,
  a session-id file written under `~/.modelscope`.
* `HubApi.legacy` (the client's `/api/v1` transport): `list_revisions_detail`,
  `list_repo_files`, `download_stream`. It does URL building, cookie (`m_session_id`) plus
  Bearer auth, its own retries on listings, and typed errors. We need the raw listing because
  the public `HubApi.list_repo_files` turns entries into `FileInfo` and drops `Revision`. If a
  listing the server truncated could not be walked in full, the client marks it incomplete,
  and we refuse it.
* Bypassed: `HubApi.download_file` / `DownloadManager`. They write into a cache or local dir
  and rename there, and they probe `/api/v1/repos/internalAccelerationInfo` and OSS regions.
  A streaming sink fits none of that. `fetch` streams `download_stream` into the sink and does
  what that manager does on the wire: `Range: bytes=N-` to resume, restart when a 200
  ignores the Range, `Accept-Encoding: identity`. Dropped connections (and 429/502/503/504)
  are retried with backoff. Other statuses are final.

The sink hashes while bytes arrive; this module only delivers bytes, in one pass, never to disk.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import requests
from modelscope_hub import HubApi, HubConfig
from modelscope_hub.errors import (
    APIError,
    AuthenticationError,
    HubError,
    NetworkError,
    NotExistError,
    PermissionDeniedError,
    RateLimitError,
)

from attestations.manifest import is_ignored
from registry.errors import AuthenticationRequired, InputError, NotFound, UpstreamError
from registry.mirror.base import ByteSink, RemoteFile, Snapshot, SourceSpec, checked_path
from registry.settings import Limits

DEFAULT_BRANCH = "master"
_AUTH_ENV = "MODELSCOPE_API_TOKEN"  # where Settings reads the token from
_REPO_TYPE = "model"
_COMMIT = re.compile(r"[0-9a-fA-F]{40}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Network faults worth another try; everything else `requests` raises is final.
_TRANSIENT: tuple[type[BaseException], ...] = (
    requests.ConnectionError,  # refused, reset, or no answer to connect
    requests.Timeout,  # connect or read timeout
    requests.exceptions.ChunkedEncodingError,  # the body ended early (connection dropped)
)

T = TypeVar("T")


def _one_line(text: object, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _is_commit(text: str) -> bool:
    return _COMMIT.fullmatch(text) is not None


class _HubConfig(HubConfig):
    """The client's configuration without its side effect: no session-id file in the home dir."""

    __slots__ = ()

    def get_session_id(self) -> str:
        return uuid.uuid4().hex


class _Restart(Exception):
    """The answer cannot continue the bytes the sink holds: start the file over."""


class _Dropped(Exception):
    """The transfer stopped early, for a reason worth another try."""


@dataclass(frozen=True, slots=True)
class _Job:
    """One file's transfer: what to fetch, where the bytes go, and how many may come."""

    commit: str
    file: RemoteFile
    sink: ByteSink
    bound: int  # the listed size, else the size limit
    where: str  # `ms://org/name: path`, for messages


class ModelScopeSource:
    # Retry policy for a file's transfer; class attributes so tests can make them instant.
    max_attempts = 5  # consecutive failed attempts without progress before giving up
    retry_backoff_s = 0.5  # doubled per consecutive failure, capped at 8 s
    chunk_size = 1024 * 1024

    def __init__(
        self, spec: SourceSpec, *, endpoint: str | None, token: str | None, limits: Limits
    ) -> None:
        if spec.kind != "ms":
            raise InputError(f"not a ModelScope source: {spec.uri}")
        self.spec = spec
        self._token = token or None
        self._limits = limits
        # token="" (not None) so that the client never falls back to a persisted login.
        self._api = HubApi(config=_HubConfig(endpoint=endpoint, token=self._token or ""))
        self._legacy = self._api.legacy  # built once, before any worker thread shares it
        self.endpoint: str = self._legacy.endpoint

    # -- resolve ----------------------------------------------------------------------------

    def resolve(self) -> Snapshot:
        uri = self.spec.uri
        requested = self.spec.revision
        commit: str | None
        if requested is not None and _is_commit(requested):
            commit = requested.lower()
            files = self._remote_files(self._list(commit), at=commit)
            if not files:
                raise NotFound(f"{uri}: no files at revision {requested!r} (unknown commit?)")
        else:
            name = requested or DEFAULT_BRANCH
            advertised = self._revision_commit(name)
            named_entries = self._list(name)
            named_files = self._remote_files(named_entries, at=name)
            commit = _listing_commit(named_entries) or advertised
            if commit is None:
                raise UpstreamError(
                    f"{uri}: cannot pin revision {name!r} to a commit: the hub reports none; "
                    f"name one instead: {uri}@<40-hex commit>"
                )
            files = self._remote_files(self._list(commit), at=commit)
            if _manifest(files) != _manifest(named_files):
                raise UpstreamError(
                    f"{uri}: revision {name!r} and its commit {commit} list different files "
                    "(the branch moved while resolving, or the hub misreports commits); retry"
                )
        return Snapshot(uri=uri, requested_revision=requested, commit=commit, files=files)

    def _revision_commit(self, name: str) -> str | None:
        """Check that `name` is a branch or tag; return the commit it names, if the hub says."""
        uri = self.spec.uri
        branches, tags = self._call(
            uri,
            lambda: self._legacy.list_revisions_detail(self.spec.repo_id, _REPO_TYPE),
            not_found=f"{uri}: repository not found (or private: set {_AUTH_ENV})",
        )
        for entry in [*tags, *branches]:
            if isinstance(entry, dict) and entry.get("Revision") == name:
                commit = entry.get("CommitId")
                return commit.lower() if isinstance(commit, str) and _is_commit(commit) else None
        raise NotFound(f"{uri}: unknown revision {name!r} (no such branch or tag)")

    def _list(self, revision: str) -> Sequence[Mapping[str, Any]]:
        uri = self.spec.uri
        legacy = self._legacy
        entries = self._call(
            uri,
            lambda: legacy.list_repo_files(
                self.spec.repo_id, _REPO_TYPE, revision=revision, recursive=True
            ),
            not_found=f"{uri}: repository or revision {revision!r} not found",
        )
        if getattr(legacy._read_state, "listing_incomplete", False):
            raise UpstreamError(f"{uri}: the hub's file listing at {revision!r} is incomplete")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise UpstreamError(f"{uri}: malformed file listing at {revision!r}")
        return entries

    def _remote_files(
        self, entries: Sequence[Mapping[str, Any]], *, at: str
    ) -> tuple[RemoteFile, ...]:
        uri = self.spec.uri
        files: list[RemoteFile] = []
        seen: set[str] = set()
        for entry in entries:
            kind = entry.get("Type") or "blob"
            if kind == "tree":
                continue  # folders are implied by file paths
            raw_path = entry.get("Path") or entry.get("Name")
            if not isinstance(raw_path, str):
                raise UpstreamError(f"{uri}: listing entry at {at!r} has no path")
            path = checked_path(raw_path, where=uri)
            if kind != "blob":
                raise UpstreamError(f"{uri}: {path}: unsupported entry type {_one_line(kind)!r}")
            if path in seen:
                raise InputError(f"{uri}: {path}: listed twice")
            seen.add(path)
            if is_ignored(path):
                continue
            if len(files) >= self._limits.max_files:
                raise InputError(f"{uri}: more than {self._limits.max_files} files")
            size = entry.get("Size")
            if (
                isinstance(size, bool)
                or not isinstance(size, int)
                or not 0 <= size <= self._limits.max_file_size
            ):
                raise InputError(f"{uri}: {path}: listed size {size!r} is out of bounds")
            files.append(RemoteFile(path=path, size=size, sha256=self._sha256(entry, path)))
        return tuple(files)

    def _sha256(self, entry: Mapping[str, Any], path: str) -> str | None:
        value = entry.get("Sha256")
        if value is None or value == "":
            return None
        if not isinstance(value, str) or _SHA256.fullmatch(value) is None:
            raise UpstreamError(f"{self.spec.uri}: {path}: malformed Sha256 in listing")
        return value.lower()

    # -- fetch ------------------------------------------------------------------------------

    def fetch(self, snapshot: Snapshot, file: RemoteFile, sink: ByteSink) -> None:
        job = _Job(
            commit=snapshot.commit,
            file=file,
            sink=sink,
            bound=file.size if file.size is not None else self._limits.max_file_size,
            where=f"{snapshot.uri}: {file.path}",
        )
        failures = 0  # consecutive, without progress
        total_failures = 0
        while True:
            start = sink.tell()
            if start > job.bound:
                _rewind(sink)
                start = 0
            if start > 0 and start == file.size:
                return  # an earlier transfer already delivered every byte
            try:
                self._transfer(job, start)
                return
            except (_Dropped, _Restart) as exc:
                cause: BaseException = exc
            failures = 1 if sink.tell() > start else failures + 1
            total_failures += 1
            if failures >= self.max_attempts or total_failures >= 10 * self.max_attempts:
                raise UpstreamError(
                    f"{job.where}: transfer failed after {total_failures} attempts: {cause}"
                ) from cause.__cause__
            time.sleep(min(self.retry_backoff_s * 2 ** (failures - 1), 8.0))

    def _transfer(self, job: _Job, start: int) -> None:
        """One GET from byte `start`: everything it delivers goes into the sink."""
        headers = {"Accept-Encoding": "identity"}  # sizes and digests are of the raw bytes
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            response = self._legacy.download_stream(
                self.spec.repo_id, _REPO_TYPE, job.file.path, job.commit, headers=headers
            )
        except HubError as exc:
            status = getattr(exc, "status_code", None)
            if status == 416 and start:
                _rewind(job.sink)  # the partial bytes are not a prefix of this file
                raise _Restart("the hub refused to resume (HTTP 416)") from exc
            if isinstance(exc, NetworkError | RateLimitError) or status in _RETRY_STATUSES:
                raise _Dropped(f"HTTP {status}" if status else _one_line(exc.message)) from exc
            self._raise_hub(exc, what=job.where, not_found=None)
        except _TRANSIENT as exc:
            raise _Dropped(type(exc).__name__) from exc
        except requests.RequestException as exc:
            raise UpstreamError(f"{job.where}: request failed: {type(exc).__name__}") from exc
        try:
            self._accept(response, job, start)
            self._stream(response, job)
        finally:
            response.close()

    @staticmethod
    def _accept(response: requests.Response, job: _Job, start: int) -> None:
        """Check the answer's status and range; rewind the sink if the whole file follows."""
        status = response.status_code
        length = _int_header(response.headers.get("Content-Length"))
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        if status == 206:
            span = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if span is None or encoded or int(span.group(1)) != start:
                _rewind(job.sink)
                raise _Restart(f"HTTP 206 for another range than bytes={start}-")
            total = _int_header(span.group(3))
        elif status == 200:
            if start:
                _rewind(job.sink)  # the hub ignored our Range: the whole file follows
            total = None if encoded else length
        else:
            raise UpstreamError(f"{job.where}: unexpected HTTP {status} for a file download")
        if total is not None and job.file.size is not None and total != job.file.size:
            raise UpstreamError(
                f"{job.where}: the hub serves {total} bytes but listed {job.file.size}"
            )

    def _stream(self, response: requests.Response, job: _Job) -> None:
        """Deliver the body to the sink chunk by chunk, as it arrives."""
        sink = job.sink
        chunks: Iterator[bytes] = response.iter_content(chunk_size=self.chunk_size)
        while True:
            try:
                chunk = next(chunks, None)
            except _TRANSIENT as exc:
                raise _Dropped(f"connection dropped: {type(exc).__name__}") from exc
            except requests.RequestException as exc:
                raise UpstreamError(f"{job.where}: transfer failed: {type(exc).__name__}") from exc
            if chunk is None:
                break
            if sink.tell() + len(chunk) > job.bound:
                raise UpstreamError(f"{job.where}: the hub sent more than the {job.bound} bytes")
            if chunk:
                sink.write(chunk)
        if job.file.size is not None and sink.tell() < job.file.size:
            raise _Dropped(f"body ended at byte {sink.tell()} of {job.file.size}")

    # -- errors -----------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T], *, not_found: str) -> T:
        try:
            return fn()
        except HubError as exc:
            self._raise_hub(exc, what=what, not_found=not_found)
        except requests.RequestException as exc:
            raise UpstreamError(
                f"{what}: cannot reach {self.endpoint}: {type(exc).__name__}"
            ) from exc

    def _raise_hub(self, exc: HubError, *, what: str, not_found: str | None) -> NoReturn:
        """Map a client error to ours. `not_found`: the NotFound message, or None where a 404
        means that a listed file is not served (an upstream fault, not a caller's mistake)."""
        status = getattr(exc, "status_code", None)
        message = _one_line(exc.message)
        if isinstance(exc, AuthenticationError | PermissionDeniedError) or status in (401, 403):
            shown = status or (401 if isinstance(exc, AuthenticationError) else 403)
            hint = (
                f"set {_AUTH_ENV}"
                if not self._token
                else f"the token in {_AUTH_ENV} was refused or has no access"
            )
            raise AuthenticationRequired(f"{what}: HTTP {shown}: {hint}") from exc
        if isinstance(exc, NotExistError) or status == 404:
            if not_found is None:
                raise UpstreamError(f"{what}: listed by the hub but not served (HTTP 404)") from exc
            raise NotFound(not_found) from exc
        if isinstance(exc, NetworkError):
            raise UpstreamError(f"{what}: cannot reach {self.endpoint}: {message}") from exc
        if isinstance(exc, APIError) and status is not None:
            raise UpstreamError(f"{what}: HTTP {status}: {message}") from exc
        raise UpstreamError(f"{what}: {type(exc).__name__}: {message}") from exc


def _listing_commit(entries: Sequence[Mapping[str, Any]]) -> str | None:
    """The one commit every file of a listing names, or None if they name several or none."""
    commits = {
        str(entry.get("Revision") or "").lower()
        for entry in entries
        if (entry.get("Type") or "blob") != "tree"
    }
    if len(commits) == 1:
        (commit,) = commits
        if _is_commit(commit):
            return commit
    return None


def _manifest(files: tuple[RemoteFile, ...]) -> dict[str, tuple[int | None, str | None]]:
    return {f.path: (f.size, f.sha256) for f in files}


def _rewind(sink: ByteSink) -> None:
    sink.restart()


def _int_header(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())
