"""Reading the notification delivery log, newest first."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from attestations.utc import aware, aware_or_none
from registry.db.models import NotificationDelivery
from registry.errors import InputError
from registry.views import NotificationDeliveryView

STATES = ("pending", "delivered", "failed")
MAX_LIMIT = 1000


def deliveries(
    session: Session, *, state: str | None = None, limit: int = 100
) -> list[NotificationDeliveryView]:
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}")
    if state is not None and state not in STATES:
        raise InputError(f"state must be one of {', '.join(STATES)}")
    stmt = select(NotificationDelivery).order_by(NotificationDelivery.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(NotificationDelivery.state == state)
    return [
        NotificationDeliveryView(
            id=row.id,
            event_key=row.event_key,
            event=row.event,
            target=row.target,
            channel=row.channel,
            subject=row.subject,
            state=row.state,
            attempts=row.attempts,
            next_attempt_at=aware(row.next_attempt_at) if row.state == "pending" else None,
            last_error=row.last_error,
            created_at=aware(row.created_at),
            delivered_at=aware_or_none(row.delivered_at),
        )
        for row in session.scalars(stmt)
    ]
