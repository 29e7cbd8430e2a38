"""The registry's web UI: server-rendered pages at `/` and `/ui/...` (no JavaScript needed).

Reads go through `registry.service.browse` / `decide`; every action goes through the same
`EmbeddedRegistry` methods and service functions as the API, bound to the signed-in token, so
the audit log names it. Security properties, each tested in tests/test_web*.py:

- sign-in with an API token, which becomes a signed, HttpOnly, SameSite=Lax cookie (Secure
  over HTTPS or with MODELCTL_WEB_SECURE_COOKIES=1); the token row is re-read on every request;
- every POST carries the session's CSRF token (synchronizer pattern) and is role-checked on
  the server: a page that hides a button is a courtesy, the 403 is the control;
- Jinja autoescaping everywhere, plus a Content-Security-Policy without inline script.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from policies import PolicyError, PolicySet, load_policies, waivers
from policies.model import UNWAIVABLE_PREFIXES
from registry.db.engine import unit_of_work
from registry.db.ids import MAX_ROW_ID
from registry.embedded import EmbeddedRegistry
from registry.errors import Denied, InputError, NotFound, RegistryError, TwoPersonRule
from registry.service import admission, browse, decide, quarantines, tokens
from registry.service import exception_requests as requests_service
from registry.service.tokens import ANONYMOUS, PERMISSIONS, Principal, Role
from registry.web import session as websession

HERE = Path(__file__).parent
MAX_FORM_BYTES = 256 * 1024
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
TABS = ("policy", "files", "scans", "attestations", "provenance", "exceptions")
#: Who may ask for an exception (approving one needs `exception.add`).
REQUEST_EXCEPTION_ROLE = Role.PUBLISHER

router = APIRouter(include_in_schema=False)


# -- plumbing -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = _human_size
    env.filters["when"] = _when
    env.filters["short"] = lambda digest: str(digest)[:12]
    env.globals["quote"] = lambda text: quote(str(text), safe="")
    return env


def _human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _when(ts: datetime | None) -> str:
    if ts is None:
        return "never"
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _registry(request: Request) -> EmbeddedRegistry:
    registry = request.app.state.registry
    assert isinstance(registry, EmbeddedRegistry)
    return registry


def _key(request: Request) -> bytes:
    key = getattr(request.app.state, "web_session_key", None)
    if key is None:
        key = websession.session_key(_registry(request).settings.home)
        request.app.state.web_session_key = key
    assert isinstance(key, bytes)
    return key


def _policy_source(request: Request) -> tuple[str, str]:
    """The bound policy document and its name: the registry's own (see `policy_source`)."""
    return _registry(request).policy_source()


def _policy_set(request: Request) -> PolicySet:
    return _registry(request).policy_set()


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal | None  # None: not signed in (and reads are not public)
    session: websession.WebSession | None
    csrf: str

    @property
    def signed_in(self) -> bool:
        return self.session is not None

    def may(self, action: str) -> bool:
        return self.principal is not None and self.principal.may(action)

    @property
    def may_request_exception(self) -> bool:
        return self.principal is not None and self.principal.role >= REQUEST_EXCEPTION_ROLE


def _caller(request: Request) -> Caller:
    key = _key(request)
    web = websession.decode_session(key, request.cookies.get(websession.SESSION_COOKIE))
    if web is not None:
        with unit_of_work(_registry(request).sessions) as s:
            principal = browse.token_principal(s, web.token_id, now=datetime.now(UTC))
        if principal is not None:
            return Caller(principal, web, web.csrf(key))
    public = bool(_registry(request).settings.public_reads)
    return Caller(ANONYMOUS if public else None, None, "")


class _Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def _reader(request: Request) -> Caller:
    caller = _caller(request)
    if caller.principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise _Redirect("/ui/login?" + urlencode({"next": target}))
    return caller


def _headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
    }
    headers.update(extra or {})
    return headers


