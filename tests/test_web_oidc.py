"""Single sign-on for the web UI against a real OpenID provider on loopback
(tests/fakes/oidc_provider.py): the whole code flow with PKCE driven by httpx, and each way it
must fail closed (wrong issuer, bad signature, expired token, nonce mismatch, replayed state,
missing PKCE verifier, no mapped group)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from registry.api.app import create_app
from registry.db.engine import unit_of_work
from registry.db.models import AuditEvent
from registry.embedded import EmbeddedRegistry
from registry.errors import StorageError
from registry.progress import NoProgress
from registry.requests import MirrorRequest
from registry.service.tokens import Role
from registry.settings import Settings
from registry.web import session as websession
from registry.web.oidc_client import challenge_of, new_verifier
from registry.web.oidc_flow import FLOW_COOKIE
from registry.web.oidc_settings import CALLBACK_PATH, OidcSettings, parse_roles, person_name
from tests.fakes.oidc_provider import FakeOidcProvider
from tests.web_helpers import safetensors_bytes, serve, ui_path

ROLES = "reader=staff,security=sec-team,admin=platform-admins"


@dataclass
class Sso:
    base: str
    provider: FakeOidcProvider
    registry: EmbeddedRegistry
    ref: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=30)

    def sign_in(self, client: httpx.Client, next_url: str = "/ui/models") -> httpx.Response:
        """Follow the whole flow (ours, the provider's /authorize, our callback)."""
        client.follow_redirects = True
        try:
            return client.get("/ui/login/oidc", params={"next": next_url})
        finally:
            client.follow_redirects = False

    def audit(self, action: str) -> list[AuditEvent]:
        with unit_of_work(self.registry.sessions) as s:
            rows = s.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()
            s.expunge_all()
            return list(rows)


@pytest.fixture
def sso(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sso]:
    settings = Settings.from_env()
    registry = EmbeddedRegistry(settings)
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(safetensors_bytes(7))
    ref = registry.mirror(
        MirrorRequest(source=str(folder), name="acme/tiny"), progress=NoProgress()
    ).checkpoint.ref
    try:
        with FakeOidcProvider() as provider, serve(settings, registry) as base:
            provider.redirect_uris = (base + CALLBACK_PATH,)
            # Read on the server's first request, so they may follow the ports.
            monkeypatch.setenv("MODELCTL_OIDC_ISSUER", provider.issuer)
            monkeypatch.setenv("MODELCTL_OIDC_CLIENT_ID", provider.client_id)
            monkeypatch.setenv("MODELCTL_OIDC_CLIENT_SECRET", provider.client_secret)
            monkeypatch.setenv("MODELCTL_OIDC_REDIRECT_URL", base + CALLBACK_PATH)
            monkeypatch.setenv("MODELCTL_OIDC_ROLES", ROLES)
            yield Sso(base, provider, registry, ref)
    finally:
        registry.close()


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def _has_session(client: httpx.Client) -> bool:
    return client.get("/ui/models").status_code == 200


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_sign_in_maps_groups_to_roles_and_the_audit_log_names_the_person(
    sso: Sso, algorithm: str
) -> None:
    sso.provider.algorithm = algorithm
    with sso.client() as client:
        login = client.get("/ui/login")
        assert 'id="sso"' in login.text
        assert 'name="token"' not in login.text
        page = sso.sign_in(client)
        assert page.status_code == 200, page.text
        assert page.url.path == "/ui/models"
        assert "oidc:alice@example.com · security" in page.text  # sec-team beats staff
        cookie = client.cookies.get(websession.SESSION_COOKIE)
        assert cookie is not None
        assert "alice" not in cookie
        assert client.cookies.get(FLOW_COOKIE) is None  # the flow's secrets are gone
        # A security person may quarantine; the audit log names them, not a token.
        detail = client.get(ui_path(sso.ref))
        held = client.post(
            ui_path(sso.ref) + "/quarantine",
            data={"csrf": _csrf(detail.text), "reason": "triage"},
        )
        assert held.status_code == 303, held.text
    (sign_in,) = sso.audit("web.sign-in")
    assert sign_in.actor == "oidc:alice@example.com"
    assert sign_in.details["role"] == "security"
    assert [e.actor for e in sso.audit("checkpoint.quarantine")] == ["oidc:alice@example.com"]


def test_security_role_is_not_admin_and_token_paste_is_off(sso: Sso) -> None:
    with sso.client() as client:
        assert sso.sign_in(client).status_code == 200
        assert client.get("/ui/admin").status_code == 403
        refused = client.post("/ui/login", data={"csrf": "x", "token": "mctl_x"})
        assert refused.status_code == 403
        assert "single sign-on" in refused.text


def test_person_without_a_mapped_group_is_refused(sso: Sso) -> None:
    sso.provider.person = {**sso.provider.person, "groups": ["marketing"]}
    with sso.client() as client:
        page = sso.sign_in(client)
        assert page.status_code == 403
        assert "none of the groups" in page.text
        assert not _has_session(client)
    assert sso.audit("web.sign-in") == []


@pytest.mark.parametrize(
    ("misbehave", "reason"),
    [
        ({"token_issuer": "https://evil.example"}, "issuer is wrong"),
        ({"sign_with_stranger": True}, "signature does not verify"),
        ({"sign_with_stranger": True, "algorithm": "ES256"}, "signature does not verify"),
        ({"lifetime": -120}, "has expired"),  # past the 60 s clock skew
        ({"nonce_override": "someone-elses-nonce"}, "nonce is wrong"),
        ({"audience": "another-client"}, "audience is wrong"),
        ({"audience": ["modelctl", "another-client"]}, "several audiences"),
    ],
)
def test_a_bad_id_token_is_refused(sso: Sso, misbehave: dict[str, object], reason: str) -> None:
    for name, value in misbehave.items():
        setattr(sso.provider, name, value)
    with sso.client() as client:
        page = sso.sign_in(client)
        assert page.status_code == 401
        assert reason in page.text
        assert client.cookies.get(websession.SESSION_COOKIE) is None
        assert not _has_session(client)


def test_rotated_provider_keys_are_fetched_again(sso: Sso) -> None:
    with sso.client() as client:
        assert sso.sign_in(client).status_code == 200  # the JWKS is cached now
    sso.provider.rotate()
    with sso.client() as client:
        assert sso.sign_in(client).status_code == 200  # an unknown kid: re-read once


def test_a_token_within_the_clock_skew_is_accepted(sso: Sso) -> None:
    sso.provider.lifetime = -20  # expired 20 s ago by the provider's clock: within 60 s
    with sso.client() as client:
        assert sso.sign_in(client).status_code == 200


def test_replayed_state_and_forged_state_are_refused(sso: Sso) -> None:
    with sso.client() as client:
        start = client.get("/ui/login/oidc")
        assert start.status_code == 303
        flow_cookie = client.cookies.get(FLOW_COOKIE)
        assert flow_cookie is not None
        authorize = httpx.get(start.headers["location"])
        assert authorize.status_code == 302
        callback = authorize.headers["location"]
        forged = client.get(re.sub(r"state=[^&]+", "state=forged", callback))
        assert forged.status_code == 400
        assert "(state)" in forged.text
        first = client.get(callback)
        assert first.status_code == 303
        exchanges = sso.provider.token_requests
        # An attacker who captured the answer and the flow cookie replays both:
        replay = httpx.get(
            sso.base + callback.removeprefix(sso.base), cookies={FLOW_COOKIE: flow_cookie}
        )
        assert replay.status_code == 400
        assert "already used" in replay.text
        assert sso.provider.token_requests == exchanges  # refused before the code is spent
        # And an answer without the flow cookie (another browser) is refused too.
        assert httpx.get(callback).status_code == 400


def test_provider_refuses_a_code_without_or_with_a_wrong_pkce_verifier(sso: Sso) -> None:
    provider = sso.provider
    verifier = new_verifier()

    def code() -> str:
        answer = httpx.get(
            f"{provider.issuer}/authorize",
            params={
                "response_type": "code",
                "client_id": provider.client_id,
                "redirect_uri": provider.redirect_uris[0],
                "scope": "openid",
                "state": "s",
                "nonce": "n",
                "code_challenge": challenge_of(verifier),
                "code_challenge_method": "S256",
            },
        )
        assert answer.status_code == 302
        found = re.search(r"code=([^&]+)", answer.headers["location"])
        assert found is not None
        return found.group(1)

    def exchange(code: str, **extra: str) -> httpx.Response:
        return httpx.post(
            f"{provider.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": provider.redirect_uris[0],
                **extra,
            },
            auth=(provider.client_id, provider.client_secret),
        )

    missing = exchange(code())
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_grant"
    wrong = exchange(code(), code_verifier=new_verifier())
    assert wrong.status_code == 400
    good_code = code()
    assert exchange(good_code, code_verifier=verifier).status_code == 200
    assert exchange(good_code, code_verifier=verifier).status_code == 400  # single use


