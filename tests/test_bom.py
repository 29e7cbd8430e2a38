"""`modelctl bom`: CycloneDX 1.6 and SPDX 3.0.1 ML-BOMs, checked by the libraries' own
validators, every field tagged verified / declared / absent, signed as an attestation."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_python_model import v3_0_1 as spdx

from attestations.bundle import Bundle
from attestations.intoto import Statement
from attestations.keys import PublicKeyVerifier, load_public_key
from attestations.mlbom.modelcard import read_card
from tests.helpers import write_tree

PASS = "correct horse battery staple"
CARD = b"""---
license: apache-2.0
base_model: acme/base-7b
datasets:
  - wikitext
  - acme/instructions
pipeline_tag: text-generation
---
# A model
"""


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "model",
        {"README.md": CARD, "config.json": b"{}", "model.safetensors": os.urandom(10_000)},
    )


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", PASS)
    return PASS


def _props(component: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in component.get("properties", []):
        out.setdefault(p["name"], []).append(p["value"])
    return out


def test_cyclonedx_bom_validates_and_tags_every_field(
    run_cli: Any, model: Path, passphrase: str
) -> None:
    digest = run_cli("mirror", str(model), "--name", "acme/m", "--json").json()["digest"]
    assert run_cli("attest", "acme/m").code == 0
    result = run_cli("bom", "acme/m", "--format", "cyclonedx")
    assert result.code == 0, result.stderr
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(result.stdout) is None
    doc = json.loads(result.stdout)
    assert doc["specVersion"] == "1.6"
    component = doc["metadata"]["component"]
    assert component["type"] == "machine-learning-model"
    props = _props(component)
    assert props["modelctl:manifest-digest"] == [digest]
    # Bytes and signatures: verified. The model card: declared. Nobody said: absent.
    assert props["modelctl:evidence:files"] == ["verified"]
    assert props["modelctl:evidence:signature"] == ["verified"]
    assert props["modelctl:evidence:source"] == ["verified"]  # signed mirror provenance
    assert props["modelctl:evidence:license"] == ["declared"]
    assert props["modelctl:evidence:base_model"] == ["declared"]
    assert props["modelctl:evidence:datasets"] == ["declared"]
    assert props["modelctl:evidence:task"] == ["declared"]
    files = {c["name"]: c for c in component["components"]}
    assert set(files) == {"README.md", "config.json", "model.safetensors"}
    sha = files["model.safetensors"]["hashes"][0]
    actual = __import__("hashlib").sha256((model / "model.safetensors").read_bytes()).hexdigest()
    assert sha == {"alg": "SHA-256", "content": actual}
    assert component["pedigree"]["ancestors"][0]["name"] == "acme/base-7b"
    assert component["licenses"] == [{"license": {"id": "Apache-2.0"}}]  # the card's apache-2.0
    params = component["modelCard"]["modelParameters"]
    assert params["task"] == "text-generation"
    assert [d["name"] for d in params["datasets"]] == ["wikitext", "acme/instructions"]
    assert "signed as attestation" in result.stderr


def test_bom_is_signed_as_an_attestation_over_the_checkpoint(
    run_cli: Any, model: Path, tmp_path: Path, isolated_env: Path, passphrase: str
) -> None:
    digest = run_cli("mirror", str(model), "--name", "acme/m", "--json").json()["digest"]
    out = tmp_path / "bom.spdx.json"
    result = run_cli("bom", "acme/m", "--format", "spdx", "--out", str(out), "--json")
    assert result.code == 0, result.stderr
    attestation = result.json()["attestation"]
    assert attestation["predicate_type"] == "https://spdx.dev/Document"
    assert attestation["subject_digest"] == digest
    pub = tmp_path / "registry.pub"
    assert run_cli("attest", "acme/m", "--public-key-out", str(pub)).code == 0
    from registry.embedded import EmbeddedRegistry
    from registry.settings import Settings

    registry = EmbeddedRegistry(Settings.from_env(home=isolated_env))
    try:
        bundle = registry.attestation_bundle("acme/m", attestation["id"])
    finally:
        registry.close()
    verified = PublicKeyVerifier([load_public_key(pub.read_bytes())]).verify(
        Bundle.from_bytes(bundle)
    )
    statement = Statement.from_payload(verified.payload)
    assert statement.subjects[0].digest["sha256"] == digest.removeprefix("sha256:")
    assert statement.predicate == json.loads(out.read_bytes())  # the file is what was signed


def test_spdx_bom_reads_back_through_the_spdx_bindings(
    run_cli: Any, model: Path, passphrase: str
) -> None:
    run_cli("mirror", str(model), "--name", "acme/m")
    result = run_cli("bom", "acme/m", "--format", "spdx")
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["@context"] == "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
    objects = spdx.SHACLObjectSet()
    spdx.JSONLDDeserializer().read(io.BytesIO(result.stdout.encode()), objects)
    models = list(objects.foreach_type(spdx.ai_AIPackage))
    model_pkg = next(m for m in models if m.name == "acme/m")
    assert model_pkg.ai_informationAboutApplication == "text-generation"
    files = {f.name: f for f in objects.foreach_type(spdx.software_File)}
    assert set(files) == {"README.md", "config.json", "model.safetensors"}
    for f in files.values():
        [method] = f.verifiedUsing
        assert isinstance(method, spdx.Hash)
        assert method.algorithm == spdx.HashAlgorithm.sha256
    statements = {a.statement or "" for a in objects.foreach_type(spdx.Annotation)}
    # Not attested: no signature, and the source is only recorded, not signed.
    assert any(s.startswith("modelctl:evidence signature=absent") for s in statements)
    assert any(s.startswith("modelctl:evidence source=declared") for s in statements)
    assert any(s.startswith("modelctl:evidence license=declared") for s in statements)
    licenses = [
        e.simplelicensing_licenseExpression
        for e in objects.foreach_type(spdx.simplelicensing_LicenseExpression)
    ]
    assert licenses == ["Apache-2.0"]
    [doc_el] = list(objects.foreach_type(spdx.SpdxDocument))
    assert spdx.ProfileIdentifierType.ai in doc_el.profileConformance
    kinds = {r.relationshipType for r in objects.foreach_type(spdx.Relationship)}
    assert {spdx.RelationshipType.contains, spdx.RelationshipType.trainedOn} <= kinds


def test_without_a_card_the_declared_fields_are_absent(run_cli: Any, tmp_path: Path) -> None:
    bare = write_tree(tmp_path / "bare", {"model.safetensors": b"x" * 100})
    run_cli("mirror", str(bare), "--name", "acme/bare")
    result = run_cli("bom", "acme/bare")
    assert result.code == 0, result.stderr
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(result.stdout) is None
    props = _props(json.loads(result.stdout)["metadata"]["component"])
    for field in ("license", "base_model", "datasets", "task", "signature"):
        assert props[f"modelctl:evidence:{field}"] == ["absent"], field
    assert "not signed" in result.stderr


def test_unknown_format_and_unknown_ref_exit_2(run_cli: Any, model: Path) -> None:
    run_cli("mirror", str(model), "--name", "acme/m")
    bad = run_cli("bom", "acme/m", "--format", "swid")
    assert bad.code == 2
    assert "--format" in bad.stderr
    missing = run_cli("bom", "acme/none")
    assert missing.code == 2


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"---\nlicense: mit\n---\n", ("mit",)),
        (b"no front matter\nlicense: mit\n", ()),
        (b"---\na: &x [1]\nlicense: *x\n---\n", ()),  # aliases refused
        (b"---\n: : :\n---\n", ()),  # malformed YAML declares nothing
        (b"---\nlicense: [true, 3]\n---\n", ("3",)),
    ],
)
def test_model_card_reader(head: bytes, expected: tuple[str, ...]) -> None:
    assert read_card(head).license == expected


def test_api_serves_the_bom_and_the_remote_cli_issues_a_signed_one(
    run_cli: Any,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On both databases: GET is read-only (nothing stored), POST signs; the remote CLI
    (publisher token) prints what the server issued."""
    import httpx

    from registry.api.app import create_app
    from registry.settings import Settings
    from tests.api_server import live_server, seed
    from tests.fakes.hfhub import FakeHub

    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        seeded = seed(run_cli, hub, tmp_path)
        with live_server(create_app(Settings.from_env())) as server:
            registry = server.app.state.registry
            reader = registry.token_create("r", "reader").secret
            publisher = registry.token_create("p", "publisher").secret
            path = f"{server.url}/v1/checkpoints/org/tiny/{seeded.digest}/bom"
            before = len(registry.attestation_list(seeded.ref))
            got = httpx.get(
                path, params={"format": "spdx"}, headers={"Authorization": f"Bearer {reader}"}
            )
            assert got.status_code == 200, got.text[:300]
            assert got.headers["content-type"].startswith("application/spdx+json")
            assert got.json()["@context"].endswith("spdx-context.jsonld")
            assert len(registry.attestation_list(seeded.ref)) == before  # GET stored nothing
            denied = httpx.post(path, headers={"Authorization": f"Bearer {reader}"})
            assert denied.status_code == 403
            bad = httpx.get(
                path, params={"format": "swid"}, headers={"Authorization": f"Bearer {reader}"}
            )
            assert bad.status_code in (400, 422)
            monkeypatch.setenv("MODELCTL_REGISTRY", server.url)
            monkeypatch.setenv("MODELCTL_TOKEN", publisher)
            remote = run_cli("bom", seeded.ref, "--json")
            assert remote.code == 0, remote.stderr
            body = remote.json()
            assert body["attestation"]["predicate_type"] == "https://cyclonedx.org/bom"
            assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(body["document"]) is None
            props = _props(json.loads(body["document"])["metadata"]["component"])
            assert props["modelctl:evidence:commit"] == ["verified"]  # hub commit, signed
            assert len(registry.attestation_list(seeded.ref)) == before + 1


