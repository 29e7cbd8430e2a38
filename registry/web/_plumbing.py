"""The web UI's plumbing, shared by every area's router (registry/web/routes.py wires them):
templates, the session and CSRF checks, the `page` decorator that turns refusals and registry
errors into HTML pages, the bounded form reader, and helpers several areas use. Names with a
leading underscore are private to `registry.web`: the area modules share them, nothing outside
this package imports them.

The registry's web UI: server-rendered pages at `/` and `/ui/...` (no JavaScript needed).

Reads go through `registry.service.read` (one module per page) and `decide`; every action goes
through the same `EmbeddedRegistry` methods and service functions as the API, bound to the
signed-in token, so the audit log names it. Security properties, each tested in tests/test_web*.py:

- sign-in through OpenID Connect when configured (`oidc_login`), else with an API token; either
  becomes a signed, HttpOnly, SameSite=Lax cookie (Secure
  over HTTPS or with MODELCTL_WEB_SECURE_COOKIES=1); the token row is re-read on every request;
- every POST carries the session's CSRF token (synchronizer pattern) and is role-checked on
  the server: a page that hides a button is a courtesy, the 403 is the control;
- Jinja autoescaping everywhere, plus a Content-Security-Policy without inline script.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from attestations.utc import aware
from policies import PolicySet
from policies.titles import check_title
from registry.db.engine import unit_of_work
from registry.db.ids import MAX_ROW_ID
from registry.embedded import EmbeddedRegistry
from registry.errors import (
    Denied,
    Forbidden,
    InputError,
    NotFound,
    RegistryError,
    TwoPersonRule,
)
from registry.service import decide, tokens, web_sessions
from registry.service.read import checkpoint as read_checkpoint
from registry.service.tokens import ANONYMOUS, PERMISSIONS, Action, Principal, Role
from registry.web import session as websession
from registry.web.oidc_client import OidcClient
from registry.web.oidc_flow import SpentStates
from registry.web.oidc_settings import OidcSettings

HERE = Path(__file__).parent
MAX_FORM_BYTES = 256 * 1024
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
TABS = ("policy", "card", "files", "scans", "attestations", "provenance", "exceptions")
#: Who may ask for an exception (approving one needs `exception.add`).
REQUEST_EXCEPTION_ROLE = Role.PUBLISHER


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
    env.filters["check_title"] = check_title
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
    ts = aware(ts)
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


def _oidc(request: Request) -> OidcClient | None:
    """The single sign-on client when MODELCTL_OIDC_ISSUER is set (read once per server)."""
    state = request.app.state
    if not hasattr(state, "oidc_client"):
        settings = OidcSettings.from_env()
        state.oidc_client = OidcClient(settings) if settings is not None else None
        state.oidc_spent_states = SpentStates()
    client = state.oidc_client
    assert client is None or isinstance(client, OidcClient)
    return client


def _spent_states(request: Request) -> SpentStates:
    _oidc(request)
    spent = request.app.state.oidc_spent_states
    assert isinstance(spent, SpentStates)
    return spent


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
        principal = _session_principal(request, web)
        if principal is not None:
            return Caller(principal, web, web.csrf(key))
    public = bool(_registry(request).settings.public_reads)
    return Caller(ANONYMOUS if public else None, None, "")


def _session_principal(request: Request, web: websession.WebSession) -> Principal | None:
    """A person's session counts only while single sign-on is configured, and a token's only
    while it is not (people sign in through the provider then; tokens are for machines)."""
    sso = _oidc(request) is not None
    if web.user is not None and web.role is not None:
        if not sso:
            return None
        try:
            principal: Principal | None = Principal(name=web.user, role=Role(web.role))
        except ValueError:
            return None
        with unit_of_work(_registry(request).sessions) as s:
            live = web_sessions.session_is_live(s, web.sid, web.user, web.issued)
        return principal if live else None
    if web.token_id is None or sso:
        return None
    with unit_of_work(_registry(request).sessions) as s:
        principal = tokens.token_principal(s, web.token_id, now=datetime.now(UTC))
        if principal is None:
            return None
        live = web_sessions.session_is_live(s, web.sid, principal.actor, web.issued)
    return principal if live else None


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
    "sessions-ended": "Sessions ended: that name must sign in again.",
    "finding-confirmed": "Finding confirmed: any false-positive triage of it has ended.",
    "finding-unconfirmed": "Confirmation withdrawn: the finding is new again.",
    "finding-fp-requested": "False positive requested: it changes nothing until someone else "
    "approves it.",
    "finding-fp-approved": "False positive approved; decisions re-evaluated.",
    "finding-assigned": "Assignment saved.",
}


def page(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Turn redirects, refusals and registry errors into HTML pages (not problem+json)."""

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
            status = 403 if isinstance(exc, TwoPersonRule | Forbidden) else 400
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
            f"this needs {PERMISSIONS[Action(action)].label} or higher",
        )
    return caller


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


def _resolve(request: Request, namespace: str, name: str, digest: str) -> str:
    with unit_of_work(_registry(request).sessions) as s:
        cp = read_checkpoint.get_checkpoint(s, namespace, name, _hex(digest))
        return f"{cp.model.full_name}@sha256:{cp.manifest_digest}"


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
