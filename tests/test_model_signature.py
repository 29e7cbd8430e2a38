"""Model signatures (OpenSSF model signing v1.0): sign, verify, interop and every bad input.

model_signing 1.1.1 is the test-only oracle: its CLI (in a subprocess) and its Python API for
shard signatures. The "re-signed" bad inputs build the statement JSON here, independently of the
code under test, and sign it with the trusted key, so that only the one broken thing differs.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestations import dsse
from attestations.bundle import Bundle
from attestations.errors import InvalidInputError, SignatureVerificationError
from attestations.keys import KeySigner, PublicKeyVerifier, key_hint
from attestations.model_signature import verify_model_signature
from tests.helpers import write_tree

ROOT = Path(__file__).resolve().parents[1]
MODEL_SIGNING = Path(sys.executable).parent / "model_signing"
PASSPHRASE_ENV = "MODELCTL_KEY_PASSPHRASE"

INTOTO = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
PREDICATE = "https://model_signing/signature/v1.0"
DEFAULT_IGNORES = [".git", ".gitattributes", ".github", ".gitignore"]

MODEL_FILES: dict[str, bytes] = {
    "config.json": b'{"model_type": "tiny", "hidden_size": 8}\n',
    "extra/x": b"a nested file\n",
    "extra-notes.txt": b"notes that sort after extra/x by path components\n",
    "empty.txt": b"",
    "weights.bin": random.Random(20240601).randbytes(300_000),
}


# --- fixtures and helpers --------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    trusted: ec.EllipticCurvePrivateKey
    other: ec.EllipticCurvePrivateKey
    trusted_key: Path  # PEM PKCS#8, unencrypted
    trusted_pub: Path
    other_key: Path
    other_pub: Path


def _write_key(key: ec.EllipticCurvePrivateKey, stem: Path) -> tuple[Path, Path]:
    private, public = stem.with_suffix(".key"), stem.with_suffix(".pub")
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture(autouse=True)
def no_passphrase_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set the passphrase themselves; stdin is never a terminal."""
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    where = tmp_path / "keys"
    where.mkdir()
    trusted = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    trusted_key, trusted_pub = _write_key(trusted, where / "trusted")
    other_key, other_pub = _write_key(other, where / "other")
    return Keys(trusted, other, trusted_key, trusted_pub, other_key, other_pub)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "tiny-model", MODEL_FILES)


@pytest.fixture
def cli(run_cli: Any) -> Callable[..., Any]:
    """`run_cli`, but an exception escaping `main` (a traceback for the user) fails the test."""

    def run(*args: str | Path) -> Any:
        argv = [str(a) for a in args]
        try:
            return run_cli(*argv)
        except Exception as exc:
            pytest.fail(
                f"`modelctl {' '.join(argv)}` let {type(exc).__name__}: {exc} escape: "
                "the user gets a traceback instead of one 'modelctl: error:' line"
            )

    return run


