"""File and blob responses: `ETag` (the sha256), `Content-Length`, single `Range`s, `HEAD`.

The bytes stream from the blob store through `serving.verified_chunks` (re-hashed; a mismatch
cuts the response short). Reads happen in worker threads, one chunk at a time; the file is
closed when the response ends, fails, or the client goes away.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import anyio
from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from registry.api.deps import check_scope
from registry.api.hf import gatekeeper
from registry.api.problems import ApiProblem
from registry.db.engine import unit_of_work
from registry.db.models import Checkpoint
from registry.embedded import EmbeddedRegistry
from registry.errors import IntegrityFailure
from registry.service import audit, serving
from registry.service.gate import WARNING_HEADER, admit_bytes, warning_header
from registry.service.tokens import Principal

log = logging.getLogger("modelctl.api")
_DONE = object()


async def _threaded(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(next, chunks, _DONE)
            if chunk is _DONE:
                return
            assert isinstance(chunk, bytes)
            yield chunk
    except IntegrityFailure as exc:
        log.error("refused to finish serving a blob: %s", exc.message)
        raise
    finally:
        # Closing the generator closes the blob file: on success, error or disconnect.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_close, chunks)


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if callable(close):
        close()


# -- the gate: bytes leave for an environment that admits them, or as an audited forensic read --


def gate_read(
    request: Request,
    registry: EmbeddedRegistry,
    principal: Principal,
    *,
    environment: str | None,
    reason: str | None,
    subject: str,
    holders: Callable[[Session], Sequence[Checkpoint]],
) -> dict[str, str]:
    """Let a byte read through, or raise; returns headers to add (the warn-mode failures).

    With `env`, the checkpoints `holders` finds are decided for that environment now, as pull
    and `/hf` decide (the token's scope must cover it). Without one, only an unscoped
    `security` token may read, and the read is audited (`bytes.forensic_read`, with `reason`).
    """
    if environment is None:
        _forensic_read(request, registry, principal, subject=subject, reason=reason)
        return {}
    check_scope(principal, environment)
    gate = gatekeeper(request, registry)
    with unit_of_work(registry.sessions) as session:
        decision = admit_bytes(session, gate, holders(session), environment, what=subject)
    warning = warning_header(decision, environment)
    return {WARNING_HEADER: warning} if warning else {}


def _forensic_read(
    request: Request,
    registry: EmbeddedRegistry,
    principal: Principal,
    *,
    subject: str,
    reason: str | None,
) -> None:
    if not principal.may("audit.read") or principal.environments is not None:
        raise ApiProblem(
            400,
            "environment_required",
            "reading bytes needs ?env=ENV, an environment whose policy admits the checkpoint "
            "(raw forensic reads without one need an unscoped security token)",
        )
    if request.method == "HEAD":
        return  # no bytes leave: nothing to audit
    with unit_of_work(registry.sessions) as session:
        audit.record_forensic_read(
            session,
            actor=principal.actor,
            subject=subject,
            reason=reason or "forensic",
            method=request.method,
        )


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {c.strip().removeprefix("W/") for c in header.split(",")}
    return "*" in candidates or etag in candidates


def blob_response(
    request: Request,
    registry: EmbeddedRegistry,
    sha256: str,
    size: int,
    *,
    filename: str = "",
    extra_headers: dict[str, str] | None = None,
) -> Response:
    etag = f'"{sha256}"'
    headers = {
        **(extra_headers or {}),
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=31536000, immutable",
        "X-Content-SHA256": sha256,
    }
    if filename:
        safe = "".join(c for c in filename.rsplit("/", 1)[-1] if c.isalnum() or c in "._-")
        headers["Content-Disposition"] = f'attachment; filename="{safe or "file"}"'
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    try:
        byte_range = serving.parse_range(request.headers.get("range"), size)
    except serving.RangeNotSatisfiable as exc:
        raise ApiProblem(
            416,
            "range_not_satisfiable",
            exc.message,
            headers={"Content-Range": f"bytes */{size}"},
        ) from exc
    status = 200
    length = size
    if byte_range is not None:
        status = 206
        length = byte_range.length
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    if size == 0:
        # Nothing to stream, but the (empty) blob is still checked.
        for _ in serving.verified_chunks(registry.blobs, sha256, 0):
            pass
        return Response(status_code=200, headers=headers, media_type="application/octet-stream")
    chunks = serving.verified_chunks(registry.blobs, sha256, size, byte_range)
    return StreamingResponse(
        _threaded(chunks),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )
