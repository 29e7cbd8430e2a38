"""The overview page (`/`): counts, recent decisions, signer keys about to expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry.db.engine import unit_of_work
from registry.service import decide
from registry.service.read import overview as read_overview
from registry.web._plumbing import (
    _policy_set,
    _reader,
    _registry,
    _signers,
    page,
    render,
)
from registry.web.trends import overview_chart

router = APIRouter(include_in_schema=False)


@router.get("/")
@page
def overview_page(request: Request) -> Response:
    caller = _reader(request)
    envs = decide.environments(_policy_set(request))
    live = _registry(request).live_statuses()
    with unit_of_work(_registry(request).sessions) as s:
        data = read_overview.overview(s, envs, now=datetime.now(UTC), live=live)
        findings_chart = overview_chart(s, envs, datetime.now(UTC))
    signers = _signers(request)
    soon = datetime.now(UTC) + timedelta(days=30)
    expiring_keys = [x for x in signers if x["not_after"] is not None and x["not_after"] <= soon]
    return render(
        request,
        "overview.html",
        caller,
        data=data,
        expiring_keys=expiring_keys,
        findings_chart=findings_chart,
    )
