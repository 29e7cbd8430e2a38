"""Checkpoints: mirror a source into one, list them, resolve references, show one.

Mirroring happens in two phases so that a crash leaves the old state or the new one:
1. bytes: every file streams into the content-addressed blob store (immutable, verified
   blobs; an orphan blob after a crash is harmless and reused by the next attempt);
2. record: the model, checkpoint, files, blobs and audit event are added to the caller's
   session, which commits them in one transaction.
"""

from __future__ import annotations

import fnmatch
import getpass
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from attestations.digests import Digest
from attestations.manifest import Manifest, ManifestEntry
from registry.blobs.base import BlobReader, BlobStore
from registry.db.models import (
    Attestation,
    AuditEvent,
    Blob,
    Checkpoint,
    CheckpointFile,
    CheckpointRevision,
    Model,
    Scan,
)
from registry.errors import AmbiguousReference, InputError, IntegrityFailure, NotFound
from registry.mirror.base import RemoteFile, Snapshot, Source
from registry.progress import Progress
from registry.refs import ModelName, Ref
from registry.scanners.backdoor.card import MAX_CARD_BYTES as CARD_HEAD_BYTES
from registry.scanners.backdoor.card import base_model_of
from registry.service import gc
from registry.service.storage import storage_by_model
from registry.service.transfer import FetchedFile, fetch_files
from registry.settings import Limits
from registry.views import (
    AttestationView,
    CheckpointSummary,
    CheckpointView,
    FileView,
    MirrorResult,
    MirrorStats,
    ModelSummary,
    OciRepresentationView,
    ScanView,
    SourceView,
    iso,
)


def current_actor() -> str:
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):
        return "local:unknown"


#: What `checkpoints.license` records for a checkpoint whose model card names no license (or
#: that has no README.md). NULL there means "not read yet" (recorded before migration 0009).
UNKNOWN_LICENSE = "unknown"
MODEL_CARD_BYTES = 64 * 1024
_LICENSE = re.compile(rb"^license:\s*['\"]?([A-Za-z0-9.+_-]+)", re.MULTILINE)


def card_base_model(files: Iterable[tuple[str, Digest]], blobs: BlobReader) -> str | None:
    """`base_model:` from the model card's YAML front matter (the first when it lists several);
    None when it declares none. `files` are (path, sha256) of the checkpoint."""
    card = next((d for path, d in files if path.lower() == "readme.md"), None)
    if card is None:
        return None
    with blobs.open(card) as f:
        return base_model_of(f.read(CARD_HEAD_BYTES))


def card_license(files: Iterable[tuple[str, Digest]], blobs: BlobReader) -> str | None:
    """`license:` from the model card's YAML front matter (README.md), lower-cased; None when
    there is no card or it names none. `files` are (path, sha256) of the checkpoint."""
    card = next((d for path, d in files if path.lower() == "readme.md"), None)
    if card is None:
        return None
    with blobs.open(card) as f:
        head = f.read(MODEL_CARD_BYTES)
    if not head.startswith(b"---"):
        return None
    front = head.split(b"\n---", 1)[0]
    match = _LICENSE.search(front)
    return match.group(1).decode().lower() if match else None


@dataclass(frozen=True, slots=True)
class FileFilter:
    """`--include` / `--exclude` globs, matched against the whole relative path (fnmatch)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def selects(self, path: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(path, g) for g in self.include):
            return False
        return not any(fnmatch.fnmatchcase(path, g) for g in self.exclude)


def select_files(snapshot: Snapshot, file_filter: FileFilter, limits: Limits) -> list[RemoteFile]:
    files = [f for f in snapshot.files if file_filter.selects(f.path)]
    if not files:
        raise InputError(f"{snapshot.uri}: no files to mirror (check --include / --exclude)")
    if len(files) > limits.max_files:
        raise InputError(f"{snapshot.uri}: {len(files)} files is more than {limits.max_files}")
    total = sum(f.size or 0 for f in files)
    if total > limits.max_total_size:
        raise InputError(f"{snapshot.uri}: {total} bytes is more than the total size limit")
    return files


@dataclass(frozen=True, slots=True)
class Transferred:
    """Phase 1 of a mirror: the snapshot's bytes are in the blob store, nothing recorded yet."""

    snapshot: Snapshot
    manifest: Manifest
    fetched: tuple[FetchedFile, ...]
    started: float
    license: str  # the model card's, or UNKNOWN_LICENSE
    base_model: str | None = None  # the model card's `base_model:`
    file_filter: FileFilter = FileFilter()
    #: Every file the source listed at the commit was selected (no filter left one out).
    complete: bool = False

    def stats(self) -> MirrorStats:
        return MirrorStats(
            files=len(self.fetched),
            bytes_total=self.manifest.total_size,
            bytes_transferred=sum(f.transferred for f in self.fetched),
            blobs_created=sum(1 for f in self.fetched if f.blob.created),
            blobs_reused=sum(1 for f in self.fetched if not f.blob.created),
            seconds=time.monotonic() - self.started,
        )


