"""What earlier versions signed keeps verifying with today's code (`tests/assets/compat/`).

Each `v<VERSION>/` holds one version's signed outputs for the same fixed model folder, signed
with the committed compat TEST key (`tests/assets/README.md`, "Compatibility fixtures"). Their
bytes are pinned here: regenerating a set, or editing one, fails `test_fixtures_are_frozen`
until someone changes this table on purpose.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from attestations.bundle import Bundle
from attestations.digests import Digest
from attestations.errors import SignatureVerificationError
from attestations.folder import verify_folder
from attestations.intoto import Statement
from attestations.keys import PublicKeyVerifier, key_hint, load_public_key
from attestations.model_signature import resources_digest
from attestations.serialization import Serialization, hash_folder

COMPAT = Path(__file__).resolve().parent / "assets" / "compat"
PUBLIC_KEY = COMPAT / "keys" / "compat-test.pub"
MODEL_NAME = "compat/tiny"

# sha256 of every file of every version's set. Add a version; never edit one.
FROZEN: dict[str, dict[str, str]] = {
    "v0.1.0": {
        "decision-dev.sigstore.json": (
            "c69a3105e412cd3e689439fd52f3145d2d85b2ec6b9f5f71075c8ec21b858bf5"
        ),
        "decision-prod.sigstore.json": (
            "f41eb84f949fc4c623a251f44b67b719e249a908c83687ef5942cde9a0d3050a"
        ),
        "model/README.md": "1df0303d90a4d2859f8a522c85e67e3add80559142895085bc35e22faf793dce",
        "model/config.json": "5ee65e005ebdce337828034f0d3395a37c6e7e656cda675b24b1c266bee204ab",
        "model/tokenizer/vocab.txt": (
            "77f00afbdbac070a490e395bc9d3b84b33a8e0e0f7dba497a05798ac2c02acc5"
        ),
        "model-signature.sigstore.json": (
            "3ff5d5fbe943722470ae949a103e785a4c544b024079f469b580e1aa554e8544"
        ),
        "provenance.sigstore.json": (
            "1c4b5c479430eedc4398df3355b9dd86307a71b9732af53b14c78db669fa6877"
        ),
        "scan-gguf.sigstore.json": (
            "00c21398afc77d69fec5b4e4a6bff8a09a8665706c69e8f3225d7e71e9ac3968"
        ),
        "scan-keras.sigstore.json": (
            "e04d45e9f4573fce110130f4967d5953f10acc3cfeb7975f2423c804f8252daf"
        ),
        "scan-model-folder.sigstore.json": (
            "be5c83eab12aba4c7d3842675a8f347e91228bfcd76d673c34488971da8624f4"
        ),
        "scan-onnx.sigstore.json": (
            "d3cc8b2e12ddfc16c9db0006376375feada7ae19996eb57afade7fd5039d458e"
        ),
        "scan-pickle.sigstore.json": (
            "b8f72c9911a9606a658fea7bb9be9084a42321df4346dc2a0ad23ac5a04a93a0"
        ),
        "scan-safetensors.sigstore.json": (
            "15ee3b00833e9fb1ad33c20e35274ee3db0504b22fc7301a9b230ddc2bf30825"
        ),
    },
}
# The checkpoint identity of the fixed model folder: the same in every version.
MODEL_DIGEST = Digest("0490e18a5e906c7e3a4afd8e209a921b7ba1ed6708692bbca7cc97a4444afa94")

PREDICATE_BY_STEM = {
    "model-signature": "https://model_signing/signature/v1.0",
    "provenance": "https://slsa.dev/provenance/v1",
    "scan": "https://modelctl.dev/attestations/scan/v1",
    "decision": "https://slsa.dev/verification_summary/v1",
}

BUNDLES = [
    (version, name)
    for version, files in FROZEN.items()
    for name in files
    if name.endswith(".sigstore.json")
]


def _kind(name: str) -> str:
    """`scan-pickle.sigstore.json` -> `scan`: what the file name says the bundle holds."""
    stem = name.removesuffix(".sigstore.json")
    (kind,) = [k for k in PREDICATE_BY_STEM if stem == k or stem.startswith(f"{k}-")]
    return kind


def _verifier() -> PublicKeyVerifier:
    return PublicKeyVerifier([load_public_key(PUBLIC_KEY.read_bytes())])


def _folder_digest(folder: Path) -> Digest:
    return resources_digest(hash_folder(folder, Serialization()))


@pytest.mark.parametrize("version", sorted(FROZEN))
def test_fixtures_are_frozen(version: str) -> None:
    folder = COMPAT / version
    on_disk = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }
    assert on_disk == FROZEN[version]


def test_every_version_folder_is_pinned() -> None:
    assert sorted(p.name for p in COMPAT.glob("v*") if p.is_dir()) == sorted(FROZEN)


@pytest.mark.parametrize("version", sorted(FROZEN))
def test_the_model_folder_is_the_same_checkpoint(version: str) -> None:
    assert _folder_digest(COMPAT / version / "model") == MODEL_DIGEST


@pytest.mark.parametrize(("version", "name"), BUNDLES)
def test_bundle_verifies_and_names_the_checkpoint(version: str, name: str) -> None:
    bundle = Bundle.from_bytes((COMPAT / version / name).read_bytes())
    verified = _verifier().verify(bundle)
    assert verified.signer.method == "key"
    assert verified.signer.key_hint == key_hint(load_public_key(PUBLIC_KEY.read_bytes()))
    statement = Statement.from_payload(verified.payload)
    assert statement.predicate_type == PREDICATE_BY_STEM[_kind(name)]
    (subject,) = statement.subjects
    assert subject.name == MODEL_NAME
    assert subject.digest == {"sha256": MODEL_DIGEST.hex}


@pytest.mark.parametrize("version", sorted(FROZEN))
def test_model_signature_verifies_every_byte_of_the_folder(version: str) -> None:
    signature = COMPAT / version / "model-signature.sigstore.json"
    result = verify_folder(
        COMPAT / version / "model",
        Bundle.from_bytes(signature.read_bytes()),
        _verifier(),
        signature_path=signature,
    )
    assert result.signature.subject_digest == MODEL_DIGEST
    assert result.files == len([n for n in FROZEN[version] if n.startswith("model/")])


@pytest.mark.parametrize("version", sorted(FROZEN))
def test_decisions_say_what_was_decided(version: str) -> None:
    outcomes = {}
    for environment in ("dev", "prod"):
        path = COMPAT / version / f"decision-{environment}.sigstore.json"
        payload = _verifier().verify(Bundle.from_bytes(path.read_bytes())).payload
        predicate = Statement.from_payload(payload).predicate
        assert predicate["modelctl"]["environment"] == environment
        assert predicate["policy"]["digest"]["sha256"]
        outcomes[environment] = predicate["verificationResult"]
    # the fixed folder is unsigned by any trusted publisher: dev warns and passes, prod denies
    assert outcomes == {"dev": "PASSED", "prod": "FAILED"}


@pytest.mark.parametrize("version", sorted(FROZEN))
def test_a_changed_payload_fails(version: str) -> None:
    """The fixtures would catch a verifier that accepts anything."""
    raw = json.loads((COMPAT / version / "provenance.sigstore.json").read_bytes())
    payload = base64.b64decode(raw["dsseEnvelope"]["payload"])
    forged = payload.replace(MODEL_NAME.encode(), b"compat/other")
    assert forged != payload
    raw["dsseEnvelope"]["payload"] = base64.b64encode(forged).decode()
    with pytest.raises(SignatureVerificationError):
        _verifier().verify(Bundle.from_bytes(json.dumps(raw).encode()))
