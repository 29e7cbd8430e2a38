"""`modelctl policy check` end to end: facts gathered and re-verified now, decided by policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from registry.db.engine import make_engine
from tests.fakes.hfhub import FakeHub

CARD = b"---\nlicense: apache-2.0\n---\n# tiny\n"
CORPUS = Path(__file__).parent / "assets" / "corpus"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        yield fake


def mirror(run_cli: Any, hub: FakeHub, files: dict[str, bytes], repo: str = "org/tiny") -> str:
    hub.add_repo(repo, files)
    result = run_cli("mirror", f"hf://{repo}", "--json")
    assert result.code == 0, result.stderr
    digest: str = result.json()["digest"]
    return digest


def checks(result: Any) -> dict[str, str]:
    return {c["id"]: c["status"] for c in result.json()["checks"]}


def test_unsigned_denied_in_prod_allowed_with_warning_in_dev(run_cli: Any, hub: FakeHub) -> None:
    mirror(run_cli, hub, {"README.md": CARD, "model.safetensors": _safetensors()})
    prod = run_cli("policy", "check", "org/tiny", "--env", "prod", "--json")
    assert prod.code == 1
    assert prod.json()["allowed"] is False
    (line,) = prod.stderr.strip().splitlines()
    assert line.startswith("modelctl: error: denied: org/tiny@")
    assert "is not admitted to 'prod'" in line
    assert "attestations.https://model_signing/signature/v1.0" in line
    text = run_cli("policy", "check", "org/tiny", "--env", "prod")
    assert text.code == 1
    assert "DENIED" in text.stdout
    assert len(text.stderr.strip().splitlines()) == 1
    assert checks(prod)["attestations.https://model_signing/signature/v1.0"] == "fail"
    dev = run_cli("policy", "check", "org/tiny", "--env", "dev", "--json")
    assert dev.code == 0
    assert dev.json()["allowed"] is True
    assert "warn" in checks(dev).values()
    # Attested, pinned, scanned clean, known license: prod says yes.
    assert run_cli("attest", "org/tiny").code == 0
    allowed = run_cli("policy", "check", "org/tiny", "--env", "prod", "--json")
    assert allowed.code == 0, allowed.stdout
    assert allowed.json()["policy"]["name"] == "prod"
    assert allowed.json()["expires_at"] is not None
    text_out = run_cli("policy", "check", "org/tiny", "--env", "prod")
    assert text_out.stdout.startswith("ALLOWED org/tiny@sha256:")


def test_a_malicious_finding_is_denied_where_enforce_applies(run_cli: Any, hub: FakeHub) -> None:
    evil = (CORPUS / "pickle" / "os_system_global_reduce_p0.pkl").read_bytes()
    hub.add_repo("org/tiny", {"README.md": CARD, "pytorch_model.bin": evil})
    assert run_cli("mirror", "hf://org/tiny", "--fail-on", "never").code == 0
    run_cli("attest", "org/tiny")
    for env in ("prod", "staging"):
        result = run_cli("policy", "check", "org/tiny", "--env", env, "--json")
        assert result.code == 1, env
        assert checks(result)["scans.pickle"] == "fail"


def test_a_recognised_but_unanalysed_format_is_refused_not_admitted(
    run_cli: Any, hub: FakeHub
) -> None:
    """Issue 14 class 5: a TFLite model beside the weights was `clean` (no scanner claimed it);
    now it is `unsupported`, and the shipped policies refuse it where they enforce."""
    tflite = (CORPUS / "unsupported" / "model.tflite").read_bytes()
    hub.add_repo(
        "org/tiny", {"README.md": CARD, "model.safetensors": _safetensors(), "model.tflite": tflite}
    )
    mirrored = run_cli("mirror", "hf://org/tiny", "--json")
    assert mirrored.code == 0, mirrored.stderr  # a medium finding: below --fail-on high
    assert mirrored.json()["verdict"] == "unsupported"
    assert run_cli("attest", "org/tiny").code == 0
    for env in ("prod", "staging"):
        result = run_cli("policy", "check", "org/tiny", "--env", env, "--json")
        assert result.code == 1, env
        assert checks(result)["scans.unsupported-formats"] == "fail"
    dev = run_cli("policy", "check", "org/tiny", "--env", "dev", "--json")
    assert checks(dev)["scans.unsupported-formats"] == "warn"


def test_a_tampered_attestation_does_not_count(
    run_cli: Any, hub: FakeHub, isolated_env: Path
) -> None:
    mirror(run_cli, hub, {"README.md": CARD, "model.safetensors": _safetensors()})
    run_cli("attest", "org/tiny")
    assert run_cli("policy", "check", "org/tiny", "--env", "prod").code == 0
    engine = make_engine(f"sqlite:///{isolated_env / 'registry.db'}")
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT id, bundle FROM attestations")).all()
        for row_id, bundle in rows:
            flipped = bytes(bundle).replace(b'"sig": "M', b'"sig": "N', 1)
            conn.execute(
                text("UPDATE attestations SET bundle = :b WHERE id = :i"),
                {"b": flipped, "i": row_id},
            )
    engine.dispose()
    result = run_cli("policy", "check", "org/tiny", "--env", "prod", "--json")
    assert result.code == 1
    assert checks(result)["attestations.https://slsa.dev/provenance/v1"] == "fail"


def test_unbound_environment_fails_closed(run_cli: Any, hub: FakeHub) -> None:
    mirror(run_cli, hub, {"README.md": CARD})
    result = run_cli("policy", "check", "org/tiny", "--env", "qa", "--json")
    assert result.code == 1
    assert result.json()["kind"] == "denied"
    assert "no policy is bound" in result.stderr


def test_custom_policy_file_and_lint(run_cli: Any, hub: FakeHub, tmp_path: Path) -> None:
    mirror(run_cli, hub, {"README.md": CARD})
    default = Path(__file__).parents[1] / "policies" / "defaults" / "default.yaml"
    assert run_cli("policy", "lint", str(default)).code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(default.read_text().replace("licenses:", "licences:", 1))
    linted = run_cli("policy", "lint", str(bad), "--json")
    assert linted.code == 1
    assert any(m["level"] == "error" and m["line"] > 0 for m in linted.json()["messages"])
    (line,) = linted.stderr.strip().splitlines()
    assert line.startswith(f"modelctl: error: {bad}: ")
    assert "error(s)" in line
    assert "licences" in line
    assert run_cli("policy", "lint", str(default)).stderr == ""
    refused = run_cli("policy", "check", "org/tiny", "--env", "prod", "--policy", str(bad))
    assert refused.code == 2
    assert "licences" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def _safetensors() -> bytes:
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + bytes(8)


@pytest.mark.slow
def test_quarantine_denies_everywhere_until_released(run_cli: Any, hub: FakeHub) -> None:
    mirror(run_cli, hub, {"README.md": CARD, "model.safetensors": _safetensors()})
    run_cli("attest", "org/tiny")
    assert run_cli("policy", "check", "org/tiny", "--env", "prod").code == 0
    assert run_cli("quarantine", "org/tiny", "--reason", "CVE-2026-0001 in the tokenizer").code == 0
    for env in ("prod", "staging", "dev"):  # dev is warn mode: quarantine still denies
        result = run_cli("policy", "check", "org/tiny", "--env", env, "--json")
        assert result.code == 1, env
        assert checks(result)["quarantine"] == "fail"
    shown = run_cli("inspect", "org/tiny", "--json").json()
    assert shown["quarantine"]["reason"] == "CVE-2026-0001 in the tokenizer"
    assert run_cli("release", "org/tiny", "--reason", "fixed in the new tokenizer").code == 0
    assert run_cli("policy", "check", "org/tiny", "--env", "prod").code == 0
    assert run_cli("inspect", "org/tiny", "--json").json()["quarantine"] is None
    again = run_cli("release", "org/tiny", "--reason", "twice")
    assert again.code == 2
    assert "is not quarantined" in again.stderr
    assert run_cli("quarantine", "org/tiny").code == 2  # --reason is required


def test_decisions_are_recorded_and_signed_as_vsa(
    run_cli: Any, hub: FakeHub, tmp_path: Path, isolated_env: Path
) -> None:
    from attestations.bundle import Bundle
    from attestations.intoto import Statement
    from attestations.keys import PublicKeyVerifier, load_public_key

    digest = mirror(run_cli, hub, {"README.md": CARD, "model.safetensors": _safetensors()})
    pub = tmp_path / "registry.pub"
    run_cli("attest", "org/tiny", "--public-key-out", str(pub))
    run_cli("policy", "check", "org/tiny", "--env", "prod")
    run_cli("policy", "check", "org/tiny", "--env", "dev")
    decisions = run_cli("inspect", "org/tiny", "--json").json()["decisions"]
    assert [(d["environment"], d["allowed"], d["attested"]) for d in decisions] == [
        ("prod", True, True),
        ("dev", True, True),
    ]
    engine = make_engine(f"sqlite:///{isolated_env / 'registry.db'}")
    with engine.connect() as conn:
        raw = conn.execute(
            text(
                "SELECT bundle FROM attestations WHERE predicate_type = "
                "'https://slsa.dev/verification_summary/v1' ORDER BY id LIMIT 1"
            )
        ).scalar_one()
    engine.dispose()
    verifier = PublicKeyVerifier([load_public_key(pub.read_bytes())])
    statement = Statement.from_payload(verifier.verify(Bundle.from_bytes(raw)).payload)
    assert f"sha256:{statement.subjects[0].digest['sha256']}" == digest
    vsa = statement.predicate
    assert vsa["verificationResult"] == "PASSED"
    assert vsa["policy"]["uri"] == "modelctl://policies/prod"
    assert vsa["modelctl"]["environment"] == "prod"
    assert len(vsa["inputAttestations"]) >= 2
    assert {c["id"] for c in vsa["modelctl"]["checks"]} >= {"quarantine", "licenses"}


def as_user(monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    """The embedded CLI's principal is the local user (`local:USER`)."""
    monkeypatch.setenv("LOGNAME", user)
    monkeypatch.setenv("USER", user)


