"""Quarantine binds bytes; waivers are exact (issue 12, findings 3 and 4), on both databases,
through the embedded CLI. The remote CLI, REST API and UI have their own tests in
test_remote.py, test_api.py and test_web.py."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attestations.digests import Digest
from attestations.manifest import Manifest, ManifestEntry
from tests.fakes.hfhub import FakeHub
from tests.test_policy_cli import CARD, _safetensors, as_user, checks

SHARED = b'{"tokenizer": "known bad"}'


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[FakeHub]:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        yield fake


def mirror(run_cli: Any, source: str, name: str | None = None) -> str:
    args = ["mirror", source, "--json", "--fail-on", "never"] + (["--name", name] if name else [])
    result = run_cli(*args)
    assert result.code == 0, result.stderr
    run_cli("attest", name or source.removeprefix("hf://"))
    digest: str = result.json()["digest"]
    return digest


def prod(run_cli: Any, ref: str) -> Any:
    return run_cli("policy", "check", ref, "--env", "prod", "--json")


def test_quarantine_binds_digest_under_every_name(
    run_cli: Any, hub: FakeHub, tmp_path: Path
) -> None:
    hub.add_repo("org/tiny", {"README.md": CARD, "model.safetensors": _safetensors()})
    digest = mirror(run_cli, "hf://org/tiny")
    assert mirror(run_cli, "hf://org/tiny", "other/copy") == digest  # same bytes, another name
    assert prod(run_cli, "other/copy").code == 0

    held = run_cli("quarantine", "org/tiny", "--reason", "CVE-2026-0001", "--json")
    assert held.code == 0, held.stderr
    assert (held.json()["kind"], held.json()["digest"]) == ("checkpoint", digest)
    assert held.json()["covers"] == [f"org/tiny@{digest}", f"other/copy@{digest}"]
    for ref in ("org/tiny", "other/copy"):
        denied = prod(run_cli, ref)
        assert denied.code == 1, ref
        assert checks(denied)["quarantine"] == "fail"
    text = run_cli("quarantine", "org/tiny", "--reason", "again").stdout
    assert f"other/copy@{digest}" in text  # the CLI lists every name it holds

    # A name added later holding the same bytes is quarantined on arrival, and says so.
    arrived = run_cli("mirror", "hf://org/tiny", "--name", "late/copy")
    assert f"QUARANTINED on arrival by checkpoint {digest}: CVE-2026-0001" in arrived.stdout
    run_cli("attest", "late/copy")
    assert checks(prod(run_cli, "late/copy"))["quarantine"] == "fail"
    shown = run_cli("inspect", "late/copy", "--json").json()["quarantine"]
    assert (shown["kind"], shown["digest"]) == ("checkpoint", digest)
    assert shown["reason"] == "CVE-2026-0001"
    assert run_cli("pull", "late/copy", "--env", "dev", "--dest", str(tmp_path / "o")).code == 1

    # Releasing through any name releases the digest, everywhere.
    released = run_cli("release", "late/copy", "--reason", "patched", "--json")
    assert released.code == 0, released.stderr
    assert len(released.json()["covers"]) == 3
    assert released.json()["still_quarantined_by"] == []
    for ref in ("org/tiny", "other/copy", "late/copy"):
        assert prod(run_cli, ref).code == 0, ref


def test_quarantine_of_a_file_digest_holds_every_checkpoint_with_that_file(
    run_cli: Any, hub: FakeHub
) -> None:
    hub.add_repo("org/a", {"README.md": CARD, "tokenizer.json": SHARED})
    hub.add_repo("org/b", {"README.md": CARD, "tok/tokenizer.json": SHARED, "x.json": b"{}"})
    hub.add_repo("org/clean", {"README.md": CARD, "x.json": b"{}"})
    a, b = mirror(run_cli, "hf://org/a"), mirror(run_cli, "hf://org/b")
    mirror(run_cli, "hf://org/clean")
    file_digest = "sha256:" + hashlib.sha256(SHARED).hexdigest()

    held = run_cli("quarantine", file_digest, "--reason", "poisoned tokenizer", "--json")
    assert held.code == 0, held.stderr
    assert held.json()["kind"] == "file"
    assert held.json()["covers"] == [f"org/a@{a}", f"org/b@{b}"]
    assert held.json()["paths"] == ["tok/tokenizer.json", "tokenizer.json"]
    assert checks(prod(run_cli, "org/a"))["quarantine"] == "fail"
    assert checks(prod(run_cli, "org/b"))["quarantine"] == "fail"
    assert prod(run_cli, "org/clean").code == 0

    # Later checkpoints holding the file are quarantined on arrival.
    hub.add_repo("org/c", {"README.md": CARD, "t.json": SHARED})
    mirror(run_cli, "hf://org/c")
    assert checks(prod(run_cli, "org/c"))["quarantine"] == "fail"

    # Releasing a name does not lift a file quarantine: it says which file still holds it.
    refused = run_cli("release", "org/a", "--reason", "looks fine")
    assert refused.code == 2
    assert f"still quarantined by file {file_digest}" in refused.stderr
    assert checks(prod(run_cli, "org/a"))["quarantine"] == "fail"

    released = run_cli("release", file_digest, "--reason", "false alarm", "--json")
    assert released.code == 0, released.stderr
    for ref in ("org/a", "org/b", "org/c"):
        assert prod(run_cli, ref).code == 0, ref


def test_release_of_a_name_says_a_file_quarantine_still_holds_it(
    run_cli: Any, hub: FakeHub
) -> None:
    hub.add_repo("org/a", {"README.md": CARD, "tokenizer.json": SHARED})
    digest = mirror(run_cli, "hf://org/a")
    file_digest = "sha256:" + hashlib.sha256(SHARED).hexdigest()
    assert run_cli("quarantine", "org/a", "--reason", "bad checkpoint").code == 0
    assert run_cli("quarantine", file_digest, "--reason", "bad file").code == 0
    released = run_cli("release", "org/a", "--reason", "checkpoint ok")
    assert released.code == 0, released.stderr
    assert f"still quarantined: org/a@{digest} by file {file_digest}" in released.stdout
    assert checks(prod(run_cli, "org/a"))["quarantine"] == "fail"  # exactly that was undone


def test_quarantine_of_an_unknown_file_digest_blocks_it_ahead_of_time(
    run_cli: Any, hub: FakeHub
) -> None:
    bad = b"\x80\x04known-bad pickle from a threat feed."
    known_bad = "sha256:" + hashlib.sha256(bad).hexdigest()
    ahead = run_cli("quarantine", known_bad, "--reason", "threat feed 2026-12")
    assert ahead.code == 0, ahead.stderr
    assert "no checkpoint holds it yet" in ahead.stdout
    assert "quarantined on arrival" in ahead.stdout
    hub.add_repo("org/later", {"README.md": CARD, "weights.json": bad})
    mirror(run_cli, "hf://org/later")
    assert checks(prod(run_cli, "org/later"))["quarantine"] == "fail"
    assert run_cli("quarantine", "sha256:xyz", "--reason", "r").code == 2  # not a digest


def test_a_digest_blocked_ahead_of_time_holds_a_checkpoint_with_that_identity(
    run_cli: Any, hub: FakeHub
) -> None:
    """A threat feed names a checkpoint's manifest digest before the registry has those bytes:
    the quarantine is recorded as a file's (nothing is known yet), and it must still hold the
    checkpoint that arrives with that digest as its identity, under any name."""
    files = {"README.md": CARD, "model.safetensors": _safetensors()}
    manifest = Manifest.build(
        ManifestEntry(path, len(data), Digest(hashlib.sha256(data).hexdigest()))
        for path, data in files.items()
    )
    ahead = run_cli("quarantine", str(manifest.digest), "--reason", "feed: backdoored release")
    assert ahead.code == 0, ahead.stderr
    assert "no checkpoint holds it yet" in ahead.stdout
    hub.add_repo("org/feed", files)
    assert mirror(run_cli, "hf://org/feed") == str(manifest.digest)
    assert checks(prod(run_cli, "org/feed"))["quarantine"] == "fail"
    listed = run_cli("quarantine", "list", "--json")
    assert listed.code == 0, listed.stderr
    assert any(f"org/feed@{manifest.digest}" in q["covers"] for q in listed.json()["quarantines"])


def test_quarantine_list_shows_every_active_quarantine_and_what_it_holds(
    run_cli: Any, hub: FakeHub
) -> None:
    hub.add_repo("org/a", {"README.md": CARD, "tokenizer.json": SHARED})
    digest = mirror(run_cli, "hf://org/a")
    mirror(run_cli, "hf://org/a", "mirror/a")
    assert run_cli("quarantine", "list").stdout.strip() == "no active quarantines"
    run_cli("quarantine", "mirror/a", "--reason", "bad")
    listed = run_cli("quarantine", "list", "--json").json()["quarantines"]
    assert [(q["kind"], q["covers"]) for q in listed] == [
        ("checkpoint", [f"org/a@{digest}", f"mirror/a@{digest}"])  # oldest first
    ]
    run_cli("release", "org/a", "--reason", "ok")
    assert run_cli("quarantine", "list", "--json").json() == {"quarantines": []}


# -- waivers ------------------------------------------------------------------------------------


def _request(run_cli: Any, *extra: str, waive: str = "licenses", expires: str = "10d") -> Any:
    return run_cli(
        "exception", "request", "org/tiny", "--waive", waive, "--reason", "review",
        "--expires", expires, *extra, "--json",
    )  # fmt: skip


def test_exception_needs_two_principals_on_the_embedded_cli(
    run_cli: Any, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.embedded import EmbeddedRegistry
    from registry.requests import AuditQuery
    from registry.settings import Settings

    hub.add_repo("org/tiny", {"model.safetensors": _safetensors()})  # unknown license
    mirror(run_cli, "hf://org/tiny")
    as_user(monkeypatch, "alice")
    requested = _request(run_cli)
    assert requested.code == 0, requested.stderr
    request_id = str(requested.json()["id"])
    own = run_cli("exception", "approve", request_id)
    assert own.code == 2
    assert "needs a second person" in own.stderr
    assert len(own.stderr.strip().splitlines()) == 1
    assert prod(run_cli, "org/tiny").code == 1
    as_user(monkeypatch, "bob")
    approved = run_cli("exception", "approve", request_id, "--json")
    assert approved.code == 0, approved.stderr
    assert checks(prod(run_cli, "org/tiny"))["licenses"] == "waived"
    registry = EmbeddedRegistry(Settings.from_env())
    try:
        events = registry.audit_log(AuditQuery(action="exception."))
    finally:
        registry.close()
    by_action = {e.action: e for e in events}
    assert by_action["exception.request"].actor == "local:alice"
    assert by_action["exception.approve"].actor == "local:bob"
    assert by_action["exception.add"].details["requested_by"] == "local:alice"
    assert by_action["exception.add"].details["approver"] == "local:bob"


def test_exception_waive_ids_are_checked_against_the_bound_policies(
    run_cli: Any, hub: FakeHub
) -> None:
    hub.add_repo("org/tiny", {"model.safetensors": _safetensors()})
    mirror(run_cli, "hf://org/tiny")
    wrong = _request(run_cli, waive="license")  # the README's old example
    assert wrong.code == 2
    assert "unknown check id 'license'" in wrong.stderr
    assert "licenses" in wrong.stderr
    assert "scans.pickle" in wrong.stderr
    # dev's policy checks no license: in dev alone, `licenses` waives nothing.
    assert _request(run_cli, "--env", "dev").code == 2
    assert "no policy is bound to environment 'qa'" in _request(run_cli, "--env", "qa").stderr
    barred = _request(run_cli, waive="digest")
    assert barred.code == 2
    assert "can never be waived" in barred.stderr
    assert _request(run_cli, "--env", "prod").code == 0


def test_exception_expiry_is_bounded_by_the_policy(
    run_cli: Any, hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("org/tiny", {"model.safetensors": _safetensors()})
    mirror(run_cli, "hf://org/tiny")
    too_long = _request(run_cli, expires="91d")
    assert too_long.code == 2
    assert "at most 90 days" in too_long.stderr
    assert _request(run_cli, expires="90d").code == 0
    # A policy that sets a shorter maximum is obeyed.
    from policies import default_policies_text

    short = default_policies_text().replace("maxExpiry: 90d", "maxExpiry: 7d")
    policy = tmp_path / "short.yaml"
    policy.write_text(short)
    monkeypatch.setenv("MODELCTL_POLICY", str(policy))
    refused = _request(run_cli, expires="8d")
    assert refused.code == 2
    assert "at most 7 days" in refused.stderr


def test_exception_add_with_a_free_text_approver_is_gone(run_cli: Any, hub: FakeHub) -> None:
    hub.add_repo("org/tiny", {"model.safetensors": _safetensors()})
    mirror(run_cli, "hf://org/tiny")
    old = run_cli(
        "exception", "add", "org/tiny", "--waive", "licenses", "--reason", "r",
        "--approver", "lee", "--expires", "10d",
    )  # fmt: skip
    assert old.code == 2
    assert "exception request" in old.stderr
    assert "exception approve" in old.stderr
    assert run_cli("exception", "list", "--json").json() == {"exceptions": []}
