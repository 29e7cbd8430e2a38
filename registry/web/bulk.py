"""Bulk actions and saved searches (ADR 0026): the preview of what a filter selects, the
confirmation that binds the previewed refs, and a person's named filters of the list.

`GET /ui/bulk?action=…&<filters>` previews (a read); `POST /ui/bulk` confirms (CSRF, and the
role the single action needs). The confirmation carries the refs the preview listed: only
those the filter still selects are acted on (`registry.service.bulk`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry.db.engine import unit_of_work
from registry.service import bulk
from registry.web._plumbing import (
    Caller,
    FormBody,
    RowId,
    _actor,
    _principal,
    _reader,
    _Redirect,
    _Refused,
    _registry,
    page,
    render,
)

router = APIRouter(include_in_schema=False)


def list_context(request: Request, caller: Caller) -> dict[str, Any]:
    """What the models list shows of this piece: the bulk bar and the caller's saved searches."""
    params = request.query_params
    filters = [(k, params[k]) for k in bulk.FILTER_KEYS if k != "rule" and params.get(k)]
    saved_query = urlencode([(k, params[k]) for k in bulk.SAVED_KEYS if params.get(k)])
    saved: list[bulk.SavedSearchView] = []
    if caller.signed_in and caller.principal is not None:
        with unit_of_work(_registry(request).sessions) as s:
            saved = bulk.saved_searches(s, caller.principal.actor)
    return {
        "bulk_filters": filters,
        "bulk_rule": params.get("rule", "")[: bulk.MAX_VALUE],
        "bulk_actions": [a.value for a in bulk.BulkAction],
        "saved_query": saved_query,
        "saved_searches": saved,
    }


@router.get("/ui/bulk")
@page
def bulk_preview(request: Request) -> Response:
    caller = _reader(request)
    params = request.query_params
    action = bulk.parse_action(params.get("action", ""))
    flt = bulk.BulkFilter.from_mapping(params)
    preview = _registry(request).bulk_preview(action, flt)
    return render(
        request,
        "bulk.html",
        caller,
        preview=preview,
        permission=bulk.PERMISSION[action],
        list_url="/ui/models?" + urlencode(flt.params()),
        refs=" ".join(i.ref for i in preview.items),
    )


@router.post("/ui/bulk")
@page
def bulk_confirm(request: Request, form: FormBody) -> Response:
    if form.error is not None:
        raise _Refused(*form.error)
    action = bulk.parse_action(form.get("action"))
    caller = _actor(request, form, bulk.PERMISSION[action])
    flt = bulk.BulkFilter.from_mapping(form.fields)
    refs = bulk.parse_refs(form.get("refs"))
    registry = _registry(request).as_actor(_principal(caller).actor)
    result = registry.bulk_apply(action, flt, refs, reason=form.get("reason"))
    return render(
        request,
        "bulk_done.html",
        caller,
        result=result,
        filter=flt,
        list_url="/ui/models?" + urlencode(flt.params()),
    )


@router.post("/ui/searches")
@page
def save_search(request: Request, form: FormBody) -> Response:
    caller = _actor(request, form, "read")
    with unit_of_work(_registry(request).sessions) as s:
        saved = bulk.save_search(
            s, owner=_principal(caller).actor, name=form.get("name"), query=form.get("query")
        )
    raise _Redirect("/ui/models?" + saved.query)


@router.post("/ui/searches/{search_id}/delete")
@page
def delete_search(request: Request, form: FormBody, search_id: RowId) -> Response:
    caller = _actor(request, form, "read")
    with unit_of_work(_registry(request).sessions) as s:
        bulk.delete_search(s, owner=_principal(caller).actor, search_id=search_id)
    raise _Redirect("/ui/models")
