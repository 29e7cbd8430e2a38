"""A certificate signature whose signing certificate is a CA (CA:TRUE) verifies, and says so;
a policy counts it only for a certificate signer with `allowCaLeaf: true`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from attestations.bundle import Bundle
from attestations.certificates import (
    CertificateChainVerifier,
    CertificateSigner,
    load_certificates,
)
from attestations.errors import SignatureVerificationError
from policies import AttestationFact, CheckStatus, Facts, evaluate, load_policies

GOLDEN = Path(__file__).resolve().parent / "assets" / "model_signing"
ROOT_PEM = (GOLDEN / "pki" / "root-ca.pem").read_text()
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32
SIGNATURE = "https://model_signing/signature/v1.0"


def policy_text(allow: bool | None) -> str:
    extra = "" if allow is None else f", allowCaLeaf: {'true' if allow else 'false'}"
    root = ROOT_PEM.strip().replace("\n", "\\n")
    return f"""\
apiVersion: modelctl.dev/v1
kind: ModelPolicy
metadata: {{name: pki}}
spec:
  signers:
    - name: pki
      kind: certificate
      certificate: {{roots: ["{root}"], sanPattern: '^CN=golden-.*$'{extra}}}
  attestations:
    - predicateType: {SIGNATURE}
      signers: [pki]
"""


def facts(*, leaf_is_ca: bool) -> Facts:
    attestation = AttestationFact(
        SIGNATURE, "pki", DIGEST, NOW, identity="CN=golden-ca-leaf", leaf_is_ca=leaf_is_ca
    )
    return Facts(
        name="acme/bert",
        digest=DIGEST,
        source_uri="hf://acme/bert",
        commit="0e9e39f249a16976918f6564b8830bc894c89659",
        files=(),
        license="apache-2.0",
        attestations=(attestation,),
        scans=(),
    )


@pytest.mark.parametrize(
    ("allow", "leaf_is_ca", "counts"),
    [
        (None, False, True),
        (None, True, False),  # default: a CA leaf does not count
        (False, True, False),
        (True, True, True),
    ],
)
def test_policy_counts_a_ca_leaf_only_when_allowed(
    allow: bool | None, leaf_is_ca: bool, counts: bool
) -> None:
    (policy,) = load_policies(policy_text(allow), "pki.yaml").policies
    decision = evaluate(policy, facts(leaf_is_ca=leaf_is_ca), now=NOW)
    check = decision.check(f"attestations.{SIGNATURE}")
    assert check is not None
    assert (check.status is CheckStatus.PASS) is counts, check.message
    if leaf_is_ca and not counts:
        assert "CA certificate" in check.message
        assert "allowCaLeaf" in check.message


def test_verifier_reports_the_ca_leaf() -> None:
    verifier = CertificateChainVerifier(
        load_certificates(ROOT_PEM.encode()), None, subject_pattern="CN=golden-ca-leaf"
    )
    ca_leaf = verifier.verify(
        Bundle.from_bytes((GOLDEN / "1.1.1" / "cert-ca-leaf.sig").read_bytes())
    )
    assert ca_leaf.signer.leaf_is_ca is True
    assert any("CA certificate" in c for c in ca_leaf.checks)
    assert "a CA certificate" in ca_leaf.signer.describe()
    plain = CertificateChainVerifier(
        load_certificates(ROOT_PEM.encode()), "golden-signer@modelctl.test"
    ).verify(Bundle.from_bytes((GOLDEN / "1.1.1" / "cert.sig").read_bytes()))
    assert plain.signer.leaf_is_ca is False
    assert not any("CA certificate" in c for c in plain.checks)


def _ca_leaf_chain(
    key_usage: x509.KeyUsage, eku: x509.ExtendedKeyUsage | None
) -> tuple[x509.Certificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """root → a CA:TRUE signing certificate with the given key purposes, no SAN."""
    root_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "usage-root")])
    start = datetime.now(UTC) - timedelta(days=1)

    def base(subject: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(root_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
            )
        )

    ca_usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    root = base(root_name, root_key).add_extension(ca_usage, True).sign(root_key, hashes.SHA256())
    leaf_builder = base(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "usage-leaf")]), leaf_key
    ).add_extension(key_usage, True)
    if eku is not None:
        leaf_builder = leaf_builder.add_extension(eku, False)
    return root, leaf_builder.sign(root_key, hashes.SHA256()), leaf_key


_CERT_SIGN_ONLY = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
_SIGNING = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
_CODE_SIGNING = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING])
_SERVER_AUTH = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])


@pytest.mark.parametrize(
    ("key_usage", "eku", "accepted"),
    [
        (_SIGNING, None, True),  # KeyUsage digitalSignature
        (_SIGNING, _SERVER_AUTH, True),  # digitalSignature suffices, as in model_signing
        (_CERT_SIGN_ONLY, _CODE_SIGNING, True),  # or ExtendedKeyUsage codeSigning
        (_CERT_SIGN_ONLY, None, False),  # neither
        (_CERT_SIGN_ONLY, _SERVER_AUTH, False),
    ],
    ids=["ku-digital-signature", "ku-and-server-auth", "eku-code-signing", "neither", "tls-only"],
)
def test_ca_leaf_key_purpose_is_model_signings_rule(
    key_usage: x509.KeyUsage, eku: x509.ExtendedKeyUsage | None, accepted: bool
) -> None:
    root, leaf, leaf_key = _ca_leaf_chain(key_usage, eku)
    bundle = CertificateSigner(leaf_key, [leaf]).sign("application/vnd.in-toto+json", b"{}")
    verifier = CertificateChainVerifier([root], None, subject_pattern="CN=usage-leaf")
    if accepted:
        assert verifier.verify(bundle).signer.leaf_is_ca is True
    else:
        with pytest.raises(SignatureVerificationError, match="neither KeyUsage digitalSignature"):
            verifier.verify(bundle)