def assert_one_line_error(result: Any, code: int, *needles: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.code == code, f"exit {result.code}, not {code}: {result.stderr or result.stdout}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line: str = lines[0]
    assert line.startswith("modelctl: error:"), line
    for needle in needles:
        assert needle in line, line
    return line


def rel_files(root: Path) -> list[str]:
    """Every file under root, relative, in model_signing order (path components)."""
    rels = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return sorted(rels, key=PurePosixPath)


def file_resources(root: Path) -> list[dict[str, str]]:
    return [
        {
            "name": rel,
            "algorithm": "sha256",
            "digest": hashlib.sha256((root / rel).read_bytes()).hexdigest(),
        }
        for rel in rel_files(root)
    ]


def shard_resources(root: Path, shard_size: int) -> list[dict[str, str]]:
    out = []
    for rel in rel_files(root):
        data = (root / rel).read_bytes()
        for start in range(0, len(data), shard_size):
            end = min(start + shard_size, len(data))
            out.append(
                {
                    "name": f"{rel}:{start}:{end}",
                    "algorithm": f"sha256-sharded-{shard_size}",
                    "digest": hashlib.sha256(data[start:end]).hexdigest(),
                }
            )
    return out


def subject_of(resources: list[dict[str, str]]) -> str:
    """sha256 over the raw resource digests, in the order listed."""
    return hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()


def make_statement(
    root: Path,
    resources: list[dict[str, str]] | None = None,
    *,
    serialization_fields: dict[str, Any] | None = None,
    subject_digest: str | None = None,
) -> dict[str, Any]:
    resources = file_resources(root) if resources is None else resources
    ser: dict[str, Any] = {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": list(DEFAULT_IGNORES),
    }
    ser.update(serialization_fields or {})
    return {
        "_type": STATEMENT_V1,
        "subject": [
            {"name": root.name, "digest": {"sha256": subject_digest or subject_of(resources)}}
        ],
        "predicateType": PREDICATE,
        "predicate": {"resources": resources, "serialization": ser},
    }


def signed_bundle(
    key: ec.EllipticCurvePrivateKey, statement: dict[str, Any] | bytes, payload_type: str = INTOTO
) -> bytes:
    payload = (
        statement if isinstance(statement, bytes) else json.dumps(statement, indent=2).encode()
    )
    return KeySigner(key).sign(payload_type, payload).to_bytes()


def payload_of(signature: Path) -> bytes:
    return base64.b64decode(json.loads(signature.read_bytes())["dsseEnvelope"]["payload"])


def model_signing(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert MODEL_SIGNING.is_file(), f"model_signing CLI not found at {MODEL_SIGNING}"
    return subprocess.run(
        [str(MODEL_SIGNING), *(str(a) for a in args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def flip_one_bit(path: Path, offset: int = 150_001) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# --- A. round trips and keys -----------------------------------------------------------------


def test_sign_then_verify_round_trip(cli: Any, keys: Keys, model: Path, tmp_path: Path) -> None:
    signature = tmp_path / "model.sig"
    signed = cli("sign", model, "--key", keys.trusted_key, "--output", signature, "--json")
    assert signed.code == 0, signed.stderr
    expected_subject = "sha256:" + subject_of(file_resources(model))
    assert signed.json()["subject_digest"] == expected_subject
    assert signed.json()["resources"] == len(MODEL_FILES)

    result = cli(
        "verify", model, "--signature", signature, "--public-key", keys.trusted_pub, "--json"
    )
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["verified"] is True
    assert out["subject_digest"] == expected_subject
    assert out["signer"]["method"] == "key"
    assert out["signer"]["key_hint"] == key_hint(keys.trusted.public_key())
    assert out["signer"]["key_hint"] == hashlib.sha256(keys.trusted_pub.read_bytes()).hexdigest()
    assert out["files"] == len(MODEL_FILES)
    assert out["bytes"] == sum(len(d) for d in MODEL_FILES.values())
    assert isinstance(out["checks"], list)
    assert any("ECDSA" in c for c in out["checks"])
    assert any("subject digest" in c for c in out["checks"])
    assert any("re-hashed" in c for c in out["checks"])

    statement = json.loads(payload_of(signature))
    assert statement["_type"] == STATEMENT_V1
    assert statement["predicateType"] == PREDICATE
    assert statement["subject"] == [
        {"name": model.name, "digest": {"sha256": subject_of(file_resources(model))}}
    ]
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == rel_files(model)
    assert names.index("extra/x") < names.index("extra-notes.txt")  # components, not strings


def test_signature_inside_the_model_folder_is_ignored(cli: Any, keys: Keys, model: Path) -> None:
    signature = model / "model.sig"
    assert cli("sign", model, "--key", keys.trusted_key, "--output", signature).code == 0
    statement = json.loads(payload_of(signature))
    assert "model.sig" in statement["predicate"]["serialization"]["ignore_paths"]
    assert all(r["name"] != "model.sig" for r in statement["predicate"]["resources"])
    result = cli(
        "verify", model, "--signature", signature, "--public-key", keys.trusted_pub, "--json"
    )
    assert result.code == 0, result.stderr
    assert result.json()["files"] == len(MODEL_FILES)


def test_encrypted_key_with_passphrase_from_the_environment(
    cli: Any, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    made = cli("keys", "generate", "--out", tmp_path, "--name", "signer", "--json")
    assert made.code == 0, made.stderr
    private, public = tmp_path / "signer.key", tmp_path / "signer.pub"
    assert private.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert made.json()["key_hint"] == hashlib.sha256(public.read_bytes()).hexdigest()
    signature = tmp_path / "model.sig"
    assert cli("sign", model, "--key", private, "--output", signature).code == 0
    result = cli("verify", model, "--signature", signature, "--public-key", public, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["signer"]["key_hint"] == made.json()["key_hint"]


def test_wrong_passphrase_is_one_line_exit_2(
    cli: Any, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "the right one")
    assert cli("keys", "generate", "--out", tmp_path, "--name", "signer").code == 0
    monkeypatch.setenv(PASSPHRASE_ENV, "the wrong one")
    result = cli(
        "sign", model, "--key", tmp_path / "signer.key", "--output", tmp_path / "model.sig"
    )
    assert_one_line_error(result, 2, "passphrase")
    assert not (tmp_path / "model.sig").exists()


def test_encrypted_key_without_passphrase_or_terminal_is_exit_2(
    cli: Any, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "secret")
    assert cli("keys", "generate", "--out", tmp_path, "--name", "signer").code == 0
    monkeypatch.delenv(PASSPHRASE_ENV)
    result = cli(
        "sign", model, "--key", tmp_path / "signer.key", "--output", tmp_path / "model.sig"
    )
    assert_one_line_error(result, 2, PASSPHRASE_ENV)
    assert not (tmp_path / "model.sig").exists()


def test_keys_generate_creates_the_out_folder(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's `modelctl keys generate --out keys/` on a fresh machine.
    monkeypatch.setenv(PASSPHRASE_ENV, "secret")
    monkeypatch.chdir(tmp_path)
    made = cli("keys", "generate", "--out", "keys/", "--json")
    assert made.code == 0, made.stderr
    assert (tmp_path / "keys" / "modelctl.key").is_file()
    assert (tmp_path / "keys" / "modelctl.pub").is_file()
    assert (tmp_path / "keys").stat().st_mode & 0o077 == 0  # holds a private key
    nested = cli("keys", "generate", "--out", tmp_path / "a" / "b", "--name", "x")
    assert nested.code == 0, nested.stderr
    (tmp_path / "file").write_text("x")
    assert_one_line_error(cli("keys", "generate", "--out", tmp_path / "file"), 2, "not a folder")


def test_keys_generate_refuses_to_overwrite(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "secret")
    assert cli("keys", "generate", "--out", tmp_path).code == 0
    before = {p: p.read_bytes() for p in (tmp_path / "modelctl.key", tmp_path / "modelctl.pub")}
    result = cli("keys", "generate", "--out", tmp_path)
    assert_one_line_error(result, 2, "already exists")
    assert {p: p.read_bytes() for p in before} == before


def test_keys_generate_writes_nothing_when_the_public_key_exists(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refusing must leave no new private key beside someone else's public key."""
    monkeypatch.setenv(PASSPHRASE_ENV, "secret")
    existing = tmp_path / "modelctl.pub"
    existing.write_bytes(b"a public key that is already here\n")
    result = cli("keys", "generate", "--out", tmp_path)
    assert_one_line_error(result, 2, "already exists")
    assert existing.read_bytes() == b"a public key that is already here\n"
    assert not (tmp_path / "modelctl.key").exists()


def test_unsafe_no_passphrase_writes_an_unencrypted_key_and_warns(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    result = cli("keys", "generate", "--out", tmp_path, "--unsafe-no-passphrase")
    assert result.code == 0, result.stderr
    assert "warning" in result.stderr
    assert "UNENCRYPTED" in result.stderr
    assert "unencrypted" in result.stdout
    private = tmp_path / "modelctl.key"
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    signature = tmp_path / "model.sig"
    assert cli("sign", model, "--key", private, "--output", signature).code == 0
    ok = cli("verify", model, "--signature", signature, "--public-key", tmp_path / "modelctl.pub")
    assert ok.code == 0, ok.stderr


# --- B. interoperability with model_signing 1.1.1 --------------------------------------------


@pytest.mark.parametrize("inside", [False, True], ids=["beside", "inside"])
def test_model_signing_verifies_our_signature(
    cli: Any, keys: Keys, model: Path, tmp_path: Path, inside: bool
) -> None:
    signature = model / "model.sig" if inside else tmp_path / "ours.sig"
    assert cli("sign", model, "--key", keys.trusted_key, "--output", signature).code == 0
    theirs = model_signing(
        "verify", "key", model, "--signature", signature, "--public_key", keys.trusted_pub
    )
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    assert "Verification succeeded" in theirs.stdout
    wrong = model_signing(
        "verify", "key", model, "--signature", signature, "--public_key", keys.other_pub
    )
    assert wrong.returncode != 0


def test_we_verify_a_model_signing_files_signature(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    signature = tmp_path / "theirs.sig"
    made = model_signing(
        "sign", "key", model, "--signature", signature, "--private_key", keys.trusted_key
    )
    assert made.returncode == 0, made.stdout + made.stderr
    result = cli(
        "verify", model, "--signature", signature, "--public-key", keys.trusted_pub, "--json"
    )
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["subject_digest"] == "sha256:" + subject_of(file_resources(model))
    assert out["signer"]["key_hint"] == key_hint(keys.trusted.public_key())
    assert out["files"] == len(MODEL_FILES)


def test_we_verify_a_model_signing_signature_kept_inside_the_folder(
    cli: Any, keys: Keys, model: Path
) -> None:
    signature = model / "model.sig"
    made = model_signing(
        "sign", "key", model, "--signature", signature, "--private_key", keys.trusted_key
    )
    assert made.returncode == 0, made.stdout + made.stderr
    result = cli("verify", model, "--signature", signature, "--public-key", keys.trusted_pub)
    assert result.code == 0, result.stderr


def test_we_verify_a_model_signing_shards_signature(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    from model_signing import hashing, signing

    signature = tmp_path / "shards.sig"
    signing.Config().use_elliptic_key_signer(private_key=keys.trusted_key).set_hashing_config(
        hashing.Config().use_shard_serialization(shard_size=131072)
    ).sign(model, signature)
    payload = payload_of(signature)
    assert b'"shard_size": 131072.0' in payload  # protobuf Struct: a JSON float
    statement = json.loads(payload)
    assert [r["name"] for r in statement["predicate"]["resources"]] == [
        r["name"] for r in shard_resources(model, 131072)
    ]
    result = cli(
        "verify", model, "--signature", signature, "--public-key", keys.trusted_pub, "--json"
    )
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["serialization"]["method"] == "shards"
    assert out["subject_digest"] == "sha256:" + subject_of(shard_resources(model, 131072))


def test_we_verify_a_model_signing_blake2_signature(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    from model_signing import hashing, signing

    signature = tmp_path / "blake2.sig"
    signing.Config().use_elliptic_key_signer(private_key=keys.trusted_key).set_hashing_config(
        hashing.Config().use_file_serialization(hashing_algorithm="blake2")
    ).sign(model, signature)
    statement = json.loads(payload_of(signature))
    resources = statement["predicate"]["resources"]
    assert {r["algorithm"] for r in resources} == {"blake2b"}
    expected = [
        {"name": rel, "digest": hashlib.blake2b((model / rel).read_bytes()).hexdigest()}
        for rel in rel_files(model)
    ]
    assert [{"name": r["name"], "digest": r["digest"]} for r in resources] == expected
    result = cli(
        "verify", model, "--signature", signature, "--public-key", keys.trusted_pub, "--json"
    )
    assert result.code == 0, result.stderr
    assert result.json()["subject_digest"] == "sha256:" + subject_of(resources)


def test_folder_tampered_after_model_signing_signed_fails_in_ours(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    signature = tmp_path / "theirs.sig"
    made = model_signing(
        "sign", "key", model, "--signature", signature, "--private_key", keys.trusted_key
    )
    assert made.returncode == 0, made.stdout + made.stderr
    flip_one_bit(model / "weights.bin")
    result = cli("verify", model, "--signature", signature, "--public-key", keys.trusted_pub)
    assert_one_line_error(result, 1, "weights.bin")


def test_subject_digest_equals_the_mirror_digest(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    signed = cli("sign", model, "--key", keys.trusted_key, "--output", tmp_path / "m.sig", "--json")
    assert signed.code == 0, signed.stderr
    mirrored = cli("mirror", model, "--name", "test/tiny", "--json")
    assert mirrored.code == 0, mirrored.stderr
    assert mirrored.json()["digest"] == signed.json()["subject_digest"]


# --- C. every bad input: exit code, one line, the cause named --------------------------------


def _verify(cli: Any, model: Path, signature: Path, keys: Keys, *extra: str) -> Any:
    return cli("verify", model, "--signature", signature, "--public-key", keys.trusted_pub, *extra)


def _good_bundle(keys: Keys, model: Path) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(signed_bundle(keys.trusted, make_statement(model)))
    return bundle


def _truncated(keys: Keys, model: Path) -> bytes:
    data = signed_bundle(keys.trusted, make_statement(model))
    return data[: len(data) // 2]


def _not_json(keys: Keys, model: Path) -> bytes:
    return b"\x00\x01 this is not a bundle"


def _zero_signatures(keys: Keys, model: Path) -> bytes:
    bundle = _good_bundle(keys, model)
    bundle["dsseEnvelope"]["signatures"] = []
    return json.dumps(bundle).encode()


def _two_signatures(keys: Keys, model: Path) -> bytes:
    bundle = _good_bundle(keys, model)
    sigs = bundle["dsseEnvelope"]["signatures"]
    sigs.append(copy.deepcopy(sigs[0]))
    return json.dumps(bundle).encode()


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (_truncated, "not JSON"),
        (_not_json, "not JSON"),
        (_zero_signatures, "exactly one signature"),
        (_two_signatures, "exactly one signature"),
    ],
    ids=["truncated", "not-json", "zero-signatures", "two-signatures"],
)
def test_unusable_bundle_is_exit_2(
    cli: Any,
    keys: Keys,
    model: Path,
    tmp_path: Path,
    build: Callable[[Keys, Path], bytes],
    needle: str,
) -> None:
    signature = tmp_path / "bad.sig"
    signature.write_bytes(build(keys, model))
    assert_one_line_error(_verify(cli, model, signature, keys), 2, needle)


def _resorted(resources: list[dict[str, str]]) -> list[dict[str, str]]:
    return sorted(resources, key=lambda r: PurePosixPath(r["name"]))


def _renamed(model: Path, old: str, new: str) -> dict[str, Any]:
    resources = [dict(r, name=new) if r["name"] == old else r for r in file_resources(model)]
    return make_statement(model, _resorted(resources))


def _wrong_order(model: Path) -> dict[str, Any]:
    resources = list(reversed(file_resources(model)))
    return make_statement(model, resources)  # subject digest recomputed in this order


def _duplicate(model: Path) -> dict[str, Any]:
    resources = file_resources(model)
    resources.insert(0, dict(resources[0]))
    return make_statement(model, resources)


def _wrong_subject(model: Path) -> dict[str, Any]:
    return make_statement(model, subject_digest=hashlib.sha256(b"another model").hexdigest())


def _wrong_predicate_type(model: Path) -> dict[str, Any]:
    statement = make_statement(model)
    statement["predicateType"] = "https://model_signing/Digests/v0.1"
    return statement


def _blake3(model: Path) -> dict[str, Any]:
    resources = [dict(r, algorithm="blake3") for r in file_resources(model)]
    return make_statement(model, resources, serialization_fields={"hash_type": "blake3"})


def _fractional_shard_size(model: Path) -> dict[str, Any]:
    return make_statement(
        model,
        shard_resources(model, 131072),
        serialization_fields={"method": "shards", "shard_size": 131072.5},
    )


@pytest.mark.parametrize(
    ("build", "needles"),
    [
        (_wrong_predicate_type, ["Digests/v0.1", "not a model signature"]),
        (_wrong_subject, ["subject digest", "does not match"]),
        (_wrong_order, ["order"]),
        (_duplicate, ["config.json", "twice"]),
        (lambda m: _renamed(m, "config.json", "../config.json"), ["../config.json", "'..'"]),
        (lambda m: _renamed(m, "config.json", "/etc/passwd"), ["/etc/passwd", "absolute"]),
        (_blake3, ["blake3"]),
        (_fractional_shard_size, ["shard_size", "131072.5"]),
    ],
    ids=[
        "predicate-type",
        "subject-digest",
        "resource-order",
        "duplicate-resource",
        "dotdot-name",
        "absolute-name",
        "blake3",
        "fractional-shard-size",
    ],
)
def test_resigned_bad_statement_is_refused_exit_1(
    cli: Any,
    keys: Keys,
    model: Path,
    tmp_path: Path,
    build: Callable[[Path], dict[str, Any]],
    needles: list[str],
) -> None:
    signature = tmp_path / "bad.sig"
    signature.write_bytes(signed_bundle(keys.trusted, build(model)))
    assert_one_line_error(_verify(cli, model, signature, keys), 1, *needles)


def test_resigned_statement_baseline_passes(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    """The statement the bad variants start from verifies: each variant breaks one thing."""
    signature = tmp_path / "good.sig"
    signature.write_bytes(signed_bundle(keys.trusted, make_statement(model)))
    result = _verify(cli, model, signature, keys)
    assert result.code == 0, result.stderr
    shards = tmp_path / "shards.sig"
    shards.write_bytes(
        signed_bundle(
            keys.trusted,
            make_statement(
                model,
                shard_resources(model, 131072),
                serialization_fields={"method": "shards", "shard_size": 131072.0},
            ),
        )
    )
    result = _verify(cli, model, shards, keys)
    assert result.code == 0, result.stderr


@pytest.mark.parametrize("zero", ["00", "\u0660"], ids=["leading-zero", "arabic-indic-digit"])
def test_duplicate_shard_spelled_another_way_is_refused(
    cli: Any, keys: Keys, model: Path, tmp_path: Path, zero: str
) -> None:
    """`weights.bin:00:131072` is `weights.bin:0:131072` listed twice.

    Accepting it lets the same bytes verify under a subject digest that is not the folder's
    (the duplicate's digest is counted twice), and the name comparison silently merges the two.
    """
    resources = shard_resources(model, 131072)
    first = next(i for i, r in enumerate(resources) if r["name"] == "weights.bin:0:131072")
    twin = dict(resources[first], name=f"weights.bin:{zero}:131072")
    resources.insert(first + 1, twin)
    statement = make_statement(
        model, resources, serialization_fields={"method": "shards", "shard_size": 131072.0}
    )
    assert statement["subject"][0]["digest"]["sha256"] != subject_of(shard_resources(model, 131072))
    signature = tmp_path / "twin.sig"
    signature.write_bytes(signed_bundle(keys.trusted, statement))
    assert_one_line_error(_verify(cli, model, signature, keys), 1, "weights.bin")


def test_wrong_payload_type_is_refused_exit_1(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    signature = tmp_path / "bad.sig"
    signature.write_bytes(signed_bundle(keys.trusted, make_statement(model), "application/json"))
    assert_one_line_error(
        _verify(cli, model, signature, keys), 1, "application/json", "payload type"
    )


def test_signature_by_another_key_is_refused(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    signature = tmp_path / "other.sig"
    assert cli("sign", model, "--key", keys.other_key, "--output", signature).code == 0
    assert_one_line_error(_verify(cli, model, signature, keys), 1, "another key")


def test_signature_by_another_key_with_the_trusted_hint_is_refused(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    bundle = json.loads(signed_bundle(keys.other, make_statement(model)))
    bundle["verificationMaterial"]["publicKey"]["hint"] = key_hint(keys.trusted.public_key())
    signature = tmp_path / "forged.sig"
    signature.write_text(json.dumps(bundle))
    assert_one_line_error(_verify(cli, model, signature, keys), 1, "does not verify")


def test_hint_naming_an_untrusted_key_is_refused(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    """The signature is valid for the trusted key, but the hint says someone else signed."""
    bundle = json.loads(signed_bundle(keys.trusted, make_statement(model)))
    bundle["verificationMaterial"]["publicKey"]["hint"] = key_hint(keys.other.public_key())
    signature = tmp_path / "rehinted.sig"
    signature.write_text(json.dumps(bundle))
    assert_one_line_error(_verify(cli, model, signature, keys), 1, "another key")


def _signed_by_us(cli: Any, keys: Keys, model: Path, tmp_path: Path) -> Path:
    signature = tmp_path / "model.sig"
    result = cli("sign", model, "--key", keys.trusted_key, "--output", signature)
    assert result.code == 0, result.stderr
    return signature


@pytest.mark.parametrize(
    ("target", "is_dir"),
    [("config.json", False), ("extra", True), ("nowhere", False)],
    ids=["to-file", "to-folder", "dangling"],
)
def test_symlink_in_the_model_folder_is_refused(
    cli: Any, keys: Keys, model: Path, tmp_path: Path, target: str, is_dir: bool
) -> None:
    signature = _signed_by_us(cli, keys, model, tmp_path)
    (model / "link").symlink_to(target, target_is_directory=is_dir)
    assert_one_line_error(_verify(cli, model, signature, keys), 1, "symlink", "'link'")


def test_one_flipped_bit_is_refused(cli: Any, keys: Keys, model: Path, tmp_path: Path) -> None:
    signature = _signed_by_us(cli, keys, model, tmp_path)
    flip_one_bit(model / "weights.bin")
    assert_one_line_error(_verify(cli, model, signature, keys), 1, "changed", "weights.bin")


def test_extra_file_is_refused(cli: Any, keys: Keys, model: Path, tmp_path: Path) -> None:
    signature = _signed_by_us(cli, keys, model, tmp_path)
    (model / "extra" / "smuggled.py").write_bytes(b"import os\n")
    assert_one_line_error(
        _verify(cli, model, signature, keys), 1, "not signed", "extra/smuggled.py"
    )


def test_missing_file_is_refused(cli: Any, keys: Keys, model: Path, tmp_path: Path) -> None:
    signature = _signed_by_us(cli, keys, model, tmp_path)
    (model / "extra" / "x").unlink()
    assert_one_line_error(_verify(cli, model, signature, keys), 1, "missing", "extra/x")


def test_renamed_file_is_refused_naming_both_paths(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    signature = _signed_by_us(cli, keys, model, tmp_path)
    (model / "config.json").rename(model / "settings.json")
    assert_one_line_error(_verify(cli, model, signature, keys), 1, "config.json", "settings.json")


def _ignoring_extra(model: Path) -> dict[str, Any]:
    resources = [r for r in file_resources(model) if not r["name"].startswith("extra/")]
    return make_statement(
        model, resources, serialization_fields={"ignore_paths": [*DEFAULT_IGNORES, "extra"]}
    )


def test_ignore_paths_beyond_the_defaults_are_refused(
    cli: Any, keys: Keys, model: Path, tmp_path: Path
) -> None:
    signature = tmp_path / "ignoring.sig"
    signature.write_bytes(signed_bundle(keys.trusted, _ignoring_extra(model)))
    assert_one_line_error(_verify(cli, model, signature, keys), 1, "'extra'", "--allow-ignore")


@pytest.mark.parametrize("pattern", ["extra", "ext*"])
def test_allow_ignore_accepts_the_excluded_path(
    cli: Any, keys: Keys, model: Path, tmp_path: Path, pattern: str
) -> None:
    signature = tmp_path / "ignoring.sig"
    signature.write_bytes(signed_bundle(keys.trusted, _ignoring_extra(model)))
    (model / "extra" / "x").write_bytes(b"changed, but ignored by the signer\n")
    ok = _verify(cli, model, signature, keys, "--allow-ignore", pattern, "--json")
    assert ok.code == 0, ok.stderr
    assert "extra" in ok.json()["serialization"]["ignore_paths"]
    # The rest must still match.
    flip_one_bit(model / "weights.bin")
    bad = _verify(cli, model, signature, keys, "--allow-ignore", pattern)
    assert_one_line_error(bad, 1, "weights.bin")


def test_console_script_prints_no_traceback_for_a_bad_bundle(
    keys: Keys, model: Path, tmp_path: Path
) -> None:
    """The installed program, not only `main` in-process: one line, exit 2."""
    signature = tmp_path / "bad.sig"
    signature.write_bytes(_truncated(keys, model))
    env = dict(os.environ, MODELCTL_HOME=str(tmp_path / "home"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "verify",
            str(model),
            "--signature",
            str(signature),
            "--public-key",
            str(keys.trusted_pub),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("modelctl: error:")
    assert "not JSON" in lines[0]


# --- D. unit level ---------------------------------------------------------------------------


def test_verify_model_signature_returns_signer_subject_and_checks(keys: Keys, model: Path) -> None:
    statement = make_statement(model)
    bundle = Bundle.from_bytes(signed_bundle(keys.trusted, statement))
    verified = verify_model_signature(bundle, PublicKeyVerifier([keys.trusted.public_key()]))
    assert verified.signer.method == "key"
    assert verified.signer.key_hint == key_hint(keys.trusted.public_key())
    assert verified.subject_digest.hex == subject_of(file_resources(model))
    assert str(verified.subject_digest) == "sha256:" + subject_of(file_resources(model))
    assert [r.name for r in verified.predicate.resources] == rel_files(model)
    assert verified.statement.payload == bundle.envelope.payload
    assert len(verified.checks) >= 3
    assert any("ECDSA" in c for c in verified.checks)
    assert any("subject digest" in c for c in verified.checks)


def test_bundle_without_a_hint_verifies_only_with_a_trusted_key(keys: Keys, model: Path) -> None:
    bundle = json.loads(signed_bundle(keys.trusted, make_statement(model)))
    bundle["verificationMaterial"]["publicKey"] = {}
    parsed = Bundle.from_bytes(json.dumps(bundle).encode())
    both = PublicKeyVerifier([keys.other.public_key(), keys.trusted.public_key()])
    verified = verify_model_signature(parsed, both)
    assert verified.signer.key_hint == key_hint(keys.trusted.public_key())
    with pytest.raises(SignatureVerificationError):
        verify_model_signature(parsed, PublicKeyVerifier([keys.other.public_key()]))


def test_public_key_verifier_needs_a_key() -> None:
    with pytest.raises(InvalidInputError):
        PublicKeyVerifier([])


def test_bundle_round_trip_keeps_the_payload_bytes_verbatim(keys: Keys, model: Path) -> None:
    statement = make_statement(model)
    statement["predicate"]["futureField"] = {"kept": [1, 2.50, "é"]}
    body = json.dumps(statement, indent="\t", ensure_ascii=False, separators=(" ,  ", " :\t"))
    payload = ("\n  \r\n" + body + "  \n\n").encode()
    assert json.loads(payload) == statement  # still JSON, but nobody would write it this way

    first = KeySigner(keys.trusted).sign(INTOTO, payload)
    parsed = Bundle.from_bytes(first.to_bytes())
    assert parsed.envelope.payload == payload
    assert parsed.envelope.payload_type == INTOTO
    assert parsed.material.key_hint == key_hint(keys.trusted.public_key())
    again = Bundle.from_bytes(parsed.to_bytes())
    assert again.envelope.payload == payload
    assert again.envelope.signatures == first.envelope.signatures

    verified = verify_model_signature(again, PublicKeyVerifier([keys.trusted.public_key()]))
    assert verified.statement.payload == payload
    assert verified.statement.predicate["futureField"] == {"kept": [1, 2.5, "é"]}
    assert verified.subject_digest.hex == subject_of(file_resources(model))


def test_pae_matches_the_dsse_spec_example() -> None:
    assert (
        dsse.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "
    assert dsse.pae("t\u00e9", b"\x00") == b"DSSEv1 3 t\xc3\xa9 1 \x00"
