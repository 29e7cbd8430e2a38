"""Sigstore keyless signing and offline verification, against a private deployment built here.

`tests.fakes.sigstore_deployment` makes a real (if tiny) Sigstore instance: CA chain, CT log,
Rekor-style Merkle log, trusted root. sigstore-python's verifier runs unpatched against it, so
every check it makes (chain at integrated time, SCT, identity, inclusion proof, checkpoint, SET,
DSSE signature, log-entry consistency) is exercised for real, and each has a test that breaks it.
"""

from __future__ import annotations

import ast
import base64
import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from attestations.bundle import Bundle
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.errors import (
    InvalidInputError,
    MalformedDocumentError,
    SignatureVerificationError,
    SigningError,
)
from attestations.keys import KeySigner
from attestations.sigstore_keyless import SigstoreIdentityVerifier, SigstoreSigner
from tests.fakes.sigstore_deployment import FakeSigstore, FakeSigstoreServer, fake_identity_token

IDENTITY = "alice@example.com"
ISSUER = "https://issuer.example.com"

# model_signing's layout: protobuf MessageToJson, 2-space indent, no trailing newline.
STATEMENT = json.dumps(
    {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "tiny-model", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "resources": [{"name": "config.json", "algorithm": "sha256", "digest": "cd" * 32}],
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
        },
    },
    indent=2,
).encode()


@pytest.fixture
def deployment() -> FakeSigstore:
    return FakeSigstore.create("sigstore.test")


@pytest.fixture
def trusted_root(deployment: FakeSigstore, tmp_path: Path) -> Path:
    return deployment.write_trusted_root(tmp_path / "trusted_root.json")


@pytest.fixture
def verifier(trusted_root: Path) -> SigstoreIdentityVerifier:
    return SigstoreIdentityVerifier(identity=IDENTITY, issuer=ISSUER, trusted_root=trusted_root)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests must talk to 127.0.0.1 directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def keyless_bundle(deployment: FakeSigstore, payload: bytes = STATEMENT, **kw: Any) -> Bundle:
    return Bundle.from_json(deployment.sign_bundle(payload, **kw))


def edited(bundle: Bundle, edit: Callable[[dict[str, Any]], None]) -> Bundle:
    raw = copy.deepcopy(bundle.raw)
    edit(raw)
    return Bundle.from_json(raw)


def tlog(raw: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = raw["verificationMaterial"]["tlogEntries"][0]
    return entry


# --- verification: the happy path ------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "issuer"),
    [
        (IDENTITY, ISSUER),
        (
            "https://github.com/acme/models/.github/workflows/sign.yml@refs/heads/main",
            "https://token.actions.githubusercontent.com",
        ),
    ],
)
def test_bundle_from_private_deployment_verifies_offline(
    deployment: FakeSigstore, trusted_root: Path, identity: str, issuer: str
) -> None:
    bundle = keyless_bundle(deployment, identity=identity, issuer=issuer)
    assert bundle.material.kind == "certificate"
    assert len(tlog(bundle.raw)["inclusionProof"]["hashes"]) >= 2  # a real audit path

    verifier = SigstoreIdentityVerifier(identity=identity, issuer=issuer, trusted_root=trusted_root)
    verified = verifier.verify(Bundle.from_bytes(bundle.to_bytes()))

    assert verified.payload == STATEMENT  # the exact bytes, not a re-serialised copy
    assert verified.payload_type == INTOTO_PAYLOAD_TYPE
    assert verified.signer.method == "sigstore"
    assert verified.signer.subject == identity
    assert verified.signer.issuer == issuer
    assert verified.signer.key_hint is None
    assert len(verified.checks) == 5
    assert identity in verified.signer.describe()


def test_several_entries_in_one_log_all_verify(
    deployment: FakeSigstore, verifier: SigstoreIdentityVerifier
) -> None:
    bundles = [keyless_bundle(deployment) for _ in range(4)]  # the tree grows between them
    for bundle in bundles:
        assert verifier.verify(bundle).payload == STATEMENT


