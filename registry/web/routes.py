"""The web UI's routes, wired in one place: one router per area (sign-in, overview, models
and checkpoints, findings, quarantines, exceptions, policies, audit, admin), on the plumbing in
`_plumbing` (templates, session and CSRF checks, error pages). `registry.api.app` mounts
`router`.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from registry.web import (
    admin,
    audit,
    bulk,
    checkpoints,
    exceptions,
    findings,
    login,
    notifications,
    oidc_login,
    overview,
    policies,
    quarantines,
    trends,
)
from registry.web._plumbing import HERE

router = APIRouter(include_in_schema=False)
for area in (
    login,
    oidc_login,
    overview,
    checkpoints,
    bulk,
    trends,
    quarantines,
    exceptions,
    findings,
    policies,
    audit,
    notifications,
    admin,
):
    router.include_router(area.router)


@router.get("/ui/static/{filename}")
def static(filename: str) -> Response:
    if filename != "style.css":
        return Response(status_code=404)
    return Response(
        (HERE / "static" / "style.css").read_bytes(),
        media_type="text/css",
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
