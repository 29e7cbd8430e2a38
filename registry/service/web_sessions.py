"""Ending browser sessions on the server.

A session cookie is stateless: signed, carrying a random session id and the time it was issued
(`registry.web.session`). Deleting it in the browser at sign-out does not stop a copy of it (a
stolen cookie, a shared machine) from working until it expires, hours later. This module keeps
the two facts that end a session early, both checked on every request:

- a signed-out session id (`web_session_ends`), kept until the cookie would have expired;
- per principal, a cut-off time (`web_user_cutoffs`): every session issued before it is over
  ("sign out everywhere", or an admin ending a compromised account's sessions).

The caller owns the transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from registry.db.models import AuditEvent, WebSessionEnd, WebUserCutoff
from registry.errors import InputError

MAX_PRINCIPAL = 300


def end_session(session: Session, sid: str, *, issued: int, lifetime: int) -> None:
    """Refuse session `sid` from now on (idempotent). Prunes ends whose cookies expired."""
    now = datetime.now(UTC)
    session.execute(delete(WebSessionEnd).where(WebSessionEnd.expires_at < now))
    if session.get(WebSessionEnd, sid) is None:
        expires = datetime.fromtimestamp(issued + lifetime, UTC) + timedelta(minutes=5)
        session.add(WebSessionEnd(sid=sid, ended_at=now, expires_at=expires))
    session.flush()


def end_all_sessions(session: Session, principal: str, *, actor: str) -> int:
    """End every session `principal` holds now (issued up to this second); audited. Returns the
    cut-off (epoch seconds). Sessions signed in after it are unaffected."""
    principal = principal.strip()
    if not principal or len(principal) > MAX_PRINCIPAL:
        raise InputError(
            f"name whose sessions to end: 1 to {MAX_PRINCIPAL} characters, "
            "as the audit log writes it (oidc:alice@example.com, token:ci)"
        )
    # A session issued in this very second is ended too: cookies carry whole seconds.
    cutoff = int(datetime.now(UTC).timestamp()) + 1
    row = session.get(WebUserCutoff, principal)
    if row is None:
        session.add(WebUserCutoff(principal=principal, not_before=cutoff, set_by=actor))
    else:
        row.not_before = max(row.not_before, cutoff)
        row.set_by = actor
        row.set_at = datetime.now(UTC)
    session.add(
        AuditEvent(
            actor=actor,
            action="web.sessions.end",
            subject=principal,
            details={"not_before": cutoff},
        )
    )
    session.flush()
    return cutoff


def session_is_live(session: Session, sid: str, principal: str, issued: int) -> bool:
    """False when `sid` was signed out or its principal's sessions were ended after it began."""
    if session.get(WebSessionEnd, sid) is not None:
        return False
    cutoff = session.scalar(
        select(WebUserCutoff.not_before).where(WebUserCutoff.principal == principal)
    )
    return cutoff is None or issued >= cutoff
