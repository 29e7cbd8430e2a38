"""Every signature any model_signing release wrote keeps verifying (`tests/assets/model_signing/`).

The fixtures were made at test-build time by `tests/assets/model_signing/generate.py`: each
release from 0.2.0 to 1.1.1, installed from PyPI into its own venv, signed the same model folder
and single file with the committed TEST key and TEST PKI. Nothing here needs the network or
model_signing itself: `modelctl verify` must accept every fixture, say what is unusual about it
(a legacy format, a CA leaf, a path the verifier left out), and refuse a tampered copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from attestations.keys import generate_key

GOLDEN = Path(__file__).resolve().parent / "assets" / "model_signing"
PKI = GOLDEN / "pki"
MODEL = GOLDEN / "model"
SINGLE = GOLDEN / "single" / "model.bin"
SAN = "golden-signer@modelctl.test"
CA_LEAF_SUBJECT = "CN=golden-ca-leaf"

RELEASES = ("0.2.0", "0.3.0", "0.3.1", "1.0.0", "1.0.1", "1.1.0", "1.1.1")
ALL_KINDS = ("key", "key-file", "key-ignore", "key-shards", "cert", "cert-ca-leaf")
#: What each release could write (0.2.0 had no ignore or shard options in its signer; 0.3.x's
#: certificate signer crashes on a typo, recorded in its could-not-sign.json).
WRITTEN: dict[str, tuple[str, ...]] = {
    "0.2.0": ("key", "key-file", "cert", "cert-ca-leaf"),
    "0.3.0": ("key", "key-file", "key-ignore", "key-shards"),
    "0.3.1": ("key", "key-file", "key-ignore", "key-shards"),
    **dict.fromkeys(("1.0.0", "1.0.1", "1.1.0", "1.1.1"), ALL_KINDS),
}
#: The releases that record `ignore_paths` in the statement (1.1.0 on); before, the verifier
#: has to be told (`--ignore-paths`), as with model_signing's own CLI.
RECORDS_IGNORE_PATHS = ("1.1.0", "1.1.1")
#: This modelctl version's own signatures, which every later version must verify.
OWN = {"modelctl-0.1.0": ("key", "key-file", "cert")}

CASES = [(v, k) for v in RELEASES for k in WRITTEN[v]] + [(v, k) for v in OWN for k in OWN[v]]


def trust_args(kind: str) -> list[str]:
    if kind.startswith("key"):
        return ["--public-key", str(PKI / "signing.pub")]
    if kind == "cert":
        return ["--certificate-chain", str(PKI / "root-ca.pem"), "--san", SAN]
    return ["--certificate-chain", str(PKI / "root-ca.pem"), "--subject", CA_LEAF_SUBJECT]


def ignore_args(version: str, kind: str) -> list[str]:
    if kind != "key-ignore":
        return []
    if version in RECORDS_IGNORE_PATHS:
        return ["--allow-ignore", "ignore-me"]  # the signer's list, accepted on purpose
    return ["--ignore-paths", "ignore-me"]  # the verifier's own exclusion


def model_for(kind: str) -> Path:
    return SINGLE if kind == "key-file" else MODEL


def verify(run_cli: Any, model: Path, signature: Path, *args: str) -> Any:
    return run_cli("verify", str(model), "--signature", str(signature), *args)


def one_line_error(result: Any, code: int, *needles: str) -> None:
    assert result.code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_each_release_wrote_what_the_table_says() -> None:
    """The fixture set is complete: a missing or extra file fails here, not silently."""
    for version in RELEASES:
        folder = GOLDEN / version
        written = sorted(p.stem for p in folder.glob("*.sig"))
        assert written == sorted(WRITTEN[version]), version
        failed_path = folder / "could-not-sign.json"
        failed = json.loads(failed_path.read_text()) if failed_path.exists() else {}
        missing = sorted(k for k in ALL_KINDS if k not in WRITTEN[version] and version != "0.2.0")
        assert sorted(Path(name).stem for name in failed) == missing, version
    for own, kinds in OWN.items():
        assert sorted(p.stem for p in (GOLDEN / own).glob("*.sig")) == sorted(kinds)


@pytest.mark.parametrize(("version", "kind"), CASES, ids=[f"{v}-{k}" for v, k in CASES])
def test_every_fixture_verifies(run_cli: Any, version: str, kind: str) -> None:
    signature = GOLDEN / version / f"{kind}.sig"
    args = [*trust_args(kind), *ignore_args(version, kind), "--json"]
    result = verify(run_cli, model_for(kind), signature, *args)
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["verified"] is True
    signed_files = 1 if kind == "key-file" else 3 if kind == "key-ignore" else 4
    assert out["files"] == signed_files
    legacy = version == "0.2.0"
    assert out["predicate_type"] == (
        "https://model_signing/Digests/v0.1" if legacy else "https://model_signing/signature/v1.0"
    )
    assert out["signer"]["leaf_is_ca"] is (kind == "cert-ca-leaf")
    assert out["signer"]["method"] == ("key" if kind.startswith("key") else "certificate")
    expected_ignored = (
        ["ignore-me"] if kind == "key-ignore" and version not in RECORDS_IGNORE_PATHS else []
    )
    assert out["verifier_ignore_paths"] == expected_ignored
    assert out["serialization"]["method"] == ("shards" if kind == "key-shards" else "files")


def test_human_output_says_what_is_unusual(run_cli: Any) -> None:
    ca_leaf = verify(
        run_cli, MODEL, GOLDEN / "1.1.1" / "cert-ca-leaf.sig", *trust_args("cert-ca-leaf")
    )
    assert ca_leaf.code == 0, ca_leaf.stderr
    assert "CA certificate" in ca_leaf.stdout
    ignored = verify(
        run_cli,
        MODEL,
        GOLDEN / "1.0.1" / "key-ignore.sig",
        *trust_args("key"),
        "--ignore-paths",
        "ignore-me",
    )
    assert ignored.code == 0, ignored.stderr
    assert "ignored  ignore-me (--ignore-paths" in ignored.stdout
    legacy = verify(run_cli, MODEL, GOLDEN / "0.2.0" / "key.sig", *trust_args("key"))
    assert legacy.code == 0, legacy.stderr
    assert "legacy https://model_signing/Digests/v0.1" in legacy.stdout


def _tampered_copy(kind: str, tmp_path: Path) -> tuple[Path, str]:
    if kind == "key-file":
        copy = tmp_path / "model.bin"
        data = bytearray(SINGLE.read_bytes())
        data[3] ^= 0x01
        copy.write_bytes(bytes(data))
        return copy, "model.bin"
    copy = tmp_path / "model"
    shutil.copytree(MODEL, copy)
    target = copy / "signme-2"
    data = bytearray(target.read_bytes())
    data[200] ^= 0x01  # one bit, in the fourth 64-byte shard
    target.write_bytes(bytes(data))
    return copy, "signme-2"


@pytest.mark.parametrize(("version", "kind"), CASES, ids=[f"{v}-{k}" for v, k in CASES])
def test_a_tampered_copy_fails(run_cli: Any, tmp_path: Path, version: str, kind: str) -> None:
    copy, changed = _tampered_copy(kind, tmp_path)
    signature = GOLDEN / version / f"{kind}.sig"
    result = verify(run_cli, copy, signature, *trust_args(kind), *ignore_args(version, kind))
    one_line_error(result, 1, changed)


@pytest.mark.parametrize("version", RELEASES)
def test_another_key_is_refused(run_cli: Any, tmp_path: Path, version: str) -> None:
    other = tmp_path / "other.pub"
    other.write_bytes(generate_key("P-256", passphrase=None).public_pem)
    result = verify(run_cli, MODEL, GOLDEN / version / "key.sig", "--public-key", str(other))
    one_line_error(result, 1, "another key")


@pytest.mark.parametrize(
    "version", [v for v in RELEASES if "key-ignore" in WRITTEN[v] and v not in RECORDS_IGNORE_PATHS]
)
def test_an_unsigned_local_file_fails_unless_the_verifier_leaves_it_out(
    run_cli: Any, version: str
) -> None:
    """Before 1.1.0 the statement records no ignore list: `ignore-me` is just unsigned."""
    result = verify(run_cli, MODEL, GOLDEN / version / "key-ignore.sig", *trust_args("key"))
    one_line_error(result, 1, "not signed: ignore-me")


@pytest.mark.parametrize("version", RECORDS_IGNORE_PATHS)
def test_a_recorded_ignore_list_needs_consent(run_cli: Any, version: str) -> None:
    result = verify(run_cli, MODEL, GOLDEN / version / "key-ignore.sig", *trust_args("key"))
    one_line_error(result, 1, "'ignore-me'", "--allow-ignore")


def test_verifier_ignore_paths_cannot_hide_a_signed_file(run_cli: Any) -> None:
    """Leaving out a file that was signed makes it missing: the flag excuses only extras."""
    result = verify(
        run_cli,
        MODEL,
        GOLDEN / "1.0.1" / "key.sig",
        *trust_args("key"),
        "--ignore-paths",
        "signme-1",
    )
    one_line_error(result, 1, "missing: signme-1")


@pytest.mark.parametrize("bad", ["*.bin", "../model", "/etc", "sub/../x"])
def test_verifier_ignore_paths_are_exact_relative_paths(run_cli: Any, bad: str) -> None:
    result = verify(
        run_cli, MODEL, GOLDEN / "1.0.1" / "key.sig", *trust_args("key"), "--ignore-paths", bad
    )
    one_line_error(result, 2, "ignore path")


@pytest.mark.parametrize("version", ["1.0.0", "1.1.1"])
def test_ca_leaf_without_a_san_cannot_match_a_san_pattern(run_cli: Any, version: str) -> None:
    signature = GOLDEN / version / "cert-ca-leaf.sig"
    chain = ["--certificate-chain", str(PKI / "root-ca.pem")]
    result = verify(run_cli, MODEL, signature, *chain, "--san", ".*")
    one_line_error(result, 1, "no SAN", "it has none")
    wrong = verify(run_cli, MODEL, signature, *chain, "--subject", "CN=golden-signer")
    one_line_error(wrong, 1, "subject", "CN=golden-ca-leaf")


def test_certificate_under_another_root_is_refused(run_cli: Any) -> None:
    # A CA of the same test PKI that did not issue this chain is no anchor for it.
    result = verify(
        run_cli,
        MODEL,
        GOLDEN / "1.1.1" / "cert.sig",
        "--certificate-chain",
        str(PKI / "ca-leaf.pem"),
        "--san",
        SAN,
    )
    one_line_error(result, 1, "trusted root")


def test_single_file_signature_does_not_verify_a_folder(run_cli: Any) -> None:
    """model_signing names a single file's resource `.`: against a folder it is missing."""
    result = verify(run_cli, MODEL, GOLDEN / "1.1.1" / "key-file.sig", *trust_args("key"))
    one_line_error(result, 1, "missing: .")