def render(
    request: Request, template: str, caller: Caller | None, status: int = 200, **context: Any
) -> HTMLResponse:
    envs = decide.environments(_policy_set(request))
    html = (
        templates()
        .get_template(template)
        .render(
            me=caller,
            environments=envs,
            path=request.url.path,
            notice=_NOTICES.get(request.query_params.get("done", "")),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status, headers=_headers())


_NOTICES = {
    "quarantined": "Quarantined: every environment denies these bytes, under every name, until "
    "they are released.",
    "released": "Released from quarantine; decisions re-evaluated.",
    "rescanned": "Re-scanned; decisions re-evaluated.",
    "decided": "Decisions re-evaluated; those that changed were recorded.",
    "requested": "Exception requested: it waives nothing until someone else approves it.",
    "approved": "Exception approved; decisions re-evaluated.",
    "rejected": "Exception request rejected.",
    "revoked": "Exception revoked; decisions re-evaluated.",
    "token-revoked": "Token revoked.",
}


def page(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Turn redirects, refusals and registry errors into HTML pages (not problem+json)."""

    import functools

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Response:
        request = kwargs["request"]
        try:
            return handler(*args, **kwargs)
        except _Redirect as exc:
            return RedirectResponse(exc.url, status_code=303, headers=_headers())
        except _Refused as exc:
            return _error_page(request, exc.status, exc.message)
        except NotFound as exc:
            return _error_page(request, 404, exc.message)
        except (InputError, Denied) as exc:  # asking to approve your own request: 403
            status = 403 if isinstance(exc, TwoPersonRule) else 400
            return _error_page(request, status, exc.message)
        except RegistryError as exc:
            return _error_page(request, 503, exc.message)

    return wrapped


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    try:
        caller: Caller | None = _caller(request)
    except RegistryError:
        caller = None
    return render(request, "error.html", caller, status=status, status_code=status, message=message)


@dataclass(frozen=True, slots=True)
class Form:
    """An urlencoded form body (bounded); a repeated field keeps its last value."""

    fields: Mapping[str, str]
    error: tuple[int, str] | None = None

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)


async def read_form(request: Request) -> Form:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return Form({}, (415, "forms must be application/x-www-form-urlencoded"))
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return Form({}, (413, "form too large"))
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        return Form({}, (400, "malformed form"))
    return Form({k: v[-1] for k, v in parsed.items()})


FormBody = Annotated[Form, Depends(read_form)]
#: A row id in a URL: past 32 bits it names no row (and would be a DataError on PostgreSQL).
RowId = Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)]


def _actor(request: Request, form: Form, action: str | None) -> Caller:
    """The signed-in caller of a POST, after the CSRF check and (when given) the role check."""
    if form.error is not None:
        raise _Refused(*form.error)
    caller = _caller(request)
    if caller.session is None or caller.principal is None:
        raise _Refused(403, "sign in first (this action needs an API token)")
    if not websession.same_token(form.get("csrf"), caller.csrf):
        raise _Refused(403, "the form's CSRF token is missing or wrong: reload the page")
    if action is not None and not caller.principal.may(action):
        raise _Refused(
            403,
            f"your token ({caller.principal.name}) has role {caller.principal.role.label}; "
            f"this needs {PERMISSIONS[action].label} or higher",
        )
    return caller


def _checkpoint_url(ns: str, name: str, digest: str, tab: str = "", done: str = "") -> str:
    url = f"/ui/m/{quote(ns, safe='')}/{quote(name, safe='')}/{digest}"
    query = {k: v for k, v in (("tab", tab), ("done", done)) if v}
    return url + ("?" + urlencode(query) if query else "")


def _hex(digest: str) -> str:
    digest = digest.removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise NotFound("no such checkpoint (a digest is 64 lowercase hex digits)")
    return digest


def _int(text: str | None, default: int, *, lo: int = 1, hi: int = 10_000) -> int:
    if not text:
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise InputError(f"not a number: {text!r:.20}") from exc
    if not lo <= value <= hi:
        raise InputError(f"{value} is out of range")
    return value


def _redecide(request: Request, registry: EmbeddedRegistry, ref: str) -> None:
    """Decide again in every environment under the bound policy, recording each decision
    whose outcome changed (as the API would); lists show the live status either way."""
    for env in decide.environments(registry.policy_set()):
        registry.policy_check(ref, env)


#: At most this many checkpoints get fresh decisions recorded after a quarantine changes
#: (a file quarantine may hold thousands; the rest are decided when next checked).
REDECIDE_LIMIT = 50


def _redecide_all(request: Request, registry: EmbeddedRegistry, refs: Sequence[str]) -> None:
    for ref in refs[:REDECIDE_LIMIT]:
        _redecide(request, registry, ref)


# -- sign-in ------------------------------------------------------------------------------------


@router.get("/ui/login")
@page
def login_form(request: Request) -> Response:
    pre = request.cookies.get(websession.PRESESSION_COOKIE) or websession.new_presession()
    response = render(
        request,
        "login.html",
        None,
        next=_safe_next(request.query_params.get("next")),
        login_csrf=websession.presession_csrf(_key(request), pre),
        error=None,
    )
    _set_cookie(request, response, websession.PRESESSION_COOKIE, pre, websession.PRESESSION_SECONDS)
    return response


def _safe_next(target: str | None) -> str:
    """Only a path on this site ("/ui/..." or "/"): never another origin."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or os.environ.get(
        "MODELCTL_WEB_SECURE_COOKIES", ""
    ).strip().lower() in ("1", "true", "yes", "on")


def _set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


@router.post("/ui/login")
@page
def login(request: Request, form: FormBody) -> Response:
    if form.error is not None:
        raise _Refused(*form.error)
    key = _key(request)
    pre = request.cookies.get(websession.PRESESSION_COOKIE)
    next_url = _safe_next(form.get("next"))
    if not pre or not websession.same_token(form.get("csrf"), websession.presession_csrf(key, pre)):
        raise _Refused(403, "the sign-in form expired or came from elsewhere: reload it")
    token = form.get("token", "").strip()
    registry = _registry(request)
    with unit_of_work(registry.sessions) as s:
        principal = tokens.authenticate(s, token) if token else None
    if principal is None or principal.token_id is None:
        time.sleep(0.2)  # a guess costs something
        return render(
            request,
            "login.html",
            None,
            status=401,
            next=next_url,
            login_csrf=websession.presession_csrf(key, pre),
            error="That token is unknown, revoked or expired.",
        )
    web = websession.new_session(principal.token_id)
    response = RedirectResponse(next_url, status_code=303, headers=_headers())
    _set_cookie(
        request,
        response,
        websession.SESSION_COOKIE,
        websession.encode_session(key, web),
        websession.SESSION_SECONDS,
    )
    response.delete_cookie(websession.PRESESSION_COOKIE, path="/")
    return response


@router.post("/ui/logout")
@page
def logout(request: Request, form: FormBody) -> Response:
    _actor(request, form, None)
    response = RedirectResponse("/ui/login", status_code=303, headers=_headers())
    response.delete_cookie(websession.SESSION_COOKIE, path="/")
    return response


# -- pages --------------------------------------------------------------------------------------


@router.get("/")
@page
def overview_page(request: Request) -> Response:
    caller = _reader(request)
    envs = decide.environments(_policy_set(request))
    live = _registry(request).live_statuses()
    with unit_of_work(_registry(request).sessions) as s:
        data = browse.overview(s, envs, now=datetime.now(UTC), live=live)
    signers = _signers(request)
    soon = datetime.now(UTC) + timedelta(days=30)
    expiring_keys = [x for x in signers if x["not_after"] is not None and x["not_after"] <= soon]
    return render(request, "overview.html", caller, data=data, expiring_keys=expiring_keys)


@router.get("/ui/models")
@page
def models_page(request: Request) -> Response:
    caller = _reader(request)
    params = request.query_params
    envs = decide.environments(_policy_set(request))
    query = browse.ModelQuery(
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
        per_page=_int(params.get("per_page"), browse.PAGE_SIZE, hi=browse.MAX_PAGE_SIZE),
    )
    live = _registry(request).live_statuses()
    with unit_of_work(_registry(request).sessions) as s:
        result = browse.search_checkpoints(s, query, envs, now=datetime.now(UTC), live=live)
    base = {k: v for k, v in params.items() if k != "page" and v}
    return render(
        request,
        "models.html",
        caller,
        query=query,
        result=result,
        page_url=lambda n: "/ui/models?" + urlencode({**base, "page": n}),
        sort_url=lambda key: "/ui/models?" + urlencode({**base, "sort": key}),
        sorts=list(browse.SORTS),
        verdicts=browse.VERDICT_FILTERS,
        decisions=browse.DECISION_FILTERS,
        severities=tuple(reversed(browse.SEVERITIES)),
        not_recorded=browse.NOT_RECORDED,
    )


def _signers(request: Request) -> list[dict[str, Any]]:
    """The registry key and every signer the bound policies name, with notAfter."""
    registry = _registry(request)
    pub = registry.registry_public_key()
    out: list[dict[str, Any]] = []
    for policy in _policy_set(request).policies:
        for signer in policy.signers:
            identity = {
                "registry": f"the registry key {decide.registry_key_hint(pub) or '(not made yet)'}",
                "key": f"key {getattr(signer, 'key_hint', None) or ''}",
                "keyless": f"{getattr(signer, 'issuer', '')} "
                f"{getattr(getattr(signer, 'subject', None), 'pattern', '')}",
                "certificate": f"certificate SAN "
                f"{getattr(getattr(signer, 'san', None), 'pattern', '')}",
            }[signer.kind]
            out.append(
                {
                    "policy": policy.name,
                    "name": signer.name,
                    "kind": signer.kind,
                    "identity": identity.strip(),
                    "not_after": signer.not_after,
                }
            )
    return out


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
        cp = browse.get_checkpoint(s, namespace, name, _hex(digest))
        held = admission.active_quarantine(cp)
        decisions = decide.decide_now(
            s, cp, policy_set, envs, blobs=registry.blobs, registry_public_key=pub, now=now
        )
        context: dict[str, Any] = {
            "cp": cp,
            "ref": f"{cp.model.full_name}@sha256:{cp.manifest_digest}",
            "decisions": decisions,
            "tab": tab,
            "quarantine": held,
            "quarantine_covers": quarantines.view(s, held).covers if held is not None else (),
            "attestations": decide.verify_now(cp, pub) if tab == "attestations" else [],
            "verdicts": browse.file_verdicts(cp) if tab == "files" else {},
            "findings": browse.checkpoint_findings(cp),
            "scans": sorted(cp.scans, key=lambda r: -r.id),
            "others": [o for o in browse.other_checkpoints(s, cp.model_id) if o[0] != cp.id],
            "exceptions": [w for w, _, _ in browse.exceptions(s) if w.checkpoint_id == cp.id],
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
        return render(request, "checkpoint.html", caller, **context)


@router.get("/ui/m/{namespace}/{name}/{digest}/attestations/{attestation_id}")
@page
def attestation_download(
    request: Request, namespace: str, name: str, digest: str, attestation_id: RowId
) -> Response:
    _reader(request)
    with unit_of_work(_registry(request).sessions) as s:
        cp = browse.get_checkpoint(s, namespace, name, _hex(digest))
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
        cp = browse.get_checkpoint(s, namespace, name, _hex(digest))
        body = decide.evidence_bundle(cp, registry.registry_public_key())
    filename = f"evidence-{cp.manifest_digest[:12]}.zip"
    return Response(
        body,
        media_type="application/zip",
        headers=_headers({"Content-Disposition": f'attachment; filename="{filename}"'}),
    )


# -- checkpoint actions -------------------------------------------------------------------------


def _waivable(policy_set: PolicySet) -> tuple[list[str], int]:
    """The check ids an exception may name here, and the longest it may run (days)."""
    bound = waivers.bound_policies(policy_set, None)
    ids = sorted(frozenset().union(*(waivers.waivable_check_ids(p) for _, p in bound)))
    days = min((p.waiver_max_expiry.days for _, p in bound), default=0)
    return ids, days


def _resolve(request: Request, namespace: str, name: str, digest: str) -> str:
    with unit_of_work(_registry(request).sessions) as s:
        cp = browse.get_checkpoint(s, namespace, name, _hex(digest))
        return f"{cp.model.full_name}@sha256:{cp.manifest_digest}"


@router.post("/ui/m/{namespace}/{name}/{digest}/quarantine")
@page
def quarantine_action(
    request: Request, form: FormBody, namespace: str, name: str, digest: str
) -> Response:
    caller = _actor(request, form, "quarantine")
    ref = _resolve(request, namespace, name, digest)
    registry = _registry(request).as_actor(_principal(caller).actor)
    held = registry.quarantine(ref, form.get("reason", ""))
    _redecide_all(request, registry, held.covers)  # the same bytes under every name
    raise _Redirect(_checkpoint_url(namespace, name, _hex(digest), "policy", "quarantined"))


@router.post("/ui/m/{namespace}/{name}/{digest}/release")
@page
def release_action(
    request: Request, form: FormBody, namespace: str, name: str, digest: str
) -> Response:
    caller = _actor(request, form, "release")
    ref = _resolve(request, namespace, name, digest)
    registry = _registry(request).as_actor(_principal(caller).actor)
    released = registry.release(ref, form.get("reason", ""))
    _redecide_all(request, registry, released.covers)
    raise _Redirect(_checkpoint_url(namespace, name, _hex(digest), "policy", "released"))


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
        cp = browse.get_checkpoint(s, namespace, name, _hex(digest))
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


def _expiry(text: str) -> datetime:
    """A date (YYYY-MM-DD, end of that day UTC) or an RFC 3339 time. Mandatory."""
    text = text.strip()
    if not text:
        raise InputError("an exception needs an expiry date")
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1) - timedelta(seconds=1)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"bad expiry {text!r:.40}: use YYYY-MM-DD") from exc
    if parsed.tzinfo is None:
        raise InputError("the expiry needs a time zone")
    return parsed


