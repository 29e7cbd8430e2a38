"""One identity across representations (issue 17, item 3): the OCI manifests a checkpoint was
pushed as or mirrored from, the signed identity statement binding them, and `verify oci://…`
/ `verify oci-layout:…` against the OMS signature, on a real registry and skopeo's layouts."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from attestations.bundle import Bundle
from attestations.identity import PREDICATE_TYPE as IDENTITY
from attestations.identity import parse_identity
from attestations.intoto import Statement
from attestations.keys import PublicKeyVerifier, load_public_key
from attestations.model_signature import PREDICATE_TYPE as MODEL_SIGNATURE
from registry.mirror import modelpack
from registry.mirror.oci_client import MANIFEST_TYPE, OciClient, canonical_json, sha256_digest
from registry.mirror.oci_ref import parse_oci_ref
from tests.oci_registry import RunningRegistry
from tests.test_oci_push import (  # noqa: F401 - fixtures
    admitted,
    hub,
    oci_registry,
)
from tests.test_pull import FILES


def _push(run_cli: Any, registry: RunningRegistry, tag: str = "v1") -> dict[str, Any]:
    result = run_cli(
        "push", "org/tiny", registry.ref(f"team/tiny:{tag}"), "--env", "prod", "--json"
    )
    assert result.code == 0, result.stderr
    got: dict[str, Any] = result.json()
    return got


def _blob_file(registry: RunningRegistry, digest_hex: str) -> Path:
    blobs = registry.root / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return blobs / digest_hex[:2] / digest_hex / "data"


def _referrer_bundle(registry: RunningRegistry, referrer: str) -> bytes:
    with OciClient(parse_oci_ref(registry.ref("team/tiny"))) as client:
        layer = json.loads(client.get_manifest(referrer).body)["layers"][0]
        with client.open_blob(layer["digest"]) as chunks:
            return b"".join(chunks)


def test_push_records_the_oci_manifest_and_attaches_a_signed_identity_statement(
    run_cli: Any,
    admitted: None,  # noqa: F811
    oci_registry: RunningRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    pushed = _push(run_cli, oci_registry)
    kinds = [r["predicate_type"] for r in pushed["referrers"]]
    assert kinds[:2] == [MODEL_SIGNATURE, IDENTITY]
    shown = run_cli("inspect", "org/tiny", "--json").json()
    assert shown["oci"] == [
        {
            "registry": oci_registry.host,
            "repository": "team/tiny",
            "digest": pushed["oci_digest"],
            "media_type": MANIFEST_TYPE,
            "origin": "pushed",
            "tag": "v1",
            "ref": f"{oci_registry.ref('team/tiny')}@{pushed['oci_digest']}",
        }
    ]
    text = run_cli("inspect", "org/tiny")
    assert pushed["oci_digest"] in text.stdout

    # The attached statement verifies with the registry key and binds every representation.
    bundle = Bundle.from_bytes(_referrer_bundle(oci_registry, pushed["referrers"][1]["digest"]))
    key = load_public_key((tmp_path / "registry.pub").read_bytes())
    envelope = PublicKeyVerifier([key]).verify(bundle)
    identity = parse_identity(Statement.from_payload(envelope.payload))
    assert f"sha256:{identity.checkpoint_digest}" == pushed["digest"]
    assert [o.digest for o in identity.oci] == [pushed["oci_digest"]]
    assert identity.source_uri == "hf://org/tiny"
    assert len(identity.source_commit) == 40  # the hub commit it was mirrored at
    assert dict(identity.files) == {p: hashlib.sha256(b).hexdigest() for p, b in FILES.items()}

    # Pushed again: the same statement, not a new one.
    count = len([a for a in shown["attestations"] if a["predicate_type"] == IDENTITY])
    again = _push(run_cli, oci_registry)
    assert again["referrers"][1]["digest"] == pushed["referrers"][1]["digest"]
    after = run_cli("inspect", "org/tiny", "--json").json()["attestations"]
    assert len([a for a in after if a["predicate_type"] == IDENTITY]) == count == 1


def test_mirror_from_oci_records_where_it_came_from(
    run_cli: Any,
    admitted: None,  # noqa: F811
    oci_registry: RunningRegistry,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pushed = _push(run_cli, oci_registry)
    monkeypatch.setenv("MODELCTL_HOME", str(tmp_path / "second-home"))
    result = run_cli("mirror", oci_registry.ref("team/tiny:v1"), "--name", "copy/tiny", "--no-scan")
    assert result.code == 0, result.stderr
    shown = run_cli("inspect", "copy/tiny", "--json").json()
    assert [(o["digest"], o["origin"], o["tag"]) for o in shown["oci"]] == [
        (pushed["oci_digest"], "mirrored", "v1")
    ]


def test_verify_an_artifact_in_a_registry_by_tag_and_by_digest(
    run_cli: Any,
    admitted: None,  # noqa: F811
    oci_registry: RunningRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    pushed = _push(run_cli, oci_registry)
    pub = str(tmp_path / "registry.pub")
    by_tag = run_cli("verify", oci_registry.ref("team/tiny:v1"), "--public-key", pub, "--json")
    assert by_tag.code == 0, by_tag.stderr
    got = by_tag.json()
    assert got["oci_digest"] == pushed["oci_digest"]
    assert got["subject_digest"] == pushed["digest"]
    assert got["signature"] == f"referrer {pushed['referrers'][0]['digest']}"
    assert {f["path"]: f["digest"] for f in got["files"]} == {
        p: "sha256:" + hashlib.sha256(b).hexdigest() for p, b in FILES.items()
    }
    pinned = f"{oci_registry.ref('team/tiny')}@{pushed['oci_digest']}"
    text = run_cli("verify", pinned, "--public-key", pub)
    assert text.code == 0, text.stderr
    assert "model.safetensors" in text.stdout


def test_verify_refuses_a_layer_whose_bytes_do_not_match(
    run_cli: Any,
    admitted: None,  # noqa: F811
    oci_registry: RunningRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    _push(run_cli, oci_registry)
    data = FILES["config.json"]
    _blob_file(oci_registry, hashlib.sha256(data).hexdigest()).write_bytes(b'{"evil": 1}\n')
    result = run_cli(
        "verify", oci_registry.ref("team/tiny:v1"), "--public-key", str(tmp_path / "registry.pub")
    )
    assert result.code == 1, result.stderr
    assert "config.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_refuses_a_missing_layer(
    run_cli: Any,
    admitted: None,  # noqa: F811
    oci_registry: RunningRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    _push(run_cli, oci_registry)
    _blob_file(oci_registry, hashlib.sha256(FILES["README.md"]).hexdigest()).unlink()
    result = run_cli(
        "verify", oci_registry.ref("team/tiny:v1"), "--public-key", str(tmp_path / "registry.pub")
    )
    assert result.code == 1, result.stderr
    assert "README.md" in result.stderr
    assert "missing" in result.stderr


def test_verify_refuses_an_extra_layer_and_an_untrusted_or_wrong_bundle(
    run_cli: Any,
    admitted: None,  # noqa: F811
    oci_registry: RunningRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    pushed = _push(run_cli, oci_registry)
    pub = str(tmp_path / "registry.pub")
    extra = b"not signed by anyone\n"
    with OciClient(parse_oci_ref(oci_registry.ref("team/tiny")), push=True) as client:
        manifest = json.loads(client.get_manifest("v1").body)
        client.upload_blob(sha256_digest(extra), len(extra), lambda: io.BytesIO(extra))
        manifest["layers"].append(
            {
                "mediaType": modelpack.DOC_RAW,
                "digest": sha256_digest(extra),
                "size": len(extra),
                "annotations": {modelpack.FILEPATH: "NOTES.md"},
            }
        )
        client.put_manifest("extra", canonical_json(manifest), MANIFEST_TYPE)
    signature = tmp_path / "model.sig"
    signature.write_bytes(_referrer_bundle(oci_registry, pushed["referrers"][0]["digest"]))
    result = run_cli(
        "verify",
        oci_registry.ref("team/tiny:extra"),
        "--public-key",
        pub,
        "--signature",
        str(signature),
    )
    assert result.code == 1, result.stderr
    assert "NOTES.md" in result.stderr
    assert "not signed" in result.stderr

    # A key that did not sign it.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "other.pub"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    untrusted = run_cli("verify", oci_registry.ref("team/tiny:v1"), "--public-key", str(other))
    assert untrusted.code == 1, untrusted.stderr
    # A bundle that is no model signature (the identity statement).
    wrong = tmp_path / "identity.sig"
    wrong.write_bytes(_referrer_bundle(oci_registry, pushed["referrers"][1]["digest"]))
    result = run_cli(
        "verify", oci_registry.ref("team/tiny:v1"), "--public-key", pub, "--signature", str(wrong)
    )
    assert result.code == 1, result.stderr
    assert "not a model signature" in result.stderr


def test_verify_an_oci_layout_that_skopeo_wrote(
    run_cli: Any,
    admitted: None,  # noqa: F811
    oci_registry: RunningRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    pushed = _push(run_cli, oci_registry)
    layout = tmp_path / "layout"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            f"docker://{oci_registry.host}/team/tiny:v1",
            f"oci:{layout}:v1",
        ],
        check=True,
        capture_output=True,
    )
    signature = tmp_path / "model.sig"
    signature.write_bytes(_referrer_bundle(oci_registry, pushed["referrers"][0]["digest"]))
    pub = str(tmp_path / "registry.pub")
    for target in (f"oci-layout:{layout}:v1", f"oci-layout:{layout}", str(layout)):
        result = run_cli(
            "verify", target, "--public-key", pub, "--signature", str(signature), "--json"
        )
        assert result.code == 0, (target, result.stderr)
        assert result.json()["oci_digest"] == pushed["oci_digest"]
    # No signature attached in the layout (skopeo copies no referrers): a clear refusal.
    unsigned = run_cli("verify", f"oci-layout:{layout}:v1", "--public-key", pub)
    assert unsigned.code == 1
    assert "--signature" in unsigned.stderr
    # A tampered blob in the layout.
    blob = layout / "blobs" / "sha256" / hashlib.sha256(FILES["model.safetensors"]).hexdigest()
    blob.write_bytes(b"\0" * len(FILES["model.safetensors"]))
    result = run_cli("verify", str(layout), "--public-key", pub, "--signature", str(signature))
    assert result.code == 1
    assert "model.safetensors" in result.stderr
    missing = run_cli(
        "verify", f"oci-layout:{layout}:v9", "--public-key", pub, "--signature", str(signature)
    )
    assert missing.code == 2


def _push_gzip_artifact(registry: RunningRegistry, tag: str) -> dict[str, bytes]:
    """org/tiny's files as a ModelPack artifact with `+gzip` layers, written with our client
    (`push` itself writes uncompressed layers only); the compressed bytes per file."""
    layers = []
    packed_by_path = {}
    with OciClient(parse_oci_ref(registry.ref("team/gz")), push=True) as client:
        for path, data in FILES.items():
            packed = gzip.compress(data, mtime=0)
            packed_by_path[path] = packed
            digest = sha256_digest(packed)
            client.upload_blob(digest, len(packed), functools.partial(io.BytesIO, packed))
            layers.append(
                {
                    "mediaType": modelpack.layer_media_type(path) + "+gzip",
                    "digest": digest,
                    "size": len(packed),
                    "annotations": {modelpack.FILEPATH: path},
                }
            )
        config = canonical_json({"descriptor": {"name": "gz"}, "modelfs": {"type": "layers"}})
        client.upload_blob(sha256_digest(config), len(config), lambda: io.BytesIO(config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": modelpack.ARTIFACT_TYPE,
            "config": {
                "mediaType": modelpack.CONFIG_TYPE,
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": layers,
        }
        client.put_manifest(tag, canonical_json(manifest), MANIFEST_TYPE)
    return packed_by_path


def test_mirror_reads_gzip_layers_as_the_same_checkpoint(
    run_cli: Any,
    admitted: None,  # noqa: F811
    oci_registry: RunningRegistry,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = run_cli("inspect", "org/tiny", "--json").json()["digest"]
    packed = _push_gzip_artifact(oci_registry, "v1")
    monkeypatch.setenv("MODELCTL_HOME", str(tmp_path / "second-home"))
    result = run_cli("mirror", oci_registry.ref("team/gz:v1"), "--json", "--no-scan")
    assert result.code == 0, result.stderr
    # The layer digests are of the compressed bytes; the files (and so the identity) are not.
    assert result.json()["digest"] == original
    files = run_cli("inspect", "team/gz", "--json").json()["files"]
    assert {f["path"]: f["sha256"] for f in files} == {
        p: hashlib.sha256(b).hexdigest() for p, b in FILES.items()
    }
    # A gzip layer whose bytes no longer match its digest: refused, nothing registered.
    blob = _blob_file(oci_registry, hashlib.sha256(packed["config.json"]).hexdigest())
    blob.write_bytes(gzip.compress(b'{"model_type": "evil"}\n', mtime=0))
    monkeypatch.setenv("MODELCTL_HOME", str(tmp_path / "third-home"))
    bad = run_cli("mirror", oci_registry.ref("team/gz:v1"), "--name", "bad/gz", "--no-scan")
    assert bad.code == 1, bad.stderr
    assert "config.json" in bad.stderr
    assert run_cli("inspect", "bad/gz").code == 2


def test_mirror_refuses_zstd_and_tar_layers_with_a_reason(
    run_cli: Any,
    oci_registry: RunningRegistry,  # noqa: F811
) -> None:
    with OciClient(parse_oci_ref(oci_registry.ref("team/z")), push=True) as client:
        config = b"{}"
        client.upload_blob(sha256_digest(config), 2, lambda: io.BytesIO(config))
        for tag, media_type in (
            ("zstd", modelpack.WEIGHT_RAW + "+zstd"),
            ("tar", "application/vnd.cncf.model.weight.v1.tar"),
        ):
            manifest = {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "artifactType": modelpack.ARTIFACT_TYPE,
                "config": {
                    "mediaType": modelpack.CONFIG_TYPE,
                    "digest": sha256_digest(config),
                    "size": 2,
                },
                "layers": [
                    {
                        "mediaType": media_type,
                        "digest": sha256_digest(config),
                        "size": 2,
                        "annotations": {modelpack.FILEPATH: "model.safetensors"},
                    }
                ],
            }
            client.put_manifest(tag, canonical_json(manifest), MANIFEST_TYPE)
    zstd = run_cli("mirror", oci_registry.ref("team/z:zstd"), "--no-scan")
    assert zstd.code == 2
    assert "zstd layers are not supported" in zstd.stderr
    tar = run_cli("mirror", oci_registry.ref("team/z:tar"), "--no-scan")
    assert tar.code == 2
    assert "no tar layers" in tar.stderr


def test_identity_statement_shape_is_checked() -> None:
    from attestations.identity import IdentityError, OciManifestRef, build_identity

    oci = OciManifestRef("reg:5000", "team/m", "sha256:" + "b" * 64, MANIFEST_TYPE)
    identity = build_identity(
        name="org/m",
        checkpoint_digest="sha256:" + "a" * 64,
        files=[("z.bin", "c" * 64), ("a.json", "d" * 64)],
        source_uri="hf://org/m",
        source_commit="e" * 40,
        oci=[oci, oci],
    )
    assert identity.files[0][0] == "a.json"  # sorted
    assert identity.oci == (oci,)  # each once
    statement = identity.statement()
    assert parse_identity(Statement.from_payload(statement.to_payload())) == identity
    doc = json.loads(statement.to_payload())
    doc["predicate"]["checkpoint"]["digest"] = "sha256:" + "f" * 64
    with pytest.raises(IdentityError, match="not the subject"):
        parse_identity(Statement.from_payload(json.dumps(doc).encode()))
    doc = json.loads(statement.to_payload())
    doc["predicate"]["oci"][0]["digest"] = "latest"
    with pytest.raises(IdentityError, match="not sha256"):
        parse_identity(Statement.from_payload(json.dumps(doc).encode()))
    doc = json.loads(statement.to_payload())
    doc["predicateType"] = "https://slsa.dev/provenance/v1"
    with pytest.raises(IdentityError, match="not an identity statement"):
        parse_identity(Statement.from_payload(json.dumps(doc).encode()))
