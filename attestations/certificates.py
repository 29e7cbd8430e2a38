"""X.509 certificate signing (model_signing's `sign certificate` / `verify certificate` method).

Bundle: `verificationMaterial.x509CertificateChain.certificates` = the signing (leaf)
certificate followed by the rest of the chain the signer was given (intermediates, and the root
when the caller passes it, as model_signing's CLI does with `--certificate_chain`), each as DER
(`rawBytes`), no tlog entries; one DSSE signature, `keyid` empty, ASN.1 DER ECDSA over the PAE
with the hash that goes with the leaf key's curve (as for key signing).

model_signing's own verifier checks the chain at the leaf's notBefore and checks *no* subject or
SAN, so any leaf under a trusted CA passes. `CertificateChainVerifier` checks the chain at the
verification time instead, and always pins the signer's identity with a SAN pattern.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from attestations.bundle import Bundle, VerificationMaterial
from attestations.errors import (
    InvalidInputError,
    MalformedDocumentError,
    SignatureVerificationError,
    SigningError,
)
from attestations.keys import ecdsa_for, key_hint, sign_envelope, verify_dsse_signature
from attestations.signing import SignerIdentity, SigningMethod, VerifiedEnvelope

#: Longest cryptography error text kept in a one-line message.
_MAX_REASON = 200
#: What cryptography raises when it parses a bad extension of a certificate it has loaded.
_MALFORMED_EXTENSION = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """One or more PEM certificates, in file order. Raises `InvalidInputError`."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidInputError("no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise InvalidInputError(f"cannot load the PEM certificates: {_one_line(exc)}") from exc


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _spki(key: object) -> bytes | None:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class CertificateSigner:
    """Signs with an EC private key whose certificate (and its chain) goes into the bundle."""

    method: SigningMethod = "certificate"

    def __init__(
        self, private_key: ec.EllipticCurvePrivateKey, chain: Sequence[x509.Certificate]
    ) -> None:
        if not chain:
            raise SigningError("a certificate signer needs the signing certificate")
        try:
            ecdsa_for(private_key)
        except InvalidInputError as exc:
            raise SigningError(exc.message) from exc
        try:
            leaf_key = chain[0].public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise SigningError("cannot read the signing certificate's public key") from exc
        if _spki(leaf_key) != _spki(private_key.public_key()):
            raise SigningError(
                "the signing certificate's public key does not match the private key"
            )
        self._key = private_key
        self._ders = tuple(_der(c) for c in chain)
        self.hint = key_hint(private_key.public_key())

    def sign(self, payload_type: str, payload: bytes) -> Bundle:
        envelope = sign_envelope(self._key, payload_type, payload)
        material = VerificationMaterial(kind="x509_chain", certificates=self._ders)
        return Bundle.build(material, envelope)


def _require_digital_signature(_policy: Policy, _cert: x509.Certificate, ku: x509.KeyUsage) -> None:
    if not ku.digital_signature:
        raise ValueError("KeyUsage lacks digitalSignature")


def _code_signing_if_present(
    _policy: Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None
) -> None:
    if eku is not None and ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise ValueError("ExtendedKeyUsage lacks codeSigning")


def _ca_allows_code_signing(
    _policy: Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None
) -> None:
    if eku is None:
        return
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku and (
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku
    ):
        raise ValueError("CA ExtendedKeyUsage allows neither codeSigning nor anyExtendedKeyUsage")