def transfer(
    *,
    source: Source,
    blobs: BlobStore,
    file_filter: FileFilter,
    limits: Limits,
    workers: int,
    progress: Progress,
) -> Transferred:
    """Pin the source, then stream every selected file into the blob store."""
    started = time.monotonic()
    snapshot = source.resolve()
    files = select_files(snapshot, file_filter, limits)
    where = snapshot.uri.split("://", 1)[-1]
    if snapshot.uri.startswith("file:"):
        where = where.rstrip("/").rsplit("/", 1)[-1]
    progress.begin(
        files=len(files),
        total_bytes=sum(f.size or 0 for f in files),
        description=f"{where}@{snapshot.commit[:7]}" if snapshot.commit else where,
    )
    try:
        fetched = fetch_files(source, snapshot, files, blobs, workers=workers, progress=progress)
    finally:
        progress.end()
    manifest = Manifest.build(ManifestEntry(f.path, f.blob.size, f.blob.digest) for f in fetched)
    license = card_license(((f.path, f.blob.digest) for f in fetched), blobs)
    base_model = card_base_model(((f.path, f.blob.digest) for f in fetched), blobs)
    return Transferred(
        snapshot=snapshot,
        manifest=manifest,
        fetched=tuple(fetched),
        started=started,
        license=license or UNKNOWN_LICENSE,
        base_model=base_model,
        file_filter=file_filter,
        complete=len(files) == len(snapshot.files),
    )


def mirror_result(
    checkpoint: Checkpoint, *, created: bool, transferred: Transferred
) -> MirrorResult:
    return MirrorResult(
        checkpoint=checkpoint_view(checkpoint), created=created, stats=transferred.stats()
    )


def record_checkpoint(
    session: Session,
    *,
    name: ModelName,
    snapshot: Snapshot,
    manifest: Manifest,
    fetched: Sequence[FetchedFile],
    actor: str,
    license: str | None = None,
    file_filter: FileFilter | None = None,
    complete: bool | None = None,
    base_model: str | None = None,
) -> tuple[Checkpoint, bool]:
    """Add the checkpoint to the session (idempotent for the same bytes under the same name).

    `license` is the model card's as `transfer` read it (UNKNOWN_LICENSE for none); None
    leaves the column as it is (NULL for a new checkpoint: filled when it is next decided)."""
    digest = manifest.digest
    commit = snapshot.commit or str(digest)  # a folder has no commit: its content pins it
    model = session.scalars(
        select(Model).where(Model.namespace == name.namespace, Model.name == name.name)
    ).one_or_none()
    if model is None:
        model = Model(namespace=name.namespace, name=name.name)
        session.add(model)
        session.flush()
    existing = session.scalars(
        select(Checkpoint)
        .where(Checkpoint.model_id == model.id, Checkpoint.manifest_digest == digest.hex)
        .options(selectinload(Checkpoint.files), selectinload(Checkpoint.revisions))
    ).one_or_none()
    created = existing is None
    if existing is None:
        _record_blobs(session, fetched)
        checkpoint = Checkpoint(
            model=model,
            manifest_digest=digest.hex,
            source_uri=snapshot.uri,
            source_commit=commit,
            file_count=len(manifest),
            total_size=manifest.total_size,
            license=license,
            base_model=base_model,
        )
        _record_cut(checkpoint, file_filter, complete)
        checkpoint.files = [
            CheckpointFile(path=e.path, size=e.size, sha256=e.sha256.hex) for e in manifest
        ]
        session.add(checkpoint)
    else:
        checkpoint = existing
        if checkpoint.license is None and license is not None:
            checkpoint.license = license
        if checkpoint.base_model is None and base_model is not None:
            checkpoint.base_model = base_model  # recorded before 0023
        # The same bytes mirrored again: a whole-commit mirror proves they are the whole commit.
        if complete is not None and (checkpoint.complete is None or complete > checkpoint.complete):
            _record_cut(checkpoint, file_filter, complete)
    if snapshot.requested_revision and snapshot.requested_revision not in {
        r.revision for r in checkpoint.revisions
    }:
        checkpoint.revisions.append(CheckpointRevision(revision=snapshot.requested_revision))
    session.add(
        AuditEvent(
            actor=actor,
            action="checkpoint.mirror",
            subject=f"{name}@{digest}",
            details={
                "source": snapshot.uri,
                "commit": commit,
                "revision": snapshot.requested_revision,
                "files": len(manifest),
                "bytes": manifest.total_size,
                "created": created,
                "include": list(file_filter.include) if file_filter else None,
                "exclude": list(file_filter.exclude) if file_filter else None,
                "complete": complete,
            },
        )
    )
    session.flush()
    return checkpoint, created


