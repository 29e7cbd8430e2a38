"""What is worth telling someone: audit events (and expiring exceptions) as notifications.

Each notification has a key that names its cause exactly once (`audit:<id>` for an audit event,
`exception:<id>:expires:<time>` for an expiry), so reading the same event twice delivers once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from attestations.utc import aware
from registry.db.models import AuditEvent, Checkpoint, WaiverRow
from registry.service.notify.config import EventKind

#: The audit actions a notification may follow from; the dispatcher reads only these.
ACTIONS = ("checkpoint.scan", "checkpoint.decide", "checkpoint.quarantine", "mirror.sync")
_SERIOUS = ("critical", "high")
_HISTORY = 50  # earlier events of one subject looked at to tell "new" from "again"


@dataclass(frozen=True, slots=True)
class Notification:
    key: str
    kind: EventKind
    at: datetime
    subject: str
    summary: str  # one line, for Slack and email subjects
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.key,
            "event": self.kind.value,
            "at": self.at.isoformat(),
            "subject": self.subject,
            "summary": self.summary,
            "details": self.details,
        }


def from_audit(session: Session, event: AuditEvent) -> Notification | None:
    """The notification `event` calls for, or None."""
    details = dict(event.details or {})
    key, at = f"audit:{event.id}", aware(event.at)
    if event.action == "checkpoint.quarantine":
        reason = str(details.get("reason", ""))
        return Notification(
            key,
            EventKind.QUARANTINED,
            at,
            event.subject,
            f"{event.subject} quarantined by {event.actor}: {reason}"[:500],
            {"actor": event.actor, **details},
        )
    if event.action == "mirror.sync":
        return Notification(
            key,
            EventKind.UPSTREAM_COMMIT,
            at,
            event.subject,
            f"new upstream commit {event.subject}: mirroring as {details.get('name', '?')}",
            details,
        )
    if event.action == "checkpoint.scan":
        return _findings(session, event, details)
    if event.action == "checkpoint.decide":
        return _denial(session, event, details)
    return None


def _serious(details: dict[str, Any]) -> dict[str, int]:
    counts = details.get("severities") or {}
    return {s: int(counts.get(s, 0)) for s in _SERIOUS} if isinstance(counts, dict) else {}


def _earlier(session: Session, event: AuditEvent) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.action == event.action,
                AuditEvent.subject == event.subject,
                AuditEvent.id < event.id,
            )
            .order_by(AuditEvent.id.desc())
            .limit(_HISTORY)
        )
    )


def _findings(session: Session, event: AuditEvent, details: dict[str, Any]) -> Notification | None:
    """Critical or high findings more than the checkpoint's previous scan found."""
    now = _serious(details)
    if not any(now.values()):
        return None
    earlier = _earlier(session, event)
    before = _serious(dict(earlier[0].details or {})) if earlier else {}
    if all(now[s] <= before.get(s, 0) for s in _SERIOUS):
        return None  # the same findings again (a re-scan): told already
    counts = ", ".join(f"{now[s]} {s}" for s in _SERIOUS if now[s])
    return Notification(
        f"audit:{event.id}",
        EventKind.FINDINGS,
        aware(event.at),
        event.subject,
        f"{event.subject}: scan found {counts} finding(s) (verdict {details.get('verdict')})",
        {"severities": now, "verdict": details.get("verdict"), "scanners": details.get("scanners")},
    )


def _denial(session: Session, event: AuditEvent, details: dict[str, Any]) -> Notification | None:
    """A recorded denial where the last decision recorded for that environment allowed."""
    if details.get("allowed") is not False:
        return None
    environment = details.get("environment")
    same_environment = (
        e for e in _earlier(session, event) if (e.details or {}).get("environment") == environment
    )
    previous = next(same_environment, None)
    if previous is None or (previous.details or {}).get("allowed") is not True:
        return None
    return Notification(
        f"audit:{event.id}",
        EventKind.DENIED,
        aware(event.at),
        event.subject,
        f"{event.subject} was allowed in {environment} and is now denied "
        f"(policy {details.get('policy')})",
        {"environment": environment, "policy": details.get("policy"), "actor": event.actor},
    )


def expiring_exceptions(session: Session, now: datetime, days: int) -> list[Notification]:
    """Exceptions in force that expire within `days`: one notification per exception."""
    rows = session.execute(
        select(WaiverRow, Checkpoint)
        .join(Checkpoint, Checkpoint.id == WaiverRow.checkpoint_id)
        .where(
            WaiverRow.revoked_at.is_(None),
            WaiverRow.expires_at > now,
            WaiverRow.expires_at <= now + timedelta(days=days),
        )
        .order_by(WaiverRow.id)
    )
    out: list[Notification] = []
    for exception, checkpoint in rows:
        expires = aware(exception.expires_at)
        subject = f"exception {exception.id} (checkpoint sha256:{checkpoint.manifest_digest})"
        out.append(
            Notification(
                f"exception:{exception.id}:expires:{expires.isoformat()}",
                EventKind.EXCEPTION_EXPIRING,
                now,
                subject,
                f"{subject} waiving {', '.join(exception.waive)} expires {expires.isoformat()}",
                {
                    "exception": exception.id,
                    "waive": list(exception.waive),
                    "environments": exception.environments,
                    "expires_at": expires.isoformat(),
                    "reason": exception.reason,
                },
            )
        )
    return out
