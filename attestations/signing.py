"""Signers and signature verifiers: the contract every signing method implements.

A signer turns (payload type, payload bytes) into a Sigstore bundle holding one DSSE
signature. A verifier is a *policy object*: constructed with what it trusts (keys, roots plus a
SAN pattern, a Sigstore identity), it checks a bundle's one signature and says who signed, or
raises `SignatureVerificationError`. It never returns False, and it has no "accept anything"
default: what to trust is always a constructor argument.

Verifiers check the envelope signature only. What was signed (payload type, statement,
predicate, subject) is checked one layer up (`attestations.model_signature`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from attestations.bundle import Bundle

SigningMethod = Literal["key", "certificate", "sigstore"]


@dataclass(frozen=True, slots=True)
class SignerIdentity:
    """Who signed, as far as the verifier could establish it."""

    method: SigningMethod
    key_hint: str | None = None  # sha256 hex of the PEM SubjectPublicKeyInfo (key, certificate)
    subject: str | None = None  # the certificate's SAN that matched (certificate, sigstore)
    issuer: str | None = None  # OIDC issuer (sigstore) or issuing CA subject (certificate)
    #: The signing certificate is itself a CA (BasicConstraints CA:TRUE): model_signing's test
    #: PKI and some internal CAs issue such leaves. Accepted, always reported; policy may refuse.
    leaf_is_ca: bool = False

    def describe(self) -> str:
        if self.method == "key":
            return f"key sha256:{self.key_hint}"
        if self.method == "certificate":
            ca = " (a CA certificate)" if self.leaf_is_ca else ""
            return f"certificate{ca} for {self.subject} issued by {self.issuer}"
        return f"sigstore identity {self.subject} (issuer {self.issuer})"


@dataclass(frozen=True, slots=True)
class VerifiedEnvelope:
    """A bundle whose signature checked out, with the payload exactly as it was signed."""

    payload_type: str
    payload: bytes
    signer: SignerIdentity
    checks: tuple[str, ...]  # what was verified, in order, for people and --json


class Signer(Protocol):
    @property
    def method(self) -> SigningMethod: ...

    def sign(self, payload_type: str, payload: bytes) -> Bundle:
        """Sign `payload` as it is (the same bytes whatever the signer). Raises `SigningError`."""
        ...


class SignatureVerifier(Protocol):
    def verify(self, bundle: Bundle) -> VerifiedEnvelope:
        """Check the bundle's single signature against what this verifier trusts.

        Raises `SignatureVerificationError` (bad signature, untrusted signer) or
        `MalformedDocumentError` (a bundle this verifier cannot read).
        """
        ...
