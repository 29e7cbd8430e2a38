"""The notification delivery log (`/ui/notifications`): what was sent where, and what failed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry.db.engine import unit_of_work
from registry.service.notify import log as notify_log
from registry.service.tokens import PERMISSIONS, Action
from registry.web._plumbing import _reader, _Refused, _registry, page, render

router = APIRouter(include_in_schema=False)
LIMIT = 200


@router.get("/ui/notifications")
@page
def notifications_page(request: Request) -> Response:
    caller = _reader(request)
    if not caller.may("audit.read"):
        raise _Refused(403, f"the delivery log needs role {PERMISSIONS[Action.AUDIT_READ].label}")
    state = request.query_params.get("state") or None
    if state not in (None, *notify_log.STATES):
        state = None
    with unit_of_work(_registry(request).sessions) as s:
        rows = notify_log.deliveries(s, state=state, limit=LIMIT)
    return render(
        request,
        "notifications.html",
        caller,
        rows=rows,
        state=state,
        states=notify_log.STATES,
        limit=LIMIT,
    )
