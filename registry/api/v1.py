"""`/v1`: the REST API. Each route checks the caller's role, calls the registry, returns views.

The shapes are `registry.views` `to_json()`: the same as `modelctl --json` (docs/api.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from registry.api.deps import get_registry, registry_for, require
from registry.api.problems import PROBLEM_RESPONSES
from registry.embedded import EmbeddedRegistry
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
