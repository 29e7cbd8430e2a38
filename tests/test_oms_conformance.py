"""The OpenSSF Model Signing (OMS) specification v1.0, as cases of our own.

Derived from the spec text (ossf/model-signing-spec: SPEC.md sections 4 to 11, the algorithm
registry and the conformance suite's case list), not copied from its suite: each test names the
case it stands for and the section it checks. `modelctl sign` must produce what a conforming
producer produces; `modelctl verify` must accept what a conforming verifier accepts (including
the historical relaxations of section 11.2) and refuse what it must refuse.

Bad statements are built here, independently of the code under test, and signed with the
trusted key (plain `cryptography`, DSSE PAE written out), so only the one broken thing differs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GOLDEN_PKI = Path(__file__).resolve().parent / "assets" / "model_signing" / "pki"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTOTO = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
PREDICATE = "https://model_signing/signature/v1.0"
SAN = "golden-signer@modelctl.test"

SIMPLE = {"signme-1": b"signed one\n", "signme-2": b"signed two\n", "ignore-me": b"local\n"}
MULTI = {
    "weights.bin": bytes(range(256)) * 8,
    "config.json": b'{"hidden_size": 4}\n',
    "subdir/adapter.bin": b"\x00adapter\xff",
}


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELCTL_KEY_PASSPHRASE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


def write_model(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def pem_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class KeyPair:
    def __init__(self, where: Path, curve: ec.EllipticCurve | None = None) -> None:
        curve = curve or ec.SECP256R1()
        self.key = ec.generate_private_key(curve)
        self.private = where / f"{curve.name}-{id(self)}.key"
        self.public = self.private.with_suffix(".pub")
        self.private.write_bytes(pem_private(self.key))
        self.public.write_bytes(pem_public(self.key))


@pytest.fixture
def signer(tmp_path: Path) -> KeyPair:
    return KeyPair(tmp_path)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 PAE, written out from the DSSE protocol text."""
    body = payload_type.encode()
    return b"DSSEv1 " + b" ".join(
        [str(len(body)).encode(), body, str(len(payload)).encode(), payload]
    )


def key_bundle(
    key: ec.EllipticCurvePrivateKey, statement: dict[str, Any], payload_type: str = INTOTO
) -> dict[str, Any]:
    payload = json.dumps(statement).encode()
    sig = key.sign(pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": hashlib.sha256(pem_public(key)).hexdigest()},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": payload_type,
            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
        },
    }


def resources_of(root: Path, order: Callable[[str], Any] | None = None) -> list[dict[str, str]]:
    rels = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return [
        {
            "name": rel,
            "algorithm": "sha256",
            "digest": hashlib.sha256((root / rel).read_bytes()).hexdigest(),
        }
        for rel in sorted(rels, key=order)
    ]


def statement_of(
    root: Path, resources: list[dict[str, str]], **serialization_fields: Any
) -> dict[str, Any]:
    root_digest = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources))
    return {
        "_type": STATEMENT_V1,
        "subject": [{"name": root.name, "digest": {"sha256": root_digest.hexdigest()}}],
        "predicateType": PREDICATE,
        "predicate": {
            "resources": resources,
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                **serialization_fields,
            },
        },
    }


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj))
    return path


