"""`modelctl bundle export`: checkpoints and all their evidence in one streamed tar archive.

Archive order (docs/formats/airgap-bundle.md): `index.json` (the signed index) first, so an
importer verifies the signature before it reads another byte; then the registry's public key,
the attestation bundles, and each distinct blob once. Blobs stream from the store through a
hasher into the archive (memory flat); a blob whose bytes no longer match its digest stops the
export. The archive is written beside `--out` and renamed into place after fsync.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from attestations.airgap import (
    INDEX_MEMBER,
    KEY_MEMBER,
    BundledCheckpoint,
    BundleIndex,
    Member,
    attestation_member,
)
from attestations.digests import Digest
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.keys import KeySigner
from registry.blobs.base import BlobReader
from registry.db.models import AuditEvent, Checkpoint
from registry.errors import InputError, IntegrityFailure, StorageError
from registry.progress import Progress
from registry.service.checkpoints import manifest_of
from registry.service.pull import signed_checkpoint
from registry.views import BundleResult, iso

CHUNK = 1 << 20
#: Fixed member metadata: a bundle says nothing about the exporting machine's users or clock.
_MTIME = 0


def bundled_checkpoint(
    checkpoint: Checkpoint, registry_public_key: bytes | None
) -> BundledCheckpoint:
    """What the index says of one checkpoint. Refused unless a model signature by the
    registry verifies for it now: a bundle carries evidence, and that is the root of it."""
    signed_checkpoint(checkpoint, registry_public_key)  # IntegrityFailure: attest it first
    rows = sorted(checkpoint.attestations, key=lambda a: a.id)
    return BundledCheckpoint(
        name=checkpoint.model.full_name,
        manifest=manifest_of(checkpoint),
        source_uri=checkpoint.source_uri,
        commit=checkpoint.source_commit,
        revisions=tuple(r.revision for r in checkpoint.revisions),
        license=checkpoint.license,
        attestations=tuple(
            Member(
                attestation_member(Digest(a.bundle_sha256)), Digest(a.bundle_sha256), len(a.bundle)
            )
            for a in rows
        ),
        decisions=tuple(
            {
                "environment": d.environment,
                "allowed": d.allowed,
                "mode": d.mode,
                "policy": {"name": d.policy_name, "digest": d.policy_digest},
                "evaluated_at": iso(d.evaluated_at),
                "attested": d.attestation_id is not None,
            }
            for d in sorted(checkpoint.decisions, key=lambda d: d.id)
        ),
    )


def export_bundle(
    checkpoints: Sequence[Checkpoint],
    *,
    blobs: BlobReader,
    signer: KeySigner,
    registry_public_key: bytes,
    tool_version: str,
    out: Path,
    progress: Progress,
) -> BundleResult:
    """Write the bundle to `out` (temp file, fsync, rename); nothing is left on failure."""
    entries = [bundled_checkpoint(c, registry_public_key) for c in checkpoints]
    attestation_bytes = {
        a.bundle_sha256: bytes(a.bundle) for c in checkpoints for a in c.attestations
    }
    index = BundleIndex(
        checkpoints=tuple(entries),
        public_key=Member(
            KEY_MEMBER,
            Digest(hashlib.sha256(registry_public_key).hexdigest()),
            len(registry_public_key),
        ),
        created_at=datetime.now(UTC),
        tool_version=tool_version,
    )
    signed_index = signer.sign(INTOTO_PAYLOAD_TYPE, index.to_statement().to_payload()).to_bytes()
    total = sum(m.size for m in index.blobs())
    progress.begin(files=len(index.blobs()), total_bytes=total, description="export")
    temp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        with open(temp, "xb") as raw:
            with tarfile.open(
                fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK
            ) as tar:
                _add_bytes(tar, INDEX_MEMBER, signed_index)
                _add_bytes(tar, KEY_MEMBER, registry_public_key)
                for member in index.members()[1:]:
                    if member.path.startswith("attestations/"):
                        _add_bytes(tar, member.path, attestation_bytes[member.sha256.hex])
                    else:
                        _add_blob(tar, member, blobs, progress)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, out)
    except FileExistsError as exc:
        raise StorageError(f"{temp} exists: another export is writing there") from exc
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        progress.end()
    return BundleResult(
        path=str(out),
        checkpoints=tuple(f"{e.name}@{e.digest}" for e in entries),
        files=sum(len(e.manifest) for e in entries),
        bytes=total,
        attestations=len(attestation_bytes),
    )


def audit_export(
    checkpoints: Sequence[Checkpoint], result: BundleResult, actor: str
) -> list[AuditEvent]:
    return [
        AuditEvent(
            actor=actor,
            action="checkpoint.export",
            subject=f"{c.model.full_name}@sha256:{c.manifest_digest}",
            details={"bundle": result.path, "bytes": result.bytes},
        )
        for c in checkpoints
    ]


def check_out_path(out: Path) -> None:
    if out.exists() or out.is_symlink():
        raise InputError(f"{out} already exists; refusing to overwrite it")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent} is not a folder")


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = _MTIME
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


class _HashingReader(io.RawIOBase):
    """Reads a blob for tarfile, hashing and counting every byte on the way out."""

    def __init__(self, source: BinaryIO, progress: Progress) -> None:
        self.source = source
        self.hash = hashlib.sha256()
        self.size = 0
        self.progress = progress

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.hash.update(data)
        self.size += len(data)
        self.progress.advance(len(data))
        return data


def _add_blob(tar: tarfile.TarFile, member: Member, blobs: BlobReader, progress: Progress) -> None:
    with blobs.open(member.sha256) as f:
        reader = _HashingReader(f, progress)
        try:
            tar.addfile(_info(member.path, member.size), reader)
        except OSError as exc:
            if reader.size >= member.size:
                raise  # the archive side failed: a storage error
            raise IntegrityFailure(
                f"blob {member.sha256} in the store is shorter than recorded: not exported"
            ) from exc
        rest = f.read(1)  # a blob longer than its recorded size is not the recorded blob
    if rest or reader.size != member.size or reader.hash.hexdigest() != member.sha256.hex:
        raise IntegrityFailure(
            f"blob {member.sha256} in the store does not match its digest: not exported"
        )