def test_an_exception_lets_a_check_through_until_it_expires(
    run_cli: Any, hub: FakeHub, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from registry.embedded import EmbeddedRegistry
    from registry.settings import Settings

    mirror(run_cli, hub, {"model.safetensors": _safetensors()})  # no model card: unknown license
    run_cli("attest", "org/tiny")
    denied = run_cli("policy", "check", "org/tiny", "--env", "prod", "--json")
    assert denied.code == 1
    assert [c for c, s in checks(denied).items() if s == "fail"] == ["licenses"]
    as_user(monkeypatch, "alice")
    requested = run_cli(
        "exception",
        "request",
        "org/tiny",
        "--waive",
        "licenses",
        "--reason",
        "licence under review",
        "--expires",
        "10d",
        "--env",
        "prod",
        "--json",
    )
    assert requested.code == 0, requested.stderr
    assert requested.json()["requested_by"] == "local:alice"
    assert run_cli("policy", "check", "org/tiny", "--env", "prod").code == 1  # not yet approved
    as_user(monkeypatch, "bob")
    added = run_cli("exception", "approve", str(requested.json()["id"]), "--json")
    assert added.code == 0, added.stderr
    assert (added.json()["requested_by"], added.json()["approver"]) == ("local:alice", "local:bob")
    exception_id = added.json()["id"]
    allowed = run_cli("policy", "check", "org/tiny", "--env", "prod", "--json")
    assert allowed.code == 0, allowed.stdout
    assert checks(allowed)["licenses"] == "waived"
    # A fake clock, not sleeps: the same registry eleven days on.
    registry = EmbeddedRegistry(Settings.from_env())
    try:
        later = registry.policy_check(
            "org/tiny", "prod", now=datetime.now(UTC) + timedelta(days=11)
        )
    finally:
        registry.close()
    assert later.allowed is False
    assert [c["id"] for c in later.checks if c["status"] == "fail"] == ["licenses"]
    listed = run_cli("exception", "list", "org/tiny", "--json").json()["exceptions"]
    assert [e["id"] for e in listed] == [exception_id]
    assert run_cli("exception", "revoke", str(exception_id)).code == 0
    assert run_cli("policy", "check", "org/tiny", "--env", "prod").code == 1
    assert run_cli("exception", "revoke", str(exception_id)).code == 2


@pytest.mark.parametrize(
    ("waive", "expires", "message"),
    [
        ("attestations.https://slsa.dev/provenance/v1", "10d", "can never be waived"),
        ("quarantine", "10d", "can never be waived"),
        ("licenses", "2020-01-01T00:00:00Z", "in the past"),
        ("licenses", "2030-01-01T00:00:00", "needs a time zone"),
        ("licenses", "soon", "use 2026-12-31T00:00:00Z or 30d"),
        ("license", "10d", "unknown check id 'license'"),
        ("licenses", "91d", "at most 90 days"),
    ],
)
def test_bad_exceptions_are_refused(
    run_cli: Any, hub: FakeHub, waive: str, expires: str, message: str
) -> None:
    mirror(run_cli, hub, {"README.md": CARD})
    result = run_cli(
        "exception", "request", "org/tiny", "--waive", waive, "--reason", "r", "--expires", expires
    )
    assert result.code == 2
    assert message in result.stderr
    assert run_cli("exception", "requests", "--json").json() == {"requests": []}
    assert run_cli("exception", "list", "--json").json() == {"exceptions": []}


def test_earlier_decisions_are_not_evidence_for_the_next(run_cli: Any, hub: FakeHub) -> None:
    """Decisions are outputs: each check must not verify (or cite) all the ones before it."""
    mirror(run_cli, hub, {"README.md": CARD, "model.safetensors": _safetensors()})
    run_cli("attest", "org/tiny")
    # One decision per environment (a repeated check with the same outcome records nothing).
    for env in ("dev", "staging", "prod", "prod"):
        assert run_cli("policy", "check", "org/tiny", "--env", env).code == 0
    shown = run_cli("inspect", "org/tiny", "--json").json()
    kinds = [a["predicate_type"] for a in shown["attestations"]]
    assert kinds.count("https://slsa.dev/verification_summary/v1") == 3
    evidence = len(kinds) - 3
    from registry.embedded import EmbeddedRegistry
    from registry.settings import Settings

    registry = EmbeddedRegistry(Settings.from_env())
    try:
        with registry.sessions() as session:
            from sqlalchemy import select

            from registry.db.models import Attestation

            rows = session.scalars(select(Attestation).order_by(Attestation.id)).all()
            last_vsa = rows[-1].bundle
    finally:
        registry.close()
    import json

    from attestations.bundle import Bundle

    payload = json.loads(Bundle.from_bytes(last_vsa).envelope.payload)
    assert len(payload["predicate"]["inputAttestations"]) == evidence


def test_a_decision_does_not_load_the_decisions_before_it(
    run_cli: Any, hub: FakeHub, isolated_env: Path
) -> None:
    """Every check stores a signed decision; the next check must not read them all back (the
    server decides many times a second, so that would make each check slower than the last)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from registry.db.models import Attestation, Decision
    from registry.embedded import EmbeddedRegistry
    from registry.settings import Settings

    mirror(run_cli, hub, {"README.md": CARD, "model.safetensors": _safetensors()})
    assert run_cli("attest", "org/tiny").code == 0
    registry = EmbeddedRegistry(Settings.from_env())
    loaded: list[object] = []

    def count(session: Session, instance: object) -> None:
        if isinstance(instance, Attestation | Decision):
            loaded.append(instance)

    event.listen(Session, "loaded_as_persistent", count)
    try:
        per_check = []
        for _ in range(6):
            loaded.clear()
            assert registry.policy_check("org/tiny", "prod").allowed
            per_check.append(len(loaded))
    finally:
        event.remove(Session, "loaded_as_persistent", count)
        registry.close()
    assert len(set(per_check)) == 1, per_check  # constant, whatever the history
    evidence = [
        a
        for a in run_cli("inspect", "org/tiny", "--json").json()["attestations"]
        if a["predicate_type"] != "https://slsa.dev/verification_summary/v1"
    ]
    assert per_check[0] == len(evidence)  # signature, provenance, scans: never past decisions


@pytest.mark.parametrize("text", ["²d", "\u0661\u0662h", "99999999999999999d"])
def test_odd_relative_expiries_are_input_errors_not_crashes(text: str) -> None:
    from datetime import UTC, datetime

    from cli.policy import parse_expiry
    from registry.errors import InputError

    with pytest.raises(InputError):
        parse_expiry(text, now=datetime(2026, 1, 1, tzinfo=UTC))