@pytest.mark.parametrize(
    ("card_license", "cyclonedx_license", "spdx_license"),
    [
        ("mit", {"id": "MIT"}, "MIT"),
        ('"MIT AND"', {"name": "MIT AND"}, "LicenseRef-MIT-AND"),  # malformed: kept as text
        ("llama3", {"name": "llama3"}, "LicenseRef-llama3"),  # not SPDX: kept as written
        ("other", {"name": "other"}, "LicenseRef-other"),
    ],
)
def test_declared_licenses_are_spdx_ids_only_when_they_are(
    run_cli: Any,
    tmp_path: Path,
    card_license: str,
    cyclonedx_license: dict[str, str],
    spdx_license: str,
) -> None:
    card = f"---\nlicense: {card_license}\n---\n".encode()
    folder = write_tree(tmp_path / "m", {"README.md": card, "w.bin": b"w"})
    run_cli("mirror", str(folder), "--name", "acme/l", "--no-scan")
    cdx = run_cli("bom", "acme/l")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx.stdout) is None
    component = json.loads(cdx.stdout)["metadata"]["component"]
    assert component["licenses"] == [{"license": cyclonedx_license}]
    document = json.loads(run_cli("bom", "acme/l", "--format", "spdx").stdout)
    expressions = [
        e["simplelicensing_licenseExpression"]
        for e in document["@graph"]
        if e.get("type") == "simplelicensing_LicenseExpression"
    ]
    assert expressions == [spdx_license]
