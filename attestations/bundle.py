"""Sigstore bundles, v0.3 JSON (`application/vnd.dev.sigstore.bundle.v0.3+json`).

Only the parts this project reads are typed: the media type, which kind of verification
material is present (public-key hint, X.509 chain, Sigstore certificate), and the DSSE
envelope. The original JSON object is kept in `raw` so a keyless bundle can be handed whole to
sigstore-python, and a bundle can be stored and served verbatim.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from attestations.dsse import Envelope, b64decode_strict
from attestations.errors import MalformedDocumentError
from attestations.jsonlimits import loads_bounded

BUNDLE_V03_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
ACCEPTED_MEDIA_TYPES = frozenset(
    {
        BUNDLE_V03_MEDIA_TYPE,
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
    }
)
#: A bundle is a few kB; anything far larger is not one (and would be costly to parse).
MAX_BUNDLE_BYTES = 16 * 1024 * 1024

MaterialKind = Literal["public_key", "x509_chain", "certificate"]


@dataclass(frozen=True, slots=True)
class VerificationMaterial:
    kind: MaterialKind
    key_hint: str | None = None  # sha256 hex of the signer's PEM SubjectPublicKeyInfo
    #: The signer's public key itself (PEM or DER), as model_signing < 1.1.0 wrote it in
    #: `publicKey.rawBytes` instead of a hint. It names a key; it is never trusted as one.
    key_bytes: bytes | None = None
    certificates: tuple[bytes, ...] = ()  # DER, leaf first
    tlog_entries: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_json(cls, data: object) -> VerificationMaterial:
        if not isinstance(data, dict):
            raise MalformedDocumentError("bundle verificationMaterial must be a JSON object")
        tlog = data.get("tlogEntries", [])
        if not isinstance(tlog, list) or not all(isinstance(e, dict) for e in tlog):
            raise MalformedDocumentError("bundle tlogEntries must be a list of objects")
        present = [k for k in ("publicKey", "x509CertificateChain", "certificate") if k in data]
        if len(present) != 1:
            raise MalformedDocumentError(
                "bundle verificationMaterial must hold exactly one of publicKey, "
                "x509CertificateChain or certificate"
            )
        if "publicKey" in data:
            key = data["publicKey"]
            if not isinstance(key, dict):
                raise MalformedDocumentError("bundle publicKey must be a JSON object")
            hint = key.get("hint")
            if hint is not None and not isinstance(hint, str):
                raise MalformedDocumentError("bundle publicKey.hint must be a string")
            raw_key = key.get("rawBytes")
            key_bytes = (
                b64decode_strict(raw_key, what="bundle publicKey.rawBytes")
                if raw_key is not None
                else None
            )
            return cls(
                kind="public_key",
                key_hint=hint or None,
                key_bytes=key_bytes,
                tlog_entries=tuple(tlog),
            )
        if "x509CertificateChain" in data:
            chain = data["x509CertificateChain"]
            certs = chain.get("certificates") if isinstance(chain, dict) else None
            if not isinstance(certs, list) or not certs:
                raise MalformedDocumentError("bundle x509CertificateChain has no certificates")
            ders = tuple(_raw_bytes(c, what="chain certificate") for c in certs)
            return cls(kind="x509_chain", certificates=ders, tlog_entries=tuple(tlog))
        leaf = _raw_bytes(data["certificate"], what="certificate")
        return cls(kind="certificate", certificates=(leaf,), tlog_entries=tuple(tlog))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any]
        if self.kind == "public_key":
            out = {"publicKey": {"hint": self.key_hint} if self.key_hint else {}}
        elif self.kind == "x509_chain":
            out = {
                "x509CertificateChain": {
                    "certificates": [{"rawBytes": _b64(c)} for c in self.certificates]
                }
            }
        else:
            out = {"certificate": {"rawBytes": _b64(self.certificates[0])}}
        out["tlogEntries"] = list(self.tlog_entries)
        return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _raw_bytes(obj: object, *, what: str) -> bytes:
    if not isinstance(obj, dict):
        raise MalformedDocumentError(f"bundle {what} must be a JSON object")
    return b64decode_strict(obj.get("rawBytes"), what=f"bundle {what}")


@dataclass(frozen=True, slots=True)
class Bundle:
    media_type: str
    material: VerificationMaterial
    envelope: Envelope
    raw: dict[str, Any] = field(compare=False, repr=False)

    @classmethod
    def from_bytes(cls, data: bytes) -> Bundle:
        """Parse a bundle file. Raises `MalformedDocumentError` with a one-line reason."""
        if len(data) > MAX_BUNDLE_BYTES:
            raise MalformedDocumentError(f"bundle larger than {MAX_BUNDLE_BYTES} bytes")
        return cls.from_json(loads_bounded(data, what="bundle"))

    @classmethod
    def from_json(cls, obj: object) -> Bundle:
        if not isinstance(obj, dict):
            raise MalformedDocumentError("bundle must be a JSON object")
        media_type = obj.get("mediaType")
        if media_type not in ACCEPTED_MEDIA_TYPES:
            raise MalformedDocumentError(f"unsupported bundle mediaType {media_type!r:.100}")
        if "dsseEnvelope" not in obj:
            raise MalformedDocumentError(
                "bundle holds no DSSE envelope (messageSignature bundles are not attestations)"
            )
        return cls(
            media_type=media_type,
            material=VerificationMaterial.from_json(obj.get("verificationMaterial")),
            envelope=Envelope.from_json(obj["dsseEnvelope"]),
            raw=obj,
        )

    @classmethod
    def build(cls, material: VerificationMaterial, envelope: Envelope) -> Bundle:
        raw = {
            "mediaType": BUNDLE_V03_MEDIA_TYPE,
            "verificationMaterial": material.to_json(),
            "dsseEnvelope": envelope.to_json(),
        }
        return cls(media_type=BUNDLE_V03_MEDIA_TYPE, material=material, envelope=envelope, raw=raw)

    def to_bytes(self) -> bytes:
        return json.dumps(self.raw, indent=2).encode("utf-8") + b"\n"
