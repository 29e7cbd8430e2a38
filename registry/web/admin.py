"""Administration (`/ui/admin`): API tokens (created, shown once, revoked) and signers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry.db.engine import unit_of_work
from registry.service import tokens, web_sessions
from registry.service.tokens import Role
from registry.web._plumbing import (
    Caller,
    FormBody,
    RowId,
    _actor,
    _expiry,
    _principal,
    _reader,
    _Redirect,
    _Refused,
    _registry,
    _signers,
    page,
    render,
)

router = APIRouter(include_in_schema=False)


def _admin(request: Request) -> Caller:
    caller = _reader(request)
    if not caller.may("token.manage"):
        raise _Refused(403, "tokens and signers are managed by an admin token")
    return caller


@router.get("/ui/admin")
@page
def admin_page(request: Request) -> Response:
    caller = _admin(request)
    return _admin_render(request, caller, None)


def _admin_render(request: Request, caller: Caller, created: Any) -> Response:
    with unit_of_work(_registry(request).sessions) as s:
        listed = tokens.list_tokens(s)
    return render(
        request,
        "admin.html",
        caller,
        tokens=listed,
        created=created,
        roles=[r.label for r in Role],
        signers=_signers(request),
        key_path=str(_registry(request).settings.signing_key_path),
    )


@router.post("/ui/admin/tokens")
@page
def create_token_action(request: Request, form: FormBody) -> Response:
    caller = _actor(request, form, "token.manage")
    expires = _expiry(form.get("expires")) if form.get("expires", "").strip() else None
    with unit_of_work(_registry(request).sessions) as s:
        created = tokens.create(
            s,
            name=form.get("name", "").strip(),
            role=Role.parse(form.get("role", "")),
            actor=_principal(caller).actor,
            expires_at=expires,
        )
    # Shown once, on this response only (never in a URL, a log or a redirect).
    return _admin_render(request, caller, created)


@router.post("/ui/admin/tokens/{token_id}/revoke")
@page
def revoke_token_action(request: Request, form: FormBody, token_id: RowId) -> Response:
    caller = _actor(request, form, "token.manage")
    with unit_of_work(_registry(request).sessions) as s:
        tokens.revoke(s, str(token_id), actor=_principal(caller).actor)
    raise _Redirect("/ui/admin?done=token-revoked")


@router.post("/ui/admin/sessions/end")
@page
def end_sessions_action(request: Request, form: FormBody) -> Response:
    caller = _actor(request, form, "token.manage")
    with unit_of_work(_registry(request).sessions) as s:
        web_sessions.end_all_sessions(s, form.get("principal", ""), actor=_principal(caller).actor)
    raise _Redirect("/ui/admin?done=sessions-ended")
