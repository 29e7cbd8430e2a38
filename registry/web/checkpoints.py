"""Models and checkpoints: the search page, one checkpoint's tabs and downloads, the diff
of two checkpoints, and the actions that re-scan or re-decide a checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from policies import PolicySet, waivers
from policies.model import UNWAIVABLE_PREFIXES
from registry.db.engine import unit_of_work
from registry.errors import NotFound
from registry.service import admission, decide, quarantines, storage
from registry.service import exception_requests as requests_service
from registry.service import findings as findings_service
from registry.service.read import checkpoint as read_checkpoint
from registry.service.read import common as read_common
from registry.service.read import diff as read_diff
from registry.service.read import exceptions as read_exceptions
from registry.service.read import headline as read_headline
from registry.service.read import models as read_models
from registry.web import bulk as bulk_web
from registry.web import model_pages
from registry.web._plumbing import (
    TABS,
    FormBody,
    RowId,
    _actor,
    _checkpoint_url,
    _headers,
    _hex,
    _int,
    _policy_set,
    _principal,
    _reader,
    _redecide,
    _Redirect,
    _registry,
    _resolve,
    page,
    render,
)

router = APIRouter(include_in_schema=False)


@router.get("/ui/models")
@page
def models_page(request: Request) -> Response:
    caller = _reader(request)
    params = request.query_params
    envs = decide.environments(_policy_set(request))
    query = read_models.ModelQuery(
        q=params.get("q", "")[:200],
        source=params.get("source", ""),
        org=params.get("org", "")[:96],
        env=params.get("env", ""),
        decision=params.get("decision", ""),
        verdict=params.get("verdict", ""),
        format=params.get("format", "")[:20],
        license=params.get("license", "")[:101],
        severity=params.get("severity", ""),
        sort=params.get("sort", "newest"),
        page=_int(params.get("page"), 1),
        per_page=_int(params.get("per_page"), read_common.PAGE_SIZE, hi=read_common.MAX_PAGE_SIZE),
    )
    live = _registry(request).live_statuses()
    with unit_of_work(_registry(request).sessions) as s:
        result = read_models.search_checkpoints(s, query, envs, now=datetime.now(UTC), live=live)
    base = {k: v for k, v in params.items() if k != "page" and v}
    return render(
        request,
        "models.html",
        caller,
        query=query,
        result=result,
        page_url=lambda n: "/ui/models?" + urlencode({**base, "page": n}),
        sort_url=lambda key: "/ui/models?" + urlencode({**base, "sort": key}),
        sorts=list(read_models.SORTS),
        verdicts=read_models.VERDICT_FILTERS,
        decisions=read_models.DECISION_FILTERS,
        severities=tuple(reversed(read_common.SEVERITIES)),
        not_recorded=read_models.NOT_RECORDED,
        **bulk_web.list_context(request, caller),
    )


@router.get("/ui/m/{namespace}/{name}/{digest}")
@page
def checkpoint_page(request: Request, namespace: str, name: str, digest: str) -> Response:
    caller = _reader(request)
    tab = request.query_params.get("tab", "policy")
    if tab not in TABS:
        tab = "policy"
    registry = _registry(request)
    policy_set = _policy_set(request)
    envs = decide.environments(policy_set)
    now = datetime.now(UTC)
    pub = registry.registry_public_key()
    with unit_of_work(registry.sessions) as s:
        cp = read_checkpoint.get_checkpoint(s, namespace, name, _hex(digest))
        held = admission.active_quarantine(cp)
        decisions = decide.decide_now(
            s, cp, policy_set, envs, blobs=registry.blobs, registry_public_key=pub, now=now
        )
        found = read_checkpoint.checkpoint_findings(cp)
        states = findings_service.triage_states(s, {f["id"] for f in found}, now)
        found = [{**f, **states[f["id"]]} for f in found]
        held_by = (held.actor, held.reason) if held is not None else None
        context: dict[str, Any] = {
            "cp": cp,
            "ref": f"{cp.model.full_name}@sha256:{cp.manifest_digest}",
            "decisions": decisions,
            "tab": tab,
            "quarantine": held,
            "quarantine_covers": quarantines.view(s, held).covers if held is not None else (),
            "attestations": decide.verify_now(cp, pub) if tab == "attestations" else [],
            "verdicts": read_checkpoint.file_verdicts(cp) if tab == "files" else {},
            "findings": found,
            "headlines": [read_headline.headline(d, found, quarantine=held_by) for d in decisions],
            "here": _checkpoint_url(namespace, name, cp.manifest_digest, tab),
            "default_fp_expiry": (now + timedelta(days=30)).strftime("%Y-%m-%d"),
            "scans": sorted(cp.scans, key=lambda r: -r.id),
            "storage": storage.model_storage(s, cp.model_id),
            "others": [
                o for o in read_checkpoint.other_checkpoints(s, cp.model_id) if o[0] != cp.id
            ],
            "exceptions": [
                w for w, _, _ in read_exceptions.exceptions(s) if w.checkpoint_id == cp.id
            ],
            "requests": requests_service.list_requests(s, checkpoint_id=cp.id),
            "failed_checks": sorted(
                {
                    c.id
                    for d in decisions
                    if d.decision is not None
                    for c in d.decision.checks
                    if str(c.status.value) in ("fail", "warn")
                    and c.id.split(".", 1)[0] not in UNWAIVABLE_PREFIXES
                }
            ),
            "default_expiry": (now + timedelta(days=14)).strftime("%Y-%m-%d"),
            "waivable": _waivable(policy_set),
            "now": now,
        }
        context.update(
            model_pages.tab_context(s, cp, tab, registry.blobs, quarantined=held is not None)
        )
        return render(request, "checkpoint.html", caller, **context)


def _waivable(policy_set: PolicySet) -> tuple[list[str], int]:
    """The check ids an exception may name here, and the longest it may run (days)."""
    bound = waivers.bound_policies(policy_set, None)
    ids = sorted(frozenset().union(*(waivers.waivable_check_ids(p) for _, p in bound)))
    days = min((p.waiver_max_expiry.days for _, p in bound), default=0)
    return ids, days


@router.get("/ui/m/{namespace}/{name}/{digest}/attestations/{attestation_id}")
@page
def attestation_download(
    request: Request, namespace: str, name: str, digest: str, attestation_id: RowId
) -> Response:
    _reader(request)
    with unit_of_work(_registry(request).sessions) as s:
        cp = read_checkpoint.get_checkpoint(s, namespace, name, _hex(digest))
        row = next((a for a in cp.attestations if a.id == attestation_id), None)
        if row is None:
            raise NotFound(f"no attestation {attestation_id} on this checkpoint")
        body = bytes(row.bundle)
    return Response(
        body,
        media_type="application/json",
        headers=_headers(
            {
                "Content-Disposition": f'attachment; filename="attestation-{attestation_id}'
                '.sigstore.json"'
            }
        ),
    )


@router.get("/ui/m/{namespace}/{name}/{digest}/evidence.zip")
@page
def evidence_download(request: Request, namespace: str, name: str, digest: str) -> Response:
    _reader(request)
    registry = _registry(request)
    with unit_of_work(registry.sessions) as s:
        cp = read_checkpoint.get_checkpoint(s, namespace, name, _hex(digest))
        body = decide.evidence_bundle(cp, registry.registry_public_key())
    filename = f"evidence-{cp.manifest_digest[:12]}.zip"
    return Response(
        body,
        media_type="application/zip",
        headers=_headers({"Content-Disposition": f'attachment; filename="{filename}"'}),
    )


@router.post("/ui/m/{namespace}/{name}/{digest}/rescan")
@page
def rescan_action(
    request: Request, form: FormBody, namespace: str, name: str, digest: str
) -> Response:
    caller = _actor(request, form, "scan")
    ref = _resolve(request, namespace, name, digest)
    registry = _registry(request).as_actor(_principal(caller).actor)
    registry.scan(ref)
    _redecide(request, registry, ref)
    raise _Redirect(_checkpoint_url(namespace, name, _hex(digest), "scans", "rescanned"))


@router.post("/ui/m/{namespace}/{name}/{digest}/decide")
@page
def decide_action(
    request: Request, form: FormBody, namespace: str, name: str, digest: str
) -> Response:
    caller = _actor(request, form, "admission.check")
    ref = _resolve(request, namespace, name, digest)
    registry = _registry(request).as_actor(_principal(caller).actor)
    _redecide(request, registry, ref)
    raise _Redirect(_checkpoint_url(namespace, name, _hex(digest), "policy", "decided"))


@router.get("/ui/m/{namespace}/{name}/{digest}/diff")
@page
def diff_page(request: Request, namespace: str, name: str, digest: str) -> Response:
    caller = _reader(request)
    other = request.query_params.get("against", "")
    envs = decide.environments(_policy_set(request))
    live = _registry(request).live_statuses()
    with unit_of_work(_registry(request).sessions) as s:
        new = read_checkpoint.get_checkpoint(s, namespace, name, _hex(digest))
        old = read_checkpoint.get_checkpoint(s, namespace, name, _hex(other))
        result = read_diff.diff(s, old, new, envs, datetime.now(UTC), live=live)
        return render(request, "diff.html", caller, d=result, model_name=new.model.full_name)
