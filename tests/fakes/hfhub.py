"""A fake Hugging Face Hub: the HTTP API that ``huggingface_hub`` 2.x speaks, with fault injection.

The server is stdlib only (``ThreadingHTTPServer``, one daemon thread per connection, HTTP/1.1
keep-alive) and binds 127.0.0.1 on an ephemeral port. It serves model repositories only::

    GET  /api/models/{org}/{name}                      model info at ``main``
    GET  /api/models/{org}/{name}/revision/{rev}       model info at a branch, tag or commit
    GET  /api/models/{org}/{name}/tree/{rev}[/{path}]  tree listing, paginated through ``Link``
    POST /api/models/{org}/{name}/paths-info/{rev}     form field ``paths`` (repeated)
    HEAD /{org}/{name}/resolve/{rev}/{path}            file metadata headers
    GET  /{org}/{name}/resolve/{rev}/{path}            file bytes, ``Range`` honoured

Everything else answers 404 with a JSON error. No ``X-Xet-*`` header and no ``xetHash`` field is
ever sent, so the client always downloads over plain HTTP from ``/resolve``.

Repositories are built with :meth:`FakeHub.add_repo`; each call records a full snapshot of the
files as a new commit whose sha is deterministic. File names are stored and listed verbatim, so
tests can publish hostile names and check that the client side refuses them.

Faults are injected per file with :meth:`FakeHub.inject` and are consumed request by request:

``corrupt``          GET: same length, the middle byte of the body flipped.
``truncate``         GET: full ``Content-Length``, half the body, then the connection is closed
                     (FIN), which the client sees as an incomplete body.
``status:NNN``       HEAD and GET: that status, with ``X-Error-Code: EntryNotFound`` for 404.
``missing``          HEAD and GET: 404 ``EntryNotFound`` although the tree still lists the file.
``ignore_range``     GET: 200 with the whole body even when a ``Range`` was sent.
``stall:SECONDS``    GET: half the body, a pause of SECONDS, then the rest.

Faults that concern the body (``corrupt``, ``truncate``, ``ignore_range``, ``stall``) apply to
GET requests only, and HEAD requests neither see nor consume them; ``status`` and ``missing``
faults apply to, and are consumed by, HEAD and GET alike. Several faults injected for one file
queue up in order. Once a fault has been served ``times`` times, normal service resumes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import parse_qsl, quote, unquote, urlencode

__all__ = [
    "CHUNK_SIZE",
    "LFS_SIZE_THRESHOLD",
    "LFS_SUFFIXES",
    "Commit",
    "FakeHub",
    "Fault",
    "RecordedRequest",
    "StoredFile",
    "default_lfs_rule",
    "git_blob_sha1",
    "lfs_pointer",
]

CHUNK_SIZE: Final = 256 * 1024
LFS_SUFFIXES: Final = (".safetensors", ".bin", ".gguf", ".onnx", ".pt", ".pth", ".h5", ".npz")
LFS_SIZE_THRESHOLD: Final = 10 * 1024
_COMMIT_RE: Final = re.compile(r"[0-9a-f]{40}")
_RANGE_RE: Final = re.compile(r"bytes=(\d*)-(\d*)")
_CLIENT_GONE: Final = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)

FaultKind = Literal["corrupt", "truncate", "status", "missing", "ignore_range", "stall"]
_SIMPLE_FAULTS: Final[dict[str, FaultKind]] = {
    "corrupt": "corrupt",
    "truncate": "truncate",
    "missing": "missing",
    "ignore_range": "ignore_range",
}


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob holding ``data`` (``sha1("blob <len>\\0" + data)``)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that git stores in place of an LFS object."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def default_lfs_rule(path: str, data: bytes) -> bool:
    """The Hub's usual ``.gitattributes``: weight formats, and anything of 10 KiB or more."""
    return path.endswith(LFS_SUFFIXES) or len(data) >= LFS_SIZE_THRESHOLD


