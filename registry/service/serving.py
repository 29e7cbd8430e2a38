"""Serving stored bytes and taking in attestations, for `modelctl serve`.

Bytes leave the blob store only re-hashed: `verified_chunks` reads the whole blob, hashing it,
yields the requested range, and holds back its last piece until the digest and size are
checked. On a mismatch it raises `IntegrityFailure` instead of yielding it, so the response
is cut short and the client never receives a complete body of bad bytes.

The one exception is a `Range` request to a store that reads ranges (`RangeReader`: the S3
store, whose digest keys hold only bytes verified before a conditional create): the range is
read alone, its length checked, and the whole blob is not read (docs/adr/0014).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from attestations.bundle import Bundle
from attestations.digests import Digest
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.errors import SignatureVerificationError
from attestations.intoto import Statement
from attestations.keys import PublicKeyVerifier, load_public_key
from registry.blobs.base import BlobReader, RangeReader
from registry.db.models import Attestation, AuditEvent, Checkpoint, CheckpointFile, Model
from registry.errors import InputError, IntegrityFailure, NotFound
from registry.refs import Ref
from registry.service.checkpoints import resolve_ref

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One `bytes=` range (RFC 9110 §14.1.2) clipped to `size`, or None for the whole file.

    A header we do not understand (other units, several ranges) is ignored: the whole file is
    sent. A range that starts past the end raises `RangeNotSatisfiable`.
    """
    unit, _, spec = (header or "").partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or "," in spec or not dash:
        return None
    try:
        if first == "":  # suffix: the last N bytes
            n = int(last)
            start, end = max(0, size - n), size - 1
            if n <= 0 or size == 0:
                raise RangeNotSatisfiable(size)
        else:
            start = int(first)
            end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        raise RangeNotSatisfiable(size)
    if start < 0 or end < start:
        return None
    return ByteRange(start, min(end, size - 1))


class RangeNotSatisfiable(InputError):
    def __init__(self, size: int) -> None:
        super().__init__(f"the range starts past the end of the file ({size} bytes)")
        self.size = size


def verified_chunks(
    blobs: BlobReader, sha256: str, size: int, byte_range: ByteRange | None = None
) -> Iterator[bytes]:
    """The bytes of `byte_range` (default: all) of blob `sha256`, checked before the end."""
    if byte_range is not None and byte_range.length < size and isinstance(blobs, RangeReader):
        yield from _range_chunks(blobs, sha256, byte_range)
        return
    want = byte_range or ByteRange(0, size - 1)
    h = hashlib.sha256()
    pos = 0
    pending: bytes | None = None
    with blobs.open(Digest(sha256)) as f:
        while data := f.read(CHUNK):
            h.update(data)
            lo, hi = max(want.start, pos), min(want.end + 1, pos + len(data))
            if lo < hi:
                if pending is not None:
                    yield pending
                pending = data[lo - pos : hi - pos]
            pos += len(data)
            if pos > size:
                break
    if pos != size or h.hexdigest() != sha256:
        raise IntegrityFailure(
            f"blob sha256:{sha256} does not match its digest or size in the store; it is not served"
        )
    if pending is not None:
        yield pending


def _range_chunks(blobs: RangeReader, sha256: str, byte_range: ByteRange) -> Iterator[bytes]:
    """One ranged read; a short read (the object is not the size the database says) is cut."""
    got = 0
    pending: bytes | None = None
    with blobs.open_range(Digest(sha256), byte_range.start, byte_range.end) as f:
        while data := f.read(CHUNK):
            got += len(data)
            if got > byte_range.length:
                break
            if pending is not None:
                yield pending
            pending = data
    if got != byte_range.length:
        raise IntegrityFailure(
            f"blob sha256:{sha256} is shorter or longer than the range asked of it; "
            "it is not served"
        )
    if pending is not None:
        yield pending


