"""`/v1/log`: the transparency log served as c2sp.org/tlog-tiles static resources.

Read-only, for the reader role: `checkpoint` (mutable, not cached) and `tile/...` (immutable).
Paths are matched against the tlog-tiles grammar before they touch the file system, so no
request can name a file outside the log folder.
"""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from attestations.tlog import NoteVerifier
from registry.api.deps import registry_for
from registry.api.problems import PROBLEM_RESPONSES
from registry.embedded import EmbeddedRegistry
from registry.errors import NotFound, StorageError
from registry.tlog.key import log_verifier
from registry.tlog.verify import VerifiedTree, prove_inclusion, verify_tree
from registry.views import LogProof

router = APIRouter(prefix="/v1/log", responses=PROBLEM_RESPONSES, tags=["transparency log"])
Reader = Annotated[EmbeddedRegistry, Depends(registry_for("read"))]

# tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>]: L 0-63, N as x-prefixed 3-digit elements,
# W 1-255, no leading zeroes (c2sp.org/tlog-tiles).
_TILE = re.compile(
    r"(?:[0-9]|[1-5][0-9]|6[0-3]|entries)/(?:x[0-9]{3}/)*[0-9]{3}"
    r"(?:\.p/(?:[1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?"
)


def _read(registry: EmbeddedRegistry, relative: str) -> bytes:
    path = registry.settings.log_root / relative
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"no {relative} in the transparency log") from exc
    except OSError as exc:
        raise StorageError(f"cannot read the transparency log: {exc.strerror}") from exc


@router.get("/checkpoint", response_class=Response)
def checkpoint(registry: Reader) -> Response:
    """The signed checkpoint (c2sp.org/tlog-checkpoint), as the log wrote it."""
    return Response(
        _read(registry, "checkpoint"),
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/tile/{tile:path}", response_class=Response)
def tile(registry: Reader, tile: Annotated[str, Path(max_length=200)]) -> Response:
    """A Merkle tree tile or an entry bundle (c2sp.org/tlog-tiles)."""
    if _TILE.fullmatch(tile) is None:
        raise NotFound(f"tile/{tile:.200} is not a tlog-tiles path")
    return Response(
        _read(registry, f"tile/{tile}"),
        media_type="application/octet-stream",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


@router.get("/proof/{index}", response_model=LogProof)
def proof(
    request: Request, registry: Reader, index: Annotated[int, Path(ge=0, le=2**53)]
) -> dict[str, Any]:
    """Entry `index`, its RFC 6962 inclusion proof and the signed checkpoint it leads to.

    The server verifies its own log end to end (as `modelctl log verify`) once per checkpoint
    and cuts proofs from that verified tree until the log grows; a client checks the proof
    again against the checkpoint, with the log key it pinned.
    """
    verifier = log_verifier(registry.settings)
    if verifier is None:
        raise NotFound("the transparency log has no entries yet")
    tree = _verified_tree(request, registry, verifier)
    inclusion = prove_inclusion(tree, index)
    return {
        "index": index,
        "tree_size": tree.checkpoint.size,
        "entry": inclusion.entry.decode("utf-8", errors="replace"),
        "leaf_hash": base64.b64encode(inclusion.leaf_hash).decode(),
        "proof": [base64.b64encode(h).decode() for h in inclusion.proof],
        "checkpoint": tree.note.decode(),
        "key": verifier.vkey(),
    }


def _verified_tree(
    request: Request, registry: EmbeddedRegistry, verifier: NoteVerifier
) -> VerifiedTree:
    """The log verified end to end, kept per process while the checkpoint note is unchanged:
    a full verification reads every entry (0.6 s at 100,000), so one per new checkpoint, not
    one per request (a reader could otherwise keep the server busy)."""
    cached: VerifiedTree | None = getattr(request.app.state, "verified_log", None)
    if cached is not None and _read(registry, "checkpoint") == cached.note:
        return cached
    tree = verify_tree(registry.settings.log_root, verifier)
    request.app.state.verified_log = tree
    return tree
