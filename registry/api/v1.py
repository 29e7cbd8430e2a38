"""`/v1`: the REST API. Each route checks the caller's role, calls the registry, returns views.

The shapes are `registry.views` `to_json()`: the same as `modelctl --json` (docs/api.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from registry.api.deps import get_registry, registry_for, require
from registry.api.problems import PROBLEM_RESPONSES
from registry.embedded import EmbeddedRegistry
from registry.interface import AuditQuery
from registry.service.tokens import Principal

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)

Reader = Annotated[EmbeddedRegistry, Depends(registry_for("read"))]
REF_QUERY = Query(
    min_length=3,
    max_length=500,
    description="NS/NAME, NS/NAME@sha256:DIGEST or NS/NAME@REV",
)


@router.get("/health", tags=["server"])
def health(registry: Annotated[EmbeddedRegistry, Depends(get_registry)]) -> dict[str, Any]:
    """Liveness and readiness: answers once the database is reachable."""
    registry.models_count()
    return {"status": "ok"}


@router.get("/whoami", tags=["server"])
def whoami(principal: Annotated[Principal, Depends(require("read"))]) -> dict[str, Any]:
    """The caller as the server sees them."""
    return {"name": principal.name, "role": principal.role.label, "actor": principal.actor}


@router.get("/models", tags=["models"])
def list_models(registry: Reader) -> dict[str, Any]:
    """Every model and its checkpoints (as `modelctl models --json`)."""
    return {"models": [m.to_json() for m in registry.models()]}


@router.get("/resolve", tags=["checkpoints"])
def resolve(registry: Reader, ref: Annotated[str, REF_QUERY]) -> dict[str, Any]:
    """The checkpoint a reference names (as `modelctl inspect --json`)."""
    return registry.inspect(ref).to_json()


# -- tokens (admin) ------------------------------------------------------------------------------


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="Unique; the audit log's actor.")
    role: Literal["reader", "publisher", "security", "admin"] = "reader"
    expires_at: datetime | None = Field(default=None, description="RFC 3339; none: no expiry.")


Admin = Annotated[EmbeddedRegistry, Depends(registry_for("token.manage"))]


@router.post("/tokens", tags=["tokens"], status_code=201)
def create_token(registry: Admin, body: TokenRequest) -> dict[str, Any]:
    """Create a token; the response is the only time its secret (`token`) is shown."""
    expires_at = body.expires_at
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return registry.token_create(body.name, body.role, expires_at=expires_at).to_json()


@router.get("/tokens", tags=["tokens"])
def list_tokens(registry: Admin) -> dict[str, Any]:
    """Every token, never a secret."""
    return {"tokens": [t.to_json() for t in registry.token_list()]}


@router.post("/tokens/{token}/revoke", tags=["tokens"])
def revoke_token(
    registry: Admin, token: Annotated[str, Path(min_length=1, max_length=100)]
) -> dict[str, Any]:
    """Revoke a token by id or name: every later request with it is a 401."""
    return registry.token_revoke(token).to_json()


# -- audit log (security) ------------------------------------------------------------------------


@router.get("/audit", tags=["audit"])
def audit_log(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("audit.read"))],
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    subject: Annotated[str | None, Query(max_length=500)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The append-only audit log, newest first, filtered (all filters AND)."""
    query = AuditQuery(
        actor=actor,
        action=action,
        subject=subject,
        since=_utc(since),
        until=_utc(until),
        limit=limit,
    )
    return {"events": [e.to_json() for e in registry.audit_log(query)]}


def _utc(ts: datetime | None) -> datetime | None:
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts
