"""Certificate-chain signing and verification, with a real PKI and model_signing as oracle."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from attestations.bundle import Bundle, VerificationMaterial
from attestations.certificates import (
    CertificateChainVerifier,
    CertificateSigner,
    load_certificates,
)
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.errors import (
    InvalidInputError,
    MalformedDocumentError,
    SignatureVerificationError,
    SigningError,
)
from attestations.keys import KeySigner, key_hint
from tests.helpers import write_tree

NOW = datetime.now(UTC)
EMAIL = "release@example.org"
SAN_PATTERN = r"release@example\.org"
PAYLOAD = b'{"_type": "https://in-toto.io/Statement/v1"}'


@dataclass(frozen=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Models"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key_usage(*, digital_signature: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def issue(
    cn: str,
    issuer: Issued | None,
    *,
    curve: ec.EllipticCurve,
    ca: bool,
    san: str | None = None,
    eku: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.CODE_SIGNING,),
    not_before: datetime = NOW - timedelta(days=10),
    not_after: datetime = NOW + timedelta(days=365),
) -> Issued:
    """A certificate (self-signed when `issuer` is None) with the extensions a CA would set."""
    key = ec.generate_private_key(curve)
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=not ca, ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(san)]), critical=False
        )
    if not ca and eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    digest = hashes.SHA384() if isinstance(curve, ec.SECP384R1) else hashes.SHA256()
    return Issued(key, builder.sign(signer_key, digest))


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued
    leaf: Issued

    def leaf_under(
        self,
        cn: str,
        *,
        san: str,
        eku: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.CODE_SIGNING,),
        not_before: datetime = NOW - timedelta(days=10),
        not_after: datetime = NOW + timedelta(days=365),
    ) -> Issued:
        """Another leaf from this PKI's intermediate CA."""
        return issue(
            cn,
            self.intermediate,
            curve=self.leaf.key.curve,
            ca=False,
            san=san,
            eku=eku,
            not_before=not_before,
            not_after=not_after,
        )


def make_pki(curve: ec.EllipticCurve) -> Pki:
    root = issue("Example Root CA", None, curve=curve, ca=True)
    intermediate = issue("Example Signing CA", root, curve=curve, ca=True)
    leaf = issue("release signer", intermediate, curve=curve, ca=False, san=EMAIL)
    return Pki(root, intermediate, leaf)


@pytest.fixture(scope="module", params=["P-256", "P-384"])
def pki(request: pytest.FixtureRequest) -> Pki:
    curve: ec.EllipticCurve = ec.SECP256R1() if request.param == "P-256" else ec.SECP384R1()
    return make_pki(curve)


@pytest.fixture(scope="module")
def p256() -> Pki:
    return make_pki(ec.SECP256R1())


def signer_for(
    pki: Pki, leaf: Issued | None = None, *, with_root: bool = False
) -> CertificateSigner:
    leaf = leaf or pki.leaf
    chain = [leaf.cert, pki.intermediate.cert] + ([pki.root.cert] if with_root else [])
    return CertificateSigner(leaf.key, chain)


def verifier_for(pki: Pki, pattern: str = SAN_PATTERN) -> CertificateChainVerifier:
    return CertificateChainVerifier([pki.root.cert], pattern)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# --- round trip ---------------------------------------------------------------------------


@pytest.mark.parametrize("with_root", [False, True])
def test_sign_then_verify_round_trip(pki: Pki, with_root: bool) -> None:
    bundle = signer_for(pki, with_root=with_root).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    assert bundle.material.kind == "x509_chain"
    assert len(bundle.material.certificates) == (3 if with_root else 2)
    assert bundle.envelope.only_signature.keyid == ""

    reparsed = Bundle.from_bytes(bundle.to_bytes())
    verified = verifier_for(pki).verify(reparsed)

    assert verified.payload == PAYLOAD
    assert verified.payload_type == INTOTO_PAYLOAD_TYPE
    signer = verified.signer
    assert signer.method == "certificate"
    assert signer.subject == EMAIL
    assert signer.issuer == pki.intermediate.cert.subject.rfc4514_string()
    assert signer.key_hint == key_hint(pki.leaf.key.public_key())
    assert len(verified.checks) == 4
    assert "certificate chain" in verified.checks[0]
    assert "CN=Example Root CA" in verified.checks[1]
    assert f"email:{EMAIL}" in verified.checks[2]
    assert signer.key_hint in verified.checks[3]


def test_bundle_json_layout_matches_model_signing(p256: Pki) -> None:
    raw = json.loads(signer_for(p256).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD).to_bytes())
    material = raw["verificationMaterial"]
    assert set(material) == {"x509CertificateChain", "tlogEntries"}
    assert material["tlogEntries"] == []
    ders = [c["rawBytes"] for c in material["x509CertificateChain"]["certificates"]]
    assert len(ders) == 2  # leaf first, then the intermediate
    assert raw["dsseEnvelope"]["signatures"][0]["keyid"] == ""


def test_san_pattern_can_match_a_family_of_identities(p256: Pki) -> None:
    bundle = signer_for(p256).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    verified = verifier_for(p256, r"[a-z]+@example\.org").verify(bundle)
    assert verified.signer.subject == EMAIL


def test_verification_time_can_be_pinned(p256: Pki) -> None:
    bundle = signer_for(p256).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    at = NOW - timedelta(days=1)
    verifier = CertificateChainVerifier([p256.root.cert], SAN_PATTERN, at=at)
    assert verifier.verify(bundle).signer.subject == EMAIL
    before = CertificateChainVerifier([p256.root.cert], SAN_PATTERN, at=NOW - timedelta(days=30))
    with pytest.raises(SignatureVerificationError, match="signing certificate is not valid before"):
        before.verify(bundle)


# --- rejections ------------------------------------------------------------------------------


def test_wrong_san_is_rejected(p256: Pki) -> None:
    other = p256.leaf_under("someone else", san="mallory@example.org")
    bundle = signer_for(p256, other).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    with pytest.raises(SignatureVerificationError, match="no SAN of the signing certificate") as e:
        verifier_for(p256).verify(bundle)
    assert "mallory@example.org" in e.value.message


def test_pattern_must_match_the_whole_san(p256: Pki) -> None:
    bundle = signer_for(p256).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    with pytest.raises(SignatureVerificationError, match="no SAN"):
        verifier_for(p256, "release").verify(bundle)


def test_leaf_from_an_untrusted_ca_is_rejected(p256: Pki) -> None:
    rogue = make_pki(ec.SECP256R1())
    bundle = signer_for(rogue).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    with pytest.raises(SignatureVerificationError, match="does not lead to a trusted root"):
        verifier_for(p256).verify(bundle)


def test_a_self_signed_root_in_the_bundle_is_never_a_trust_anchor(p256: Pki) -> None:
    rogue = make_pki(ec.SECP256R1())  # same names as the trusted PKI, other keys
    assert rogue.root.cert.subject == p256.root.cert.subject
    bundle = signer_for(rogue, with_root=True).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    assert len(bundle.material.certificates) == 3
    with pytest.raises(SignatureVerificationError, match="does not lead to a trusted root"):
        verifier_for(p256).verify(bundle)
    # ... and trusting the rogue root is what makes it verify.
    assert verifier_for(rogue).verify(bundle).signer.subject == EMAIL


def test_expired_leaf_is_rejected(p256: Pki) -> None:
    expired = p256.leaf_under(
        "old signer",
        san=EMAIL,
        not_before=NOW - timedelta(days=5),
        not_after=NOW - timedelta(days=1),
    )
    bundle = signer_for(p256, expired).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    with pytest.raises(SignatureVerificationError, match="signing certificate expired at 20"):
        verifier_for(p256).verify(bundle)


def test_expired_intermediate_is_rejected(p256: Pki) -> None:
    old_ca = issue(
        "Old Signing CA",
        p256.root,
        curve=ec.SECP256R1(),
        ca=True,
        not_after=NOW - timedelta(days=1),
    )
    leaf = issue("signer", old_ca, curve=ec.SECP256R1(), ca=False, san=EMAIL)
    bundle = CertificateSigner(leaf.key, [leaf.cert, old_ca.cert]).sign(
        INTOTO_PAYLOAD_TYPE, PAYLOAD
    )
    with pytest.raises(SignatureVerificationError, match=r"Old Signing CA.* expired at"):
        verifier_for(p256).verify(bundle)


def test_server_auth_only_leaf_is_rejected(p256: Pki) -> None:
    tls = p256.leaf_under("tls", san=EMAIL, eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    bundle = signer_for(p256, tls).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    with pytest.raises(SignatureVerificationError, match="does not include codeSigning"):
        verifier_for(p256).verify(bundle)


def test_leaf_without_eku_is_accepted(p256: Pki) -> None:
    plain = p256.leaf_under("plain", san=EMAIL, eku=())
    bundle = signer_for(p256, plain).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    assert verifier_for(p256).verify(bundle).signer.subject == EMAIL


def test_chain_without_its_intermediate_is_rejected(p256: Pki) -> None:
    bundle = CertificateSigner(p256.leaf.key, [p256.leaf.cert]).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    with pytest.raises(SignatureVerificationError, match="does not lead to a trusted root"):
        verifier_for(p256).verify(bundle)


def _ca_with_eku(root: Issued, eku: x509.ObjectIdentifier) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"CA for {eku.dotted_string}"))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=10))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    return Issued(key, cert)


def test_intermediate_restricted_to_code_signing_is_accepted(p256: Pki) -> None:
    ca = _ca_with_eku(p256.root, ExtendedKeyUsageOID.CODE_SIGNING)
    leaf = issue("signer", ca, curve=ec.SECP256R1(), ca=False, san=EMAIL)
    bundle = CertificateSigner(leaf.key, [leaf.cert, ca.cert]).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    assert verifier_for(p256).verify(bundle).signer.subject == EMAIL


def test_intermediate_restricted_to_tls_is_rejected(p256: Pki) -> None:
    ca = _ca_with_eku(p256.root, ExtendedKeyUsageOID.SERVER_AUTH)
    leaf = issue("signer", ca, curve=ec.SECP256R1(), ca=False, san=EMAIL)
    bundle = CertificateSigner(leaf.key, [leaf.cert, ca.cert]).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    with pytest.raises(SignatureVerificationError, match="does not lead to a trusted root"):
        verifier_for(p256).verify(bundle)


def test_malformed_leaf_extension_is_a_verification_error(p256: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("broken"))
        .issuer_name(p256.intermediate.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(x509.oid.ExtensionOID.KEY_USAGE, b"\x05\x00"),
            critical=True,
        )
        .sign(p256.intermediate.key, hashes.SHA256())
    )
    bundle = CertificateSigner(key, [leaf, p256.intermediate.cert]).sign(
        INTOTO_PAYLOAD_TYPE, PAYLOAD
    )
    with pytest.raises(SignatureVerificationError, match="cannot validate the certificate chain"):
        verifier_for(p256).verify(bundle)


def test_tampered_payload_is_rejected(pki: Pki) -> None:
    bundle = signer_for(pki).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    tampered = replace(bundle, envelope=replace(bundle.envelope, payload=PAYLOAD + b" "))
    with pytest.raises(SignatureVerificationError, match="does not verify with the certificate"):
        verifier_for(pki).verify(tampered)


