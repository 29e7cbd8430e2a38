"""Sign-in and sign-out: an API token becomes a signed session cookie (see `session`); where
single sign-on is configured the page offers the provider instead (`oidc_login`)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from registry.db.engine import unit_of_work
from registry.service import tokens, web_sessions
from registry.web import session as websession
from registry.web._plumbing import (
    FormBody,
    _actor,
    _headers,
    _key,
    _oidc,
    _Refused,
    _registry,
    _safe_next,
    _set_cookie,
    page,
    render,
)
from registry.web.oidc_login import end_session_url

router = APIRouter(include_in_schema=False)


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
        sso=_oidc(request) is not None,
    )
    _set_cookie(request, response, websession.PRESESSION_COOKIE, pre, websession.PRESESSION_SECONDS)
    return response


@router.post("/ui/login")
@page
def login(request: Request, form: FormBody) -> Response:
    if form.error is not None:
        raise _Refused(*form.error)
    if _oidc(request) is not None:
        raise _Refused(
            403, "people sign in through single sign-on here; API tokens are for machines"
        )
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
            sso=False,
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
    caller = _actor(request, form, None)
    # _actor refuses a caller without both
    assert caller.session is not None
    assert caller.principal is not None
    with unit_of_work(_registry(request).sessions) as s:
        # The cookie is deleted below, but a copy of it must die too: the server refuses its id.
        web_sessions.end_session(
            s, caller.session.sid, issued=caller.session.issued, lifetime=websession.SESSION_SECONDS
        )
        if form.get("everywhere") == "1":
            web_sessions.end_all_sessions(s, caller.principal.actor, actor=caller.principal.actor)
    provider = end_session_url(request) if caller.session.user else None
    if provider is None:
        response: Response = RedirectResponse("/ui/login", status_code=303, headers=_headers())
    else:
        # A page with a link, not a redirect: the form-action CSP would stop a form's redirect
        # to another origin, and the local session is over either way.
        response = render(request, "signed_out.html", None, provider_logout=provider)
    response.delete_cookie(websession.SESSION_COOKIE, path="/")
    return response
