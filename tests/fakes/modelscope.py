"""A fake ModelScope hub: the legacy ``/api/v1`` routes ``modelscope_hub`` 0.5 uses to read models.

Stdlib only: a ``ThreadingHTTPServer`` on 127.0.0.1, ephemeral port, HTTP/1.0 (one request per
connection, so no client keeps an idle socket open). Use it as a context manager; ``.url`` is
the endpoint to give the client. Routes (model repositories only)::

    GET /api/v1/models/{org}/{name}                  model info
    GET /api/v1/models/{org}/{name}/revisions        {"Data": {"RevisionMap": {"Branches", "Tags"}}}
    GET /api/v1/models/{org}/{name}/repo/files       ?Revision=&Recursive=True|False[&Root=dir]
    GET|HEAD /api/v1/models/{org}/{name}/repo        ?Revision=&FilePath=  file bytes, Range -> 206
    GET /api/v1/repos/internalAccelerationInfo       the client's region probe: 404

Everything else (``/openapi/v1/...`` included) answers 404 with a JSON error body
``{"Code": status, "Message": ..., "Success": false}``, which the client turns into typed
errors (404 ``NotExistError``, 401 ``AuthenticationError``, 403 ``PermissionDeniedError``,
5xx ``ServerError``).

Repositories: :meth:`FakeModelScopeHub.add_repo` records the whole file set as a new commit
(deterministic 40-hex id, immutable) on ``branch`` (movable), and :meth:`tag` pins a tag. A
``Revision`` may be a branch, a tag or a full commit id. File names are stored and listed
verbatim, so tests can plant hostile names. A repo added with ``token=`` wants
``Authorization: Bearer <token>`` or the ``m_session_id`` cookie: none gets 401, another 403.

Listing entries carry ``Name, Path, Type ("blob"|"tree"), Size, Sha256, Revision, CommitId,
IsLFS, Mode, CommitMessage, CommittedDate, CommitterName, InCheck``. What ``Revision`` holds
is set per hub with ``file_revision``: ``"head"`` (the commit the listing was made at, the
default), ``"last_change"`` (the last commit that changed that file), or ``"none"`` (absent).
With ``revision_commit_ids`` the revisions entries also carry ``CommitId``.

Faults, per file, consumed one per download GET and queued in order (``inject``):

``corrupt``       same length, the file's middle byte flipped.
``truncate``      full ``Content-Length``, half the body, then the connection is closed.
``status:NNN``    that status with a JSON error body (``Retry-After: 0`` for 429).
``missing``       404 although the listing still has the file.
``ignore_range``  200 with the whole body even when a ``Range`` was sent.

``requests`` logs every request (method, path, query, headers, answered status).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["FakeModelScopeHub", "RecordedRequest"]

FileRevisionMode = Literal["head", "last_change", "none"]
_FAULTS: Final = frozenset({"corrupt", "truncate", "missing", "ignore_range"})
_RANGE: Final = re.compile(r"bytes=(\d+)-(\d*)")
_COMMIT: Final = re.compile(r"[0-9a-f]{40}")
_MODEL: Final = re.compile(r"/api/v1/models/([^/]+)/([^/]+)(/revisions|/repo/files|/repo)?")
_WRITE_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str  # decoded path, without the query
    query: dict[str, str]
    headers: dict[str, str]  # names lowercased
    status: int | None = None  # filled in once answered (see FakeModelScopeHub.requests)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class _Commit:
    sha: str
    parent: str | None
    files: Mapping[str, bytes]
    created_at: int
    message: str


@dataclass(slots=True)
class _Repo:
    repo_id: str
    token: str | None
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> _Commit | None:
        sha = self.tags.get(revision) or self.branches.get(revision)
        if sha is None and _COMMIT.fullmatch(revision):
            sha = revision
        return self.commits.get(sha) if sha else None


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread: none leaks
    block_on_close = True

    def __init__(self, hub: FakeModelScopeHub) -> None:
        self.hub = hub
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN: slow, and nothing here needs it.
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = "127.0.0.1"
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.hub.errors.append(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    timeout = 10  # a client that connects and says nothing cannot hold a thread forever
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    # -- plumbing ---------------------------------------------------------------------------

    def _dispatch(self, *, head: bool) -> None:
        hub = self.server.hub
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        index = hub._record(RecordedRequest(self.command, path, query, headers))
        self._index = index
        try:
            self._route(path, query, head=head)
        except _HttpError as exc:
            self._send_json(exc.status, None, message=exc.message)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away; nothing to answer

    def send_response(self, code: int, message: str | None = None) -> None:
        index = getattr(self, "_index", None)
        if index is not None:  # None: refused before dispatch (a malformed request line)
            self.server.hub._answered(index, code)
        super().send_response(code, message)

    def _send_json(self, status: int, data: Any, *, message: str = "success") -> None:
        ok = status < 400
        body = json.dumps(
            {
                "Code": 200 if ok else status,
                "Data": data,
                "Message": message,
                "RequestId": f"fake-{self._index}",
                "Success": ok,
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- routes -----------------------------------------------------------------------------

    def _route(self, path: str, query: Mapping[str, str], *, head: bool) -> None:
        if path == "/api/v1/repos/internalAccelerationInfo":
            raise _HttpError(404, "no internal acceleration here")
        match = _MODEL.fullmatch(path)
        if match is None:
            raise _HttpError(404, f"no route for {path}")
        repo_id = f"{match.group(1)}/{match.group(2)}"
        route = match.group(3) or ""
        if head and route != "/repo":
            raise _HttpError(405, "HEAD only on file downloads")
        repo = self._repo(repo_id)
        if route == "":
            self._model_info(repo)
        elif route == "/revisions":
            self._revisions(repo)
        elif route == "/repo/files":
            commit = self._commit(repo, query)
            recursive = query.get("Recursive", "False").lower() == "true"
            self._files(repo, commit, recursive=recursive, root=query.get("Root", ""))
        else:
            commit = self._commit(repo, query)
            self._download(repo, commit, query.get("FilePath", ""), head=head)

    def _repo(self, repo_id: str) -> _Repo:
        hub = self.server.hub
        with hub._lock:
            repo = hub._repos.get(repo_id)
        if repo is None:
            raise _HttpError(404, f"model {repo_id} does not exist")
        if repo.token is not None:
            sent = self.headers.get("Authorization", "")
            cookies = self.headers.get("Cookie", "")
            offered = [sent.removeprefix("Bearer ").strip()] if sent.startswith("Bearer ") else []
            for part in cookies.split(";"):
                name, _, value = part.strip().partition("=")
                if name == "m_session_id":
                    offered.append(value)
            offered = [t for t in offered if t]
            if not offered:
                raise _HttpError(401, "user not logged in")
            if repo.token not in offered:
                raise _HttpError(403, "access denied")
        return repo

    def _commit(self, repo: _Repo, query: Mapping[str, str]) -> _Commit:
        revision = query.get("Revision") or "master"
        with self.server.hub._lock:
            commit = repo.resolve(revision)
        if commit is None:
            raise _HttpError(404, f"revision {revision} not found")
        return commit

    def _model_info(self, repo: _Repo) -> None:
        owner, name = repo.repo_id.split("/", 1)
        data = {
            "Id": abs(hash(repo.repo_id)) % 10**6,
            "Name": name,
            "Path": owner,
            "ChineseName": name,
            "Description": "a fake model",
            "License": "Apache License 2.0",
            "Downloads": 0,
            "Stars": 0,
        }
        self._send_json(200, data)

    def _revisions(self, repo: _Repo) -> None:
        hub = self.server.hub
        with hub._lock:
            refs = {"Branches": dict(repo.branches), "Tags": dict(repo.tags)}
            commits = dict(repo.commits)
        data: dict[str, list[dict[str, Any]]] = {}
        for kind, names in refs.items():
            entries = []
            for name, sha in sorted(names.items()):
                entry: dict[str, Any] = {"Revision": name, "CreatedAt": commits[sha].created_at}
                if hub.revision_commit_ids:
                    entry["CommitId"] = sha
                entries.append(entry)
            data[kind] = entries
        self._send_json(200, {"RevisionMap": data})

    def _files(self, repo: _Repo, commit: _Commit, *, recursive: bool, root: str) -> None:
        hub = self.server.hub
        root = root.strip("/")
        prefix = f"{root}/" if root else ""
        entries: list[dict[str, Any]] = []
        for directory in sorted(_directories(commit.files)):
            if _in_scope(directory, prefix, recursive=recursive):
                entries.append(hub._entry(repo, commit, directory, None))
        for path, data in commit.files.items():
            if _in_scope(path, prefix, recursive=recursive):
                entries.append(hub._entry(repo, commit, path, data))
        self._send_json(200, {"Files": entries})

    def _download(self, repo: _Repo, commit: _Commit, path: str, *, head: bool) -> None:
        hub = self.server.hub
        data = commit.files.get(path)
        if data is None:
            raise _HttpError(404, f"file {path} does not exist")
        fault = None if head else hub._take_fault(repo.repo_id, path)
        kind, _, arg = (fault or "").partition(":")
        if kind == "status":
            raise _HttpError(int(arg), f"injected HTTP {arg}")
        if kind == "missing":
            raise _HttpError(404, f"file {path} does not exist")
        if kind == "corrupt" and data:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        size = len(data)
        start, end = 0, size - 1
        status = 200
        wanted = self.headers.get("Range")
        if wanted and kind != "ignore_range":
            match = _RANGE.fullmatch(wanted.strip())
            if match is None or int(match.group(1)) >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(match.group(1))
            if match.group(2):
                end = min(end, int(match.group(2)))
            status = 206
        body = memoryview(data)[start : end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("X-Linked-ETag", f'"{hashlib.sha256(commit.files[path]).hexdigest()}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        if kind == "truncate":
            body = body[: len(body) // 2]
        for offset in range(0, len(body), _WRITE_CHUNK):
            self.wfile.write(body[offset : offset + _WRITE_CHUNK])
        if kind == "truncate":
            self.close_connection = True  # the socket closes with the body half sent


def _directories(paths: Mapping[str, bytes]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            if directory and not directory.endswith("/"):
                found.add(directory)
    return found


def _in_scope(path: str, prefix: str, *, recursive: bool) -> bool:
    if not path.startswith(prefix) or path == prefix.rstrip("/"):
        return False
    return recursive or "/" not in path[len(prefix) :]


class FakeModelScopeHub:
    """See the module docstring. ``with FakeModelScopeHub() as hub: ... hub.url ...``."""

    def __init__(
        self, *, file_revision: FileRevisionMode = "head", revision_commit_ids: bool = True
    ) -> None:
        self.file_revision: FileRevisionMode = file_revision
        self.revision_commit_ids = revision_commit_ids
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []  # tracebacks from handlers: a test may assert it is empty
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._faults: dict[tuple[str, str], list[list[Any]]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._clock = 1_700_000_000

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake hub is not running")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> Self:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-modelscope",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()  # joins the handler threads
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- content ----------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        branch: str = "master",
        token: str | None = None,
        message: str = "upload",
    ) -> str:
        """Commit ``files`` (the whole tree) on ``branch``; return the new commit id."""
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                repo = self._repos[repo_id] = _Repo(repo_id=repo_id, token=token)
            elif token is not None:
                repo.token = token
            parent = repo.branches.get(branch)
            self._clock += 60
            digest = hashlib.sha1(usedforsecurity=False)
            digest.update(f"{repo_id}\0{parent}\0{self._clock}\0".encode())
            for path in sorted(files):
                digest.update(path.encode("utf-8", "surrogatepass") + b"\0")
                digest.update(hashlib.sha256(files[path]).digest())
            sha = digest.hexdigest()
            repo.commits[sha] = _Commit(sha, parent, dict(files), self._clock, message)
            repo.branches[branch] = sha
            return sha

    def tag(self, repo_id: str, tag: str, revision: str = "master") -> str:
        """Point tag ``tag`` at ``revision``; return the commit id."""
        with self._lock:
            repo = self._repos[repo_id]
            commit = repo.resolve(revision)
            if commit is None:
                raise KeyError(revision)
            repo.tags[tag] = commit.sha
            return commit.sha

    def inject(self, repo_id: str, path: str, fault: str, times: int = 1) -> None:
        """Queue a fault for the next ``times`` download GETs of ``path`` (see module doc)."""
        kind, _, arg = fault.partition(":")
        if not (fault in _FAULTS or (kind == "status" and arg.isdigit() and len(arg) == 3)):
            raise ValueError(f"unknown fault {fault!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.setdefault((repo_id, path), []).append([fault, times])

    def downloads(self, path: str | None = None) -> list[RecordedRequest]:
        """The file-download requests seen so far (for ``path``, if given)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.endswith("/repo")
                and "FilePath" in r.query
                and (path is None or r.query["FilePath"] == path)
            ]

    # -- internals --------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            return len(self.requests) - 1

    def _answered(self, index: int, status: int) -> None:
        with self._lock:
            old = self.requests[index]
            self.requests[index] = RecordedRequest(
                old.method, old.path, old.query, old.headers, status
            )

    def _take_fault(self, repo_id: str, path: str) -> str | None:
        with self._lock:
            queue = self._faults.get((repo_id, path))
            if not queue:
                return None
            slot = queue[0]
            slot[1] -= 1
            if slot[1] <= 0:
                queue.pop(0)
            return str(slot[0])

    def _entry(self, repo: _Repo, commit: _Commit, path: str, data: bytes | None) -> dict[str, Any]:
        with self._lock:
            revision = self._file_revision(repo, commit, path)
        entry: dict[str, Any] = {
            "Name": path.rsplit("/", 1)[-1],
            "Path": path,
            "Type": "tree" if data is None else "blob",
            "Size": 0 if data is None else len(data),
            "Sha256": "" if data is None else hashlib.sha256(data).hexdigest(),
            "IsLFS": data is not None and len(data) > 1024 * 1024,
            "Mode": "040000" if data is None else "100644",
            "CommitMessage": commit.message,
            "CommittedDate": commit.created_at,
            "CommitterName": "fake",
            "InCheck": False,
        }
        if revision is not None:
            entry["Revision"] = revision
            entry["CommitId"] = revision
        return entry

    def _file_revision(self, repo: _Repo, commit: _Commit, path: str) -> str | None:
        if self.file_revision == "none":
            return None
        if self.file_revision == "head":
            return commit.sha
        # last_change: walk back while the parent holds the same bytes at this path
        current = commit
        while current.parent is not None:
            parent = repo.commits[current.parent]
            if _lookup(parent, path) != _lookup(current, path):
                break
            current = parent
        return current.sha


def _lookup(commit: _Commit, path: str) -> bytes | None:
    if path in commit.files:
        return commit.files[path]
    # a directory: changed when anything under it changed
    prefix = f"{path}/"
    inside = sorted((p, d) for p, d in commit.files.items() if p.startswith(prefix))
    return hashlib.sha256(repr(inside).encode()).digest() if inside else None