# --- verification: who signed ------------------------------------------------------------------


def test_wrong_identity_is_refused(deployment: FakeSigstore, trusted_root: Path) -> None:
    verifier = SigstoreIdentityVerifier(
        identity="mallory@example.com", issuer=ISSUER, trusted_root=trusted_root
    )
    with pytest.raises(SignatureVerificationError, match="SANs do not match"):
        verifier.verify(keyless_bundle(deployment))


def test_identity_is_compared_exactly(deployment: FakeSigstore, trusted_root: Path) -> None:
    verifier = SigstoreIdentityVerifier(
        identity="ALICE@example.com", issuer=ISSUER, trusted_root=trusted_root
    )
    with pytest.raises(SignatureVerificationError):
        verifier.verify(keyless_bundle(deployment))


def test_wrong_issuer_is_refused(deployment: FakeSigstore, trusted_root: Path) -> None:
    verifier = SigstoreIdentityVerifier(
        identity=IDENTITY, issuer="https://accounts.google.com", trusted_root=trusted_root
    )
    with pytest.raises(SignatureVerificationError, match="OIDCIssuer does not match"):
        verifier.verify(keyless_bundle(deployment))


def test_issuer_is_read_from_the_legacy_extension(
    deployment: FakeSigstore, verifier: SigstoreIdentityVerifier
) -> None:
    """sigstore-python 4.5.1's `policy.Identity` reads 1.3.6.1.4.1.57264.1.1 only: a certificate
    with just the V2 issuer extension (1.3.6.1.4.1.57264.1.8) does not verify."""
    bundle = keyless_bundle(deployment, legacy_issuer_extension=False)
    with pytest.raises(SignatureVerificationError, match=r"1\.3\.6\.1\.4\.1\.57264\.1\.1"):
        verifier.verify(bundle)


def test_trusted_root_of_another_deployment_is_refused(
    deployment: FakeSigstore, tmp_path: Path
) -> None:
    other = FakeSigstore.create("other.test").write_trusted_root(tmp_path / "other.json")
    verifier = SigstoreIdentityVerifier(identity=IDENTITY, issuer=ISSUER, trusted_root=other)
    with pytest.raises(SignatureVerificationError, match="certificate chain"):
        verifier.verify(keyless_bundle(deployment))


def test_public_key_bundle_is_not_a_keyless_signature(
    verifier: SigstoreIdentityVerifier,
) -> None:
    signer = KeySigner(ec.generate_private_key(ec.SECP256R1()))
    bundle = signer.sign(INTOTO_PAYLOAD_TYPE, STATEMENT)
    with pytest.raises(SignatureVerificationError, match="not a keyless signature"):
        verifier.verify(bundle)


# --- verification: what was signed, and the log ------------------------------------------------


def test_tampered_payload_is_refused(
    deployment: FakeSigstore, verifier: SigstoreIdentityVerifier
) -> None:
    tampered = STATEMENT.replace(b"ab" * 32, b"ef" * 32)

    def swap_payload(raw: dict[str, Any]) -> None:
        raw["dsseEnvelope"]["payload"] = base64.b64encode(tampered).decode()

    with pytest.raises(SignatureVerificationError, match="DSSE: invalid signature"):
        verifier.verify(edited(keyless_bundle(deployment), swap_payload))


def test_bundle_without_tlog_entry_is_refused(
    deployment: FakeSigstore, verifier: SigstoreIdentityVerifier
) -> None:
    def drop_tlog(raw: dict[str, Any]) -> None:
        raw["verificationMaterial"]["tlogEntries"] = []

    bundle = edited(keyless_bundle(deployment), drop_tlog)
    with pytest.raises(SignatureVerificationError, match="no transparency-log entry"):
        verifier.verify(bundle)


