"""`/hf/{env}/`: the part of the Hugging Face Hub API that `huggingface_hub` and `transformers`
use to download a model, serving only checkpoints admitted to `env` (docs/hf-endpoint.md).

    GET       /hf/{env}/api/models/{ns}/{name}                       model info at `main`
    GET       /hf/{env}/api/models/{ns}/{name}/revision/{rev}        model info at a revision
    GET       /hf/{env}/api/models/{ns}/{name}/tree/{rev}[/{path}]   tree listing (`Link` pages)
    POST      /hf/{env}/api/models/{ns}/{name}/paths-info/{rev}      form field `paths`
    HEAD|GET  /hf/{env}/{ns}/{name}/resolve/{rev}/{path}             file metadata / bytes

Every request decides now (registry.service.hf_view). Errors carry the Hub's `X-Error-Code`
(`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`) and `X-Error-Message`; a checkpoint that
is not admitted is a 403 whose message lists the failing checks. No `X-Xet-*` header and no
`xetHash` field is ever sent, so clients always download from `/resolve` over plain HTTP.

Revisions and file paths are taken from the raw (still percent-encoded) request path, split at
the first `/` after `resolve/` or `tree/`, exactly as `huggingface_hub` encodes them
(`quote(revision, safe="")`, `quote(path)`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote, urlencode

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from registry.api.deps import _bearer, check_scope, get_principal, get_registry, require
from registry.api.problems import ApiProblem
from registry.db.engine import unit_of_work
from registry.embedded import EmbeddedRegistry
from registry.errors import Denied, InputError, IntegrityFailure, RegistryError, UpstreamError
from registry.service import hf_view, proxy, serving
from registry.service.gate import WARNING_HEADER, Gatekeeper, warning_header
from registry.service.hf_view import (
    EntryNotFound,
    RepoNotFound,
    RevisionNotFound,
    ServedCheckpoint,
    ServedFile,
)
from registry.service.serving import RangeNotSatisfiable
from registry.service.tokens import Principal

log = logging.getLogger("modelctl.api.hf")
#: A `paths-info` form is a list of paths; more than this is not a model download.
MAX_FORM_BYTES = 1 << 20

router = APIRouter(prefix="/hf/{env}", tags=["huggingface"], include_in_schema=False)


# -- plumbing shared with the webhook --------------------------------------------------------


def gatekeeper(request: Request, registry: EmbeddedRegistry) -> Gatekeeper:
    """The registry's own policy set (MODELCTL_POLICY, else the shipped defaults: the one
    `policy check` and `pull` apply), the blob store and the registry's public key."""
    policies = registry.policy_set()
    # The public half of the registry's key, as `policy check` finds it (the .pub file beside
    # the key; only when that is missing, the decrypted key). Kept once found; it may not exist
    # before the first `attest`, so None is looked up again next time.
    public_key = getattr(request.app.state, "registry_public_key", None)
    if public_key is None:
        public_key = registry.registry_public_key()
        request.app.state.registry_public_key = public_key
    return Gatekeeper(policies=policies, blobs=registry.blobs, registry_public_key=public_key)