def _principal(caller: Caller) -> Principal:
    assert caller.principal is not None
    return caller.principal


# -- diff, findings, exceptions, policies, audit, admin -----------------------------------------


@router.get("/ui/m/{namespace}/{name}/{digest}/diff")
@page
def diff_page(request: Request, namespace: str, name: str, digest: str) -> Response:
    caller = _reader(request)
    other = request.query_params.get("against", "")
    envs = decide.environments(_policy_set(request))
    live = _registry(request).live_statuses()
    with unit_of_work(_registry(request).sessions) as s:
        new = browse.get_checkpoint(s, namespace, name, _hex(digest))
        old = browse.get_checkpoint(s, namespace, name, _hex(other))
        result = browse.diff(s, old, new, envs, datetime.now(UTC), live=live)
        return render(request, "diff.html", caller, d=result, model_name=new.model.full_name)


@router.get("/ui/findings")
@page
def findings_page(request: Request) -> Response:
    caller = _reader(request)
    params = request.query_params
    query = browse.FindingQuery(
        scanner=params.get("scanner", "")[:100],
        rule=params.get("rule", "")[:200],
        severity=params.get("severity", ""),
        status=params.get("status", ""),
        page=_int(params.get("page"), 1),
    )
    with unit_of_work(_registry(request).sessions) as s:
        rows, total = browse.findings(s, query)
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
        severities=browse.SEVERITIES,
    )