def test_sigstore_itself_refuses_a_bundle_without_tlog_entry(deployment: FakeSigstore) -> None:
    """Our explicit check is belt and braces: sigstore-python requires exactly one entry."""
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import InvalidBundle

    raw = deployment.sign_bundle(STATEMENT)
    raw["verificationMaterial"]["tlogEntries"] = []
    with pytest.raises(InvalidBundle, match="exactly one log entry"):
        SigstoreBundle.from_json(json.dumps(raw))


def test_inclusion_proof_without_checkpoint_is_refused(
    deployment: FakeSigstore, verifier: SigstoreIdentityVerifier
) -> None:
    def drop_checkpoint(raw: dict[str, Any]) -> None:
        del tlog(raw)["inclusionProof"]["checkpoint"]

    with pytest.raises(MalformedDocumentError, match="checkpoint"):
        verifier.verify(edited(keyless_bundle(deployment), drop_checkpoint))


def test_bundle_without_inclusion_promise_or_timestamp_is_refused(
    deployment: FakeSigstore, verifier: SigstoreIdentityVerifier
) -> None:
    def drop_promise(raw: dict[str, Any]) -> None:
        del tlog(raw)["inclusionPromise"]

    with pytest.raises(MalformedDocumentError, match="inclusion promise"):
        verifier.verify(edited(keyless_bundle(deployment), drop_promise))


def _foreign_signature(data: bytes) -> bytes:
    """A signature over `data` by a key the trusted root does not know."""
    return ec.generate_private_key(ec.SECP256R1()).sign(data, ec.ECDSA(hashes.SHA256()))


def _forge_promise(raw: dict[str, Any]) -> None:
    tlog(raw)["inclusionPromise"]["signedEntryTimestamp"] = base64.b64encode(
        _foreign_signature(b"forged")
    ).decode()


def _forge_checkpoint(raw: dict[str, Any]) -> None:
    proof = tlog(raw)["inclusionProof"]
    note, _, signature_line = proof["checkpoint"]["envelope"].partition("\n\n")
    name, hint_and_sig = signature_line.rstrip("\n").split(" ")[1:]
    hint = base64.b64decode(hint_and_sig)[:4]  # keep the right key hint: only the sig is bad
    forged = base64.b64encode(hint + _foreign_signature(note.encode() + b"\n"))
    proof["checkpoint"]["envelope"] = f"{note}\n\n\u2014 {name} {forged.decode()}\n"


def _flip_audit_path(raw: dict[str, Any]) -> None:
    hashes_ = tlog(raw)["inclusionProof"]["hashes"]
    first = bytearray(base64.b64decode(hashes_[0]))
    first[0] ^= 1
    hashes_[0] = base64.b64encode(bytes(first)).decode()


def _move_integrated_time(raw: dict[str, Any]) -> None:
    tlog(raw)["integratedTime"] = str(int(tlog(raw)["integratedTime"]) + 60)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (_forge_promise, "inclusion promise"),
        (_forge_checkpoint, "checkpoint: invalid signature"),
        (_flip_audit_path, "inclusion proof contains invalid root hash"),
        (_move_integrated_time, "inclusion promise"),
    ],
    ids=["forged-SET", "forged-checkpoint", "bad-audit-path", "moved-integrated-time"],
)
def test_each_log_check_bites(
    deployment: FakeSigstore,
    verifier: SigstoreIdentityVerifier,
    edit: Callable[[dict[str, Any]], None],
    reason: str,
) -> None:
    bundle = keyless_bundle(deployment)
    verifier.verify(bundle)  # untouched, it passes
    with pytest.raises(SignatureVerificationError, match=reason):
        verifier.verify(edited(bundle, edit))