def _record_cut(
    checkpoint: Checkpoint, file_filter: FileFilter | None, complete: bool | None
) -> None:
    """How the checkpoint was cut from its source commit (the webhook's `hf://…:<commit>` rule)."""
    if file_filter is None or complete is None:
        return
    checkpoint.mirror_include = list(file_filter.include)
    checkpoint.mirror_exclude = list(file_filter.exclude)
    checkpoint.complete = complete


def _record_blobs(session: Session, fetched: Sequence[FetchedFile]) -> None:
    wanted = {f.blob.digest.hex: f.blob for f in fetched}
    known = set(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(list(wanted)))))
    for sha, blob in wanted.items():
        if sha not in known:
            session.add(Blob(sha256=sha, size=blob.size, storage_key=blob.key))
    # Referenced again: `modelctl gc` starts over; bytes it swept meanwhile refuse (service/gc).
    gc.take_blobs(
        session,
        reused=[f.blob.digest.hex for f in fetched if not f.blob.created],
        uploaded=[f.blob.digest.hex for f in fetched if f.blob.created],
    )
    session.flush()


# -- reading ------------------------------------------------------------------------------------


def list_models(
    session: Session,
    *,
    statuses: Mapping[tuple[int, str], Mapping[str, Any]] | None = None,
    environments: Sequence[str] = (),
) -> list[ModelSummary]:
    """Every model and its checkpoints; `statuses` (checkpoint id, environment) -> the live
    status as JSON (`live_status.LiveStatus.to_json`), shown per environment."""
    models = session.scalars(
        select(Model)
        .options(selectinload(Model.checkpoints).selectinload(Checkpoint.revisions))
        .order_by(Model.namespace, Model.name)
    ).all()
    found = statuses or {}
    usage = storage_by_model(session)
    return [
        ModelSummary(
            name=m.full_name,
            storage_bytes=usage.get(m.id, 0),
            checkpoints=tuple(
                CheckpointSummary(
                    digest=f"sha256:{c.manifest_digest}",
                    source=source_view(c),
                    created_at=c.created_at,
                    file_count=c.file_count,
                    total_size=c.total_size,
                    environments={
                        env: dict(found[(c.id, env)])
                        for env in environments
                        if (c.id, env) in found
                    },
                )
                for c in m.checkpoints
            ),
        )
        for m in models
    ]


def resolve_ref(session: Session, ref: Ref) -> Checkpoint:
    """The one checkpoint a reference names; an unknown or ambiguous one is an error."""
    model = session.scalars(
        select(Model).where(Model.namespace == ref.model.namespace, Model.name == ref.model.name)
    ).one_or_none()
    if model is None:
        raise NotFound(f"no model named {ref.model}")
    query = (
        select(Checkpoint)
        .where(Checkpoint.model_id == model.id)
        .options(
            selectinload(Checkpoint.files),
            selectinload(Checkpoint.revisions),
            selectinload(Checkpoint.evidence_attestations),
            selectinload(Checkpoint.scans),
        )
        .order_by(Checkpoint.id)
    )
    candidates = list(session.scalars(query).all())
    if ref.digest is not None:
        matches = [c for c in candidates if c.manifest_digest == ref.digest.hex]
    elif ref.revision is not None:
        rev = ref.revision
        by_commit = [
            c
            for c in candidates
            if c.source_commit == rev or (len(rev) >= 7 and c.source_commit.startswith(rev))
        ]
        matches = by_commit or [c for c in candidates if rev in {r.revision for r in c.revisions}]
    else:
        matches = candidates
    if not matches:
        raise NotFound(f"no checkpoint of {ref.model} matches {ref}")
    if len(matches) > 1:
        options = ", ".join(f"{ref.model}@sha256:{c.manifest_digest}" for c in matches[:5])
        raise AmbiguousReference(
            f"{ref} names {len(matches)} checkpoints; pick one by digest: {options}",
            reasons=[f"{ref.model}@sha256:{c.manifest_digest}" for c in matches],
        )
    return matches[0]


