"""The audit log: the page (`/ui/audit`) and its CSV and JSON exports."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from attestations.utc import aware
from registry.db.engine import unit_of_work
from registry.errors import InputError
from registry.report.gather import gather, parse_since
from registry.report.html import render_html
from registry.requests import AuditQuery
from registry.service.read import audit as read_audit
from registry.service.read.common import PAGE_SIZE
from registry.service.tokens import PERMISSIONS, Action
from registry.web._plumbing import (
    Caller,
    _headers,
    _int,
    _reader,
    _Refused,
    _registry,
    page,
    render,
)

router = APIRouter(include_in_schema=False)


def _audit_query(request: Request) -> AuditQuery:
    params = request.query_params

    def when(key: str) -> datetime | None:
        text = params.get(key, "").strip()
        if not text:
            return None
        try:
            ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InputError(f"bad {key} time {text!r:.40}: use YYYY-MM-DD") from exc
        return aware(ts)

    return AuditQuery(
        actor=params.get("actor", "")[:200],
        action=params.get("action", "")[:100],
        subject=params.get("target", "")[:300],  # the page calls the subject "target"
        since=when("since"),
        until=when("until"),
    )


def _auditor(request: Request) -> Caller:
    caller = _reader(request)
    if not caller.may("audit.read"):
        raise _Refused(403, f"the audit log needs role {PERMISSIONS[Action.AUDIT_READ].label}")
    return caller


@router.get("/ui/audit")
@page
def audit_page(request: Request) -> Response:
    caller = _auditor(request)
    query = _audit_query(request)
    page_number = _int(request.query_params.get("page"), 1)
    machine = _show_machine(request)
    with unit_of_work(_registry(request).sessions) as s:
        rows, total, actions = read_audit.audit_page(
            s, query, page=page_number, hide_machine=not machine
        )
        base = {k: v for k, v in request.query_params.items() if k != "page" and v}
        return render(
            request,
            "audit.html",
            caller,
            rows=rows,
            total=total,
            actions=actions,
            query=query,
            page_number=page_number,
            pages=max(1, -(-total // PAGE_SIZE)),
            page_url=lambda n: "/ui/audit?" + urlencode({**base, "page": n}),
            export_query=urlencode(base),
            machine=machine,
            toggle_url="/ui/audit?"
            + urlencode(
                {k: v for k, v in base.items() if k != "machine"}
                | ({} if machine else {"machine": 1})
            ),
            fields=read_audit.detail_fields,
            machine_prefixes=read_audit.MACHINE_ACTOR_PREFIXES,
        )


def _toggle_url(params: dict[str, str], machine: bool) -> str:
    """The page with the same filters and the machine-event toggle flipped."""
    kept = {k: v for k, v in params.items() if k not in ("machine", "page")}
    return "/ui/audit?" + urlencode(kept if machine else {**kept, "machine": "1"})


def _show_machine(request: Request) -> bool:
    """`machine=1` shows the registry's own events (hidden by default)."""
    return request.query_params.get("machine", "") in ("1", "on", "true", "yes")


@router.get("/ui/report")
@page
def report_page(request: Request) -> Response:
    """The auditor's report for one environment, the same page `modelctl report` writes
    (self-contained, so it can be saved and handed over as it is)."""
    _auditor(request)  # the report lists quarantine and release events from the audit log
    env = request.query_params.get("env", "").strip()[:100]
    if not env:
        raise InputError("name an environment: /ui/report?env=prod")
    since = parse_since(request.query_params.get("since", "").strip() or None)
    data = gather(_registry(request), env, since)
    # The page carries its own inline CSS (it must stand alone when saved) and nothing else:
    # no scripts, no images, no requests out.
    policy = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    return HTMLResponse(render_html(data), headers=_headers({"Content-Security-Policy": policy}))


@router.get("/ui/audit.csv")
@page
def audit_csv(request: Request) -> Response:
    return _audit_export(request, "csv")


@router.get("/ui/audit.json")
@page
def audit_json(request: Request) -> Response:
    return _audit_export(request, "json")


def _audit_export(request: Request, fmt: str) -> Response:
    _auditor(request)
    query = _audit_query(request)
    hide = not _show_machine(request)
    sessions = _registry(request).sessions

    def chunks() -> Iterator[bytes]:
        with unit_of_work(sessions) as s:
            kind: Literal["csv", "json"] = "csv" if fmt == "csv" else "json"
            for part in read_audit.audit_export(s, query, kind, hide_machine=hide):
                yield part.encode("utf-8")

    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        chunks(),
        media_type=media,
        headers=_headers({"Content-Disposition": f'attachment; filename="audit-{stamp}.{fmt}"'}),
    )