def test_logout_ends_the_session_and_offers_the_providers_logout(sso: Sso) -> None:
    with sso.client() as client:
        page = sso.sign_in(client)
        out = client.post("/ui/logout", data={"csrf": _csrf(page.text)})
        assert out.status_code == 200
        link = re.search(r'id="provider-logout" href="([^"]+)"', out.text)
        assert link is not None
        assert not _has_session(client)
        back = httpx.get(link.group(1).replace("&amp;", "&"), follow_redirects=False)
        assert back.status_code == 302
        assert back.headers["location"] == sso.base + "/ui/login"
    assert sso.provider.logouts[-1]["client_id"] == sso.provider.client_id


def test_a_person_session_is_void_once_single_sign_on_is_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env()
    registry = EmbeddedRegistry(settings)
    try:
        with serve(settings, registry) as base, httpx.Client(base_url=base) as client:
            from registry.web.session import encode_session, new_person_session, session_key

            forged = new_person_session("oidc:mallory", int(Role.ADMIN))
            client.cookies.set(
                websession.SESSION_COOKIE, encode_session(session_key(settings.home), forged)
            )
            assert client.get("/ui/models").status_code == 303  # to the token sign-in
            assert 'name="token"' in client.get("/ui/login").text
    finally:
        registry.close()