def inspect(session: Session, ref: Ref) -> CheckpointView:
    return checkpoint_view(resolve_ref(session, ref))


def checkpoint_view(checkpoint: Checkpoint) -> CheckpointView:
    files = sorted(checkpoint.files, key=lambda f: tuple(f.path.split("/")))
    return CheckpointView(
        name=checkpoint.model.full_name,
        digest=f"sha256:{checkpoint.manifest_digest}",
        source=source_view(checkpoint),
        base_model=checkpoint.base_model,
        created_at=checkpoint.created_at,
        files=tuple(FileView(path=f.path, size=f.size, sha256=f.sha256) for f in files),
        attestations=tuple(attestation_view(a) for a in checkpoint.attestations),
        scans=tuple(scan_view(s) for s in checkpoint.scans),
        decisions=tuple(
            {
                "environment": d.environment,
                "allowed": d.allowed,
                "mode": d.mode,
                "policy": {"name": d.policy_name, "digest": d.policy_digest},
                "evaluated_at": iso(d.evaluated_at),
                "expires_at": iso(d.expires_at) if d.expires_at else None,
                "attested": d.attestation_id is not None,
            }
            for d in checkpoint.decisions
        ),
        quarantine=next(
            (
                {
                    "reason": q.reason,
                    "by": q.actor,
                    "since": iso(q.created_at),
                    "kind": q.kind,  # checkpoint (its manifest digest) | file (a file's sha256)
                    "digest": f"sha256:{q.digest}",
                }
                for q in (*checkpoint.quarantines, *checkpoint.file_quarantines)
                if q.released_at is None
            ),
            None,
        ),
        oci=representation_views(checkpoint),
    )


def representation_views(checkpoint: Checkpoint) -> tuple[OciRepresentationView, ...]:
    """The OCI manifests a checkpoint was pushed as or mirrored from, oldest first."""
    return tuple(
        OciRepresentationView(
            registry=r.host,
            repository=r.repository,
            digest=f"sha256:{r.manifest_digest}",
            media_type=r.media_type,
            origin=r.origin,
            tag=r.tag,
        )
        for r in checkpoint.oci_representations
    )


def scan_view(row: Scan) -> ScanView:
    files = row.report.get("files", []) if isinstance(row.report, dict) else []
    return ScanView(
        id=row.id,
        scanner=row.scanner_id,
        version=row.scanner_version,
        ruleset_version=row.ruleset_version,
        verdict=row.verdict,
        started_at=row.started_at,
        finished_at=row.finished_at,
        attestation_id=row.attestation_id,
        flagged=sum(1 for f in files if isinstance(f, dict) and f.get("verdict") != "clean"),
    )


def manifest_of(checkpoint: Checkpoint) -> Manifest:
    """The checkpoint's manifest, rebuilt from the database and checked against its digest."""
    manifest = Manifest.build(
        ManifestEntry(f.path, f.size, Digest(f.sha256)) for f in checkpoint.files
    )
    if manifest.digest.hex != checkpoint.manifest_digest:
        raise IntegrityFailure(
            f"checkpoint sha256:{checkpoint.manifest_digest}: stored file list does not match it"
        )
    return manifest


def attestation_view(row: Attestation) -> AttestationView:
    return AttestationView(
        id=row.id,
        predicate_type=row.predicate_type,
        subject_digest=f"sha256:{row.subject_digest}",
        signer=row.signer,
        created_at=row.created_at,
        bundle_sha256=row.bundle_sha256,
        log_index=row.log_index,
    )


def source_view(checkpoint: Checkpoint) -> SourceView:
    include, exclude = checkpoint.mirror_include, checkpoint.mirror_exclude
    return SourceView(
        uri=checkpoint.source_uri,
        commit=checkpoint.source_commit,
        revisions=tuple(r.revision for r in checkpoint.revisions),
        include=tuple(include) if include is not None else None,
        exclude=tuple(exclude) if exclude is not None else None,
        complete=checkpoint.complete,
    )
