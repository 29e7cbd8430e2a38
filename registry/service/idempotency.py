"""Idempotent writes: a retried request with the same `Idempotency-Key` gets the first answer.

The semantics follow the IETF draft "The Idempotency-Key HTTP Header Field": the first request
with a key does the work and its response (any status below 500) is kept for `RETENTION`; a
repeat with the same key and the same request gets that response again; the same key for a
different request is refused (422); a repeat while the first is still running is refused (409,
retry later). A 5xx is not kept, so the client may retry it. Keys belong to the caller that
chose them (`scope`): one caller can never see another's response.

Correctness under races rests on the database's unique constraint on (scope, key): of two
requests that arrive at once on two servers, exactly one inserts the `pending` row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from attestations.utc import aware, utc_now
from registry.db.models import IdempotencyKey

#: How long a response is kept for replay.
RETENTION = timedelta(hours=24)
#: A `pending` row older than this belongs to a server that died mid-request: the key is free.
ABANDONED_AFTER = timedelta(minutes=10)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Proceed:
    """No earlier request with this key: do the work (row `row_id` holds the key meanwhile)."""

    row_id: int


@dataclass(frozen=True, slots=True)
class Replay:
    """The same request was answered before: send this again."""

    status: int
    content_type: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class Refuse:
    """The key cannot be used for this request now (409 in flight, 422 another request)."""

    status: int
    reason: str
    detail: str


Outcome = Proceed | Replay | Refuse


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and all(0x21 <= ord(c) <= 0x7E for c in key)


def _existing(session: Session, scope: str, key: str) -> IdempotencyKey | None:
    return session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
    ).one_or_none()


def begin(session: Session, scope: str, key: str, fingerprint: str) -> Outcome:
    """Claim `key` for a request, or say what to answer instead. Commits its own row (the
    caller passes a fresh session), so other servers see the claim at once."""
    now = utc_now()
    # Expired keys are dropped as they are met: the table holds one day of writes at most.
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - RETENTION))
    row = _existing(session, scope, key)
    if row is not None and row.state == "pending" and aware(row.created_at) < now - ABANDONED_AFTER:
        session.delete(row)
        session.flush()
        row = None
    if row is None:
        row = IdempotencyKey(
            scope=scope, key=key, fingerprint=fingerprint, state="pending", created_at=now
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # another server claimed it between our read and our insert
            session.rollback()
            row = _existing(session, scope, key)
            if row is None:  # and it has already given the key back (a 5xx): try again
                return Refuse(409, "conflict", "a request with this Idempotency-Key just failed")
        else:
            return Proceed(row.id)
    if row.fingerprint != fingerprint:
        return Refuse(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request; use a new key",
        )
    if row.state == "pending":
        return Refuse(
            409, "conflict", "a request with this Idempotency-Key is still in progress; retry"
        )
    return Replay(int(row.status or 200), row.content_type, bytes(row.body or b""))


def finish(
    session: Session, row_id: int, status: int, content_type: str | None, body: bytes
) -> None:
    """Keep the response for replay, or give the key back when the server failed (5xx)."""
    row = session.get(IdempotencyKey, row_id)
    if row is None:
        return
    if status >= 500:
        session.delete(row)
    else:
        row.state = "done"
        row.status = status
        row.content_type = content_type
        row.body = body
    session.commit()
