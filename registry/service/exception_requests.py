"""Request, then approve: an exception asked for by one person and granted by another.

A request waives nothing. Approval grants the exception through `admission.add_exception`
(same checks: never signatures, digests or quarantine; mandatory future expiry) with the
approver's name, so the decision path knows only one kind of exception. The requester may not
approve their own request (two people): both are authenticated principals (`token:NAME`,
`local:USER`), never free text. The waived ids must be ones the bound policies produce, and
the expiry within their `waivers.maxExpiry` (`policies.waivers`), checked on request and again
on approval (the policy may have changed in between). This is the only way to grant an
exception: CLI, API and UI alike. Every step is audited. The caller owns the transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from attestations.utc import aware
from policies.model import PolicySet
from policies.waivers import waiver_problem
from registry.db.models import AuditEvent, Checkpoint, ExceptionRequest, WaiverRow
from registry.errors import InputError, NotFound, TwoPersonRule
from registry.service import admission
from registry.views import ExceptionRequestView

MAX_REASON = 2000


def _ref(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.model.full_name}@sha256:{checkpoint.manifest_digest}"


def _check_waiver(
    policies: PolicySet,
    *,
    waive: list[str],
    environments: list[str] | None,
    expires_at: datetime,
    now: datetime,
) -> None:
    if expires_at.tzinfo is None:
        raise InputError("the expiry needs a time zone")
    if expires_at <= now:
        raise InputError(f"the expiry {expires_at.isoformat()} is in the past")
    problem = waiver_problem(
        policies, waive=waive, environments=environments, expires_at=expires_at, now=now
    )
    if problem is not None:
        raise InputError(problem)


def request(
    session: Session,
    checkpoint: Checkpoint,
    *,
    waive: list[str],
    reason: str,
    expires_at: datetime,
    environments: list[str] | None,
    actor: str,
    policies: PolicySet,
    now: datetime | None = None,
) -> ExceptionRequest:
    now = now or datetime.now(UTC)
    waive = sorted({w.strip() for w in waive if w.strip()})
    _check_waiver(policies, waive=waive, environments=environments, expires_at=expires_at, now=now)
    if not reason.strip():
        raise InputError("an exception request needs a reason")
    if len(reason) > MAX_REASON:
        raise InputError(f"the reason is longer than {MAX_REASON} characters")
    row = ExceptionRequest(
        checkpoint=checkpoint,
        waive=waive,
        environments=sorted(set(environments)) if environments else None,
        reason=reason.strip(),
        expires_at=expires_at,
        status="pending",
        requested_by=actor,
        requested_at=now,
    )
    session.add(row)
    session.flush()
    session.add(
        AuditEvent(
            actor=actor,
            action="exception.request",
            subject=_ref(checkpoint),
            details={
                "request": row.id,
                "waive": row.waive,
                "environments": row.environments,
                "expires_at": expires_at.isoformat(),
                "reason": row.reason,
            },
        )
    )
    session.flush()
    return row


def get(session: Session, request_id: int) -> ExceptionRequest:
    row = session.get(ExceptionRequest, request_id)
    if row is None:
        raise NotFound(f"no exception request {request_id}")
    return row


def _pending(session: Session, request_id: int) -> ExceptionRequest:
    row = get(session, request_id)
    if row.status != "pending":
        raise InputError(f"exception request {request_id} was already {row.status}")
    return row


def approve(
    session: Session,
    request_id: int,
    *,
    actor: str,
    policies: PolicySet,
    now: datetime | None = None,
) -> WaiverRow:
    """Grant the requested exception, named after its approver. Not by its requester."""
    now = now or datetime.now(UTC)
    row = _pending(session, request_id)
    if row.requested_by == actor:
        raise TwoPersonRule(
            f"an exception needs a second person: {actor} requested request {row.id} "
            "and may not approve it"
        )
    expires = aware(row.expires_at)
    environments = list(row.environments) if row.environments else None
    _check_waiver(
        policies, waive=list(row.waive), environments=environments, expires_at=expires, now=now
    )
    granted = admission.add_exception(
        session,
        row.checkpoint,
        waive=list(row.waive),
        reason=row.reason,
        approver=actor,
        requested_by=row.requested_by,
        expires_at=expires,
        environments=environments,
        actor=actor,
        now=now,
    )
    row.status = "approved"
    row.decided_by = actor
    row.decided_at = now
    row.exception_id = granted.id
    session.add(
        AuditEvent(
            actor=actor,
            action="exception.approve",
            subject=_ref(row.checkpoint),
            details={"request": row.id, "exception": granted.id, "requested_by": row.requested_by},
        )
    )
    session.flush()
    return granted


def reject(
    session: Session, request_id: int, *, actor: str, now: datetime | None = None
) -> ExceptionRequest:
    now = now or datetime.now(UTC)
    row = _pending(session, request_id)
    row.status = "rejected"
    row.decided_by = actor
    row.decided_at = now
    session.add(
        AuditEvent(
            actor=actor,
            action="exception.reject",
            subject=_ref(row.checkpoint),
            details={"request": row.id, "requested_by": row.requested_by},
        )
    )
    session.flush()
    return row


def list_requests(
    session: Session, *, status: str | None = None, checkpoint_id: int | None = None
) -> list[ExceptionRequest]:
    query = select(ExceptionRequest).order_by(ExceptionRequest.id.desc()).limit(500)
    if status is not None:
        query = query.where(ExceptionRequest.status == status)
    if checkpoint_id is not None:
        query = query.where(ExceptionRequest.checkpoint_id == checkpoint_id)
    return list(session.scalars(query))


def request_view(row: ExceptionRequest) -> ExceptionRequestView:
    return ExceptionRequestView(
        id=row.id,
        ref=_ref(row.checkpoint),
        waive=tuple(row.waive),
        environments=tuple(row.environments) if row.environments else None,
        reason=row.reason,
        expires_at=row.expires_at,
        status=row.status,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        decided_by=row.decided_by,
        exception_id=row.exception_id,
    )