def _iso(timestamp: float) -> str:
    millis = int(timestamp * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{millis:03d}Z"


def _header_safe(text: str) -> str:
    """Printable ASCII only: header values must not carry CR, LF, NUL or non-Latin-1 text."""
    return "".join(c if " " <= c <= "~" else f"\\x{{{ord(c):x}}}" for c in text)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


@dataclass(frozen=True)
class StoredFile:
    """One file of a commit, with every digest the API reports for it."""

    path: str
    data: bytes
    lfs: bool
    sha256: str
    git_oid: str  # blob sha1 of the content, or of the LFS pointer for LFS files
    pointer_size: int | None

    @classmethod
    def build(cls, path: str, data: bytes, *, lfs: bool) -> StoredFile:
        sha256 = hashlib.sha256(data).hexdigest()
        if lfs:
            pointer = lfs_pointer(sha256, len(data))
            return cls(path, data, True, sha256, git_blob_sha1(pointer), len(pointer))
        return cls(path, data, False, sha256, git_blob_sha1(data), None)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def etag(self) -> str:
        """What ``/resolve`` sends as ``ETag``: the sha256 for LFS files, else the git sha1."""
        return self.sha256 if self.lfs else self.git_oid

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "oid": self.git_oid,
            "size": self.size,
            "path": self.path,
        }
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return entry

    def sibling(self, *, blobs: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"rfilename": self.path}
        if blobs:
            entry["size"] = self.size
            entry["blobId"] = self.git_oid
            if self.lfs:
                entry["lfs"] = {
                    "sha256": self.sha256,
                    "size": self.size,
                    "pointerSize": self.pointer_size,
                }
        return entry


@dataclass(frozen=True)
class Commit:
    """A full snapshot of a repository's files."""

    sha: str
    parent: str | None
    files: Mapping[str, StoredFile]
    created: float

    @staticmethod
    def compute_sha(parent: str | None, files: Mapping[str, StoredFile]) -> str:
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(b"parent " + (parent or "").encode() + b"\n")
        for name in sorted(files):
            raw = name.encode("utf-8", "surrogatepass")
            digest.update(b"%d:" % len(raw) + raw + b" " + files[name].git_oid.encode() + b"\n")
        return digest.hexdigest()

    def directories(self) -> dict[str, str]:
        """Every folder implied by the file names, mapped to a stable oid."""
        members: dict[str, list[str]] = {}
        for name, stored in self.files.items():
            for index, char in enumerate(name):
                if char == "/" and index > 0:
                    members.setdefault(name[:index], []).append(f"{name}\x00{stored.git_oid}")
        return {
            folder: hashlib.sha1(
                "\n".join(sorted(lines)).encode("utf-8", "surrogatepass"), usedforsecurity=False
            ).hexdigest()
            for folder, lines in members.items()
        }

    def entries(self) -> list[dict[str, Any]]:
        """Tree entries for every file and folder, sorted by path."""
        result = [stored.tree_entry() for stored in self.files.values()]
        result.extend(
            {"type": "directory", "oid": oid, "size": 0, "path": folder}
            for folder, oid in self.directories().items()
            if folder not in self.files
        )
        result.sort(key=lambda entry: str(entry["path"]))
        return result


@dataclass
class _Repo:
    repo_id: str
    gated_token: str | None
    model_tags: list[str]
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        for prefix, refs in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            if revision.startswith(prefix) and revision[len(prefix) :] in refs:
                return self.commits[refs[revision[len(prefix) :]]]
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if revision in self.tags:
            return self.commits[self.tags[revision]]
        return self.commits.get(revision) if _COMMIT_RE.fullmatch(revision) else None


@dataclass(frozen=True)
class Fault:
    """A parsed fault specification (see the module docstring for the kinds)."""

    kind: FaultKind
    status: int | None = None
    seconds: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> Fault:
        name, _, argument = spec.partition(":")
        if name in _SIMPLE_FAULTS and not argument:
            return cls(_SIMPLE_FAULTS[name])
        if name == "status" and argument.isdigit() and 100 <= int(argument) <= 599:
            return cls("status", status=int(argument))
        if name == "stall":
            try:
                seconds = float(argument)
            except ValueError:
                seconds = -1.0
            if seconds >= 0:
                return cls("stall", seconds=seconds)
        raise ValueError(
            f"unknown fault {spec!r}: expected corrupt, truncate, missing, ignore_range,"
            " status:NNN or stall:SECONDS"
        )

    @property
    def affects_head(self) -> bool:
        return self.kind in ("status", "missing")


