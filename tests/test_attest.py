"""`modelctl attest`: the registry signs a model signature and mirror provenance, verbatim."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from attestations.bundle import Bundle
from attestations.intoto import Statement
from attestations.keys import PublicKeyVerifier, load_public_key
from attestations.model_signature import verify_model_signature
from registry.db.engine import make_engine
from tests.fakes.hfhub import FakeHub
from tests.helpers import write_tree

PASS = "correct horse battery staple"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "model",
        {
            "config.json": b"{}",
            "extra/x": b"x",
            "extra-notes.txt": b"n",
            "model.safetensors": os.urandom(100_000),
        },
    )


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", PASS)
    return PASS


def test_attest_signs_a_model_signature_that_model_signing_verifies(
    run_cli: Any, model: Path, tmp_path: Path, isolated_env: Path, passphrase: str
) -> None:
    digest = run_cli("mirror", str(model), "--name", "acme/m", "--json").json()["digest"]
    sig, pub = tmp_path / "model.sig", tmp_path / "registry.pub"
    result = run_cli(
        "attest", "acme/m", "--signature-out", str(sig), "--public-key-out", str(pub), "--json"
    )
    assert result.code == 0, result.stderr
    issued = result.json()["issued"]
    assert [a["predicate_type"] for a in issued] == [
        "https://model_signing/signature/v1.0",
        "https://slsa.dev/provenance/v1",
    ]
    assert all(a["subject_digest"] == digest for a in issued)
    key = isolated_env / "keys" / "registry.key"
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    # The signature is over the registry's manifest, and any model_signing verifier agrees.
    ours = run_cli("verify", str(model), "--signature", str(sig), "--public-key", str(pub))
    assert ours.code == 0, ours.stderr
    theirs = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_signing",
            "verify",
            "key",
            str(model),
            "--signature",
            str(sig),
            "--public_key",
            str(pub),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr


def test_attestations_are_stored_verbatim_and_listed(
    run_cli: Any, model: Path, tmp_path: Path, isolated_env: Path, passphrase: str
) -> None:
    run_cli("mirror", str(model), "--name", "acme/m", "--no-scan")
    pub = tmp_path / "registry.pub"
    run_cli("attest", "acme/m", "--public-key-out", str(pub))
    run_cli("attest", "acme/m")  # re-issuing adds, and keeps the earlier ones
    listed = run_cli("inspect", "acme/m", "--json").json()["attestations"]
    assert len(listed) == 4
    engine = make_engine(f"sqlite:///{isolated_env / 'registry.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT predicate_type, bundle, bundle_sha256 FROM attestations")
        ).all()
    engine.dispose()
    verifier = PublicKeyVerifier([load_public_key(pub.read_bytes())])
    for predicate_type, raw, sha in rows:
        assert hashlib.sha256(raw).hexdigest() == sha
        bundle = Bundle.from_bytes(raw)
        envelope = verifier.verify(bundle)
        statement = Statement.from_payload(envelope.payload)
        assert statement.predicate_type == predicate_type
        if predicate_type.startswith("https://model_signing/"):
            assert (
                verify_model_signature(bundle, verifier).subject_digest.hex
                == statement.subjects[0].digest["sha256"]
            )


def test_provenance_records_source_commit_and_tool(
    run_cli: Any, passphrase: str, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        commit = hub.add_repo(
            "org/llama", {"config.json": b"{}", "w.safetensors": b"w" * 5000}, tags=["v1"]
        )
        run_cli("mirror", "hf://org/llama@v1")
    assert run_cli("attest", "org/llama").code == 0
    engine = make_engine(f"sqlite:///{isolated_env / 'registry.db'}")
    with engine.connect() as conn:
        raw = conn.execute(
            text(
                "SELECT bundle FROM attestations WHERE predicate_type = 'https://slsa.dev/provenance/v1'"
            )
        ).scalar_one()
    engine.dispose()
    statement = json.loads(Bundle.from_bytes(raw).envelope.payload)
    build = statement["predicate"]["buildDefinition"]
    assert build["buildType"] == "https://modelctl.dev/mirror/v1"
    assert build["externalParameters"] == {"source": "hf://org/llama", "revisions": ["v1"]}
    deps = build["resolvedDependencies"]
    assert deps[0] == {"uri": f"hf://org/llama@{commit}", "digest": {"gitCommit": commit}}
    assert sorted(d["name"] for d in deps[1:]) == ["config.json", "w.safetensors"]
    assert statement["predicate"]["runDetails"]["builder"]["id"] == "https://modelctl.dev/registry"
    assert statement["predicate"]["runDetails"]["builder"]["version"]["modelctl"]


def test_attest_needs_the_key_passphrase(
    run_cli: Any, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_cli("mirror", str(model), "--name", "acme/m")
    missing = run_cli("attest", "acme/m")
    assert missing.code == 2
    assert "MODELCTL_SIGNING_KEY_PASSPHRASE" in missing.stderr
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", PASS)
    assert run_cli("attest", "acme/m").code == 0
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "wrong")
    wrong = run_cli("attest", "acme/m")
    assert wrong.code == 2
    assert "wrong passphrase" in wrong.stderr
    assert PASS not in wrong.stderr


def test_attest_unknown_reference(run_cli: Any, passphrase: str) -> None:
    result = run_cli("attest", "nope/nothing")
    assert result.code == 2
    assert "no model named nope/nothing" in result.stderr


def test_attest_on_postgres(
    postgres_url: str, run_cli: Any, model: Path, monkeypatch: pytest.MonkeyPatch, passphrase: str
) -> None:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", postgres_url)
    run_cli("mirror", str(model), "--name", "acme/m")
    assert run_cli("attest", "acme/m").code == 0
    listed = run_cli("inspect", "acme/m", "--json").json()
    kinds = sorted(a["predicate_type"] for a in listed["attestations"])
    scans = kinds.count("https://modelctl.dev/attestations/scan/v1")
    assert scans == len(listed["scans"]) == 13  # one per scanner of the default set
    assert "https://model_signing/signature/v1.0" in kinds
    assert "https://slsa.dev/provenance/v1" in kinds


EVIL_PICKLE = (
    Path(__file__).parent / "assets" / "corpus" / "pickle" / "os_system_global_reduce_p0.pkl"
)


def test_attest_refuses_open_malicious_findings_unless_allowed(
    run_cli: Any,
    tmp_path: Path,
    passphrase: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    folder = write_tree(
        tmp_path / "evil",
        {"config.json": b"{}", "pytorch_model.bin": EVIL_PICKLE.read_bytes()},
    )
    run_cli("mirror", str(folder), "--name", "acme/evil", "--fail-on", "never")
    refused = run_cli("attest", "acme/evil", "--json")
    assert refused.code == 1, refused.stderr
    assert refused.stderr.count("\n") == 1
    assert "refusing to sign" in refused.stderr
    assert "pytorch_model.bin" in refused.stderr
    assert "--allow-findings" in refused.stderr
    assert refused.json()["kind"] == "denied"
    assert any("pytorch_model.bin: malicious" in r for r in refused.json()["reasons"])
    signed = [
        a["predicate_type"]
        for a in run_cli("inspect", "acme/evil", "--json").json()["attestations"]
    ]
    assert "https://model_signing/signature/v1.0" not in signed

    allowed = run_cli("attest", "acme/evil", "--allow-findings", "--json")
    assert allowed.code == 0, allowed.stderr
    warnings = [line for line in allowed.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1  # one line per file with critical or malicious findings
    assert "signed despite pytorch_model.bin: malicious (pickle:" in warnings[0]
    [finding] = allowed.json()["findings"]
    assert finding["path"] == "pytorch_model.bin"
    assert finding["verdict"] == "malicious"
    assert finding["scanner"] == "pickle"
    events = run_cli("audit", "--action", "checkpoint.attest", "--json").json()["events"]
    assert events[0]["details"]["open_findings"][0]["path"] == "pytorch_model.bin"


def test_attest_over_the_api_refuses_open_findings_unless_allowed(
    run_cli: Any, tmp_path: Path, passphrase: str, isolated_env: Path
) -> None:
    from fastapi.testclient import TestClient

    from registry.api.app import create_app
    from registry.settings import Settings

    folder = write_tree(tmp_path / "evil", {"pytorch_model.bin": EVIL_PICKLE.read_bytes()})
    digest = run_cli(
        "mirror", str(folder), "--name", "acme/evil", "--fail-on", "never", "--json"
    ).json()["digest"]
    with TestClient(create_app(Settings.from_env(), start_worker=False)) as client:
        token = client.app.state.registry.token_create("sec", "security").secret  # type: ignore[attr-defined]
        url = f"/v1/checkpoints/acme/evil/{digest}/attest"
        headers = {"Authorization": f"Bearer {token}"}
        refused = client.post(url, headers=headers)
        assert refused.status_code == 403, refused.text
        assert "--allow-findings" in refused.json()["detail"]
        allowed = client.post(url + "?allow_findings=true", headers=headers)
        assert allowed.status_code == 201, allowed.text
        assert [f["path"] for f in allowed.json()["findings"]] == ["pytorch_model.bin"]