def test_chain_swapped_to_another_certified_key_is_rejected(p256: Pki) -> None:
    """A valid leaf for the right SAN, but not the key that signed: the signature fails."""
    bundle = signer_for(p256).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    twin = p256.leaf_under("twin", san=EMAIL)
    material = VerificationMaterial(
        kind="x509_chain",
        certificates=(
            twin.cert.public_bytes(serialization.Encoding.DER),
            *bundle.material.certificates[1:],
        ),
    )
    with pytest.raises(SignatureVerificationError, match="does not verify"):
        verifier_for(p256).verify(Bundle.build(material, bundle.envelope))


def test_public_key_bundle_is_rejected(p256: Pki) -> None:
    bundle = KeySigner(p256.leaf.key).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    with pytest.raises(SignatureVerificationError, match="not a certificate chain"):
        verifier_for(p256).verify(bundle)


def test_garbage_certificate_is_a_malformed_bundle(p256: Pki) -> None:
    bundle = signer_for(p256).sign(INTOTO_PAYLOAD_TYPE, PAYLOAD)
    material = VerificationMaterial(kind="x509_chain", certificates=(b"not DER",))
    with pytest.raises(MalformedDocumentError, match=r"not a DER X\.509 certificate"):
        verifier_for(p256).verify(Bundle.build(material, bundle.envelope))


# --- construction ----------------------------------------------------------------------------


def test_signer_refuses_a_certificate_for_another_key(p256: Pki) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SigningError, match="does not match the private key"):
        CertificateSigner(other, [p256.leaf.cert, p256.intermediate.cert])


def test_signer_needs_a_certificate(p256: Pki) -> None:
    with pytest.raises(SigningError, match="needs the signing certificate"):
        CertificateSigner(p256.leaf.key, [])


@pytest.mark.parametrize("pattern", ["", "   ", "(unclosed", "*"])
def test_san_pattern_must_be_a_non_empty_regex(p256: Pki, pattern: str) -> None:
    with pytest.raises(InvalidInputError):
        CertificateChainVerifier([p256.root.cert], pattern)


def test_verifier_needs_roots_and_an_aware_time(p256: Pki) -> None:
    with pytest.raises(InvalidInputError, match="trusted root"):
        CertificateChainVerifier([], SAN_PATTERN)
    with pytest.raises(InvalidInputError, match="timezone"):
        CertificateChainVerifier([p256.root.cert], SAN_PATTERN, at=datetime(2030, 1, 1))  # noqa: DTZ001  naive on purpose


def test_load_certificates(p256: Pki) -> None:
    both = pem(p256.intermediate.cert) + pem(p256.root.cert)
    assert load_certificates(both) == [p256.intermediate.cert, p256.root.cert]
    with pytest.raises(InvalidInputError, match="no PEM certificate"):
        load_certificates(b"hello")
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(InvalidInputError, match="cannot load"):
        load_certificates(broken)


# --- interoperability with model_signing 1.1.1 (test-only oracle) ---------------------------


