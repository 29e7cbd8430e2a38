"""The exceptions page: the registry's exceptions with their model name and digest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import Checkpoint, Model, WaiverRow


@dataclass(frozen=True, slots=True)
class ExceptionRow:
    """One registry exception (a waiver) as the pages show it."""

    id: int
    checkpoint_id: int
    waive: tuple[str, ...]
    environments: tuple[str, ...] | None  # None: every environment
    reason: str
    approver: str
    requested_by: str | None
    expires_at: datetime
    revoked_at: datetime | None


def exceptions(session: Session) -> list[tuple[ExceptionRow, str, str]]:
    """Registry exceptions with their model name and digest, newest first."""
    return [
        (_row(w), f"{ns}/{name}", digest)
        for w, ns, name, digest in session.execute(
            select(WaiverRow, Model.namespace, Model.name, Checkpoint.manifest_digest)
            .join(Checkpoint, Checkpoint.id == WaiverRow.checkpoint_id)
            .join(Model, Model.id == Checkpoint.model_id)
            .order_by(WaiverRow.id.desc())
            .limit(500)
        )
    ]


def _row(w: WaiverRow) -> ExceptionRow:
    return ExceptionRow(
        id=w.id,
        checkpoint_id=w.checkpoint_id,
        waive=tuple(w.waive),
        environments=tuple(w.environments) if w.environments is not None else None,
        reason=w.reason,
        approver=w.approver,
        requested_by=w.requested_by,
        expires_at=w.expires_at,
        revoked_at=w.revoked_at,
    )