def test_log_entry_for_another_envelope_is_refused(
    deployment: FakeSigstore, verifier: SigstoreIdentityVerifier
) -> None:
    """A genuine, properly logged entry, but for a different signature: step (8) catches it."""
    bundle = keyless_bundle(deployment)
    other = deployment.sign_bundle(STATEMENT.replace(b"tiny-model", b"other-model"))

    def graft(raw: dict[str, Any]) -> None:
        raw["verificationMaterial"]["tlogEntries"] = other["verificationMaterial"]["tlogEntries"]

    with pytest.raises(SignatureVerificationError, match="log entry payload hash does not match"):
        verifier.verify(edited(bundle, graft))


def test_integrated_time_outside_certificate_validity_is_refused(
    deployment: FakeSigstore, verifier: SigstoreIdentityVerifier
) -> None:
    """Logged (and promised) an hour after the 10-minute certificate expired."""
    late = int(time.time()) + 3600
    with pytest.raises(SignatureVerificationError, match="certificate chain"):
        verifier.verify(keyless_bundle(deployment, integrated_time=late))


def test_sct_from_an_unknown_ct_log_is_refused(deployment: FakeSigstore, tmp_path: Path) -> None:
    root = deployment.trusted_root()
    root["ctlogs"] = FakeSigstore.create("other.test").trusted_root()["ctlogs"]
    path = tmp_path / "root.json"
    path.write_text(json.dumps(root))
    verifier = SigstoreIdentityVerifier(identity=IDENTITY, issuer=ISSUER, trusted_root=path)
    with pytest.raises(SignatureVerificationError, match="SCT"):
        verifier.verify(keyless_bundle(deployment))


def test_rekor_key_of_another_log_is_refused(deployment: FakeSigstore, tmp_path: Path) -> None:
    root = deployment.trusted_root()
    root["tlogs"] = FakeSigstore.create("other.test").trusted_root()["tlogs"]
    path = tmp_path / "root.json"
    path.write_text(json.dumps(root))
    verifier = SigstoreIdentityVerifier(identity=IDENTITY, issuer=ISSUER, trusted_root=path)
    with pytest.raises(SignatureVerificationError, match="invalid log entry"):
        verifier.verify(keyless_bundle(deployment))


def test_garbage_certificate_is_malformed(
    deployment: FakeSigstore, verifier: SigstoreIdentityVerifier
) -> None:
    def garble(raw: dict[str, Any]) -> None:
        raw["verificationMaterial"]["certificate"]["rawBytes"] = base64.b64encode(
            b"not a certificate"
        ).decode()

    with pytest.raises(MalformedDocumentError, match="not a valid Sigstore bundle"):
        verifier.verify(edited(keyless_bundle(deployment), garble))


# --- verifier construction ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "issuer"), [("", ISSUER), (IDENTITY, ""), (" ", ISSUER), (IDENTITY + " ", ISSUER)]
)
def test_identity_and_issuer_are_required(trusted_root: Path, identity: str, issuer: str) -> None:
    with pytest.raises(InvalidInputError):
        SigstoreIdentityVerifier(identity=identity, issuer=issuer, trusted_root=trusted_root)


def test_missing_trusted_root_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read the trusted root"):
        SigstoreIdentityVerifier(
            identity=IDENTITY, issuer=ISSUER, trusted_root=tmp_path / "nope.json"
        )


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}),
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [],
                "certificateAuthorities": [],
                "ctlogs": [],
            }
        ),
    ],
    ids=["not-json", "missing-fields", "no-logs"],
)
def test_invalid_trusted_root_is_malformed(tmp_path: Path, content: str) -> None:
    path = tmp_path / "root.json"
    path.write_text(content)
    with pytest.raises(MalformedDocumentError):
        SigstoreIdentityVerifier(identity=IDENTITY, issuer=ISSUER, trusted_root=path)