@router.get("/ui/quarantines")
@page
def quarantines_page(request: Request) -> Response:
    caller = _reader(request)
    active = _registry(request).quarantine_list()
    return render(request, "quarantines.html", caller, active=active)


@router.post("/ui/quarantines")
@page
def quarantine_digest_action(request: Request, form: FormBody) -> Response:
    """Quarantine a bare digest: a manifest digest, or a file's sha256 (also ahead of time)."""
    caller = _actor(request, form, "quarantine")
    registry = _registry(request).as_actor(_principal(caller).actor)
    held = registry.quarantine(_bare_digest(form.get("digest", "")), form.get("reason", ""))
    _redecide_all(request, registry, held.covers)
    raise _Redirect("/ui/quarantines?done=quarantined")


@router.post("/ui/quarantines/release")
@page
def release_digest_action(request: Request, form: FormBody) -> Response:
    caller = _actor(request, form, "release")
    registry = _registry(request).as_actor(_principal(caller).actor)
    released = registry.release(_bare_digest(form.get("digest", "")), form.get("reason", ""))
    _redecide_all(request, registry, released.covers)
    raise _Redirect("/ui/quarantines?done=released")


def _bare_digest(text: str) -> str:
    text = text.strip().lower()
    if not text.startswith("sha256:"):
        raise InputError("give a digest as sha256:<64 hex>")
    return text


