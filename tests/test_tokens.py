"""API tokens and roles: stored hashed, shown once, revocable, audited; on both databases."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from registry.api.app import create_app
from registry.db.engine import unit_of_work
from registry.db.models import ApiToken, AuditEvent
from registry.embedded import EmbeddedRegistry
from registry.errors import InputError, NotFound
from registry.service import tokens
from registry.service.tokens import PERMISSIONS, Role
from registry.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    env = {"MODELCTL_DATABASE_URL": database_url}
    return Settings.from_env(env, home=tmp_path / "home")


@pytest.fixture
def registry(settings: Settings) -> Any:
    reg = EmbeddedRegistry(settings)
    yield reg
    reg.close()


def test_token_is_stored_only_as_its_hash(registry: EmbeddedRegistry) -> None:
    created = registry.token_create("ci", "publisher")
    secret = created.secret
    assert secret.startswith("mctl_")
    with unit_of_work(registry.sessions) as session:
        row = session.scalars(select(ApiToken)).one()
        values = [str(getattr(row, c.key)) for c in ApiToken.__table__.columns]
        audit = [str(e.details) + e.subject for e in session.scalars(select(AuditEvent))]
    assert row.secret_sha256 == tokens.token_digest(secret)
    # The secret part appears nowhere in the database (the key id is public by design).
    secret_part = secret.split("_", 2)[2]  # the whole secret (it may hold "_")
    assert not any(secret_part in v for v in values + audit)
    assert created.to_json()["token"] == secret
    assert "token" not in registry.token_list()[0].to_json()


def test_authenticate_checks_secret_revocation_and_expiry(registry: EmbeddedRegistry) -> None:
    good = registry.token_create("alice", "security").secret
    soon = registry.token_create(
        "bob", "reader", expires_at=datetime.now(UTC) + timedelta(seconds=60)
    ).secret
    with unit_of_work(registry.sessions) as session:
        principal = tokens.authenticate(session, good)
        assert principal is not None
        assert (principal.name, principal.role, principal.actor) == (
            "alice",
            Role.SECURITY,
            "token:alice",
        )
        # Same key id, another secret: refused.
        forged = good[:22] + ("A" if good[22] != "A" else "B") + good[23:]
        assert tokens.authenticate(session, forged) is None
        assert tokens.authenticate(session, "mctl_nope") is None
        assert tokens.authenticate(session, "") is None
        later = datetime.now(UTC) + timedelta(hours=1)
        assert tokens.authenticate(session, soon) is not None
        assert tokens.authenticate(session, soon, now=later) is None
    registry.token_revoke("alice")
    with unit_of_work(registry.sessions) as session:
        assert tokens.authenticate(session, good) is None
    with pytest.raises(InputError, match="already revoked"):
        registry.token_revoke("alice")
    with pytest.raises(NotFound):
        registry.token_revoke("nobody")


def test_token_names_are_checked_and_never_reused(registry: EmbeddedRegistry) -> None:
    registry.token_create("ci", "reader")
    with pytest.raises(InputError, match="exists already"):
        registry.token_create("ci", "admin")
    for bad in ("../x", "", "a b", "x" * 101):
        with pytest.raises(InputError, match="bad token name"):
            registry.token_create(bad, "reader")
    with pytest.raises(InputError, match="unknown role"):
        registry.token_create("ok", "root")
    with pytest.raises(InputError, match="future"):
        registry.token_create("old", "reader", expires_at=datetime.now(UTC) - timedelta(days=1))


def test_roles_are_ordered_and_every_action_has_one() -> None:
    assert Role.READER < Role.PUBLISHER < Role.SECURITY < Role.ADMIN
    reader = tokens.Principal("r", Role.READER, 1)
    security = tokens.Principal("s", Role.SECURITY, 2)
    assert reader.may("read")
    assert reader.may("admission.check")
    assert not reader.may("quarantine")
    assert not reader.may("mirror")
    assert security.may("quarantine")
    assert security.may("mirror")
    assert not security.may("token.manage")
    assert set(PERMISSIONS.values()) == set(Role)


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), raise_server_exceptions=False)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_api_refuses_missing_bad_and_revoked_tokens(settings: Settings) -> None:
    with _client(settings) as client:
        registry = client.app.state.registry  # type: ignore[attr-defined]
        reader = registry.token_create("reader1", "reader").secret
        response = client.get("/v1/models")
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["reason"] == "token_required"
        assert response.headers["www-authenticate"].startswith("Bearer")
        bad = client.get("/v1/models", headers=_bearer("mctl_0123456789abcdef_" + "A" * 43))
        assert (bad.status_code, bad.json()["reason"]) == (401, "token_invalid")
        assert client.get("/v1/models", headers=_bearer(reader)).json() == {"models": []}
        registry.token_revoke("reader1")
        revoked = client.get("/v1/models", headers=_bearer(reader))
        assert (revoked.status_code, revoked.json()["reason"]) == (401, "token_invalid")


def test_api_token_management_needs_admin_and_is_audited(settings: Settings) -> None:
    with _client(settings) as client:
        registry = client.app.state.registry  # type: ignore[attr-defined]
        admin = registry.token_create("root-admin", "admin").secret
        security = registry.token_create("sec", "security").secret
        denied = client.post("/v1/tokens", json={"name": "x"}, headers=_bearer(security))
        assert (denied.status_code, denied.json()["reason"]) == (403, "role_insufficient")
        made = client.post(
            "/v1/tokens", json={"name": "ci", "role": "publisher"}, headers=_bearer(admin)
        )
        assert made.status_code == 201
        secret = made.json()["token"]
        who = client.get("/v1/whoami", headers=_bearer(secret)).json()
        assert who == {"name": "ci", "role": "publisher", "actor": "token:ci"}
        listed = client.get("/v1/tokens", headers=_bearer(admin)).json()["tokens"]
        assert [t["name"] for t in listed] == ["root-admin", "sec", "ci"]
        assert all("token" not in t for t in listed)
        revoked = client.post("/v1/tokens/ci/revoke", headers=_bearer(admin))
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"]
        assert client.get("/v1/whoami", headers=_bearer(secret)).status_code == 401
        again = client.post("/v1/tokens/ci/revoke", headers=_bearer(admin))
        assert (again.status_code, again.json()["reason"]) == (400, "input_error")
        # The audit log names the admin token as the actor of both changes.
        audit = client.get(
            "/v1/audit", params={"action": "token."}, headers=_bearer(security)
        ).json()["events"]
        assert [(e["actor"], e["action"], e["subject"]) for e in audit[:2]] == [
            ("token:root-admin", "token.revoke", "token:ci"),
            ("token:root-admin", "token.create", "token:ci"),
        ]
        reader = registry.token_create("r", "reader").secret
        assert client.get("/v1/audit", headers=_bearer(reader)).status_code == 403


def test_public_reads_allow_anonymous_reads_but_never_writes(settings: Settings) -> None:
    public = dataclasses.replace(settings, public_reads=True)
    with _client(public) as client:
        assert client.get("/v1/models").status_code == 200
        assert client.get("/v1/whoami").json()["name"] == "anonymous"
        write = client.post("/v1/tokens", json={"name": "x"})
        assert (write.status_code, write.json()["reason"]) == (401, "token_required")
        # A token that is sent is checked even where reads are public.
        assert client.get("/v1/models", headers=_bearer("mctl_x")).status_code == 401


def test_public_key_needs_no_token_even_when_reads_are_gated(settings: Settings) -> None:
    from registry.signing_key import registry_signer

    signer = registry_signer(dataclasses.replace(settings, signing_key_passphrase="pw"))
    assert not settings.public_reads
    with _client(settings) as client:
        assert client.get("/v1/models").status_code == 401  # reads are gated
        key = client.get("/v1/public-key")
        assert key.status_code == 200, key.text
        assert key.content == signer.public_pem
        assert key.headers["content-type"].startswith("application/x-pem-file")


def test_public_reads_setting_is_parsed_strictly(tmp_path: Path) -> None:
    assert Settings.from_env({"MODELCTL_PUBLIC_READS": "true"}, home=tmp_path).public_reads
    assert not Settings.from_env({"MODELCTL_PUBLIC_READS": "0"}, home=tmp_path).public_reads
    with pytest.raises(InputError, match="MODELCTL_PUBLIC_READS"):
        Settings.from_env({"MODELCTL_PUBLIC_READS": "maybe"}, home=tmp_path)


def test_cli_tokens_create_list_revoke_embedded(run_cli: Any) -> None:
    created = run_cli("tokens", "create", "first-admin", "--role", "admin", "--json")
    assert created.code == 0, created.stderr
    assert "shown only this once" in created.stderr
    secret = created.json()["token"]
    assert secret.startswith("mctl_")
    assert secret not in created.stderr
    plain = run_cli("tokens", "create", "ci", "--role", "publisher")
    assert plain.stdout.strip().startswith("mctl_")
    listed = run_cli("tokens", "list", "--json").json()["tokens"]
    assert [(t["name"], t["role"], t["revoked_at"]) for t in listed] == [
        ("first-admin", "admin", None),
        ("ci", "publisher", None),
    ]
    assert secret not in run_cli("tokens", "list").stdout
    assert run_cli("tokens", "revoke", "ci").code == 0
    twice = run_cli("tokens", "revoke", "ci")
    assert twice.code == 2
    assert "already revoked" in twice.stderr
    bad_role = run_cli("tokens", "create", "x", "--role", "root")
    assert bad_role.code == 2
    assert "unknown role" in bad_role.stderr
    events = run_cli("audit", "--action", "token.", "--json").json()["events"]
    assert [e["action"] for e in events] == ["token.revoke", "token.create", "token.create"]


def test_cli_tokens_create_scoped_to_environments(
    run_cli: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    made = run_cli(
        "tokens", "create", "deploy", "--role", "reader", "--env", "prod", "--env", "staging"
    )
    assert made.code == 0, made.stderr
    assert "environments prod,staging" in made.stderr
    listed = {t["name"]: t for t in run_cli("tokens", "list", "--json").json()["tokens"]}
    assert listed["deploy"]["environments"] == ["prod", "staging"]
    assert "prod,staging" in run_cli("tokens", "list").stdout
    registry = EmbeddedRegistry(Settings.from_env())
    with unit_of_work(registry.sessions) as session:
        principal = tokens.authenticate(session, made.stdout.strip())
        assert principal is not None
        # A browser session signed in with the token is the same caller, scope included.
        web = tokens.token_principal(session, principal.token_id or 0, now=datetime.now(UTC))
    registry.close()
    assert web == principal
    assert principal.environments == ("prod", "staging")
    assert principal.may_use("prod")
    assert not principal.may_use("dev")
    bad = run_cli("tokens", "create", "x", "--env", "../prod")
    assert bad.code == 2
    assert "bad environment name" in bad.stderr
    event = run_cli("audit", "--action", "token.create", "--json").json()["events"][0]
    assert event["details"]["environments"] == ["prod", "staging"]


def test_cli_revoke_with_odd_ids_is_a_clean_exit_2(
    run_cli: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # '²'.isdigit() is True but int('²') raises; 2**31 is past PostgreSQL's INTEGER ids.
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    assert run_cli("tokens", "create", "ci", "--role", "publisher").code == 0
    for key in ("²", "\u0661\u0662", str(2**31), str(10**30)):
        result = run_cli("tokens", "revoke", key)
        assert result.code == 2, (key, result.stderr)
        assert result.stderr.count("\n") == 1
        assert "no token" in result.stderr
    for exception_id in (str(2**31), str(10**30), "0"):
        result = run_cli("exception", "revoke", exception_id)
        assert result.code == 2, (exception_id, result.stderr)
        assert result.stderr.count("\n") == 1
    assert run_cli("tokens", "revoke", "1").code == 0  # a real id still works


def test_uvicorn_access_log_never_prints_the_token(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.api_server import live_server

    app = create_app(settings)
    secret = app.state.registry.token_create("quiet", "reader").secret
    with caplog.at_level("INFO"), live_server(app, log_level="info") as server:
        response = httpx.get(f"{server.url}/v1/models", headers=_bearer(secret))
        assert response.status_code == 200
        assert (
            httpx.get(f"{server.url}/v1/models", headers=_bearer(secret + "x")).status_code == 401
        )
    assert '"GET /v1/models HTTP/1.1" 200' in caplog.text  # the access log did run
    assert secret[10:] not in caplog.text