def _header(text: str, limit: int = 2000) -> str:
    """Header-safe: printable ASCII, one line, bounded (names and messages come from outside)."""
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def hf_error(
    status: int, code: str | None, message: str, *, commit: str | None = None
) -> JSONResponse:
    headers = {"X-Error-Message": _header(message)}
    if code is not None:
        headers["X-Error-Code"] = code
    if commit is not None:
        headers["X-Repo-Commit"] = commit
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def hf_reader(
    request: Request,
    env: str,
    registry: Annotated[EmbeddedRegistry, Depends(get_registry)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The read permission (public reads by setting) for a token whose scope covers `env`,
    with the Hub's `X-Error-Message` on a 401/403 so `huggingface_hub` shows the reason (it
    sends `HF_TOKEN` as a bearer token)."""
    try:
        principal = get_principal(registry, credentials)
        reader = require("read")(request, principal)
        check_scope(reader, env)
        return reader
    except ApiProblem as exc:
        exc.headers = {**exc.headers, "X-Error-Message": _header(exc.detail)}
        raise


Registry = Annotated[EmbeddedRegistry, Depends(get_registry)]
Reader = Annotated[Principal, Depends(hf_reader)]


def _pull_through_response(exc: RegistryError) -> JSONResponse | None:
    """503 with `Retry-After` while a pull-through mirror runs; 502 when it failed."""
    if isinstance(exc, proxy.MirrorPending):
        response = hf_error(503, None, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, UpstreamError):
        return hf_error(502, None, exc.message)
    return None


#: The Hub's error code for each "not found" the view raises.
_NOT_FOUND_CODES: tuple[tuple[type[RegistryError], str], ...] = (
    (RepoNotFound, "RepoNotFound"),
    (RevisionNotFound, "RevisionNotFound"),
)


def _error_response(exc: RegistryError) -> JSONResponse:
    pulled = _pull_through_response(exc)
    if pulled is not None:
        return pulled
    for cls, code in _NOT_FOUND_CODES:
        if isinstance(exc, cls):
            return hf_error(404, code, exc.message)
    if isinstance(exc, EntryNotFound):
        return hf_error(404, "EntryNotFound", exc.message, commit=exc.commit)
    if isinstance(exc, Denied):
        return hf_error(403, "NotAdmitted", exc.message)
    if isinstance(exc, IntegrityFailure):
        log.error("refusing to serve: %s", exc.message)
        return hf_error(500, None, f"integrity failure, nothing served: {exc.message}")
    if isinstance(exc, InputError):
        return hf_error(400, None, exc.message)
    raise exc


def _resolve(request: Request, registry: EmbeddedRegistry, env: str, repo: str, rev: str) -> Any:
    gate = gatekeeper(request, registry)
    source = proxy.source_for(repo, registry.settings.proxy_sources)
    with unit_of_work(registry.sessions) as session:
        if source is None:
            return hf_view.resolve(session, gate, repo, rev, env)
        # Pull-through: while the model's mirror runs, every request waits for its decision.
        proxy.check_pending(session, source)
        try:
            return hf_view.resolve(session, gate, repo, rev, env)
        except (RepoNotFound, RevisionNotFound):
            pass
    with unit_of_work(registry.sessions) as session:  # commits the job before answering 503
        pending = proxy.request_mirror(session, source, rev, name=repo)
    raise pending


def _warning(served: ServedCheckpoint, env: str) -> dict[str, str]:
    """`X-Modelctl-Warning` when the checkpoint is served with warn-mode failures."""
    warning = warning_header(served.decision, env)
    return {WARNING_HEADER: warning} if warning else {}


def _raw_tail(request: Request, marker: str) -> str:
    """The still-encoded part of the request path after `marker` (e.g. `/resolve/`)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    text = raw.decode("latin-1").split("?", 1)[0]
    _, found, tail = text.partition(marker)
    if not found:
        raise InputError("malformed path")
    return tail


def _split_rev(tail: str) -> tuple[str, str]:
    rev, _, rest = tail.partition("/")
    return unquote(rev), unquote(rest)


# -- model info ------------------------------------------------------------------------------


@router.get("/api/models/{ns}/{name}")
def model_info(
    request: Request, env: str, ns: str, name: str, registry: Registry, _who: Reader
) -> Response:
    return _model_info(request, registry, env, f"{ns}/{name}", "main")


@router.get("/api/models/{ns}/{name}/revision/{rest:path}")
def model_info_at(
    request: Request, env: str, ns: str, name: str, rest: str, registry: Registry, _who: Reader
) -> Response:
    rev = unquote(_raw_tail(request, f"/api/models/{ns}/{name}/revision/"))
    return _model_info(request, registry, env, f"{ns}/{name}", rev)


def _model_info(
    request: Request, registry: EmbeddedRegistry, env: str, repo: str, rev: str
) -> Response:
    blobs = request.query_params.get("blobs", "").lower() in ("1", "true")
    try:
        served: ServedCheckpoint = _resolve(request, registry, env, repo, rev)
    except RegistryError as exc:
        return _error_response(exc)
    return JSONResponse(served.model_info(blobs=blobs), headers=_warning(served, env))


# -- listings --------------------------------------------------------------------------------


@router.get("/api/models/{ns}/{name}/tree/{rest:path}")
def tree(
    request: Request, env: str, ns: str, name: str, rest: str, registry: Registry, _who: Reader
) -> Response:
    try:
        rev, path = _split_rev(_raw_tail(request, f"/api/models/{ns}/{name}/tree/"))
        path = path.strip("/")
        if path:
            serving.check_path(path)
        served: ServedCheckpoint = _resolve(request, registry, env, f"{ns}/{name}", rev)
        recursive = request.query_params.get("recursive", "").lower() in ("1", "true")
        entries = served.tree(path, recursive=recursive)
        chunk, cursor = hf_view.page(entries, request.query_params.get("cursor"))
    except RegistryError as exc:
        return _error_response(exc)
    headers = {"X-Repo-Commit": served.commit, **_warning(served, env)}
    if cursor is not None:
        query = {**dict(request.query_params), "cursor": cursor}
        url = request.url.replace(query=urlencode(query))
        headers["Link"] = f'<{url}>; rel="next"'
    return JSONResponse(chunk, headers=headers)


@router.post("/api/models/{ns}/{name}/paths-info/{rest:path}")
async def paths_info(
    request: Request, env: str, ns: str, name: str, rest: str, registry: Registry, _who: Reader
) -> Response:
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > MAX_FORM_BYTES:
            return hf_error(413, None, f"the form is larger than {MAX_FORM_BYTES} bytes")
    rev = unquote(_raw_tail(request, f"/api/models/{ns}/{name}/paths-info/"))
    wanted = [v for k, v in parse_qsl(body.decode("utf-8", "replace")) if k == "paths"]
    try:
        served: ServedCheckpoint = await run_in_threadpool(
            _resolve, request, registry, env, f"{ns}/{name}", rev
        )
    except RegistryError as exc:
        return _error_response(exc)
    entries = {str(e["path"]): e for e in served.tree("", recursive=True)}
    found: list[dict[str, Any]] = []
    for path in dict.fromkeys(p.strip("/") for p in wanted):
        if path in entries:
            found.append(entries[path])
    return JSONResponse(found, headers={"X-Repo-Commit": served.commit, **_warning(served, env)})


# -- files -----------------------------------------------------------------------------------


class VerifiedStreamResponse(Response):
    """Streams `serving.verified_chunks`; if the blob turns out not to match its signed digest,
    the response is left incomplete (short of its Content-Length) and the server closes the
    connection, so the client sees a failed transfer rather than the end of wrong bytes."""

    def __init__(
        self, body: Iterator[bytes], status_code: int, headers: dict[str, str], what: str
    ) -> None:
        super().__init__(content=None, status_code=status_code, headers=headers)
        self._chunks = body
        self.what = what

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = anyio.Event()

        async def watch() -> None:  # a client that hangs up stops the read of the blob
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch)
            try:
                await self._send_body(send, gone)
            finally:
                tasks.cancel_scope.cancel()
                close = getattr(self._chunks, "close", None)
                if close is not None:
                    await run_in_threadpool(close)  # the blob's file handle

    async def _send_body(self, send: Send, gone: anyio.Event) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        while not gone.is_set():
            try:
                chunk = await run_in_threadpool(next, self._chunks, b"")
            except IntegrityFailure as exc:
                log.error("%s: cut short, not completed: %s", self.what, exc.message)
                return  # uvicorn closes the incomplete response: the client sees it fail
            if not chunk:  # verified_chunks never yields an empty piece: this is the end
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


