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
    model_pages,
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
    model_pages,
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


#: The static files, by name: nothing else under static/ (or outside it) is ever served.
STATIC = {"style.css": "text/css", "logo.svg": "image/svg+xml"}


@router.get("/ui/static/{filename}")
def static(filename: str) -> Response:
    media = STATIC.get(filename)
    if media is None:
        return Response(status_code=404)
    return Response(
        (HERE / "static" / filename).read_bytes(),
        media_type=media,
        headers={
            "Cache-Control": "max-age=3600",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )


@router.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for /favicon.ico whatever the page says: the same logo (SVG)."""
    return static("logo.svg")