def test_production_verifier_uses_cached_root_offline(
    deployment: FakeSigstore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Public-good trust root from sigstore-python's embedded copy: no network, and it does not
    trust our private deployment."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    verifier = SigstoreIdentityVerifier.production(IDENTITY, ISSUER)
    with pytest.raises(SignatureVerificationError):
        verifier.verify(keyless_bundle(deployment))
    with pytest.raises(InvalidInputError):
        SigstoreIdentityVerifier.production(IDENTITY, "")


def test_importing_the_module_does_not_import_sigstore() -> None:
    code = (
        "import sys, attestations.sigstore_keyless; "
        "assert 'sigstore' not in sys.modules, sorted(m for m in sys.modules if 'sigstore' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# --- signing -----------------------------------------------------------------------------------


@pytest.fixture
def trust_config(deployment: FakeSigstore, tmp_path: Path) -> Path:
    """A private deployment whose Fulcio and Rekor are at http://127.0.0.1:1 (nothing listens)."""
    return deployment.write_client_trust_config(tmp_path / "trust_config.json")


def test_signing_with_unreachable_services_fails_fast(trust_config: Path) -> None:
    signer = SigstoreSigner(fake_identity_token(), trust_config=trust_config)
    assert signer.method == "sigstore"
    started = time.monotonic()
    with pytest.raises(SigningError, match="cannot reach Fulcio/Rekor") as info:
        signer.sign(INTOTO_PAYLOAD_TYPE, STATEMENT)
    assert time.monotonic() - started < 5
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        fake_identity_token(lifetime=-60),  # expired
    ],
    ids=["empty", "garbage", "expired"],
)
def test_bad_identity_token_is_rejected(trust_config: Path, token: str) -> None:
    with pytest.raises(SigningError, match="identity token rejected"):
        SigstoreSigner(token, trust_config=trust_config).sign(INTOTO_PAYLOAD_TYPE, STATEMENT)


def test_token_never_appears_in_errors(trust_config: Path) -> None:
    token = fake_identity_token()
    with pytest.raises(SigningError) as info:
        SigstoreSigner(token, trust_config=trust_config).sign(INTOTO_PAYLOAD_TYPE, STATEMENT)
    assert token not in str(info.value)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"}),
    ],
    ids=["not-json", "incomplete"],
)
def test_bogus_trust_config_is_a_signing_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "trust_config.json"
    path.write_text(content)
    with pytest.raises(SigningError, match="invalid trust config"):
        SigstoreSigner(fake_identity_token(), trust_config=path).sign(
            INTOTO_PAYLOAD_TYPE, STATEMENT
        )


def test_trust_config_without_fulcio_is_a_signing_error(
    deployment: FakeSigstore, tmp_path: Path
) -> None:
    config = deployment.client_trust_config()
    config["signingConfig"]["caUrls"] = []
    path = tmp_path / "trust_config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(SigningError, match="No valid Fulcio CA"):
        SigstoreSigner(fake_identity_token(), trust_config=path).sign(
            INTOTO_PAYLOAD_TYPE, STATEMENT
        )


def test_missing_trust_config_file(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="cannot read the trust config"):
        SigstoreSigner(fake_identity_token(), trust_config=tmp_path / "nope.json").sign(
            INTOTO_PAYLOAD_TYPE, STATEMENT
        )


@pytest.mark.parametrize(
    ("payload_type", "payload"),
    [
        ("application/json", STATEMENT),
        (INTOTO_PAYLOAD_TYPE, b'{"not": "a statement"}'),
    ],
    ids=["not-in-toto", "not-a-statement"],
)
def test_only_in_toto_statements_are_signed(
    trust_config: Path, payload_type: str, payload: bytes
) -> None:
    with pytest.raises(SigningError, match="in-toto"):
        SigstoreSigner(fake_identity_token(), trust_config=trust_config).sign(payload_type, payload)