def test_fixture_bytes_are_frozen() -> None:
    """Regenerating or editing a committed set shows up here (made once, then only read)."""
    digest = hashlib.sha256()
    for path in sorted(GOLDEN.rglob("*")):
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts:
            digest.update(path.relative_to(GOLDEN).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    assert digest.hexdigest() == FROZEN_DIGEST


FROZEN_DIGEST = "94dd7c4baf846764c5fced7883a6682075e8472fb52220ac873e2801819ae6bb"


MODEL_SIGNING = Path(sys.executable).parent / "model_signing"


@pytest.mark.parametrize("kind", ["key", "cert"])
def test_model_signing_verifies_this_versions_folder_signatures(kind: str) -> None:
    """The other direction, with the test-only oracle (model_signing 1.1.1 in the dev venv)."""
    assert MODEL_SIGNING.is_file(), f"model_signing CLI not found at {MODEL_SIGNING}"
    signature = GOLDEN / "modelctl-0.1.0" / f"{kind}.sig"
    method, option, trusted = (
        ("key", "--public_key", PKI / "signing.pub")
        if kind == "key"
        else ("certificate", "--certificate_chain", PKI / "root-ca.pem")
    )
    command = [str(MODEL_SIGNING), "verify", method, "--signature", str(signature)]
    result = subprocess.run(
        [*command, option, str(trusted), str(MODEL)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