@dataclass
class _FaultSlot:
    fault: Fault
    remaining: int


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it. Header names are lower-cased."""

    method: str
    path: str  # the raw request target: percent-encoded path plus query string
    headers: dict[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub
        self._track_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which is useless here and can be slow.
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._process_tracked,
            args=(request, client_address),
            name=f"fakehub-{client_address}",
            daemon=True,
        )
        with self._track_lock:
            self._handler_threads.add(thread)
        thread.start()

    def _process_tracked(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._track_lock:
                self._handler_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.hub._record_error(traceback.format_exc())

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._track_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def drop_connections(self, timeout: float) -> None:
        """Wake every handler blocked on a keep-alive socket, then wait for them to end."""
        with self._track_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        while True:
            with self._track_lock:
                threads = list(self._handler_threads)
            if not threads:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            threads[0].join(remaining)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # -- plumbing --------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request logging to stderr."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    @property
    def hub(self) -> FakeHub:
        return self.server.hub

    def _dispatch(self, method: str) -> None:
        self._headers_sent = False
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            self.hub._record_request(
                RecordedRequest(
                    method=method,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                )
            )
            self._route(method, body)
        except _CLIENT_GONE:
            self.close_connection = True
        except Exception:
            self.hub._record_error(traceback.format_exc())
            self.close_connection = True
            if not self._headers_sent:
                self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, None, "fake hub crashed")

    def _start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, _header_safe(value))
        self.end_headers()
        self._headers_sent = True

    def _send_json(
        self, status: int, payload: object, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        data = json.dumps(payload, ensure_ascii=True).encode("ascii")
        self._start(
            status,
            [
                ("Content-Type", "application/json; charset=utf-8"),
                ("Content-Length", str(len(data))),
                *headers,
            ],
        )
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error(
        self,
        status: int,
        code: str | None,
        message: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        extra = [("X-Error-Message", message), *headers]
        if code is not None:
            extra.insert(0, ("X-Error-Code", code))
        self._send_json(status, {"error": message}, extra)

    # -- routing ---------------------------------------------------------------------------------

    def _route(self, method: str, body: bytes) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        parts = raw_path.split("/")[1:]
        if len(parts) >= 4 and parts[0] == "api" and parts[1] == "models":
            repo_id = f"{unquote(parts[2])}/{unquote(parts[3])}"
            rest = parts[4:]
            if method == "GET" and not rest:
                self._model_info(repo_id, "main", query)
                return
            if method == "GET" and len(rest) >= 2 and rest[0] == "revision":
                self._model_info(repo_id, unquote("/".join(rest[1:])), query)
                return
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                path = unquote("/".join(rest[2:])).strip("/")
                self._tree(repo_id, unquote(rest[1]), path, raw_path, query)
                return
            if method == "POST" and len(rest) >= 2 and rest[0] == "paths-info":
                self._paths_info(repo_id, unquote("/".join(rest[1:])), body)
                return
        if len(parts) >= 4 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = f"{unquote(parts[0])}/{unquote(parts[1])}"
            self._resolve(repo_id, unquote(parts[3]), unquote("/".join(parts[4:])))
            return
        self._send_error(HTTPStatus.NOT_FOUND, None, f"Sorry, we can't find {raw_path} here.")

    def _open(self, repo_id: str, revision: str) -> tuple[_Repo, Commit] | None:
        """Look up repo, check the gate, resolve the revision; answer the error and return None."""
        repo = self.hub._repo(repo_id)
        if repo is None:
            self._send_error(HTTPStatus.NOT_FOUND, "RepoNotFound", "Repository not found")
            return None
        if repo.gated_token is not None:
            authorization = self.headers.get("Authorization")
            if authorization is None:
                self._send_error(
                    HTTPStatus.UNAUTHORIZED,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted. You must have access to it and be"
                    " authenticated to access it. Please log in.",
                )
                return None
            if authorization != f"Bearer {repo.gated_token}":
                self._send_error(
                    HTTPStatus.FORBIDDEN,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted and you are not in the authorized"
                    " list.",
                )
                return None
        commit = self.hub._resolve_commit(repo, revision)
        if commit is None:
            self._send_error(
                HTTPStatus.NOT_FOUND, "RevisionNotFound", "Invalid rev id: " + revision
            )
            return None
        return repo, commit

    # -- API endpoints ---------------------------------------------------------------------------

    def _model_info(self, repo_id: str, revision: str, query: Mapping[str, str]) -> None:
        opened = self._open(repo_id, revision)
        if opened is None:
            return
        repo, commit = opened
        blobs = query.get("blobs", "").lower() in ("1", "true")
        first = min(c.created for c in repo.commits.values())
        self._send_json(
            HTTPStatus.OK,
            {
                "_id": hashlib.sha1(repo_id.encode(), usedforsecurity=False).hexdigest()[:24],
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.partition("/")[0],
                "sha": commit.sha,
                "private": False,
                "gated": "manual" if repo.gated_token is not None else False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "createdAt": _iso(first),
                "lastModified": _iso(commit.created),
                "tags": list(repo.model_tags),
                "siblings": [
                    commit.files[name].sibling(blobs=blobs) for name in sorted(commit.files)
                ],
            },
        )

    def _tree(
        self, repo_id: str, revision: str, path: str, raw_path: str, query: Mapping[str, str]
    ) -> None:
        opened = self._open(repo_id, revision)
        if opened is None:
            return
        _, commit = opened
        recursive = query.get("recursive", "").lower() in ("1", "true")
        entries = commit.entries()
        if path and not any(e["path"] == path and e["type"] == "directory" for e in entries):
            self._send_error(
                HTTPStatus.NOT_FOUND,
                "EntryNotFound",
                f"{path} does not exist on {revision}",
                [("X-Repo-Commit", commit.sha)],
            )
            return
        if recursive:
            listed = [e for e in entries if not path or str(e["path"]).startswith(path + "/")]
        else:
            listed = [e for e in entries if _parent(str(e["path"])) == path]
        try:
            offset = int(base64.urlsafe_b64decode(query.get("cursor", "") or "MA==").decode())
        except (ValueError, binascii.Error):
            self._send_error(HTTPStatus.BAD_REQUEST, None, "Invalid cursor")
            return
        page_size = self.hub.page_size
        headers: list[tuple[str, str]] = []
        if offset + page_size < len(listed):
            cursor = base64.urlsafe_b64encode(str(offset + page_size).encode()).decode()
            params = {**query, "cursor": cursor}
            headers.append(("Link", f'<{self.hub.url}{raw_path}?{urlencode(params)}>; rel="next"'))
        self._send_json(HTTPStatus.OK, listed[offset : offset + page_size], headers)

    def _paths_info(self, repo_id: str, revision: str, body: bytes) -> None:
        opened = self._open(repo_id, revision)
        if opened is None:
            return
        _, commit = opened
        wanted = [
            value
            for key, value in parse_qsl(body.decode(), keep_blank_values=True)
            if key == "paths"
        ]
        by_path = {str(entry["path"]): entry for entry in commit.entries()}
        seen: set[str] = set()
        result: list[dict[str, Any]] = []
        for requested in wanted:
            path = requested.strip("/")
            if path in by_path and path not in seen:
                seen.add(path)
                result.append(by_path[path])
        self._send_json(HTTPStatus.OK, result)

    # -- file downloads --------------------------------------------------------------------------

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        opened = self._open(repo_id, revision)
        if opened is None:
            return
        _, commit = opened
        commit_header = ("X-Repo-Commit", commit.sha)
        fault = self.hub._take_fault(repo_id, path, self.command)
        stored = commit.files.get(path) if path else None
        if fault is not None and fault.kind == "status":
            injected = fault.status or 500
            code = "EntryNotFound" if injected == 404 else None
            self._send_error(injected, code, f"Injected fault: status {injected}", [commit_header])
            return
        if stored is None or (fault is not None and fault.kind == "missing"):
            self._send_error(
                HTTPStatus.NOT_FOUND, "EntryNotFound", "Entry not found", [commit_header]
            )
            return

        size = stored.size
        start, end = 0, size  # half-open byte range to send
        status: int = HTTPStatus.OK
        requested_range = self.headers.get("Range")
        if requested_range is not None and not (fault is not None and fault.kind == "ignore_range"):
            parsed = _parse_range(requested_range, size)
            if parsed is None:
                self._send_error(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                    None,
                    "Requested range not satisfiable",
                    [commit_header, ("Content-Range", f"bytes */{size}")],
                )
                return
            if parsed != "whole":
                start, end = parsed
                status = HTTPStatus.PARTIAL_CONTENT

        headers = [
            commit_header,
            ("ETag", f'"{stored.etag}"'),
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(end - start)),
            ("Accept-Ranges", "bytes"),
        ]
        if stored.lfs:
            headers += [("X-Linked-Etag", f'"{stored.sha256}"'), ("X-Linked-Size", str(size))]
        if status == HTTPStatus.PARTIAL_CONTENT:
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        self._start(status, headers)
        if self.command == "HEAD":
            return
        self._stream(memoryview(stored.data)[start:end], fault)

    def _stream(self, body: memoryview, fault: Fault | None) -> None:
        kind = fault.kind if fault is not None else None
        if kind == "corrupt" and len(body) > 0:
            flipped = bytearray(body)
            flipped[len(flipped) // 2] ^= 0xFF
            body = memoryview(bytes(flipped))
        half = len(body) // 2
        if kind == "truncate":
            self._write_chunks(body[:half])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)  # FIN before Content-Length is reached
            return
        if kind == "stall" and fault is not None:
            self._write_chunks(body[:half])
            self.wfile.flush()
            self.hub._stopping.wait(fault.seconds)
            self._write_chunks(body[half:])
            return
        self._write_chunks(body)

    def _write_chunks(self, body: memoryview) -> None:
        for offset in range(0, len(body), CHUNK_SIZE):
            self.wfile.write(body[offset : offset + CHUNK_SIZE])


def _parse_range(header: str, size: int) -> tuple[int, int] | Literal["whole"] | None:
    """``bytes=N-``, ``bytes=N-M`` or ``bytes=-K`` as a half-open range; None if unsatisfiable.

    A header that is not a single byte range gives ``"whole"``: it is ignored and the whole file
    is sent with 200, as RFC 9110 allows.
    """
    match = _RANGE_RE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return "whole"
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        return (max(size - suffix, 0), size) if suffix > 0 and size > 0 else None
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size or end <= start:
        return None
    return start, end


class FakeHub:
    """An in-process fake of the Hugging Face Hub HTTP API. Use as a context manager.

    ``page_size`` is the number of entries per tree page (the real Hub sends 1000).
    """

    def __init__(self, *, page_size: int = 1000) -> None:
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self.page_size = page_size
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._faults: dict[tuple[str, str], list[_FaultSlot]] = {}
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("FakeHub is already running")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fakehub-accept",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop accepting, drop open connections, and wait for handler threads to end."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes stalled transfers
        server.shutdown()
        thread.join(timeout)
        server.drop_connections(timeout)
        server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, usable as ``endpoint=`` for huggingface_hub."""
        if self._server is None:
            raise RuntimeError("FakeHub is not running")
        return f"http://127.0.0.1:{self._server.server_port}"

    def file_url(self, repo_id: str, path: str, revision: str = "main") -> str:
        """The ``/resolve`` URL of a file, encoded as ``huggingface_hub.hf_hub_url`` does."""
        return f"{self.url}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"

    # -- content ---------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        branch: str = "main",
        lfs: Callable[[str, bytes], bool] | None = None,
        gated_token: str | None = None,
        tags: Sequence[str] = (),
        model_tags: Sequence[str] = (),
    ) -> str:
        """Commit ``files`` as the complete new content of ``branch`` and return the commit sha.

        The repository is created on first use. Later calls add a commit on top of the branch
        head (the files given replace the previous snapshot; they are not merged into it). Older
        commits stay reachable by sha. ``tags`` are git tags created on the new commit;
        ``model_tags`` is the ``tags`` list of the model info. ``gated_token``, when given,
        gates the repository behind ``Authorization: Bearer <gated_token>``.
        """
        org, slash, name = repo_id.partition("/")
        if not org or not slash or not name or "/" in name:
            raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
        rule = lfs or default_lfs_rule
        stored = {
            path: StoredFile.build(path, bytes(data), lfs=rule(path, data))
            for path, data in files.items()
        }
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                repo = _Repo(repo_id, gated_token, list(model_tags))
                self._repos[repo_id] = repo
            else:
                if gated_token is not None:
                    repo.gated_token = gated_token
                if model_tags:
                    repo.model_tags = list(model_tags)
            parent = repo.branches.get(branch)
            sha = Commit.compute_sha(parent, stored)
            repo.commits.setdefault(sha, Commit(sha, parent, stored, time.time()))
            repo.branches[branch] = sha
            for tag in tags:
                repo.tags[tag] = sha
        return sha

    add_commit = add_repo

    def add_tag(self, repo_id: str, tag: str, commit: str) -> None:
        """Point ``tag`` at ``commit`` (a sha, branch or existing tag)."""
        with self._lock:
            repo = self._repos[repo_id]
            target = repo.resolve(commit)
            if target is None:
                raise KeyError(f"{repo_id} has no revision {commit!r}")
            repo.tags[tag] = target.sha

    def set_gated(self, repo_id: str, token: str | None) -> None:
        """Gate (or, with None, ungate) an existing repository."""
        with self._lock:
            self._repos[repo_id].gated_token = token

    def commit(self, repo_id: str, revision: str = "main") -> Commit:
        """The commit a revision resolves to (for assertions in tests)."""
        with self._lock:
            target = self._repos[repo_id].resolve(revision)
        if target is None:
            raise KeyError(f"{repo_id} has no revision {revision!r}")
        return target

    # -- faults ----------------------------------------------------------------------------------

    def inject(self, repo_id: str, path: str, fault: str, *, times: int = 1) -> None:
        """Serve ``fault`` on the next ``times`` requests it applies to for this file."""
        if times < 1:
            raise ValueError("times must be at least 1")
        parsed = Fault.parse(fault)
        with self._lock:
            self._faults.setdefault((repo_id, path), []).append(_FaultSlot(parsed, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- observability ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def errors(self) -> list[str]:
        """Tracebacks of exceptions raised inside the server (a bug in the fake if not empty)."""
        with self._lock:
            return list(self._errors)

    def iter_requests(
        self, method: str | None = None, contains: str = ""
    ) -> Iterator[RecordedRequest]:
        """Recorded requests filtered by method and by a substring of the unquoted path."""
        for request in self.requests:
            if (method is None or request.method == method) and contains in unquote(request.path):
                yield request

    # -- used by the handler ---------------------------------------------------------------------

    def _repo(self, repo_id: str) -> _Repo | None:
        with self._lock:
            return self._repos.get(repo_id)

    def _resolve_commit(self, repo: _Repo, revision: str) -> Commit | None:
        with self._lock:
            return repo.resolve(revision)

    def _take_fault(self, repo_id: str, path: str, method: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get((repo_id, path))
            if not queue:
                return None
            slot = queue[0]
            if method != "GET" and not slot.fault.affects_head:
                return None
            slot.remaining -= 1
            if slot.remaining <= 0:
                queue.pop(0)
            return slot.fault

    def _record_request(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)
