"""API tokens and roles for `modelctl serve`.

A token is `mctl_<key id>_<secret>`: the key id (16 hex) is public and indexes the row; the
secret is 32 random bytes (base64url). Only SHA-256 of the whole token is stored: the secret has
256 bits of entropy, so a slow password hash buys nothing. The token is shown once, when it is
created. Checking one is a lookup by key id and a constant-time comparison of the digests.

Roles are ordered: `reader` < `publisher` < `security` < `admin`; each may do what the roles
below it may (`PERMISSIONS` says which role an action needs). The caller owns the transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from attestations.utc import aware
from registry.db.ids import parse_row_id
from registry.db.models import ApiToken, AuditEvent
from registry.errors import InputError, NotFound
from registry.views import TokenCreated, TokenView

PREFIX = "mctl_"
_TOKEN = re.compile(r"mctl_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
MAX_SCOPE = 50


class Role(IntEnum):
    """Ordered: a role may do everything the roles below it may."""

    READER = 1
    PUBLISHER = 2
    SECURITY = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise InputError(
                f"unknown role {text!r}: expected reader, publisher, security or admin"
            ) from None


class Action(StrEnum):
    """What a caller may be allowed to do; the value is the name routes and the audit log use."""

    READ = "read"
    ADMISSION_CHECK = "admission.check"
    MIRROR = "mirror"
    SCAN = "scan"
    ATTEST = "attest"
    ATTESTATION_UPLOAD = "attestation.upload"
    QUARANTINE = "quarantine"
    RELEASE = "release"
    EXCEPTION_REQUEST = "exception.request"
    EXCEPTION_ADD = "exception.add"
    EXCEPTION_REVOKE = "exception.revoke"
    FINDING_TRIAGE = "finding.triage"
    AUDIT_READ = "audit.read"
    TOKEN_MANAGE = "token.manage"  # noqa: S105 (an action name, not a secret)


#: Which role each action needs (the least one; higher roles may too). Keyed by `Action`, a
#: `StrEnum`, so a lookup by the action's name (`PERMISSIONS["read"]`) finds the same entry.
PERMISSIONS: dict[Action, Role] = {
    # reads: models, checkpoints, files, attestations, scans, decisions; admission checks
    Action.READ: Role.READER,
    Action.ADMISSION_CHECK: Role.READER,
    # bringing checkpoints and evidence in
    Action.MIRROR: Role.PUBLISHER,
    Action.SCAN: Role.PUBLISHER,
    Action.ATTEST: Role.PUBLISHER,
    Action.ATTESTATION_UPLOAD: Role.PUBLISHER,
    # withdrawing and waiving
    Action.QUARANTINE: Role.SECURITY,
    Action.RELEASE: Role.SECURITY,
    Action.EXCEPTION_REQUEST: Role.PUBLISHER,  # asks; someone else approves (exception.add)
    Action.EXCEPTION_ADD: Role.SECURITY,
    Action.EXCEPTION_REVOKE: Role.SECURITY,
    Action.FINDING_TRIAGE: Role.SECURITY,  # request, approve (another principal), revoke
    Action.AUDIT_READ: Role.SECURITY,
    # who may talk to the registry at all
    Action.TOKEN_MANAGE: Role.ADMIN,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token (id, name, role) or, where reads are public, anonymous."""

    name: str
    role: Role
    token_id: int | None = None
    #: The environments this caller may name; None: every one (unscoped tokens, anonymous).
    environments: tuple[str, ...] | None = None

    @property
    def actor(self) -> str:
        """The audit log's name for this caller."""
        return f"token:{self.name}" if self.token_id is not None else self.name

    def may(self, action: Action | str) -> bool:
        """Whether this caller's role suffices (an unknown action name is a ValueError)."""
        return self.role >= PERMISSIONS[Action(action)]

    def may_use(self, environment: str) -> bool:
        """Whether the token's environment scope covers `environment`."""
        return self.environments is None or environment in self.environments


ANONYMOUS = Principal(name="anonymous", role=Role.READER)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _view(row: ApiToken) -> TokenView:
    return TokenView(
        id=row.id,
        name=row.name,
        role=row.role,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        environments=tuple(row.environments) if row.environments is not None else None,
    )


