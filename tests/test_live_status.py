"""Status shown is status enforced: every list and `models` column is the policy in force
evaluated now (cached per process, forgotten when the audit log or the clock says so), a
what-if is never a status, and repeating a check writes nothing. On SQLite and PostgreSQL,
embedded and remote (a real `modelctl serve` on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from policies import default_policies_text
from registry.db.engine import unit_of_work
from registry.db.models import Attestation, AuditEvent, Checkpoint, Decision, Quarantine
from registry.embedded import EmbeddedRegistry
from registry.service.live_status import STATUSES
from registry.settings import Settings
from tests.test_remote import Remote, both, hub, remote  # noqa: F401 - fixtures

ENVS = ("dev", "staging", "prod")


def _statuses(result: Any) -> dict[str, str]:
    """env -> status of org/tiny's one checkpoint in `models --json` output."""
    assert result.code == 0, result.stderr
    (model,) = result.json()["models"]
    (checkpoint,) = model["checkpoints"]
    return {env: s["status"] for env, s in checkpoint["environments"].items()}


def _rows(registry: EmbeddedRegistry) -> tuple[int, int, int]:
    with unit_of_work(registry.sessions) as s:
        return (
            s.scalar(select(func.count()).select_from(Decision)) or 0,
            s.scalar(select(func.count()).select_from(Attestation)) or 0,
            s.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


@pytest.fixture
def server_registry(remote: Remote) -> Iterator[EmbeddedRegistry]:  # noqa: F811
    """Another handle on the server's database (what a second server process would have)."""
    registry = EmbeddedRegistry(Settings.from_env())
    try:
        yield registry
    finally:
        registry.close()


def test_models_list_shows_live_status_without_policy_check(
    run_cli: Any,
    remote: Remote,  # noqa: F811
    server_registry: EmbeddedRegistry,
) -> None:
    before = _rows(server_registry)
    embedded, over_http = both(run_cli, remote, "models", "--json", role="reader")
    assert embedded.stdout == over_http.stdout
    shown = _statuses(embedded)
    assert set(shown) == set(ENVS)
    assert set(shown.values()) <= set(STATUSES)  # never "undecided"
    # Mirrored from the hub at a full commit, scanned clean and attested: admitted everywhere.
    assert shown == dict.fromkeys(ENVS, "allowed")
    assert _rows(server_registry) == before  # listing records nothing
    text = run_cli("models")
    header = text.stdout.splitlines()[0].split()
    assert header[-3:] == ["DEV", "STAGING", "PROD"]
    assert text.stdout.splitlines()[1].split()[-3:] == ["allowed"] * 3
    # The API's list is the same document.
    api = httpx.get(
        remote.url + "/v1/models", headers={"Authorization": f"Bearer {remote.tokens['reader']}"}
    )
    assert api.json() == embedded.json()
    # What the list says is what a check decides.
    for env in ENVS:
        checked = run_cli("policy", "check", remote.seeded.ref, "--env", env, "--json")
        assert checked.json()["allowed"] is (shown[env] in ("allowed", "warn"))


def test_release_updates_status_at_once(
    run_cli: Any,
    remote: Remote,  # noqa: F811
) -> None:
    ref = remote.seeded.ref
    remote.on("security")
    assert _statuses(run_cli("models", "--json")) == dict.fromkeys(ENVS, "allowed")  # cached
    assert run_cli("quarantine", ref, "--reason", "CVE-2099-1").code == 0
    assert _statuses(run_cli("models", "--json")) == dict.fromkeys(ENVS, "quarantined")
    # Released through another process on the same database (embedded here; another server
    # would do the same): the server's cached statuses are forgotten through the audit log.
    remote.off()
    assert run_cli("release", ref, "--reason", "verified").code == 0
    remote.on("reader")
    assert _statuses(run_cli("models", "--json")) == dict.fromkeys(ENVS, "allowed")
    remote.off()


def _strict_policy(tmp_path: Path) -> Path:
    strict = tmp_path / "strict.yaml"
    strict.write_text(default_policies_text().replace("apache-2.0, mit,", "mit,", 1))
    return strict


def test_whatif_policy_check_is_not_status(
    run_cli: Any,
    remote: Remote,  # noqa: F811
    server_registry: EmbeddedRegistry,
    tmp_path: Path,
) -> None:
    strict = _strict_policy(tmp_path)
    before = _rows(server_registry)
    args = ("policy", "check", remote.seeded.ref, "--env", "prod", "--policy", str(strict))
    embedded, over_http = both(run_cli, remote, *args, "--json", role="security")
    for result in (embedded, over_http):
        assert result.code == 1
        assert result.json()["allowed"] is False
        assert result.json()["what_if"] is True
    assert _rows(server_registry) == before  # a what-if records nothing
    listed, listed_remote = both(run_cli, remote, "models", "--json", role="reader")
    assert _statuses(listed) == _statuses(listed_remote) == dict.fromkeys(ENVS, "allowed")
    # The same document as the registry's own is no what-if: it is recorded like any check.
    own = tmp_path / "own.yaml"
    own.write_text(default_policies_text())
    same = run_cli("policy", "check", remote.seeded.ref, "--env", "prod", "--policy", str(own))
    assert same.code == 0
    assert _rows(server_registry)[0] == before[0] + 1


@pytest.mark.slow
def test_repeated_checks_record_one_decision(
    run_cli: Any,
    remote: Remote,  # noqa: F811
    server_registry: EmbeddedRegistry,
) -> None:
    headers = {"Authorization": f"Bearer {remote.tokens['reader']}"}
    body = {"ref": remote.seeded.ref, "environment": "prod"}
    with httpx.Client(base_url=remote.url, headers=headers) as client:
        first = client.post("/v1/admission/check", json=body)
        assert first.status_code == 200
        assert first.json()["allowed"] is True
        after_first = _rows(server_registry)
        for _ in range(50):
            again = client.post("/v1/admission/check", json=body)
            assert again.status_code == 200
            assert again.json()["allowed"] is True
        assert _rows(server_registry) == after_first  # no decision, VSA or audit event
        # A change of outcome is recorded once: quarantined, then checked 5 times.
        remote.off()
        assert run_cli("quarantine", remote.seeded.ref, "--reason", "x").code == 0
        quarantined = _rows(server_registry)
        for _ in range(5):
            assert client.post("/v1/admission/check", json=body).json()["allowed"] is False
        decisions, attestations, events = _rows(server_registry)
        assert (decisions, attestations, events) == (
            quarantined[0] + 1,
            quarantined[1] + 1,  # its signed VSA
            quarantined[2] + 1,  # checkpoint.decide
        )
    # Embedded checks behave the same.
    for _ in range(3):
        assert run_cli("policy", "check", remote.seeded.ref, "--env", "prod").code == 1
    assert _rows(server_registry) == (decisions, attestations, events)


def test_status_board_forgets_only_what_an_event_may_change(
    database_url: str,
    run_cli: Any,
    hub: Any,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scoped events forget one digest, unknown ones everything; a late-committed event
    (a lower id made visible after a higher one, as on PostgreSQL) is still seen; a status
    is not used past its decision's expiry."""
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    from tests.api_server import tiny_files

    refs = []
    for name in ("org/a", "org/b"):
        files = dict(tiny_files())
        files["config.json"] = f'{{"name": "{name}"}}\n'.encode()
        hub.add_repo(name, files)
        assert run_cli("mirror", f"hf://{name}").code == 0
        assert run_cli("attest", name).code == 0
        refs.append(name)
    registry = EmbeddedRegistry(Settings.from_env())
    try:
        live = registry.live_statuses()
        board = registry.status_board

        def statuses(now: datetime | None = None) -> dict[tuple[int, str], str]:
            with unit_of_work(registry.sessions) as s:
                ids = live.all_ids(s)
                found = live.statuses(s, ids, ENVS, now=now)
                return {k: v.status for k, v in found.items()}

        first = statuses()
        assert set(first.values()) == {"allowed"}
        computed = board.computed
        assert statuses() == first  # cached:
        assert board.computed == computed
        # A scan of org/a: only org/a is decided again.
        assert run_cli("scan", "org/a").code == 0
        statuses()
        assert board.computed == computed + len(ENVS)
        # An action this module does not know (added by someone later): everything.
        with unit_of_work(registry.sessions) as s:
            s.add(AuditEvent(actor="t", action="future.thing", subject="x", details={}))
        statuses()
        assert board.computed == computed + 3 * len(ENVS)
        # Ids 1000 and 1002 visible, 1001 commits later: its effect is not lost.
        with unit_of_work(registry.sessions) as s:
            for event_id in (1000, 1002):
                s.add(AuditEvent(id=event_id, actor="t", action="token.create", subject="t"))
        statuses()
        settled = board.computed
        with unit_of_work(registry.sessions) as s:
            cp = s.scalars(select(Checkpoint).order_by(Checkpoint.id)).first()
            assert cp is not None
            s.add(
                AuditEvent(
                    id=1001,
                    actor="t",
                    action="checkpoint.quarantine",
                    subject=f"{refs[0]}@sha256:{cp.manifest_digest}",
                    details={},
                )
            )
            s.add(
                Quarantine(kind="checkpoint", digest=cp.manifest_digest, reason="late", actor="t")
            )
        after = statuses()
        assert board.computed > settled
        assert sorted(after.values()).count("quarantined") == len(ENVS)
        # Time: a status is not used past its decision's expiry (the scans' max age).
        settled = board.computed
        statuses(now=datetime.now(UTC) + timedelta(days=400))
        assert board.computed == settled + 2 * len(ENVS)
    finally:
        registry.close()


def test_exception_and_its_expiry_change_the_status(
    database_url: str,
    run_cli: Any,
    hub: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A warm board follows exceptions granted and revoked by another process, and a status
    resting on a waiver is not used past the waiver's expiry."""
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    from tests.api_server import tiny_files

    files = dict(tiny_files())
    files["README.md"] = b"---\nlicense: proprietary\n---\n# p\n"
    hub.add_repo("org/p", files)
    assert run_cli("mirror", "hf://org/p").code == 0
    assert run_cli("attest", "org/p").code == 0
    registry = EmbeddedRegistry(Settings.from_env())
    try:

        def prod(now: datetime | None = None) -> tuple[str, tuple[str, ...]]:
            """org/p's live status in prod (as `models` shows it), at `now`."""
            live = registry.live_statuses()
            with unit_of_work(registry.sessions) as s:
                (found,) = live.statuses(s, live.all_ids(s), ["prod"], now=now).values()
                return found.status, found.reasons

        (model,) = registry.models()
        assert model.checkpoints[0].environments["prod"]["status"] == "denied"
        status, reasons = prod()
        assert status == "denied"
        assert any(r.startswith("licenses") for r in reasons)
        monkeypatch.setenv("USER", "alice")
        monkeypatch.setenv("LOGNAME", "alice")
        requested = run_cli(
            "exception", "request", "org/p", "--waive", "licenses", "--reason", "vendor deal",
            "--expires", "2d", "--json",
        )  # fmt: skip
        assert requested.code == 0, requested.stderr
        assert prod()[0] == "denied"  # a request waives nothing
        monkeypatch.setenv("USER", "legal")
        monkeypatch.setenv("LOGNAME", "legal")
        added = run_cli("exception", "approve", str(requested.json()["id"]), "--json")
        assert added.code == 0, added.stderr
        assert prod()[0] == "allowed"
        # Past the waiver's expiry the cached status is not used: decided again, denied.
        assert prod(datetime.now(UTC) + timedelta(days=3))[0] == "denied"
        assert run_cli("exception", "revoke", str(added.json()["id"])).code == 0
        assert prod()[0] == "denied"
    finally:
        registry.close()
