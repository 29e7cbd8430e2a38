"""Single sign-on for people (OpenID Connect, authorization code flow with PKCE): the redirect
to the provider, the callback that turns a validated ID token into a session, and the
provider's logout (RP-initiated) after the local session ends. Configured by MODELCTL_OIDC_*
(`oidc_settings`); without it these routes answer 404 and the token sign-in stays.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from registry.db.engine import unit_of_work
from registry.service.sign_in import record_sign_in
from registry.web import session as websession
from registry.web._plumbing import (
    _headers,
    _key,
    _oidc,
    _Refused,
    _registry,
    _safe_next,
    _set_cookie,
    _spent_states,
    page,
)
from registry.web.oidc_client import OidcClient, OidcError
from registry.web.oidc_flow import FLOW_COOKIE, FLOW_SECONDS, decode_flow, encode_flow, new_flow
from registry.web.oidc_settings import CALLBACK_PATH, person_name

router = APIRouter(include_in_schema=False)


def _client(request: Request) -> OidcClient:
    client = _oidc(request)
    if client is None:
        raise _Refused(404, "single sign-on is not configured on this server")
    return client


@router.get("/ui/login/oidc")
@page
def start(request: Request) -> Response:
    client = _client(request)
    flow = new_flow(_safe_next(request.query_params.get("next")))
    try:
        target = client.authorization_url(
            state=flow.state, nonce=flow.nonce, verifier=flow.verifier
        )
    except OidcError as exc:
        raise _Refused(502, exc.message) from None
    response = RedirectResponse(target, status_code=303, headers=_headers())
    _set_cookie(request, response, FLOW_COOKIE, encode_flow(_key(request), flow), FLOW_SECONDS)
    return response


@router.get(CALLBACK_PATH)
@page
def callback(request: Request) -> Response:
    client = _client(request)
    flow = decode_flow(_key(request), request.cookies.get(FLOW_COOKIE))
    if flow is None:
        raise _Refused(400, "this sign-in expired or was started elsewhere: sign in again")
    params = request.query_params
    if not websession.same_token(params.get("state"), flow.state):
        raise _Refused(400, "the provider's answer does not match this sign-in (state)")
    # Spent before anything else: a replayed answer is refused even if the code still worked.
    if not _spent_states(request).spend(flow.state):
        raise _Refused(400, "this sign-in answer was already used: sign in again")
    if params.get("error"):
        raise _Refused(401, f"the provider refused sign-in ({params['error'][:80]})")
    code = params.get("code", "")
    if not code:
        raise _Refused(400, "the provider's answer carries no authorization code")
    try:
        claims = client.validate(client.exchange(code, flow.verifier), nonce=flow.nonce)
    except OidcError as exc:
        raise _Refused(401, exc.message) from None
    name = person_name(claims)
    if name is None:
        raise _Refused(401, "the ID token names nobody (no usable sub or verified email)")
    role = client.settings.role_for(claims)
    if role is None:
        raise _Refused(
            403,
            f"{name} is in none of the groups this registry maps to a role "
            f"(claim {client.settings.role_claim!r}): ask an administrator",
        )
    with unit_of_work(_registry(request).sessions) as s:
        record_sign_in(s, actor=name, role=role.label, issuer=client.settings.issuer)
    web = websession.new_person_session(name, int(role))
    response = RedirectResponse(flow.next, status_code=303, headers=_headers())
    _set_cookie(
        request,
        response,
        websession.SESSION_COOKIE,
        websession.encode_session(_key(request), web),
        websession.SESSION_SECONDS,
    )
    response.delete_cookie(FLOW_COOKIE, path="/")
    return response


def end_session_url(request: Request) -> str | None:
    """Where to send a person after the local session ends so the provider signs them out too
    (RP-initiated logout), when its discovery advertises an end_session_endpoint."""
    client = _oidc(request)
    if client is None:
        return None
    try:
        endpoint = client.metadata().end_session_endpoint
    except OidcError:
        return None  # the local session is over either way
    if endpoint is None:
        return None
    back = urlsplit(client.settings.redirect_url)
    query = urlencode(
        {
            "client_id": client.settings.client_id,
            "post_logout_redirect_uri": urlunsplit((back.scheme, back.netloc, "/ui/login", "", "")),
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
