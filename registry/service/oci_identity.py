"""One identity across representations: a checkpoint's OCI manifests and the statement binding
them.

`record` keeps, per checkpoint, each OCI manifest it was pushed as or mirrored from (registry,
repository, manifest digest, media type). `sign_identity` signs the identity statement
(attestations/identity.py, docs/formats/identity.md) over the checkpoint's digest, its files,
its hub source and those OCI manifests, reusing the newest one when nothing changed so a push
repeated is a push repeated. `checkpoints_for_oci_digest` is the admission webhook's look-up:
an OCI digest names bytes, so every checkpoint recorded under it, whatever its name.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from attestations.bundle import Bundle
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.identity import PREDICATE_TYPE, OciManifestRef, build_identity
from attestations.intoto import Statement
from attestations.keys import KeySigner
from registry.db.models import Attestation, Checkpoint, OciRepresentation
from registry.service.attest import store_attestation


def record(
    session: Session,
    checkpoint: Checkpoint,
    *,
    registry: str,
    repository: str,
    digest: str,
    media_type: str,
    origin: str,
    tag: str | None,
) -> OciRepresentation:
    """The row for this checkpoint at this place and digest, added when new."""
    hex_digest = digest.removeprefix("sha256:")
    for row in checkpoint.oci_representations:
        if (row.host, row.repository, row.manifest_digest) == (
            registry,
            repository,
            hex_digest,
        ):
            return row
    row = OciRepresentation(
        checkpoint=checkpoint,
        host=registry,
        repository=repository,
        manifest_digest=hex_digest,
        media_type=media_type,
        origin=origin,
        tag=tag,
    )
    session.add(row)
    session.flush()
    return row


def identity_statement(checkpoint: Checkpoint) -> Statement:
    return build_identity(
        name=checkpoint.model.full_name,
        checkpoint_digest=checkpoint.manifest_digest,
        files=[(f.path, f.sha256) for f in checkpoint.files],
        source_uri=checkpoint.source_uri,
        source_commit=checkpoint.source_commit,
        oci=[
            OciManifestRef(r.host, r.repository, f"sha256:{r.manifest_digest}", r.media_type)
            for r in checkpoint.oci_representations
        ],
    ).statement()


def sign_identity(session: Session, checkpoint: Checkpoint, signer: KeySigner) -> Attestation:
    """The identity attestation for the checkpoint as recorded now: the newest stored one when
    it says exactly this (same statement, same key), else a new one, signed and logged."""
    statement = identity_statement(checkpoint)
    payload = statement.to_payload()
    signed_by = f"key sha256:{signer.hint}"
    for row in reversed(checkpoint.attestations):
        if row.predicate_type != PREDICATE_TYPE:
            continue
        if row.signer == signed_by and Bundle.from_bytes(bytes(row.bundle)).envelope.payload == (
            payload
        ):
            return row
        break  # the newest differs: sign what is true now
    bundle = signer.sign(INTOTO_PAYLOAD_TYPE, payload)
    row = store_attestation(session, checkpoint, statement, bundle, signed_by)
    session.flush()
    return row


def checkpoints_for_oci_digest(session: Session, digest: str) -> list[Checkpoint]:
    """Every checkpoint recorded under this OCI manifest digest (any registry, any name), with
    what the gate reads on every review (quarantines by manifest and by file digest)."""
    query = (
        select(Checkpoint)
        .join(OciRepresentation, OciRepresentation.checkpoint_id == Checkpoint.id)
        .where(OciRepresentation.manifest_digest == digest.removeprefix("sha256:"))
        .options(selectinload(Checkpoint.quarantines), selectinload(Checkpoint.file_quarantines))
        .order_by(Checkpoint.id)
        .distinct()
    )
    return list(session.scalars(query))
