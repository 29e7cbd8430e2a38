"""Quarantine and release: of one checkpoint (its page's buttons) or of a bare digest
(`/ui/quarantines`), re-deciding what they cover."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry.errors import InputError
from registry.web._plumbing import (
    FormBody,
    _actor,
    _checkpoint_url,
    _hex,
    _principal,
    _reader,
    _redecide_all,
    _Redirect,
    _registry,
    _resolve,
    page,
    render,
)

router = APIRouter(include_in_schema=False)


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