def test_sign_then_verify_through_a_local_fulcio_and_rekor(
    deployment: FakeSigstore, tmp_path: Path
) -> None:
    """The whole keyless flow against the private deployment served on 127.0.0.1."""
    with FakeSigstoreServer.running(deployment) as server:
        config = deployment.write_client_trust_config(tmp_path / "trust_config.json")
        signer = SigstoreSigner(fake_identity_token(email=IDENTITY), trust_config=config)
        bundle = signer.sign(INTOTO_PAYLOAD_TYPE, STATEMENT)
    assert server.requests == ["/api/v2/signingCert", "/api/v1/log/entries"]
    assert bundle.material.kind == "certificate"
    assert bundle.envelope.payload == STATEMENT  # signed as given

    root = deployment.write_trusted_root(tmp_path / "trusted_root.json")
    verified = SigstoreIdentityVerifier(identity=IDENTITY, issuer=ISSUER, trusted_root=root).verify(
        Bundle.from_bytes(bundle.to_bytes())
    )
    assert verified.payload == STATEMENT
    assert verified.signer.subject == IDENTITY

    with pytest.raises(SignatureVerificationError):
        SigstoreIdentityVerifier(
            identity="bob@example.com", issuer=ISSUER, trusted_root=root
        ).verify(bundle)


def test_fulcio_refusing_the_token_is_a_signing_error(
    deployment: FakeSigstore, tmp_path: Path
) -> None:
    with FakeSigstoreServer.running(deployment) as server:
        server.reject_tokens()
        config = deployment.write_client_trust_config(tmp_path / "trust_config.json")
        with pytest.raises(SigningError, match="identity token rejected by Fulcio: 401"):
            SigstoreSigner(fake_identity_token(), trust_config=config).sign(
                INTOTO_PAYLOAD_TYPE, STATEMENT
            )


# --- service failures, told apart without sigstore's private classes ----------------------------


class _PrivateClientError(Exception):
    """Stands for sigstore's private Fulcio/Rekor client errors (plain Exception subclasses)."""


def _http_error(url: str, status: int) -> Any:
    import requests

    response = requests.Response()
    response.status_code = status
    response.url = url
    response.request = requests.Request("POST", url).prepare()
    try:
        response.raise_for_status()
    except requests.HTTPError as exc:
        return exc
    raise AssertionError("raise_for_status did not raise")


def _raised_from(cause: BaseException, *args: object) -> _PrivateClientError:
    try:
        raise _PrivateClientError(*args) from cause
    except _PrivateClientError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # Fulcio: the client error is raised `from` the HTTP error, with no text of its own
        (
            lambda: _raised_from(_http_error("http://ca.example/api/v2/signingCert", 401)),
            "identity token rejected by Fulcio: 401 Client Error",
        ),
        # Rekor v1 and v2: the HTTP error is the client error's argument
        (
            lambda: _PrivateClientError(_http_error("http://log.example/api/v1/log/entries", 400)),
            "Rekor refused the log entry: 400 Client Error",
        ),
        (
            lambda: _PrivateClientError(_http_error("http://log.example/api/v2/log/entries", 409)),
            "Rekor refused the log entry",
        ),
        # no HTTP request beneath it: a plain signing failure, with its own text
        (
            lambda: _PrivateClientError("Certificate chain is too short: 1 < 2"),
            "Sigstore signing failed: Certificate chain is too short",
        ),
    ],
    ids=["fulcio", "rekor-v1", "rekor-v2", "no-request"],
)
def test_service_failures_are_named_by_the_request_that_failed(
    error: Callable[[], BaseException], expected: str
) -> None:
    from attestations.sigstore_keyless import _service_failure

    failure = _service_failure(error())
    assert isinstance(failure, SigningError)
    assert failure.message.startswith(expected), failure.message
    assert "\n" not in failure.message


def test_no_module_imports_sigstore_internals() -> None:
    """sigstore-python's `_internal` package is not an API; only its public modules are used."""
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for package in ("attestations", "policies", "registry", "cli"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                if any(n == "sigstore._internal" or n.startswith("sigstore._") for n in names):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