@router.api_route("/{ns}/{name}/resolve/{rest:path}", methods=["GET", "HEAD"])
def resolve_file(
    request: Request, env: str, ns: str, name: str, rest: str, registry: Registry, _who: Reader
) -> Response:
    served: ServedCheckpoint | None = None
    try:
        rev, path = _split_rev(_raw_tail(request, f"/{ns}/{name}/resolve/"))
        serving.check_path(path)
        served = _resolve(request, registry, env, f"{ns}/{name}", rev)
        assert served is not None
        file: ServedFile = served.file(path)
        span = serving.parse_range(request.headers.get("Range"), file.size)
        hf_view.check_blob(registry.blobs, file)
    except RangeNotSatisfiable as exc:
        response = hf_error(416, None, exc.message, commit=served.commit if served else None)
        response.headers["Content-Range"] = f"bytes */{exc.size}"
        return response
    except RegistryError as exc:
        return _error_response(exc)
    start, end = (span.start, span.end + 1) if span is not None else (0, file.size)
    headers = {
        "X-Repo-Commit": served.commit,
        "ETag": f'"{file.sha256}"',
        "X-Linked-Etag": f'"{file.sha256}"',
        "X-Linked-Size": str(file.size),
        "Content-Length": str(end - start),
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Last-Modified": served.created_at.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "X-Modelctl-Digest": served.digest,
        **_warning(served, env),
    }
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    body = serving.verified_chunks(registry.blobs, file.sha256, file.size, span)
    return VerifiedStreamResponse(body, status, headers, f"{served.name}@{served.digest}/{path}")
