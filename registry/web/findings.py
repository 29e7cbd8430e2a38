"""The findings page (`/ui/findings`): every scanner finding, filtered and paged."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry.db.engine import unit_of_work
from registry.service.read import common as read_common
from registry.service.read import findings as read_findings
from registry.web._plumbing import (
    _int,
    _reader,
    _registry,
    page,
    render,
)

router = APIRouter(include_in_schema=False)


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
    base = {k: v for k, v in params.items() if k != "page" and v}
    return render(
        request,
        "findings.html",
        caller,
        query=query,
        rows=rows,
        total=total,
        pages=max(1, -(-total // query.per_page)),
        page_url=lambda n: "/ui/findings?" + urlencode({**base, "page": n}),
        severities=read_common.SEVERITIES,
    )
