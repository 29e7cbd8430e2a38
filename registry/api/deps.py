"""FastAPI dependencies: the registry handle, the caller, and the role a route needs.

In a route::

    @router.post("/things/{ref:path}/quarantine")
    def quarantine(
        ref: str,
        registry: Annotated[EmbeddedRegistry, Depends(registry_for("quarantine"))],
    ) -> dict[str, Any]:
        return registry.quarantine(ref, "why").to_json()  # audited as the token's name

`registry_for(action)` checks the caller may do `action` (see `registry.service.tokens
.PERMISSIONS`) and hands back the registry bound to the caller's identity, so every state change
is audited with it. `require(action)` gives the `Principal` alone; `get_registry` the unbound
handle (for reads that record nothing).

(No `from __future__ import annotations` here: FastAPI resolves the closures' annotations at
run time, and they name local variables.)
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from registry.api.problems import ApiProblem
from registry.db.engine import unit_of_work
from registry.embedded import EmbeddedRegistry
from registry.service import tokens
from registry.service.tokens import ANONYMOUS, PERMISSIONS, Action, Principal

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer mctl_…`")


def get_registry(request: Request) -> EmbeddedRegistry:
    """The one registry handle the app holds (`app.state.registry`)."""
    registry = request.app.state.registry
    assert isinstance(registry, EmbeddedRegistry)
    return registry


def get_principal(
    registry: Annotated[EmbeddedRegistry, Depends(get_registry)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The caller named by a bearer token; None when no token was sent.

    A token that was sent but is unknown, revoked or expired is a 401 whatever the route.
    """
    if credentials is None:
        return None
    with unit_of_work(registry.sessions) as session:
        principal = tokens.authenticate(session, credentials.credentials)
    if principal is None:
        raise ApiProblem(
            401,
            "token_invalid",
            "the API token is unknown, revoked or expired",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return principal


def require(name: Action | str) -> Callable[..., Principal]:
    """A dependency giving the caller, after checking their role allows the action."""
    action = Action(name)  # ValueError here is a programming error, caught at import
    needed = PERMISSIONS[action]

    def dependency(
        request: Request,
        principal: Annotated[Principal | None, Depends(get_principal)],
    ) -> Principal:
        if principal is None:
            if action is Action.READ and request.app.state.settings.public_reads:
                return ANONYMOUS
            raise ApiProblem(
                401,
                "token_required",
                f"this needs an API token with role {needed.label} or higher",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.may(action):
            raise ApiProblem(
                403,
                "role_insufficient",
                f"token {principal.name!r} has role {principal.role.label}; "
                f"{action} needs {needed.label} or higher",
            )
        return principal

    dependency.__name__ = f"require_{action.replace('.', '_')}"
    return dependency


def check_scope(principal: Principal, environment: str) -> None:
    """A 403 (`environment_out_of_scope`, one line) when the caller's token is scoped to other
    environments: a token made for prod cannot pick `/hf/dev` or review pods for dev."""
    if not principal.may_use(environment):
        scope = ", ".join(principal.environments or ())
        raise ApiProblem(
            403,
            "environment_out_of_scope",
            f"token {principal.name!r} is scoped to environment(s) {scope}, "
            f"not {environment[:100]!r}",
        )


def registry_for(action: Action | str) -> Callable[..., EmbeddedRegistry]:
    """A dependency giving the registry bound to the caller, after checking their role."""
    check = require(action)

    def dependency(
        registry: Annotated[EmbeddedRegistry, Depends(get_registry)],
        principal: Annotated[Principal, Depends(check)],
    ) -> EmbeddedRegistry:
        return registry.as_actor(principal.actor)

    dependency.__name__ = f"registry_for_{Action(action).replace('.', '_')}"
    return dependency


def require_role(action: Action | str) -> Callable[..., Principal]:
    """Alias of `require` (the brief's name)."""
    return require(action)