@router.get("/ui/exceptions")
@page
def exceptions_page(request: Request) -> Response:
    caller = _reader(request)
    now = datetime.now(UTC)
    with unit_of_work(_registry(request).sessions) as s:
        granted = browse.exceptions(s)
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
            aware=lambda ts: ts if ts.tzinfo else ts.replace(tzinfo=UTC),
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


@router.get("/ui/policies")
@page
def policies_page(request: Request) -> Response:
    caller = _reader(request)
    return _policies(request, caller, None, None)


def _policies(
    request: Request, caller: Caller, dry: dict[str, Any] | None, candidate: str | None
) -> Response:
    policy_set = _policy_set(request)
    bound = []
    for env in decide.environments(policy_set):
        found = policy_set.for_environment(env)
        if found is not None:
            bound.append((env, found[0], str(found[1].value)))
    return render(
        request,
        "policies.html",
        caller,
        bound=bound,
        yaml_text=_policy_source(request)[0],
        policy_source=_policy_source(request)[1],
        dry=dry,
        candidate=candidate if candidate is not None else _policy_source(request)[0],
        signers=_signers(request),
    )


@router.post("/ui/policies/dry-run")
@page
def dry_run_action(request: Request, form: FormBody) -> Response:
    """What would change if this policy document applied, over every current checkpoint.

    Records nothing: the policy in force and the candidate are both evaluated now, on the same
    facts gathered once per checkpoint, in every environment either of them binds.
    """
    caller = _actor(request, form, "admission.check")
    text = form.get("policy", "")
    try:
        candidate = load_policies(text, "candidate.yaml")
    except PolicyError as exc:
        raise InputError(f"the candidate policy does not load: {exc.message}") from exc
    registry = _registry(request)
    current = _policy_set(request)
    envs = decide.environments(current)
    envs += [e for e in decide.environments(candidate) if e not in envs]
    pub = registry.registry_public_key()
    flips: list[dict[str, Any]] = []
    counted = 0
    started = time.monotonic()
    now = datetime.now(UTC)
    with unit_of_work(registry.sessions) as s:
        for cp in browse.all_checkpoints(s, limit=5000):
            counted += 1
            before, after = decide.compare_now(
                s,
                cp,
                current,
                candidate,
                envs,
                blobs=registry.blobs,
                registry_public_key=pub,
                now=now,
            )
            for was, will in zip(before, after, strict=True):
                allowed_before = was.decision is not None and was.decision.allowed
                allowed_after = will.decision is not None and will.decision.allowed
                if allowed_before != allowed_after:
                    flips.append(
                        {
                            "ref": f"{cp.model.full_name}@sha256:{cp.manifest_digest}",
                            "ns": cp.model.namespace,
                            "name": cp.model.name,
                            "digest": cp.manifest_digest,
                            "env": will.environment,
                            "before": allowed_before,
                            "after": allowed_after,
                            "failed": [
                                c.id
                                for c in (will.decision.checks if will.decision else ())
                                if str(c.status.value) == "fail"
                            ],
                        }
                    )
    dry = {"flips": flips, "checkpoints": counted, "seconds": time.monotonic() - started}
    return _policies(request, caller, dry, text)


