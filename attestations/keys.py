"""EC key signing (model_signing's `sign key` / `verify key` method).

Bundle: `verificationMaterial.publicKey.hint` = sha256 hex of the signer's PEM
SubjectPublicKeyInfo (exact PEM text, header lines and final newline included), no tlog
entries; one DSSE signature, `keyid` empty, ASN.1 DER ECDSA over the PAE with the hash that
goes with the curve (P-256 → SHA-256, P-384 → SHA-384, P-521 → SHA-512).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestations.bundle import Bundle, VerificationMaterial
from attestations.dsse import Envelope, EnvelopeSignature, pae
from attestations.errors import (
    InvalidInputError,
    SignatureVerificationError,
    SigningError,
)
from attestations.signing import SignerIdentity, SigningMethod, VerifiedEnvelope

Curve = Literal["P-256", "P-384"]
_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
_HASH_FOR_CURVE: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def ecdsa_for(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> ec.ECDSA:
    hash_type = _HASH_FOR_CURVE.get(key.curve.name)
    if hash_type is None:
        raise InvalidInputError(f"unsupported curve {key.curve.name}: use P-256 or P-384")
    return ec.ECDSA(hash_type())


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """The public-key hint model_signing puts in a bundle: sha256 hex of the PEM SPKI."""
    return hashlib.sha256(public_pem(key)).hexdigest()


def load_private_key(pem: bytes, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
    """An EC private key from PEM (encrypted or not). Raises `SigningError` with the reason."""
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError as exc:  # cryptography: encrypted key without a password, or vice versa
        if passphrase is None:
            raise SigningError("the private key is encrypted: a passphrase is needed") from exc
        raise SigningError("the private key is not encrypted, but a passphrase was given") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningError(
            "cannot load the private key: wrong passphrase, or not a PEM private key"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningError("the private key is not an elliptic-curve key (P-256 or P-384)")
    ecdsa_for(key)  # refuses other curves
    return key


def load_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidInputError("not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidInputError("the public key is not an elliptic-curve key")
    ecdsa_for(key)
    return key


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_pem: bytes  # encrypted when a passphrase was given
    public_pem: bytes
    hint: str


def generate_key(curve: Curve = "P-256", *, passphrase: bytes | None) -> KeyPair:
    """A fresh key pair; the private key is encrypted at rest when `passphrase` is given."""
    key = ec.generate_private_key(_CURVES[curve])
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return KeyPair(
        private_pem=private,
        public_pem=public_pem(key.public_key()),
        hint=key_hint(key.public_key()),
    )


def sign_envelope(key: ec.EllipticCurvePrivateKey, payload_type: str, payload: bytes) -> Envelope:
    """A DSSE envelope with one ECDSA signature over the PAE (hash per curve, empty keyid)."""
    signature = key.sign(pae(payload_type, payload), ecdsa_for(key))
    return Envelope(
        payload=payload,
        payload_type=payload_type,
        signatures=(EnvelopeSignature(sig=signature, keyid=""),),
    )


class KeySigner:
    method: SigningMethod = "key"

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._key = private_key
        self.hint = key_hint(private_key.public_key())
        self.public_pem = public_pem(private_key.public_key())

    def sign(self, payload_type: str, payload: bytes) -> Bundle:
        envelope = sign_envelope(self._key, payload_type, payload)
        return Bundle.build(VerificationMaterial(kind="public_key", key_hint=self.hint), envelope)


class PublicKeyVerifier:
    """Trusts signatures by any of the given public keys, and nothing else.

    Steps: (1) the bundle carries public-key material; (2) its hint, when present, names one
    of the trusted keys; (3) the one DSSE signature verifies over the PAE with that key (or,
    for a bundle without a hint, with one of the trusted keys).
    """

    def __init__(self, public_keys: Sequence[ec.EllipticCurvePublicKey]) -> None:
        if not public_keys:
            raise InvalidInputError("a key verifier needs at least one trusted public key")
        self._keys = {key_hint(k): k for k in public_keys}

    def verify(self, bundle: Bundle) -> VerifiedEnvelope:
        material = bundle.material
        if material.kind != "public_key":
            raise SignatureVerificationError(
                f"signature was made with a {material.kind.replace('_', ' ')}, not a key"
            )
        signature = bundle.envelope.only_signature
        if material.key_hint is not None:
            key = self._keys.get(material.key_hint.lower())
            if key is None:
                raise SignatureVerificationError(
                    f"signed by another key (hint {material.key_hint[:16]}…), not a trusted one"
                )
            candidates = [(material.key_hint.lower(), key)]
        else:
            candidates = list(self._keys.items())
        signed = bundle.envelope.pae
        for hint, key in candidates:
            try:
                key.verify(signature.sig, signed, ecdsa_for(key))
            except InvalidSignature:
                continue
            return VerifiedEnvelope(
                payload_type=bundle.envelope.payload_type,
                payload=bundle.envelope.payload,
                signer=SignerIdentity(method="key", key_hint=hint),
                checks=(
                    "bundle carries a public-key hint for a trusted key"
                    if material.key_hint
                    else "bundle carries no key hint: tried every trusted key",
                    f"ECDSA signature over the DSSE PAE verifies with key sha256:{hint}",
                ),
            )
        raise SignatureVerificationError("the signature does not verify with the trusted key")


__all__ = [
    "KeyPair",
    "KeySigner",
    "PublicKeyVerifier",
    "generate_key",
    "key_hint",
    "load_private_key",
    "load_public_key",
]