#: Web PKI profile, with the key purpose changed from TLS client to code signing, and the SAN
#: optional: identity is pinned by `san_pattern` or `subject_pattern` here, not by the profile
#: (model_signing's own test PKI issues signing certificates with no SAN at all).
_EE_POLICY = (
    ExtensionPolicy.webpki_defaults_ee()
    .require_present(x509.KeyUsage, Criticality.AGNOSTIC, _require_digital_signature)
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _code_signing_if_present)
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
)
#: The same for a signing certificate marked CA:TRUE, which model_signing accepts (OpenSSL does
#: not look at the leaf's BasicConstraints) and some internal CAs issue. Used only for such a
#: leaf, and the result says so (`leaf_is_ca`), so a policy can refuse it.
#: Its key purpose is model_signing's rule, checked by `_check_leaf_usage`: KeyUsage
#: digitalSignature or ExtendedKeyUsage codeSigning, either one.
_CA_LEAF_EE_POLICY = (
    ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, None)
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca().may_be_present(
    x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _ca_allows_code_signing
)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_line(text: object, limit: int = _MAX_REASON) -> str:
    """`text` (or an exception's message) on one line, at most `limit` characters."""
    flat = " ".join(str(text).split()).removeprefix("validation failed: ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _validity_problem(cert: x509.Certificate, at: datetime) -> str | None:
    if at < cert.not_valid_before_utc:
        return f"is not valid before {_when(cert.not_valid_before_utc)}"
    if at > cert.not_valid_after_utc:
        return f"expired at {_when(cert.not_valid_after_utc)}"
    return None


def _san_values(leaf: x509.Certificate) -> list[tuple[str, str]]:
    """(kind, value) for the leaf's email, URI and DNS SANs, in certificate order."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    kinds: dict[type[x509.GeneralName], str] = {
        x509.RFC822Name: "email",
        x509.UniformResourceIdentifier: "URI",
        x509.DNSName: "DNS",
    }
    out = []
    for name in san:
        kind = kinds.get(type(name))
        if kind is not None and isinstance(name.value, str):
            out.append((kind, name.value))
    return out


class CertificateChainVerifier:
    """Trusts signatures by a code-signing certificate under `roots` whose SAN matches a pattern.

    `roots` are the only trust anchors: a certificate carried in the bundle never becomes one,
    even when it is self-signed. `san_pattern` is a regular expression that must fullmatch one
    of the leaf's email, URI or DNS SubjectAlternativeName values (a valid chain alone is not an
    identity). `at` is the validation time (default: now, UTC, at each `verify`); model_signing
    validates at the leaf's notBefore instead, which accepts expired certificates.

    Steps:

    1. the bundle carries `x509CertificateChain` material, else `SignatureVerificationError`
       (a certificate that is not DER X.509 → `MalformedDocumentError`);
    2. the leaf is valid at `at`, has KeyUsage digitalSignature and, if it has an
       ExtendedKeyUsage, codeSigning; then a path leaf → bundle intermediates → one of `roots`
       is built and validated at `at` by a `cryptography.x509.verification` client verifier
       (signatures, validity of every certificate, BasicConstraints/path length, name
       constraints, and the rest of the Web PKI profile: a SAN on the leaf, AKI on issued
       certificates, critical BasicConstraints and keyCertSign on CAs), whose extension
       policies swap the key-purpose checks from TLS client to code signing (leaf: KeyUsage
       digitalSignature required, ExtendedKeyUsage optional but then with codeSigning; CA:
       ExtendedKeyUsage, when present, must allow codeSigning or anyExtendedKeyUsage).
       Any failure → `SignatureVerificationError` ("… expired at …", "certificate chain does
       not lead to a trusted root: …");
    3. `san_pattern` fullmatches one SAN value, else `SignatureVerificationError`;
    4. the one DSSE signature verifies over the PAE with the leaf's EC key, else
       `SignatureVerificationError` (an envelope without exactly one signature →
       `MalformedDocumentError`).
    """

    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        san_pattern: str | None,
        *,
        subject_pattern: str | None = None,
        at: datetime | None = None,
    ) -> None:
        if not roots:
            raise InvalidInputError("a certificate verifier needs at least one trusted root")
        if not (san_pattern and san_pattern.strip()) and not (
            subject_pattern and subject_pattern.strip()
        ):
            raise InvalidInputError(
                "a certificate verifier needs a SAN or subject pattern: "
                "a valid chain is not an identity"
            )
        self._pattern = _compile(san_pattern, "SAN") if san_pattern else None
        self._subject_pattern = _compile(subject_pattern, "subject") if subject_pattern else None
        if at is not None and at.tzinfo is None:
            raise InvalidInputError("the verification time must be timezone-aware")
        self._roots = tuple(roots)
        self._store = Store(list(roots))
        self._at = at

    def verify(self, bundle: Bundle) -> VerifiedEnvelope:
        at = (self._at or datetime.now(UTC)).astimezone(UTC)
        # (1) material
        material = bundle.material
        if material.kind != "x509_chain":
            raise SignatureVerificationError(
                f"signature was made with a {material.kind.replace('_', ' ')}, "
                "not a certificate chain"
            )
        certs = [_load_der(der, index) for index, der in enumerate(material.certificates)]
        leaf, intermediates = certs[0], certs[1:]
        signature = bundle.envelope.only_signature
        # (2) path to a trusted root
        path = self._validate_path(leaf, intermediates, at)
        # (3) identity
        identity_checks = []
        subject_value = leaf.subject.rfc4514_string()
        if self._pattern is not None:
            san_kind, san_value = self._match_san(leaf, self._pattern)
            identity_checks.append(f"SAN {san_kind}:{san_value} matches '{self._pattern.pattern}'")
        else:
            san_value = subject_value
        if self._subject_pattern is not None:
            if not self._subject_pattern.fullmatch(subject_value):
                raise SignatureVerificationError(
                    _one_line(
                        f"the signing certificate's subject {subject_value!r} does not match "
                        f"'{self._subject_pattern.pattern}'",
                        limit=2 * _MAX_REASON,
                    )
                )
            identity_checks.append(
                f"subject {subject_value} matches '{self._subject_pattern.pattern}'"
            )
        # (4) signature
        try:
            key = leaf.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise SignatureVerificationError(
                "cannot read the signing certificate's public key"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise SignatureVerificationError("the signing certificate's key is not an EC key")
        del signature  # checked by verify_dsse_signature (exactly one, over the PAE)
        try:
            encoding = verify_dsse_signature(key, bundle.envelope)
        except InvalidInputError as exc:
            raise SignatureVerificationError(exc.message) from exc
        except InvalidSignature as exc:
            raise SignatureVerificationError(
                "signature does not verify with the certificate's key"
            ) from exc
        hint = key_hint(key)
        issuer = leaf.issuer.rfc4514_string()
        leaf_is_ca = _is_ca(leaf)
        chain_text = " → ".join(c.subject.rfc4514_string() for c in path)
        return VerifiedEnvelope(
            payload_type=bundle.envelope.payload_type,
            payload=bundle.envelope.payload,
            signer=SignerIdentity(
                method="certificate",
                key_hint=hint,
                subject=san_value,
                issuer=issuer,
                leaf_is_ca=leaf_is_ca,
            ),
            checks=(
                f"bundle carries an X.509 certificate chain ({len(certs)} certificates)",
                f"certificate chain {chain_text} leads to a trusted root and is valid at "
                f"{_when(at)} for code signing",
                *(
                    ["the signing certificate is a CA certificate (BasicConstraints CA:TRUE)"]
                    if leaf_is_ca
                    else []
                ),
                *identity_checks,
                f"ECDSA signature over {encoding} verifies with the certificate's key "
                f"sha256:{hint}",
            ),
        )

    def _validate_path(
        self, leaf: x509.Certificate, intermediates: list[x509.Certificate], at: datetime
    ) -> list[x509.Certificate]:
        problem = _validity_problem(leaf, at)
        if problem is not None:
            raise SignatureVerificationError(f"signing certificate {problem}")
        try:
            _check_leaf_usage(leaf)
            verifier = (
                PolicyBuilder()
                .store(self._store)
                .time(at)
                .extension_policies(
                    ca_policy=_CA_POLICY,
                    ee_policy=_CA_LEAF_EE_POLICY if _is_ca(leaf) else _EE_POLICY,
                )
                .build_client_verifier()
            )
            return verifier.verify(leaf, intermediates).chain
        except VerificationError as exc:
            if "not valid at validation time" in str(exc):
                for cert in (*intermediates, *self._roots):
                    problem = _validity_problem(cert, at)
                    if problem is not None:
                        raise SignatureVerificationError(
                            f"certificate {cert.subject.rfc4514_string()!r} in the chain {problem}"
                        ) from exc
            raise SignatureVerificationError(
                f"certificate chain does not lead to a trusted root: {_one_line(exc)}"
            ) from exc
        except _MALFORMED_EXTENSION as exc:
            raise SignatureVerificationError(
                f"cannot validate the certificate chain: {_one_line(exc)}"
            ) from exc

    def _match_san(self, leaf: x509.Certificate, pattern: re.Pattern[str]) -> tuple[str, str]:
        values = _san_values(leaf)
        for kind, value in values:
            if pattern.fullmatch(value):
                return kind, value
        present = ", ".join(f"{k}:{v}" for k, v in values) or "none"
        raise SignatureVerificationError(
            _one_line(
                f"no SAN of the signing certificate matches '{pattern.pattern}' (it has {present})",
                limit=2 * _MAX_REASON,
            )
        )


def _compile(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidInputError(f"invalid {what} pattern {pattern!r:.100}: {exc}") from exc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
    except _MALFORMED_EXTENSION:
        return False  # the path validation refuses it with the reason


def _load_der(der: bytes, index: int) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise MalformedDocumentError(
            f"bundle chain certificate {index} is not a DER X.509 certificate"
        ) from exc


def _check_leaf_usage(leaf: x509.Certificate) -> None:
    """The code-signing checks the path validation also enforces, with clearer messages.

    A CA:TRUE leaf gets model_signing's rule instead (the only verifier that accepts such
    leaves): KeyUsage digitalSignature or ExtendedKeyUsage codeSigning.
    """
    if _is_ca(leaf):
        if _has_digital_signature(leaf) or _has_code_signing(leaf):
            return
        raise SignatureVerificationError(
            "signing certificate (a CA certificate) has neither KeyUsage digitalSignature "
            "nor ExtendedKeyUsage codeSigning"
        )
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise SignatureVerificationError(
            "signing certificate has no KeyUsage extension (digitalSignature is required)"
        ) from exc
    if not ku.digital_signature:
        raise SignatureVerificationError("signing certificate's KeyUsage lacks digitalSignature")
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise SignatureVerificationError(
            "signing certificate's ExtendedKeyUsage does not include codeSigning"
        )


def _has_digital_signature(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    except x509.ExtensionNotFound:
        return False


def _has_code_signing(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CODE_SIGNING in eku


__all__ = ["CertificateChainVerifier", "CertificateSigner", "load_certificates"]