def _audit_query(request: Request) -> browse.AuditQuery:
    params = request.query_params

    def when(key: str) -> datetime | None:
        text = params.get(key, "").strip()
        if not text:
            return None
        try:
            ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InputError(f"bad {key} time {text!r:.40}: use YYYY-MM-DD") from exc
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

    return browse.AuditQuery(
        actor=params.get("actor", "")[:200],
        action=params.get("action", "")[:100],
        target=params.get("target", "")[:300],
        since=when("since"),
        until=when("until"),
        page=_int(params.get("page"), 1),
    )


def _auditor(request: Request) -> Caller:
    caller = _reader(request)
    if not caller.may("audit.read"):
        raise _Refused(403, f"the audit log needs role {PERMISSIONS['audit.read'].label}")
    return caller


@router.get("/ui/audit")
@page
def audit_page(request: Request) -> Response:
    caller = _auditor(request)
    query = _audit_query(request)
    with unit_of_work(_registry(request).sessions) as s:
        rows, total, actions = browse.audit_page(s, query)
        base = {k: v for k, v in request.query_params.items() if k != "page" and v}
        return render(
            request,
            "audit.html",
            caller,
            rows=rows,
            total=total,
            actions=actions,
            query=query,
            pages=max(1, -(-total // query.per_page)),
            page_url=lambda n: "/ui/audit?" + urlencode({**base, "page": n}),
            export_query=urlencode(base),
        )


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
    sessions = _registry(request).sessions

    def chunks() -> Iterator[bytes]:
        with unit_of_work(sessions) as s:
            for part in browse.audit_export(s, query, "csv" if fmt == "csv" else "json"):
                yield part.encode("utf-8")

    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        chunks(),
        media_type=media,
        headers=_headers({"Content-Disposition": f'attachment; filename="audit-{stamp}.{fmt}"'}),
    )


def _admin(request: Request) -> Caller:
    caller = _reader(request)
    if not caller.may("token.manage"):
        raise _Refused(403, "tokens and signers are managed by an admin token")
    return caller


@router.get("/ui/admin")
@page
def admin_page(request: Request) -> Response:
    caller = _admin(request)
    return _admin_render(request, caller, None)


def _admin_render(request: Request, caller: Caller, created: Any) -> Response:
    with unit_of_work(_registry(request).sessions) as s:
        listed = tokens.list_tokens(s)
    return render(
        request,
        "admin.html",
        caller,
        tokens=listed,
        created=created,
        roles=[r.label for r in Role],
        signers=_signers(request),
        key_path=str(_registry(request).settings.signing_key_path),
    )


@router.post("/ui/admin/tokens")
@page
def create_token_action(request: Request, form: FormBody) -> Response:
    caller = _actor(request, form, "token.manage")
    expires = _expiry(form.get("expires")) if form.get("expires", "").strip() else None
    with unit_of_work(_registry(request).sessions) as s:
        created = tokens.create(
            s,
            name=form.get("name", "").strip(),
            role=Role.parse(form.get("role", "")),
            actor=_principal(caller).actor,
            expires_at=expires,
        )
    # Shown once, on this response only (never in a URL, a log or a redirect).
    return _admin_render(request, caller, created)


@router.post("/ui/admin/tokens/{token_id}/revoke")
@page
def revoke_token_action(request: Request, form: FormBody, token_id: RowId) -> Response:
    caller = _actor(request, form, "token.manage")
    with unit_of_work(_registry(request).sessions) as s:
        tokens.revoke(s, str(token_id), actor=_principal(caller).actor)
    raise _Redirect("/ui/admin?done=token-revoked")


@router.get("/ui/static/{filename}")
def static(filename: str) -> Response:
    if filename != "style.css":
        return Response(status_code=404)
    return Response(
        (HERE / "static" / "style.css").read_bytes(),
        media_type="text/css",
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