def test_a_half_configured_single_sign_on_stops_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCTL_OIDC_ISSUER", "https://idp.example")
    with pytest.raises(StorageError, match="MODELCTL_OIDC_CLIENT_ID"):
        create_app(Settings.from_env(), start_worker=False)


def test_settings_fail_closed() -> None:
    base = {
        "MODELCTL_OIDC_ISSUER": "https://idp.example",
        "MODELCTL_OIDC_CLIENT_ID": "c",
        "MODELCTL_OIDC_CLIENT_SECRET": "s",
        "MODELCTL_OIDC_REDIRECT_URL": "https://registry.example/ui/oidc/callback",
        "MODELCTL_OIDC_ROLES": "security=sec",
    }
    assert OidcSettings.from_env({}) is None
    assert OidcSettings.from_env(base) is not None
    for bad in (
        {"MODELCTL_OIDC_ISSUER": "http://idp.example"},  # plain HTTP off this machine
        {"MODELCTL_OIDC_ROLES": ""},
        {"MODELCTL_OIDC_ROLES": "root=sec"},
        {"MODELCTL_OIDC_ROLES": "security"},
        {"MODELCTL_OIDC_REDIRECT_URL": "https://registry.example/elsewhere"},
        {"MODELCTL_OIDC_CLIENT_SECRET": ""},
    ):
        with pytest.raises(StorageError):
            OidcSettings.from_env({**base, **bad})