def check_scope(environments: Iterable[str] | None) -> tuple[str, ...] | None:
    """The scope as stored: valid environment names, deduplicated and sorted; None: all."""
    if environments is None:
        return None
    scope = tuple(sorted(set(environments)))
    if not scope:
        raise InputError("a token scope needs at least one environment (leave it out for all)")
    if len(scope) > MAX_SCOPE:
        raise InputError(f"a token scope names at most {MAX_SCOPE} environments")
    for env in scope:
        if not _ENVIRONMENT.fullmatch(env):
            raise InputError(f"bad environment name {env[:80]!r} in the token's scope")
    return scope


def create(
    session: Session,
    *,
    name: str,
    role: Role,
    actor: str,
    expires_at: datetime | None = None,
    now: datetime | None = None,
    environments: Iterable[str] | None = None,
) -> TokenCreated:
    """A new token; the returned `secret` is the only time it exists outside the caller.

    `environments` scopes it: `/hf/{env}`, the webhook, byte reads and admission checks refuse
    any other environment (None: every environment)."""
    now = now or datetime.now(UTC)
    scope = check_scope(environments)
    if not _NAME.fullmatch(name):
        raise InputError(f"bad token name {name!r}: 1-100 letters, digits, '.', '_', '@' or '-'")
    if expires_at is not None and expires_at <= now:
        raise InputError("the token's expiry must be in the future")
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise InputError(f"a token named {name!r} exists already (names are never reused)")
    key_id = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    token = f"{PREFIX}{key_id}_{secret}"
    row = ApiToken(
        key_id=key_id,
        name=name,
        role=role.label,
        secret_sha256=token_digest(token),
        created_at=now,
        created_by=actor,
        expires_at=expires_at,
        environments=list(scope) if scope is not None else None,
    )
    session.add(row)
    session.add(
        AuditEvent(
            actor=actor,
            action="token.create",
            subject=f"token:{name}",
            details={
                "role": role.label,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "environments": list(scope) if scope is not None else None,
            },
        )
    )
    session.flush()
    return TokenCreated(token=_view(row), secret=token)


def list_tokens(session: Session) -> list[TokenView]:
    return [_view(r) for r in session.scalars(select(ApiToken).order_by(ApiToken.id))]


def revoke(session: Session, key: str, *, actor: str, now: datetime | None = None) -> TokenView:
    """Revoke by id or name. Revoking twice is an error: the first revocation stands."""
    now = now or datetime.now(UTC)
    row_id = parse_row_id(key)
    query = select(ApiToken)
    query = (
        query.where(ApiToken.id == row_id)
        if row_id is not None
        else query.where(ApiToken.name == key)
    )
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"no token {key!r}")
    if row.revoked_at is not None:
        raise InputError(f"token {row.name!r} is already revoked")
    row.revoked_at = now
    row.revoked_by = actor
    session.add(
        AuditEvent(
            actor=actor, action="token.revoke", subject=f"token:{row.name}", details={"id": row.id}
        )
    )
    session.flush()
    return _view(row)


def authenticate(session: Session, token: str, *, now: datetime | None = None) -> Principal | None:
    """The principal a presented token stands for, or None (unknown, revoked, expired, bad).

    Steps: 1. parse `mctl_<key id>_<secret>` (anything else: None); 2. find the row by key id;
    3. compare SHA-256 digests in constant time; 4. refuse revoked or expired tokens.
    """
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.key_id == match.group(1)))
    if row is None:
        return None
    if not hmac.compare_digest(row.secret_sha256, token_digest(token)):
        return None
    if row.revoked_at is not None:
        return None
    now = now or datetime.now(UTC)
    if row.expires_at is not None and aware(row.expires_at) <= now:
        return None
    return _principal(row)


def _principal(row: ApiToken) -> Principal:
    """The one way a token row becomes a caller: role and environment scope together, for the
    API and for a browser session alike."""
    scope = tuple(row.environments) if row.environments is not None else None
    return Principal(name=row.name, role=Role.parse(row.role), token_id=row.id, environments=scope)


def token_principal(session: Session, token_id: int, *, now: datetime) -> Principal | None:
    """The caller a browser session stands for, re-read now: None once the token is revoked
    or expired (so a session never outlives its token, and a role change applies at once)."""
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and aware(row.expires_at) <= now:
        return None
    return _principal(row)
