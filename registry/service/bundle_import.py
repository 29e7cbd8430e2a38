"""`modelctl bundle import`: verify an air-gap bundle completely, then register it at once.

Reading (`read_bundle`), one pass over the stream, memory flat:
1. The first member is `index.json`, a Sigstore bundle; its DSSE signature verifies with a key
   this registry trusts (its own, MODELCTL_TRUSTED_KEYS, `--trust-key`), never with the key the
   archive carries (else `SignatureVerificationError`, exit 1).
2. The payload is an in-toto statement with the bundle-index predicate; every file list matches
   its checkpoint's digest and every path is safe (else `MalformedDocumentError` /
   `UnsafePathError`, exit 2: the input cannot be read as a bundle).
3. The blob store has room for the bytes it does not already hold (else `StorageError`, exit 2).
4. Every further member is one the index names (by path, regular file, listed size), once
   (all headers are checked before any byte is written); its bytes hash to the listed digest
   as they stream into the blob store, several blobs at once (else `IntegrityFailure`, exit 1).
   Nothing is taken from a member's name: paths come from digests.
5. No member the index names is missing (else `IntegrityFailure`), checked with step 4's headers.
6. Every attestation verifies with a trusted key and names its checkpoint; each checkpoint has
   a model signature whose files are exactly its manifest (else exit 1).
Blobs stored in step 4 are content-addressed and unreferenced until registration, so a refused
bundle registers nothing. `register_bundle` then records every checkpoint and attestation in
the caller's one unit of work.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy.orm import Session

from attestations.airgap import INDEX_MEMBER, MAX_INDEX_BYTES, BundleIndex, Member
from attestations.bundle import Bundle
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.errors import AttestationError, SignatureVerificationError
from attestations.intoto import Statement
from attestations.keys import PublicKeyVerifier, load_public_key
from attestations.model_signature import (
    PREDICATE_TYPE as MODEL_SIGNATURE,
)
from attestations.model_signature import (
    compare_resources,
    resources_from_manifest,
    verify_model_signature,
)
from registry.blobs.base import BlobStore, StoredBlob, blob_key
from registry.db.models import AuditEvent, Checkpoint, CheckpointRevision
from registry.errors import InputError, IntegrityFailure, StorageError
from registry.mirror.base import Snapshot
from registry.progress import Progress
from registry.refs import ModelName
from registry.service.checkpoints import record_checkpoint
from registry.service.serving import accept_attestation
from registry.service.transfer import SPACE_MARGIN, FetchedFile

CHUNK = 4 << 20


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    """A bundle that passed every check; its blobs are in the store, nothing is registered."""

    index: BundleIndex
    signer: str  # key sha256:… that signed the index
    attestations: dict[str, bytes]  # bundle sha256 hex -> the bundle, verbatim
    stored: dict[str, StoredBlob]  # blob sha256 hex -> where it is
    new_bytes: int


def read_bundle(
    stream: BinaryIO,
    *,
    label: str,
    trusted_keys: Sequence[bytes],
    blobs: BlobStore,
    progress: Progress,
    workers: int = 1,
) -> VerifiedBundle:
    try:
        # "r:" (not the pipe mode "r|"): headers are parsed by tarfile, member bytes are read
        # straight from the file into one reused buffer (see `_member_chunks`).
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            return _read(
                tar,
                stream,
                label=label,
                trusted_keys=trusted_keys,
                blobs=blobs,
                progress=progress,
                workers=workers,
            )
    except (tarfile.TarError, EOFError) as exc:
        raise InputError(f"{label}: not a readable bundle (tar): {exc}") from exc


def _read(
    tar: tarfile.TarFile,
    stream: BinaryIO,
    *,
    label: str,
    trusted_keys: Sequence[bytes],
    blobs: BlobStore,
    progress: Progress,
    workers: int,
) -> VerifiedBundle:
    first = tar.next()
    if first is None or first.name != INDEX_MEMBER or not first.isreg():
        raise InputError(f"{label}: not a modelctl bundle (the first member is not {INDEX_MEMBER})")
    if first.size > MAX_INDEX_BYTES:
        raise InputError(f"{label}: the bundle index is over {MAX_INDEX_BYTES} bytes")
    index, signer = _verified_index(_read_all(stream, first), trusted_keys)  # steps 1, 2
    _check_space(blobs, index.blobs(), label)  # step 3
    chosen = _members(tar, index, label)  # steps 4a, 5
    small: dict[str, bytes] = {}
    for info, member in chosen:
        if not member.path.startswith("blobs/"):
            data = _read_all(stream, info)
            if hashlib.sha256(data).hexdigest() != member.sha256.hex:
                raise IntegrityFailure(f"{label}: {member.path} does not match its digest")
            small[member.path] = data
    jobs = [(i, m) for i, m in chosen if m.path.startswith("blobs/")]
    stored, new_bytes = _store_blobs(stream, jobs, blobs, progress, label=label, workers=workers)
    attestations = {m.sha256.hex: small[m.path] for c in index.checkpoints for m in c.attestations}
    _verify_evidence(index, attestations, trusted_keys, label)  # step 6
    return VerifiedBundle(
        index=index, signer=signer, attestations=attestations, stored=stored, new_bytes=new_bytes
    )


def _members(
    tar: tarfile.TarFile, index: BundleIndex, label: str
) -> list[tuple[tarfile.TarInfo, Member]]:
    """Steps 4a and 5: every header, before any byte is written (`next()` seeks over member
    data and raises on an archive that ends early); each one named by the index, once, a
    regular file of the listed size; none missing."""
    expected = {m.path: m for m in index.members()}
    chosen: list[tuple[tarfile.TarInfo, Member]] = []
    seen: set[str] = set()
    while (info := tar.next()) is not None:
        member = expected.get(info.name)
        if member is None or info.name in seen:
            what = "listed twice" if info.name in seen else "not named by the signed index"
            raise IntegrityFailure(f"{label}: member {ascii(info.name)[:120]} is {what}")
        if not info.isreg() or info.size != member.size:
            raise IntegrityFailure(
                f"{label}: member {member.path} is not the regular file of "
                f"{member.size} bytes the index lists"
            )
        seen.add(info.name)
        chosen.append((info, member))
    missing = [path for path in expected if path not in seen]
    if missing:
        raise IntegrityFailure(
            f"{label}: {len(missing)} member(s) the index lists are missing, e.g. {missing[0]}"
        )
    return chosen


def _store_blobs(
    stream: BinaryIO,
    jobs: Sequence[tuple[tarfile.TarInfo, Member]],
    blobs: BlobStore,
    progress: Progress,
    *,
    label: str,
    workers: int,
) -> tuple[dict[str, StoredBlob], int]:
    """Step 4b: the blobs, several at once (hashing and writing release the GIL); each member
    is a byte range of the file, read with pread, so the workers share no file position."""
    stored: dict[str, StoredBlob] = {}
    new_bytes = 0
    progress.begin(files=len(jobs), total_bytes=sum(m.size for _, m in jobs), description=label)
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
            futures = [pool.submit(_store_blob, stream, i, m, blobs, progress) for i, m in jobs]
            try:
                for (_, member), future in zip(jobs, futures, strict=True):
                    blob, created = future.result()
                    stored[member.sha256.hex] = blob
                    new_bytes += member.size if created else 0
                    progress.file_done(member.path, reused=not created)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    finally:
        progress.end()
    return stored, new_bytes


def _read_all(stream: BinaryIO, info: tarfile.TarInfo) -> bytes:
    """A small member's bytes (the index, the key, an attestation: each size-capped)."""
    return b"".join(bytes(chunk) for chunk in _member_chunks(stream, info))


