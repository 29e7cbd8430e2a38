"""Pull an admitted checkpoint out of the embedded registry: the database half.

The truth is the registry's *signed* model_signing v1.0 statement, never a database column:
`signed_checkpoint` takes the newest stored model-signature attestation of a checkpoint row
that verifies with the registry's public key; `registry/client/materialize.py` (database-free,
shared with the remote client) stages, verifies and installs the files, and says what lands
where for each layout. `record_pull` writes the audit event of a completed pull.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from attestations.model_signature import PREDICATE_TYPE
from registry.client.materialize import SignedCheckpoint, signed_from_bundles
from registry.db.models import AuditEvent, Checkpoint
from registry.views import PullResult

#: `SignedCheckpoint` is named here too, for the service modules that read a checkpoint row.
__all__ = ["SignedCheckpoint", "record_pull", "signed_checkpoint"]


def signed_checkpoint(
    checkpoint: Checkpoint, registry_public_key: bytes | None
) -> SignedCheckpoint:
    """The newest model signature of `checkpoint` that verifies now; IntegrityFailure if none."""
    rows = sorted(
        (a for a in checkpoint.evidence_attestations if a.predicate_type == PREDICATE_TYPE),
        key=lambda a: a.id,
        reverse=True,
    )
    return signed_from_bundles(
        name=checkpoint.model.full_name,
        manifest_digest=checkpoint.manifest_digest,
        commit=checkpoint.source_commit,
        bundles=[bytes(r.bundle) for r in rows],
        sizes={f.path: f.size for f in checkpoint.files},
        revisions=[r.revision for r in checkpoint.revisions],
        registry_public_key=registry_public_key,
    )


def record_pull(session: Session, result: PullResult, *, actor: str) -> None:
    """The audit event of a completed pull (who took which bytes where, under which decision)."""
    session.add(
        AuditEvent(
            actor=actor,
            action="checkpoint.pull",
            subject=f"{result.name}@{result.digest}",
            details={
                "environment": result.environment,
                "mode": result.decision.mode,
                "layout": result.layout,
                "destination": result.destination,
                "files": result.files,
                "bytes": result.bytes,
                "replaced": result.replaced,
            },
        )
    )
    session.flush()
