"""A certificate signature whose signing certificate is a CA (CA:TRUE) verifies, and says so;
a policy counts it only for a certificate signer with `allowCaLeaf: true`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from attestations.bundle import Bundle
from attestations.certificates import CertificateChainVerifier, load_certificates
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
