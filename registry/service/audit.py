"""Reading the append-only audit log (writes happen where each state change happens)."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from attestations.utc import aware
from registry.db.models import AuditEvent
from registry.errors import InputError
from registry.requests import AuditQuery
from registry.views import AuditEventView

MAX_LIMIT = 1000


def record_forensic_read(
    session: Session, *, actor: str, subject: str, reason: str, method: str
) -> None:
    """A security principal read raw bytes without an environment's gate: who, what, why."""
    session.add(
        AuditEvent(
            actor=actor,
            action="bytes.forensic_read",
            subject=subject,
            details={"reason": reason, "method": method},
        )
    )
    session.flush()


def matching(query: AuditQuery) -> Select[AuditEvent]:
    """The one audit query: the events `query`'s filters select, unordered and unlimited.

    `modelctl audit`, `GET /v1/audit` (`events`) and the audit page and its exports
    (`registry.service.read.audit`) all filter through it. `query.limit` is not applied here:
    the log takes the newest `limit`, the page pages.
    """
    stmt = select(AuditEvent)
    if query.actor:
        stmt = stmt.where(AuditEvent.actor == query.actor)
    if query.action:
        stmt = (
            stmt.where(AuditEvent.action.startswith(query.action, autoescape=True))
            if query.action.endswith(".")
            else stmt.where(AuditEvent.action == query.action)
        )
    if query.subject:
        stmt = stmt.where(AuditEvent.subject.contains(query.subject, autoescape=True))
    if query.since:
        stmt = stmt.where(AuditEvent.at >= query.since)
    if query.until:
        stmt = stmt.where(AuditEvent.at < query.until)
    return stmt


def events(session: Session, query: AuditQuery) -> list[AuditEventView]:
    """The newest `query.limit` events matching `query`, newest first."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}")
    stmt = matching(query).order_by(AuditEvent.id.desc()).limit(query.limit)
    return [
        AuditEventView(
            id=row.id,
            at=aware(row.at),
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            details=dict(row.details or {}),
        )
        for row in session.scalars(stmt)
    ]