def _write_pki(pki: Pki, where: Path) -> dict[str, Path]:
    where.mkdir()
    paths = {
        "key": where / "leaf.key",
        "leaf": where / "leaf.pem",
        "intermediate": where / "intermediate.pem",
        "root": where / "root.pem",
    }
    paths["key"].write_bytes(
        pki.leaf.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths["leaf"].write_bytes(pem(pki.leaf.cert))
    paths["intermediate"].write_bytes(pem(pki.intermediate.cert))
    paths["root"].write_bytes(pem(pki.root.cert))
    return paths


def _model(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "tiny-model",
        {"config.json": b'{"layers": 2}\n', "weights/model.safetensors": b"\x00" * 1024},
    )


def test_model_signing_verifies_our_certificate_bundle(pki: Pki, tmp_path: Path) -> None:
    from google.protobuf import json_format  # type: ignore[import-untyped]
    from model_signing import hashing, verifying
    from model_signing._signing.signing import Payload

    model = _model(tmp_path)
    paths = _write_pki(pki, tmp_path / "pki")
    statement = json_format.MessageToJson(Payload(hashing.Config().hash(model)).statement.pb)
    bundle = signer_for(pki, with_root=True).sign(INTOTO_PAYLOAD_TYPE, statement.encode())
    sig = tmp_path / "model.sig"
    sig.write_bytes(bundle.to_bytes())

    verifying.Config().use_certificate_verifier(certificate_chain=[paths["root"]]).verify(
        model, sig
    )

    (model / "config.json").write_bytes(b'{"layers": 3}\n')
    with pytest.raises(ValueError, match="Signature mismatch"):
        verifying.Config().use_certificate_verifier(certificate_chain=[paths["root"]]).verify(
            model, sig
        )


def test_we_verify_a_model_signing_certificate_bundle(pki: Pki, tmp_path: Path) -> None:
    from model_signing import signing

    model = _model(tmp_path)
    paths = _write_pki(pki, tmp_path / "pki")
    sig = tmp_path / "model.sig"
    signing.Config().use_certificate_signer(
        private_key=paths["key"],
        signing_certificate=paths["leaf"],
        certificate_chain=[paths["intermediate"], paths["root"]],
    ).sign(model, sig)

    bundle = Bundle.from_bytes(sig.read_bytes())
    assert bundle.material.kind == "x509_chain"
    assert len(bundle.material.certificates) == 3
    verified = verifier_for(pki).verify(bundle)

    assert verified.signer.subject == EMAIL
    assert verified.payload_type == INTOTO_PAYLOAD_TYPE
    statement = json.loads(verified.payload)
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["subject"][0]["name"] == "tiny-model"
    with pytest.raises(SignatureVerificationError, match="no SAN"):
        verifier_for(pki, r"someone@example\.org").verify(bundle)


# --- through the command line ---------------------------------------------------------------


def test_cli_sign_with_a_certificate_and_verify_with_roots_and_san(
    p256: Pki, tmp_path: Path, run_cli: Any
) -> None:
    from tests.helpers import write_tree

    model = write_tree(tmp_path / "model", {"config.json": b"{}", "w.bin": b"w" * 4096})
    key = tmp_path / "leaf.key"
    key.write_bytes(
        p256.leaf.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "leaf.pem").write_bytes(pem(p256.leaf.cert))
    (tmp_path / "chain.pem").write_bytes(pem(p256.intermediate.cert))
    (tmp_path / "root.pem").write_bytes(pem(p256.root.cert))
    sig = tmp_path / "model.sig"
    signed = run_cli(
        "sign",
        str(model),
        "--key",
        str(key),
        "--certificate",
        str(tmp_path / "leaf.pem"),
        "--certificate-chain",
        str(tmp_path / "chain.pem"),
        "--output",
        str(sig),
    )
    assert signed.code == 0, signed.stderr
    ok = run_cli(
        "verify",
        str(model),
        "--signature",
        str(sig),
        "--certificate-chain",
        str(tmp_path / "root.pem"),
        "--san",
        SAN_PATTERN,
        "--json",
    )
    assert ok.code == 0, ok.stderr
    assert ok.json()["signer"]["method"] == "certificate"
    assert ok.json()["signer"]["subject"] == EMAIL
    wrong_san = run_cli(
        "verify",
        str(model),
        "--signature",
        str(sig),
        "--certificate-chain",
        str(tmp_path / "root.pem"),
        "--san",
        r"someone-else@example\.com",
    )
    assert wrong_san.code == 1
    assert "no SAN of the signing certificate matches" in wrong_san.stderr
    no_san = run_cli(
        "verify",
        str(model),
        "--signature",
        str(sig),
        "--certificate-chain",
        str(tmp_path / "root.pem"),
    )
    assert no_san.code == 2
    assert "--san" in no_san.stderr
    as_key = run_cli(
        "verify", str(model), "--signature", str(sig), "--public-key", str(tmp_path / "root.pem")
    )
    assert as_key.code == 2  # a certificate is not a public key file