def _verified_index(data: bytes, trusted_keys: Sequence[bytes]) -> tuple[BundleIndex, str]:
    bundle = Bundle.from_bytes(data)
    if not trusted_keys:
        raise SignatureVerificationError(
            "no trusted keys: pass --trust-key with the exporting registry's public key "
            "(or set MODELCTL_TRUSTED_KEYS)"
        )
    verified = PublicKeyVerifier([load_public_key(k) for k in trusted_keys]).verify(bundle)
    if verified.payload_type != INTOTO_PAYLOAD_TYPE:
        raise SignatureVerificationError("the bundle index is not a signed in-toto statement")
    index = BundleIndex.from_statement(Statement.from_payload(verified.payload))
    return index, f"key sha256:{verified.signer.key_hint}"


def _check_space(blobs: BlobStore, members: Sequence[Member], label: str) -> None:
    free = blobs.free_space()
    if free is None:
        return
    needed = sum(m.size for m in members if not blobs.exists(m.sha256))
    if needed + SPACE_MARGIN > free:
        raise StorageError(
            f"{label}: too large for the blob store's disk: {needed} bytes to write, "
            f"{free} bytes free; nothing was written"
        )


def _member_chunks(stream: BinaryIO, info: tarfile.TarInfo) -> Iterator[memoryview]:
    """The member's bytes, in chunks of one reused buffer (valid until the next chunk).
    Positional reads: safe from several threads on one file."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    fd = stream.fileno()
    offset, left = info.offset_data, info.size
    while left:
        want = min(CHUNK, left)
        n = os.preadv(fd, [view[:want]], offset)
        if not n:
            raise InputError(f"member {ascii(info.name)[:120]} is cut short")
        offset += n
        left -= n
        yield view[:n]


def _store_blob(
    stream: BinaryIO,
    info: tarfile.TarInfo,
    member: Member,
    blobs: BlobStore,
    progress: Progress,
) -> tuple[StoredBlob, bool]:
    """Stream one blob into the store, verified by digest and size; (blob, newly written)."""
    if blobs.exists(member.sha256):
        # Held already: the archive's copy is still read and checked (a tampered bundle is
        # refused whatever this store holds), but not written.
        h = hashlib.sha256()
        for chunk in _member_chunks(stream, info):
            h.update(chunk)
            progress.advance(len(chunk))
        if h.hexdigest() != member.sha256.hex:
            raise IntegrityFailure(f"{member.path}: sha256 mismatch with the signed index")
        key = blob_key(member.sha256)
        return StoredBlob(member.sha256, member.size, key, None, created=False), False
    with blobs.upload(
        expected_sha256=member.sha256, expected_size=member.size, label=member.path
    ) as upload:
        for chunk in _member_chunks(stream, info):
            upload.write(chunk)
            progress.advance(len(chunk))
        blob = upload.commit()
    return blob, blob.created


def _verify_evidence(
    index: BundleIndex, attestations: dict[str, bytes], trusted_keys: Sequence[bytes], label: str
) -> None:
    verifier = PublicKeyVerifier([load_public_key(k) for k in trusted_keys])
    for checkpoint in index.checkpoints:
        ref = f"{checkpoint.name}@{checkpoint.digest}"
        signed = False
        for member in checkpoint.attestations:
            bundle = Bundle.from_bytes(attestations[member.sha256.hex])
            try:
                envelope = verifier.verify(bundle)
                statement = Statement.from_payload(envelope.payload)
            except AttestationError as exc:
                raise SignatureVerificationError(
                    f"{label}: an attestation of {ref} does not verify: {exc.message}"
                ) from exc
            if checkpoint.digest.hex not in {s.digest.get("sha256") for s in statement.subjects}:
                raise IntegrityFailure(
                    f"{label}: an attestation listed for {ref} is about another subject"
                )
            if statement.predicate_type == MODEL_SIGNATURE:
                verified = verify_model_signature(bundle, verifier)
                compare_resources(
                    verified.predicate.resources, resources_from_manifest(checkpoint.manifest)
                )
                signed = True
        if not signed:
            raise IntegrityFailure(f"{label}: {ref} has no model signature in the bundle")


def register_bundle(
    session: Session,
    verified: VerifiedBundle,
    *,
    trusted_keys: list[bytes],
    actor: str,
    label: str,
) -> list[Checkpoint]:
    """Record every checkpoint and attestation of a verified bundle (idempotent)."""
    out: list[Checkpoint] = []
    for entry in verified.index.checkpoints:
        checkpoint, _ = record_checkpoint(
            session,
            name=ModelName.parse(entry.name),
            snapshot=Snapshot(
                uri=entry.source_uri, requested_revision=None, commit=entry.commit, files=()
            ),
            manifest=entry.manifest,
            fetched=[
                FetchedFile(path=e.path, blob=verified.stored[e.sha256.hex], transferred=0)
                for e in entry.manifest
            ],
            actor=actor,
            license=entry.license,
        )
        known_revisions = {r.revision for r in checkpoint.revisions}
        for revision in entry.revisions:
            if revision not in known_revisions:
                checkpoint.revisions.append(CheckpointRevision(revision=revision))
        have = {a.bundle_sha256 for a in checkpoint.attestations}
        for member in entry.attestations:
            if member.sha256.hex not in have:
                accept_attestation(
                    session,
                    checkpoint,
                    verified.attestations[member.sha256.hex],
                    trusted_keys=trusted_keys,
                    actor=actor,
                )
        session.add(
            AuditEvent(
                actor=actor,
                action="checkpoint.import",
                subject=f"{entry.name}@{entry.digest}",
                details={
                    "bundle": label,
                    "index_signer": verified.signer,
                    "attestations": len(entry.attestations),
                    "decisions_recorded_by_exporter": list(entry.decisions),
                },
            )
        )
        out.append(checkpoint)
    session.flush()
    return out
