"""The audit record of a person signing in to the web UI through single sign-on (tokens are
created and revoked on the record already; a person has no row, so the sign-in is the record)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from registry.db.models import AuditEvent


def record_sign_in(session: Session, *, actor: str, role: str, issuer: str) -> None:
    """Append `web.sign-in` for `actor` (e.g. "oidc:alice@example.com"); the caller commits."""
    session.add(
        AuditEvent(
            actor=actor,
            action="web.sign-in",
            subject=actor,
            details={"role": role, "issuer": issuer},
        )
    )
