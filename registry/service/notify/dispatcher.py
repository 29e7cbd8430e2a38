"""The dispatcher's steps; the worker (`registry.worker.Notifier`) runs them, never a request.

Each round:
1. reads the audit events after the stored cursor (looking back `LOOKBACK` ids, since on
   PostgreSQL a lower id can commit after a higher one) and the exceptions near expiry, and
   adds one delivery row per notification and subscribed target; the unique (event key,
   target) makes a second read a no-op, so delivery is at-least-once and logged once;
2. claims the due deliveries (pushing their next attempt a lease ahead, so another worker
   leaves them alone), commits, sends each outside any transaction, and records the outcome:
   delivered, or a retry after `backoff * 2**(attempts-1)`, or failed after `max_attempts`.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from attestations.utc import utc_now
from registry.db.models import AuditEvent, NotificationCursor, NotificationDelivery
from registry.service.notify.config import NotifyConfig, SmtpTarget
from registry.service.notify.events import ACTIONS, Notification, expiring_exceptions, from_audit

LOOKBACK = 200
BATCH = 500
CLAIM = 20
CLAIM_LEASE = timedelta(minutes=5)
_CURSOR = "audit"


def collect(
    session: Session, config: NotifyConfig, now: datetime, seen: AbstractSet[int] = frozenset()
) -> tuple[int, list[int]]:
    """Step 1: new notifications into the delivery log. Returns how many rows were added and
    the audit ids read; ids in `seen` (read by an earlier round that committed) are not read
    again, so the look-back costs a query a round, not a query per event."""
    cursor = session.get(NotificationCursor, _CURSOR)
    if cursor is None:  # first run: notify from now on, not about the whole history
        newest = session.scalar(select(func.max(AuditEvent.id))) or 0
        session.add(NotificationCursor(name=_CURSOR, audit_id=newest))
        session.flush()
        return 0, []
    floor = max(0, cursor.audit_id - LOOKBACK)
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.id > floor)
        .where(AuditEvent.action.in_(ACTIONS))
        .order_by(AuditEvent.id)
        .limit(BATCH)
    )
    skipped = [i for i in seen if i > floor]
    if skipped:
        stmt = stmt.where(AuditEvent.id.not_in(skipped))
    events = list(session.scalars(stmt))
    found = [n for n in (from_audit(session, e) for e in events) if n is not None]
    found += expiring_exceptions(session, now, config.expiry_days)
    added = _record(session, config, found)
    if events:
        cursor.audit_id = max(cursor.audit_id, events[-1].id)
    if len(events) < BATCH:  # nothing relevant left unread: skip past the irrelevant ones
        newest_any = session.scalar(select(func.max(AuditEvent.id))) or 0
        cursor.audit_id = max(cursor.audit_id, newest_any)
    session.flush()
    return added, [e.id for e in events]


def _record(session: Session, config: NotifyConfig, found: list[Notification]) -> int:
    if not found:
        return 0
    keys = {n.key for n in found}
    known = {
        (key, target)
        for key, target in session.execute(
            select(NotificationDelivery.event_key, NotificationDelivery.target).where(
                NotificationDelivery.event_key.in_(keys)
            )
        )
    }
    added = 0
    for notification in found:
        for target in config.targets_for(notification.kind):
            if (notification.key, target.name) in known:
                continue
            known.add((notification.key, target.name))
            session.add(
                NotificationDelivery(
                    event_key=notification.key,
                    event=notification.kind.value,
                    target=target.name,
                    channel="email" if isinstance(target, SmtpTarget) else "webhook",
                    subject=notification.subject,
                    payload=notification.to_json(),
                    state="pending",
                    attempts=0,
                    next_attempt_at=utc_now(),
                )
            )
            added += 1
    return added


def claim(session: Session, now: datetime) -> list[tuple[int, str, dict[str, object]]]:
    """Step 2a: the due deliveries, leased to this worker until `now + CLAIM_LEASE`.

    Each row is taken by a conditional UPDATE (still pending, still due) and kept only when it
    changed a row: two workers that read the same due rows never both send one (PostgreSQL
    also skips rows another worker has locked)."""
    stmt = (
        select(NotificationDelivery.id, NotificationDelivery.target, NotificationDelivery.payload)
        .where(NotificationDelivery.state == "pending")
        .where(NotificationDelivery.next_attempt_at <= now)
        .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
        .limit(CLAIM)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    claimed: list[tuple[int, str, dict[str, object]]] = []
    for delivery_id, target, payload in session.execute(stmt).all():
        taken = session.execute(
            update(NotificationDelivery)
            .where(
                NotificationDelivery.id == delivery_id,
                NotificationDelivery.state == "pending",
                NotificationDelivery.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + CLAIM_LEASE)
        )
        if getattr(taken, "rowcount", 0) == 1:
            claimed.append((delivery_id, target, dict(payload)))
    return claimed


def record_attempt(
    session: Session, delivery_id: int, config: NotifyConfig, error: str | None, now: datetime
) -> None:
    """Step 2c: delivered, or retried with exponential backoff, or failed for good."""
    row = session.get(NotificationDelivery, delivery_id)
    if row is None or row.state != "pending":
        return
    row.attempts += 1
    row.last_error = error
    if error is None:
        row.state, row.delivered_at = "delivered", now
    elif row.attempts >= config.max_attempts:
        row.state = "failed"
    else:
        row.next_attempt_at = now + timedelta(
            seconds=config.backoff_seconds * 2 ** (row.attempts - 1)
        )
    session.flush()
