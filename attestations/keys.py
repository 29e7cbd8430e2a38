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
from attestations.dsse import Envelope, EnvelopeSignature, legacy_pae, pae
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


def load_any_public_key(data: bytes) -> ec.EllipticCurvePublicKey | None:
    """A public key from PEM or DER SubjectPublicKeyInfo, or None when it is neither."""
    for loader in (serialization.load_pem_public_key, serialization.load_der_public_key):
        try:
            key = loader(data)
        except (ValueError, UnsupportedAlgorithm):
            continue
        return key if isinstance(key, ec.EllipticCurvePublicKey) else None
    return None


def verify_dsse_signature(key: ec.EllipticCurvePublicKey, envelope: Envelope) -> str:
    """Check the envelope's one signature with `key`; say which encoding it covers.

    The DSSE PAE with the curve's hash first. Then, as model_signing 1.x still does, the
    encoding its 0.2.x releases signed by mistake (`legacy_pae`), with the curve's hash and
    then with SHA-256 (0.2.x hashed with SHA-256 whatever the curve). Raises `InvalidSignature`.
    """
    sig = envelope.only_signature.sig
    curve_hash = ecdsa_for(key)
    legacy = legacy_pae(envelope.payload_type, envelope.payload)
    attempts = [
        ("the DSSE PAE", envelope.pae, curve_hash),
        ("model_signing 0.2's legacy PAE encoding", legacy, curve_hash),
    ]
    if not isinstance(curve_hash.algorithm, hashes.SHA256):
        attempts.append(
            (
                "model_signing 0.2's legacy PAE encoding with SHA-256",
                legacy,
                ec.ECDSA(hashes.SHA256()),
            )
        )
    for what, message, algorithm in attempts:
        try:
            key.verify(sig, message, algorithm)
        except InvalidSignature:
            continue
        return what
    raise InvalidSignature


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
        _ = bundle.envelope.only_signature  # exactly one signature, else MalformedDocumentError
        named = material.key_hint
        if named is None and material.key_bytes is not None:
            # model_signing < 1.1.0 put the key itself in the bundle: it names the signer's
            # key, which must still be one of ours.
            carried = load_any_public_key(material.key_bytes)
            if carried is None:
                raise SignatureVerificationError(
                    "bundle publicKey.rawBytes is not an EC public key (PEM or DER)"
                )
            named = key_hint(carried)
        if named is not None:
            key = self._keys.get(named.lower())
            if key is None:
                raise SignatureVerificationError(
                    f"signed by another key (hint {named[:16]}…), not a trusted one"
                )
            candidates = [(named.lower(), key)]
        else:
            candidates = list(self._keys.items())
        for hint, key in candidates:
            try:
                encoding = verify_dsse_signature(key, bundle.envelope)
            except InvalidSignature:
                continue
            if material.key_hint:
                named_by = "bundle carries a public-key hint for a trusted key"
            elif material.key_bytes is not None:
                named_by = "bundle carries a trusted public key (rawBytes, model_signing < 1.1)"
            else:
                named_by = "bundle carries no key hint: tried every trusted key"
            return VerifiedEnvelope(
                payload_type=bundle.envelope.payload_type,
                payload=bundle.envelope.payload,
                signer=SignerIdentity(method="key", key_hint=hint),
                checks=(
                    named_by,
                    f"ECDSA signature over {encoding} verifies with key sha256:{hint}",
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
