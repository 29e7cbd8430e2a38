"""The findings page (`/ui/findings`): every scanner finding, filtered and paged, with its
triage state; and the triage actions (ADR 0025) the checkpoint and findings pages post to:
confirm (or withdraw it), request a false positive, approve one (a second person), assign.
Each is CSRF-checked and needs `finding.triage` (security); each is audited by the service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from registry.db.engine import unit_of_work
from registry.errors import InputError
from registry.service import findings as findings_service
from registry.service.read import common as read_common
from registry.service.read import findings as read_findings
from registry.web._plumbing import (
    Form,
    FormBody,
    RowId,
    _actor,
    _expiry,
    _int,
    _principal,
    _reader,
    _redecide,
    _Redirect,
    _registry,
    _resolve,
    _safe_next,
    page,
    render,
)

router = APIRouter(include_in_schema=False)
FindingId = Annotated[str, Path(pattern=r"^fnd-[0-9a-f]{24}$")]
TRIAGE = "finding.triage"


@router.get("/ui/findings")
@page
def findings_page(request: Request) -> Response:
    caller = _reader(request)
    params = request.query_params
    query = read_findings.FindingQuery(
        scanner=params.get("scanner", "")[:100],
        rule=params.get("rule", "")[:200],
        severity=params.get("severity", ""),
        status=params.get("status", ""),
        page=_int(params.get("page"), 1),
    )
    with unit_of_work(_registry(request).sessions) as s:
        rows, total = read_findings.findings(s, query)
        states = findings_service.triage_states(s, {r.id for r in rows}, datetime.now(UTC))
    base = {k: v for k, v in params.items() if k != "page" and v}
    here = "/ui/findings" + ("?" + urlencode(dict(params)) if params else "")
    return render(
        request,
        "findings.html",
        caller,
        query=query,
        rows=rows,
        states=states,
        here=here,
        total=total,
        pages=max(1, -(-total // query.per_page)),
        page_url=lambda n: "/ui/findings?" + urlencode({**base, "page": n}),
        severities=read_common.SEVERITIES,
    )


def _back(request: Request, form: Form, done: str, *, redecide: bool = False) -> _Redirect:
    """Back to the page the form came from (a path on this site), with a notice; when that
    page is a checkpoint's and the action can change a decision, decide it again."""
    target = urlsplit(_safe_next(form.get("next")))
    parts = target.path.split("/")
    if redecide and len(parts) == 6 and parts[1:3] == ["ui", "m"]:
        caller = _principal(_actor(request, form, TRIAGE))
        ref = _resolve(request, unquote(parts[3]), unquote(parts[4]), parts[5])
        _redecide(request, _registry(request).as_actor(caller.actor), ref)
    query = [(k, v) for k, v in parse_qsl(target.query) if k != "done"] + [("done", done)]
    return _Redirect(f"{target.path}?{urlencode(query)}")


@router.post("/ui/findings/{finding_id}/confirm")
@page
def confirm_action(request: Request, form: FormBody, finding_id: FindingId) -> Response:
    caller = _actor(request, form, TRIAGE)
    withdraw = form.get("withdraw") == "1"
    _registry(request).as_actor(_principal(caller).actor).finding_confirm(
        finding_id, withdraw=withdraw, reason=form.get("reason", "")
    )
    # Confirming can end a false positive: the decision may tighten.
    raise _back(
        request,
        form,
        "finding-unconfirmed" if withdraw else "finding-confirmed",
        redecide=not withdraw,
    )


@router.post("/ui/findings/{finding_id}/false-positive")
@page
def false_positive_action(request: Request, form: FormBody, finding_id: FindingId) -> Response:
    caller = _actor(request, form, TRIAGE)
    if not form.get("expires", "").strip():
        raise InputError("a false positive needs an expiry date (at most 90 days ahead)")
    expires = _expiry(form.get("expires", ""))
    _registry(request).as_actor(_principal(caller).actor).finding_triage(
        finding_id,
        decision=findings_service.FALSE_POSITIVE,
        reason=form.get("reason", ""),
        expires_at=expires,
    )
    raise _back(request, form, "finding-fp-requested")


@router.post("/ui/findings/triage/{request_id}/approve")
@page
def approve_action(request: Request, form: FormBody, request_id: RowId) -> Response:
    caller = _actor(request, form, TRIAGE)
    _registry(request).as_actor(_principal(caller).actor).finding_approve(request_id)
    raise _back(request, form, "finding-fp-approved", redecide=True)


@router.post("/ui/findings/{finding_id}/assign")
@page
def assign_action(request: Request, form: FormBody, finding_id: FindingId) -> Response:
    caller = _actor(request, form, TRIAGE)
    _registry(request).as_actor(_principal(caller).actor).finding_assign(
        finding_id, form.get("assignee", "").strip() or None
    )
    raise _back(request, form, "finding-assigned")