def test_role_mapping_and_names() -> None:
    settings = OidcSettings(
        issuer="https://idp.example",
        client_id="c",
        client_secret="s",
        redirect_url="https://r.example/ui/oidc/callback",
        role_claim="realm_access.roles",
        roles=parse_roles("reader=staff, publisher=ml ,reader=contractors"),
    )
    assert settings.role_for({"realm_access": {"roles": ["contractors"]}}) == Role.READER
    assert settings.role_for({"realm_access": {"roles": ["staff", "ml"]}}) == Role.PUBLISHER
    assert settings.role_for({"realm_access": {"roles": "ml"}}) == Role.PUBLISHER
    assert settings.role_for({"groups": ["ml"]}) is None
    assert person_name({"sub": "42", "email": "a@b.c", "email_verified": True}) == "oidc:a@b.c"
    assert person_name({"sub": "42", "email": "a@b.c"}) == "oidc:42"  # unverified email
    assert person_name({"sub": "has space"}) is None


def _copy_of_cookie(client: httpx.Client, sso: Sso) -> httpx.Client:
    """A second browser holding a copy of `client`'s session cookie (a stolen or shared one)."""
    cookie = client.cookies.get(websession.SESSION_COOKIE)
    assert cookie is not None
    thief = sso.client()
    thief.cookies.set(websession.SESSION_COOKIE, cookie)
    return thief


def test_a_copied_cookie_dies_with_the_sign_out(sso: Sso) -> None:
    with sso.client() as client:
        page = sso.sign_in(client)
        with _copy_of_cookie(client, sso) as thief:
            assert _has_session(thief)
            assert client.post("/ui/logout", data={"csrf": _csrf(page.text)}).status_code == 200
            assert not _has_session(thief)
            assert thief.get("/ui/models").headers["location"].startswith("/ui/login")


def test_sign_out_everywhere_ends_the_persons_other_sessions(sso: Sso) -> None:
    with sso.client() as laptop, sso.client() as phone:
        sso.sign_in(phone)
        page = sso.sign_in(laptop)
        assert _has_session(phone)
        out = laptop.post("/ui/logout", data={"csrf": _csrf(page.text), "everywhere": "1"})
        assert out.status_code == 200
        assert not _has_session(phone)
        assert not _has_session(laptop)
    (ended,) = sso.audit("web.sessions.end")
    assert (ended.actor, ended.subject) == ("oidc:alice@example.com",) * 2
    with sso.client() as again:  # signing in afresh works (cookies carry whole seconds)
        time.sleep(1.1)
        assert sso.sign_in(again).status_code == 200
        assert _has_session(again)


def test_an_admin_ends_another_persons_sessions_and_a_security_person_may_not(sso: Sso) -> None:
    with sso.client() as alice:
        sso.sign_in(alice)
        assert _has_session(alice)
        refused = alice.post(
            "/ui/admin/sessions/end",
            data={"csrf": _csrf(alice.get("/ui/models").text), "principal": "oidc:bob@x"},
        )
        assert refused.status_code == 403  # alice is security, not admin
        sso.provider.person = {
            **sso.provider.person,
            "email": "root@example.com",
            "groups": ["platform-admins"],
        }
        with sso.client() as admin:
            page = sso.sign_in(admin)
            assert "· admin" in page.text
            no_csrf = admin.post("/ui/admin/sessions/end", data={"principal": "x"})
            assert no_csrf.status_code == 403
            done = admin.post(
                "/ui/admin/sessions/end",
                data={"csrf": _csrf(page.text), "principal": "oidc:alice@example.com"},
            )
            assert done.status_code == 303, done.text
            assert not _has_session(alice)
            assert _has_session(admin)
    (ended,) = sso.audit("web.sessions.end")
    assert ended.actor == "oidc:root@example.com"
    assert ended.subject == "oidc:alice@example.com"
