"""Exceptions: requested on a checkpoint's page, approved or rejected by another principal,
revoked, and listed on `/ui/exceptions`."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from attestations.utc import aware
from registry.db.engine import unit_of_work
from registry.errors import InputError
from registry.service import decide
from registry.service import exception_requests as requests_service
from registry.service.read import checkpoint as read_checkpoint
from registry.service.read import exceptions as read_exceptions
from registry.web._plumbing import (
    REQUEST_EXCEPTION_ROLE,
    FormBody,
    RowId,
    _actor,
    _checkpoint_url,
    _expiry,
    _hex,
    _policy_set,
    _principal,
    _reader,
    _redecide,
    _Redirect,
    _Refused,
    _registry,
    page,
    render,
)

router = APIRouter(include_in_schema=False)


@router.post("/ui/m/{namespace}/{name}/{digest}/exception-request")
@page
def exception_request_action(
    request: Request, form: FormBody, namespace: str, name: str, digest: str
) -> Response:
    caller = _actor(request, form, None)
    principal = _principal(caller)
    if principal.role < REQUEST_EXCEPTION_ROLE:
        raise _Refused(
            403,
            f"your token ({principal.name}) has role {principal.role.label}; "
            f"requesting an exception needs {REQUEST_EXCEPTION_ROLE.label} or higher",
        )
    expires = _expiry(form.get("expires", ""))
    envs = decide.environments(_policy_set(request))
    env = form.get("environment", "")
    if env and env not in envs:
        raise InputError(f"unknown environment {env!r}")
    waive = [w for w in form.get("waive", "").replace(",", " ").split() if w]
    with unit_of_work(_registry(request).sessions) as s:
        cp = read_checkpoint.get_checkpoint(s, namespace, name, _hex(digest))
        requests_service.request(
            s,
            cp,
            waive=waive,
            reason=form.get("reason", ""),
            expires_at=expires,
            environments=[env] if env else None,
            actor=principal.actor,
            policies=_policy_set(request),
        )
    raise _Redirect(_checkpoint_url(namespace, name, _hex(digest), "exceptions", "requested"))


@router.get("/ui/exceptions")
@page
def exceptions_page(request: Request) -> Response:
    caller = _reader(request)
    now = datetime.now(UTC)
    with unit_of_work(_registry(request).sessions) as s:
        granted = read_exceptions.exceptions(s)
        pending = requests_service.list_requests(s, status="pending")
        decided = [r for r in requests_service.list_requests(s) if r.status != "pending"][:50]
        return render(
            request,
            "exceptions.html",
            caller,
            granted=granted,
            pending=pending,
            decided=decided,
            now=now,
            aware=aware,
        )


def _request_target(s: Session, request_id: int) -> tuple[str, str]:
    row = requests_service.get(s, request_id)
    return row.checkpoint.model.full_name, row.checkpoint.manifest_digest


@router.post("/ui/exceptions/requests/{request_id}/approve")
@page
def approve_action(request: Request, form: FormBody, request_id: RowId) -> Response:
    caller = _actor(request, form, "exception.add")
    registry = _registry(request).as_actor(_principal(caller).actor)
    with unit_of_work(registry.sessions) as s:
        full, digest = _request_target(s, request_id)
        requests_service.approve(s, request_id, actor=registry.actor, policies=_policy_set(request))
    ref = f"{full}@sha256:{digest}"
    _redecide(request, registry, ref)
    ns, name = full.split("/", 1)
    raise _Redirect(_checkpoint_url(ns, name, digest, "policy", "approved"))


@router.post("/ui/exceptions/requests/{request_id}/reject")
@page
def reject_action(request: Request, form: FormBody, request_id: RowId) -> Response:
    caller = _actor(request, form, "exception.add")
    with unit_of_work(_registry(request).sessions) as s:
        requests_service.reject(s, request_id, actor=_principal(caller).actor)
    raise _Redirect("/ui/exceptions?done=rejected")


@router.post("/ui/exceptions/{exception_id}/revoke")
@page
def revoke_exception_action(request: Request, form: FormBody, exception_id: RowId) -> Response:
    caller = _actor(request, form, "exception.revoke")
    registry = _registry(request).as_actor(_principal(caller).actor)
    view = registry.exception_revoke(exception_id)
    _redecide(request, registry, view.ref)
    raise _Redirect("/ui/exceptions?done=revoked")