def payload_of(bundle: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return decoded


def sign(run_cli: Any, model: Path, out: Path, *args: str) -> dict[str, Any]:
    result = run_cli("sign", str(model), "--output", str(out), *args)
    assert result.code == 0, result.stderr
    loaded: dict[str, Any] = json.loads(out.read_bytes())
    return loaded


def verify(run_cli: Any, model: Path, signature: Path, *args: str) -> Any:
    return run_cli("verify", str(model), "--signature", str(signature), *args)


def fails(result: Any, *needles: str) -> None:
    """Verification failure: non-zero, one line, no traceback."""
    assert result.code != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def assert_conforming_bundle(bundle: dict[str, Any], model: Path) -> dict[str, Any]:
    """What every produced bundle must be (sections 4 to 6, 11.1 'current normative')."""
    assert bundle["mediaType"].startswith("application/vnd.dev.sigstore.bundle")
    assert set(bundle) == {"mediaType", "verificationMaterial", "dsseEnvelope"}
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == INTOTO  # 6.7
    assert len(envelope["signatures"]) == 1
    assert envelope["signatures"][0].get("keyid", "") in ("", None)  # 4.1: unused
    statement = payload_of(bundle)
    assert statement["_type"] == STATEMENT_V1
    assert statement["predicateType"] == PREDICATE  # 5.1
    assert set(statement["predicate"]) == {"resources", "serialization"}  # 5.2
    resources = statement["predicate"]["resources"]
    ser = statement["predicate"]["serialization"]
    assert resources  # 5.2.1: at least one
    names = [r["name"] for r in resources]
    for name in names:  # 6.1.2: canonical relative POSIX paths
        assert not name.startswith("/")
        assert not name.endswith("/")
        assert "//" not in name
        assert "\\" not in name
        assert all(part not in ("", ".", "..") for part in name.split("/"))
    assert len(set(names)) == len(names)
    assert {"method", "hash_type", "allow_symlinks"} <= set(ser)  # 5.2.2
    assert set(ser) <= {"method", "hash_type", "allow_symlinks", "ignore_paths", "shard_size"}
    if ser["method"] == "files":
        assert "shard_size" not in ser
    assert all(r["algorithm"] == ser["hash_type"] for r in resources)  # 7
    assert all(r["digest"] == r["digest"].lower() for r in resources)
    (subject,) = statement["subject"]  # 6.5: exactly one, basename, root digest
    assert subject["name"] == model.resolve().name
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    assert subject["digest"] == {"sha256": root}
    return statement


# --- roundtrip: sign, then verify ---------------------------------------------------------------


def test_key_simple_with_ignore_paths(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """key-simple / key-ignore-paths (4.1, 6.2, 8.1-8.4)."""
    model = write_model(tmp_path / "simple", SIMPLE)
    out = tmp_path / "model.sig"
    bundle = sign(run_cli, model, out, "--key", str(signer.private), "--ignore-paths", "ignore-me")
    statement = assert_conforming_bundle(bundle, model)
    assert [r["name"] for r in statement["predicate"]["resources"]] == ["signme-1", "signme-2"]
    assert "ignore-me" in statement["predicate"]["serialization"]["ignore_paths"]  # 6.2 SHOULD
    # 4.1: producers MUST use the hint, the fingerprint of the key.
    material = bundle["verificationMaterial"]
    assert material["publicKey"] == {"hint": hashlib.sha256(signer.public.read_bytes()).hexdigest()}
    result = verify(
        run_cli, model, out, "--public-key", str(signer.public), "--allow-ignore", "ignore-me"
    )
    assert result.code == 0, result.stderr


def test_key_multi_file_names_and_order(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """key-multi-file (6.1, 6.1.2, 6.4): recursive, relative, '/', sorted by name."""
    model = write_model(tmp_path / "multi", MULTI)
    out = tmp_path / "model.sig"
    statement = assert_conforming_bundle(
        sign(run_cli, model, out, "--key", str(signer.private)), model
    )
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == ["config.json", "subdir/adapter.bin", "weights.bin"]
    assert names == sorted(names)
    assert verify(run_cli, model, out, "--public-key", str(signer.public)).code == 0


@pytest.mark.parametrize(
    "curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()], ids=["p256", "p384", "p521"]
)
def test_key_curves(run_cli: Any, tmp_path: Path, curve: ec.EllipticCurve) -> None:
    """key-p256 / key-p384 / key-p521 (4.2, algorithm registry: all three are REQUIRED)."""
    pair = KeyPair(tmp_path, curve)
    model = write_model(tmp_path / "m", SIMPLE)
    out = tmp_path / "model.sig"
    bundle = sign(run_cli, model, out, "--key", str(pair.private))
    sig = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    digest = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[curve.key_size]
    pair.key.public_key().verify(sig, pae(INTOTO, payload), ec.ECDSA(digest))  # raises if not
    assert verify(run_cli, model, out, "--public-key", str(pair.public)).code == 0


def test_key_single_file(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """key-single-file (6.1.2 rule 5, 6.5): the resource and the subject are the file name."""
    folder = write_model(tmp_path / "dist", {"model.bin": b"one file model\n" * 9})
    model = folder / "model.bin"
    out = tmp_path / "model.sig"
    statement = assert_conforming_bundle(
        sign(run_cli, model, out, "--key", str(signer.private)), model
    )
    assert [r["name"] for r in statement["predicate"]["resources"]] == ["model.bin"]
    assert statement["subject"][0]["name"] == "model.bin"
    assert verify(run_cli, model, out, "--public-key", str(signer.public)).code == 0
    model.write_bytes(b"one file model, changed\n")
    fails(verify(run_cli, model, out, "--public-key", str(signer.public)), "model.bin")


def test_key_empty_model_rejected(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """key-empty-model-rejected (6.1 rule 1): nothing to sign is an error, and no bundle."""
    model = write_model(tmp_path / "empty", {".gitignore": b"*.tmp\n"})
    out = tmp_path / "model.sig"
    result = run_cli("sign", str(model), "--key", str(signer.private), "--output", str(out))
    fails(result, "nothing to sign")
    assert not out.exists()


def test_key_default_ignores_are_top_level_only(
    run_cli: Any, tmp_path: Path, signer: KeyPair
) -> None:
    """key-default-ignores / key-nested-git-not-excluded / key-dotfile-included /
    key-files-in-hidden-dir (6.2, 6.2.1)."""
    files = {
        "model.bin": b"weights",
        ".git/config": b"[core]\n",
        ".gitignore": b"*.tmp\n",
        ".gitattributes": b"* text\n",
        ".github/workflows/ci.yml": b"on: push\n",
        "subdir/.gitignore": b"nested\n",
        "subdir/.git/HEAD": b"ref\n",
        ".env.example": b"A=1\n",
        ".cache/weights.bin": b"cached",
    }
    model = write_model(tmp_path / "dotfiles", files)
    out = tmp_path / "model.sig"
    statement = assert_conforming_bundle(
        sign(run_cli, model, out, "--key", str(signer.private)), model
    )
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == sorted(
        [".cache/weights.bin", ".env.example", "model.bin", "subdir/.git/HEAD", "subdir/.gitignore"]
    )
    assert verify(run_cli, model, out, "--public-key", str(signer.public)).code == 0


def test_key_ignore_paths_exact_match(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """key-ignore-paths-exact-match (6.2.1): `ignore-me` is the root entry only."""
    model = write_model(
        tmp_path / "nested", {"signme-1": b"1", "ignore-me": b"x", "subdir/ignore-me": b"y"}
    )
    out = tmp_path / "model.sig"
    bundle = sign(run_cli, model, out, "--key", str(signer.private), "--ignore-paths", "ignore-me")
    names = [r["name"] for r in payload_of(bundle)["predicate"]["resources"]]
    assert names == ["signme-1", "subdir/ignore-me"]


@pytest.mark.parametrize("bad", ["*.bin", "/abs", "../up", "a/../b", "cache/?"])
def test_ignore_paths_must_be_exact_relative_paths(
    run_cli: Any, tmp_path: Path, signer: KeyPair, bad: str
) -> None:
    """6.2.1: no glob characters, no leading '/', no '..'."""
    model = write_model(tmp_path / "m", SIMPLE)
    out = tmp_path / "model.sig"
    result = run_cli(
        "sign",
        str(model),
        "--key",
        str(signer.private),
        "--output",
        str(out),
        "--ignore-paths",
        bad,
    )
    fails(result, "ignore path")
    assert not out.exists()


def test_key_sig_inside_model(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """key-sig-inside-model (6.2, 9): the bundle is left out of its own manifest."""
    model = write_model(tmp_path / "m", SIMPLE)
    out = model / "model.sig"
    bundle = sign(run_cli, model, out, "--key", str(signer.private))
    assert "model.sig" not in [r["name"] for r in payload_of(bundle)["predicate"]["resources"]]
    assert verify(run_cli, model, out, "--public-key", str(signer.public)).code == 0


def test_key_symlink_default_rejected(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """key-symlink-default-rejected (6.1.1): allow_symlinks false, a symlink is an error."""
    model = write_model(tmp_path / "m", SIMPLE)
    os.symlink(model / "signme-1", model / "link")
    out = tmp_path / "model.sig"
    fails(
        run_cli("sign", str(model), "--key", str(signer.private), "--output", str(out)), "symlink"
    )
    assert not out.exists()


@pytest.mark.parametrize("name", ["模型.bin", "file with spaces & (parens)+[x].bin", "Model.bin"])
def test_key_unicode_and_special_names(
    run_cli: Any, tmp_path: Path, signer: KeyPair, name: str
) -> None:
    """key-unicode-filename / key-special-chars-path (6.1.2 rules 6, 7)."""
    model = write_model(tmp_path / "m", {name: b"weights", "model.bin": b"other"})
    out = tmp_path / "model.sig"
    bundle = sign(run_cli, model, out, "--key", str(signer.private))
    names = [r["name"] for r in payload_of(bundle)["predicate"]["resources"]]
    assert set(names) == {name, "model.bin"}  # case-sensitive: Model.bin and model.bin differ
    assert verify(run_cli, model, out, "--public-key", str(signer.public)).code == 0


def test_key_simple_deterministic(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """key-simple-deterministic (10): the same model gives the same names and digests."""
    model = write_model(tmp_path / "m", MULTI)
    first = payload_of(sign(run_cli, model, tmp_path / "a.sig", "--key", str(signer.private)))
    second = payload_of(sign(run_cli, model, tmp_path / "b.sig", "--key", str(signer.private)))
    assert first == second


def test_certificate_simple(run_cli: Any, tmp_path: Path) -> None:
    """certificate-simple (4.1, 8.2): leaf → intermediate → root; chain in the bundle."""
    model = write_model(tmp_path / "m", SIMPLE)
    out = tmp_path / "model.sig"
    bundle = sign(
        run_cli,
        model,
        out,
        "--key",
        str(GOLDEN_PKI / "leaf.key"),
        "--certificate",
        str(GOLDEN_PKI / "leaf.pem"),
        "--certificate-chain",
        str(GOLDEN_PKI / "intermediate-ca.pem"),
    )
    assert_conforming_bundle(bundle, model)
    chain = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
    leaf = x509.load_pem_x509_certificate((GOLDEN_PKI / "leaf.pem").read_bytes())
    assert base64.b64decode(chain[0]["rawBytes"]) == leaf.public_bytes(serialization.Encoding.DER)
    assert "publicKey" not in bundle["verificationMaterial"]
    trust = ["--certificate-chain", str(GOLDEN_PKI / "root-ca.pem"), "--san", SAN]
    assert verify(run_cli, model, out, *trust).code == 0
    # certificate-simple-wrong-ca_fail (8.2)
    wrong = tmp_path / "wrong-ca.pem"
    wrong.write_bytes(_self_signed_ca(tmp_path))
    fails(verify(run_cli, model, out, "--certificate-chain", str(wrong), "--san", SAN))
    # certificate-verify-as-key_fail (4.1)
    fails(verify(run_cli, model, out, "--public-key", str(GOLDEN_PKI / "signing.pub")))


def _self_signed_ca(where: Path) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wrong-ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_certificate_expired_fails(run_cli: Any, tmp_path: Path) -> None:
    """certificate-expired_fail (8.2): the leaf MUST be within its validity period."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expiry-root")])
    now = datetime.now(UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2019, 1, 1, tzinfo=UTC))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")]))
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2020, 1, 2, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(SAN)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "root.pem").write_bytes(root.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(pem_private(leaf_key))
    model = write_model(tmp_path / "m", SIMPLE)
    out = tmp_path / "model.sig"
    sign(
        run_cli,
        model,
        out,
        "--key",
        str(tmp_path / "leaf.key"),
        "--certificate",
        str(tmp_path / "leaf.pem"),
    )
    result = verify(
        run_cli, model, out, "--certificate-chain", str(tmp_path / "root.pem"), "--san", SAN
    )
    fails(result, "expired")


# --- verify: negative cases -----------------------------------------------------------------------


@pytest.fixture
def signed(run_cli: Any, tmp_path: Path, signer: KeyPair) -> tuple[Path, Path, dict[str, Any]]:
    model = write_model(tmp_path / "simple", {"signme-1": b"one\n", "signme-2": b"two\n"})
    out = tmp_path / "model.sig"
    return model, out, sign(run_cli, model, out, "--key", str(signer.private))


def test_key_simple_tampered_missing_extra(run_cli: Any, signed: Any, signer: KeyPair) -> None:
    """key-simple-tampered-content_fail / -missing-file_fail / -extra-file_fail (8.4)."""
    model, out, _ = signed
    trust = ["--public-key", str(signer.public)]
    (model / "signme-1").write_bytes(b"one!\n")
    fails(verify(run_cli, model, out, *trust), "changed: signme-1")
    (model / "signme-1").write_bytes(b"one\n")
    (model / "injected.bin").write_bytes(b"x")
    fails(verify(run_cli, model, out, *trust), "not signed: injected.bin")
    (model / "injected.bin").unlink()
    (model / "signme-2").unlink()
    fails(verify(run_cli, model, out, *trust), "missing: signme-2")


def test_ignore_unsigned_files(run_cli: Any, signed: Any, signer: KeyPair) -> None:
    """key-simple-ignore-unsigned-files / key-tampered-with-ignore-unsigned_fail /
    key-missing-file-with-ignore-unsigned_fail (8.5)."""
    model, out, _ = signed
    trust = ["--public-key", str(signer.public), "--ignore-unsigned-files", "--json"]
    (model / "runtime.log").write_bytes(b"extra")
    ok = verify(run_cli, model, out, *trust)
    assert ok.code == 0, ok.stderr
    assert ok.json()["unsigned_files"] == ["runtime.log"]
    assert ok.json()["files"] == 2
    (model / "signme-1").write_bytes(b"one!\n")
    fails(verify(run_cli, model, out, *trust), "changed: signme-1")
    (model / "signme-1").write_bytes(b"one\n")
    (model / "signme-2").unlink()
    fails(verify(run_cli, model, out, *trust), "missing: signme-2")


def test_key_simple_wrong_key(run_cli: Any, signed: Any, tmp_path: Path) -> None:
    """key-simple-wrong-key_fail (8.2)."""
    model, out, _ = signed
    other = KeyPair(tmp_path)
    fails(verify(run_cli, model, out, "--public-key", str(other.public)), "another key")


def test_key_verify_as_certificate(run_cli: Any, signed: Any) -> None:
    """key-verify-as-certificate_fail (4.1): the material must match the method."""
    model, out, _ = signed
    result = verify(
        run_cli, model, out, "--certificate-chain", str(GOLDEN_PKI / "root-ca.pem"), "--san", SAN
    )
    fails(result, "not a certificate chain")


BundleEdit = Callable[[dict[str, Any]], Any]


def _set(path: tuple[str, ...], value: Any) -> BundleEdit:
    def edit(bundle: dict[str, Any]) -> None:
        node = bundle
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return edit


def _drop(path: tuple[str, ...]) -> BundleEdit:
    def edit(bundle: dict[str, Any]) -> None:
        node = bundle
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return edit


@pytest.mark.parametrize(
    ("edit", "raw"),
    [
        (_set(("mediaType",), "application/vnd.dev.sigstore.bundle+json;version=0.1"), None),
        (_set(("dsseEnvelope", "signatures"), []), None),
        (_drop(("dsseEnvelope",)), None),
        (None, b"{not json"),
        (None, b""),
        ("truncate", None),
    ],
    ids=[
        "key-simple-wrong-mediatype_fail",
        "key-simple-no-signature_fail",
        "malformed-missing-envelope_fail",
        "key-simple-corrupted-bundle_fail",
        "malformed-empty-bundle_fail",
        "key-simple-truncated-bundle_fail",
    ],
)
def test_malformed_bundles_fail(
    run_cli: Any, signed: Any, signer: KeyPair, edit: Any, raw: bytes | None
) -> None:
    """8.1: the bundle is parsed and checked before anything is trusted."""
    model, out, bundle = signed
    if edit == "truncate":
        out.write_bytes(out.read_bytes()[:100])
    elif raw is not None:
        out.write_bytes(raw)
    else:
        edit(bundle)
        write_json(out, bundle)
    fails(verify(run_cli, model, out, "--public-key", str(signer.public)))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (
            lambda s: s.update(predicateType="https://model_signing/signature/v0.9"),
            "not a model signature",
        ),
        (lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"), "Statement"),
        (lambda s: s["predicate"].update(resources=[]), "no resources"),
        (lambda s: s["predicate"].pop("serialization"), "serialization"),
        (lambda s: s["predicate"]["serialization"].update(hash_type="md5"), "md5"),
    ],
    ids=[
        "malformed-wrong-predicate_fail",
        "key-simple-wrong-statement-type_fail",
        "key-simple-empty-resources_fail",
        "key-simple-missing-serialization_fail",
        "unsupported-hash-type_fail",
    ],
)
def test_resigned_bad_statements_fail(
    run_cli: Any, signed: Any, signer: KeyPair, change: Callable[[dict[str, Any]], Any], needle: str
) -> None:
    """5.1, 5.2, 8.3: a signature over a statement that is not an OMS one proves nothing."""
    model, out, _ = signed
    statement = statement_of(model, resources_of(model))
    change(statement)
    write_json(out, key_bundle(signer.key, statement))
    fails(verify(run_cli, model, out, "--public-key", str(signer.public)), needle)


def test_wrong_payload_type_fails(run_cli: Any, signed: Any, signer: KeyPair) -> None:
    """key-simple-wrong-payload-type_fail (6.7)."""
    model, out, _ = signed
    write_json(
        out, key_bundle(signer.key, statement_of(model, resources_of(model)), "application/json")
    )
    fails(verify(run_cli, model, out, "--public-key", str(signer.public)), "payload type")


# --- historical relaxations (11.1, 11.2) and other producers ------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        _set(("dsseEnvelope", "signatures", 0, "keyid"), None),  # type: ignore[arg-type]
        _drop(("dsseEnvelope", "signatures", 0, "keyid")),  # type: ignore[arg-type]
        _drop(("verificationMaterial", "tlogEntries")),
    ],
    ids=["keyid-null", "keyid-absent", "tlog-entries-absent"],
)
def test_relaxed_envelope_fields_verify(
    run_cli: Any, signed: Any, signer: KeyPair, edit: BundleEdit
) -> None:
    """4.1 and 11.2 rule 2: keyid absent, "" or null; tlogEntries absent for key/certificate."""
    model, out, bundle = signed
    edit(bundle)
    write_json(out, bundle)
    result = verify(run_cli, model, out, "--public-key", str(signer.public))
    assert result.code == 0, result.stderr


def test_raw_bytes_key_instead_of_hint(
    run_cli: Any, signed: Any, signer: KeyPair, tmp_path: Path
) -> None:
    """11.2 rule 1: pre-1.1 `publicKey.rawBytes` names the key; it must still be the trusted one."""
    model, out, bundle = signed
    bundle["verificationMaterial"]["publicKey"] = {
        "rawBytes": base64.b64encode(signer.public.read_bytes()).decode(),
        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
    }
    write_json(out, bundle)
    result = verify(run_cli, model, out, "--public-key", str(signer.public), "--json")
    assert result.code == 0, result.stderr
    assert any("rawBytes" in c for c in result.json()["checks"])
    other = KeyPair(tmp_path)
    bundle["verificationMaterial"]["publicKey"]["rawBytes"] = base64.b64encode(
        other.public.read_bytes()
    ).decode()
    write_json(out, bundle)
    fails(verify(run_cli, model, out, "--public-key", str(signer.public)), "another key")


def test_no_ignore_paths_and_any_subject_name(run_cli: Any, signed: Any, signer: KeyPair) -> None:
    """11.2 rule 3 (ignore_paths absent: defaults still apply) and 6.5 (subject name is
    informational: "model", as some Python versions wrote, verifies)."""
    model, out, _ = signed
    resources = resources_of(model)
    (model / ".gitattributes").write_bytes(b"* text\n")  # a default exclusion, still excluded
    statement = statement_of(model, resources)  # no ignore_paths in its serialization
    assert "ignore_paths" not in statement["predicate"]["serialization"]
    statement["subject"][0]["name"] = "model"
    write_json(out, key_bundle(signer.key, statement))
    result = verify(run_cli, model, out, "--public-key", str(signer.public))
    assert result.code == 0, result.stderr


def test_resources_in_name_order_verify(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """5.2.1 / 6.4: resources sorted by name (code points), as the spec and the Go producer
    order them, verify, also where that differs from model_signing's path-component order."""
    model = write_model(tmp_path / "m", {"extra/x": b"nested", "extra-notes.txt": b"notes"})
    by_name = resources_of(model)
    assert [r["name"] for r in by_name] == ["extra-notes.txt", "extra/x"]
    out = write_json(tmp_path / "model.sig", key_bundle(signer.key, statement_of(model, by_name)))
    result = verify(run_cli, model, out, "--public-key", str(signer.public))
    assert result.code == 0, result.stderr
    by_components = by_name[::-1]
    out.write_text(json.dumps(key_bundle(signer.key, statement_of(model, by_components))))
    # path-component order ("extra/x" first) is model_signing's: also accepted.
    assert verify(run_cli, model, out, "--public-key", str(signer.public)).code == 0


def test_shards_as_in_the_spec_example(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """6.3.2: a 2,621,440-byte file in 1,048,576-byte shards is three named ranges; an
    integer shard_size (the spec) verifies like model_signing's float one."""
    data = os.urandom(2_621_440)
    model = write_model(tmp_path / "m", {"weights.bin": data})
    size = 1_048_576
    resources = [
        {
            "name": f"weights.bin:{start}:{min(start + size, len(data))}",
            "algorithm": "sha256",
            "digest": hashlib.sha256(data[start : start + size]).hexdigest(),
        }
        for start in range(0, len(data), size)
    ]
    assert [r["name"] for r in resources] == [
        "weights.bin:0:1048576",
        "weights.bin:1048576:2097152",
        "weights.bin:2097152:2621440",
    ]
    statement = statement_of(model, resources, method="shards", shard_size=size)
    out = write_json(tmp_path / "model.sig", key_bundle(signer.key, statement))
    result = verify(run_cli, model, out, "--public-key", str(signer.public), "--json")
    assert result.code == 0, result.stderr
    assert result.json()["serialization"]["method"] == "shards"
    with open(model / "weights.bin", "r+b") as f:
        f.seek(1_500_000)
        f.write(b"\x00" if data[1_500_000] else b"\x01")
    fails(verify(run_cli, model, out, "--public-key", str(signer.public)), "weights.bin")


def test_a_model_folder_named_by_a_link_still_verifies(
    run_cli: Any, tmp_path: Path, signer: KeyPair
) -> None:
    """The link to the folder is the caller's path, not a file of the model (6.1.1)."""
    model = write_model(tmp_path / "real", SIMPLE)
    link = tmp_path / "current"
    os.symlink(model, link)
    out = tmp_path / "model.sig"
    sign(run_cli, link, out, "--key", str(signer.private))
    assert verify(run_cli, link, out, "--public-key", str(signer.public)).code == 0
    file_link = tmp_path / "model.bin"
    os.symlink(model / "signme-1", file_link)
    result = run_cli("sign", str(file_link), "--key", str(signer.private), "--output", str(out))
    fails(result, "symlink")


def test_key_symlink_cycle_fails_rather_than_loops(
    run_cli: Any, tmp_path: Path, signer: KeyPair
) -> None:
    """key-symlink-cycle (6.1.1): a statement that allows symlinks over a folder whose link
    points back up the tree ends in an error, not in an endless walk."""
    model = write_model(tmp_path / "m", {"sub/weights.bin": b"w"})
    resources = resources_of(model)
    os.symlink(model, model / "sub" / "loop")
    statement = statement_of(model, resources, allow_symlinks=True)
    out = write_json(tmp_path / "model.sig", key_bundle(signer.key, statement))
    fails(verify(run_cli, model, out, "--public-key", str(signer.public)), "cycle")


def test_allowed_symlinks_are_followed(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """6.1.1: with allow_symlinks true each link is a resource named by the link's path."""
    model = write_model(tmp_path / "m", {"weights.bin": b"w", "shared/a": b"a"})
    os.symlink(model / "weights.bin", model / "alias.bin")
    os.symlink(model / "shared", model / "linked")
    rels = ["alias.bin", "linked/a", "shared/a", "weights.bin"]
    digest = {"alias.bin": b"w", "linked/a": b"a", "shared/a": b"a", "weights.bin": b"w"}
    resources = [
        {"name": r, "algorithm": "sha256", "digest": hashlib.sha256(digest[r]).hexdigest()}
        for r in rels
    ]
    statement = statement_of(model, resources, allow_symlinks=True)
    out = write_json(tmp_path / "model.sig", key_bundle(signer.key, statement))
    result = verify(run_cli, model, out, "--public-key", str(signer.public))
    assert result.code == 0, result.stderr


def test_key_symlink_outside_root_fails(run_cli: Any, tmp_path: Path, signer: KeyPair) -> None:
    """key-symlink-outside-root (6.1.1): even where symlinks are allowed, a link out of the
    model folder is an error, never a reason to read the rest of the disk."""
    outside = write_model(tmp_path / "outside", {"secret": b"s"})
    model = write_model(tmp_path / "m", {"weights.bin": b"w"})
    resources = resources_of(model)
    os.symlink(outside / "secret", model / "escape")
    statement = statement_of(model, resources, allow_symlinks=True)
    out = write_json(tmp_path / "model.sig", key_bundle(signer.key, statement))
    fails(verify(run_cli, model, out, "--public-key", str(signer.public)), "outside")
    (model / "escape").unlink()
    os.symlink(outside, model / "escape-dir")
    fails(verify(run_cli, model, out, "--public-key", str(signer.public)), "outside")