def file_of(checkpoint: Checkpoint, path: str) -> tuple[str, int]:
    """(sha256, size) of the file at exactly `path` in the checkpoint; hostile paths refused."""
    check_path(path)
    for f in checkpoint.files:
        if f.path == path:
            return f.sha256, f.size
    ref = f"{checkpoint.model.full_name}@sha256:{checkpoint.manifest_digest}"
    raise NotFound(f"{ref} has no file {path!r:.200}")


def attestation_of(checkpoint: Checkpoint, attestation_id: int) -> Attestation:
    for row in checkpoint.attestations:
        if row.id == attestation_id:
            return row
    raise NotFound(f"no attestation {attestation_id} for this checkpoint")


def accept_attestation(
    session: Session,
    checkpoint: Checkpoint,
    data: bytes,
    *,
    trusted_keys: list[bytes],
    actor: str,
) -> Attestation:
    """Verify an uploaded bundle, then keep it verbatim. Nothing is stored on any failure.

    1. It parses as a Sigstore bundle with a DSSE envelope (else `MalformedDocumentError`).
    2. Its signature verifies with one of `trusted_keys` (the registry's key and the keys in
       MODELCTL_TRUSTED_KEYS; else `SignatureVerificationError`).
    3. The payload is an in-toto Statement (payload type and shape; else the same errors).
    4. One of its subjects is the checkpoint's manifest digest (else `IntegrityFailure`).
    """
    bundle = Bundle.from_bytes(data)
    if not trusted_keys:
        raise SignatureVerificationError("no trusted keys are configured: nothing can verify")
    verified = PublicKeyVerifier([load_public_key(k) for k in trusted_keys]).verify(bundle)
    if verified.payload_type != INTOTO_PAYLOAD_TYPE:
        raise SignatureVerificationError(
            f"signed payload type is {verified.payload_type!r:.80}, not in-toto JSON"
        )
    statement = Statement.from_payload(verified.payload)
    subjects = {s.digest.get("sha256") for s in statement.subjects}
    if checkpoint.manifest_digest not in subjects:
        raise IntegrityFailure(
            f"the attestation's subject is not sha256:{checkpoint.manifest_digest} "
            "(this checkpoint's manifest digest)"
        )
    row = Attestation(
        checkpoint=checkpoint,
        predicate_type=statement.predicate_type,
        subject_digest=checkpoint.manifest_digest,
        signer=f"key sha256:{verified.signer.key_hint}",
        bundle=data,
        bundle_sha256=hashlib.sha256(data).hexdigest(),
    )
    session.add(row)
    session.add(
        AuditEvent(
            actor=actor,
            action="attestation.upload",
            subject=f"{checkpoint.model.full_name}@sha256:{checkpoint.manifest_digest}",
            details={
                "predicate_type": statement.predicate_type,
                "signer": row.signer,
                "bundle_sha256": row.bundle_sha256,
            },
        )
    )
    session.flush()
    return row


def find_file(session: Session, ref: Ref, path: str) -> tuple[str, int]:
    """(sha256, size) of `path` in the checkpoint `ref` names: one query for a digest ref."""
    if ref.digest is None:
        return file_of(resolve_ref(session, ref), path)
    check_path(path)
    row = session.execute(
        select(CheckpointFile.sha256, CheckpointFile.size)
        .join(Checkpoint, CheckpointFile.checkpoint_id == Checkpoint.id)
        .join(Model, Checkpoint.model_id == Model.id)
        .where(
            Model.namespace == ref.model.namespace,
            Model.name == ref.model.name,
            Checkpoint.manifest_digest == ref.digest.hex,
            CheckpointFile.path == path,
        )
    ).first()
    if row is None:
        return file_of(resolve_ref(session, ref), path)  # the precise NotFound
    return str(row[0]), int(row[1])


def check_path(path: str) -> None:
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(part in {"", ".", ".."} for part in path.split("/"))
    ):
        raise InputError(f"unsafe file path {path!r:.200}")
