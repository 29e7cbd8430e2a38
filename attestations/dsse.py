"""DSSE envelopes (https://github.com/secure-systems-lab/dsse, protocol v1).

The payload is kept as the exact bytes that were signed: never re-serialised.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from attestations.errors import MalformedDocumentError

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: what a DSSE signature covers.

    `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII decimal byte counts.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def legacy_pae(payload_type: str, payload: bytes) -> bytes:
    """The PAE model_signing 0.2.x (and 0.3.x/1.0.x for old payloads) actually signed.

    Its encoder formatted the payload *bytes* into a `str`, so what got signed is
    `"DSSEV1 LEN(type) type LEN(body) b'<repr of body>'"` (note also the upper-case V). A
    verifier that wants those signatures must rebuild this exact text; the repr is unambiguous,
    so the signature still covers every payload byte.
    """
    return f"DSSEV1 {len(payload_type)} {payload_type} {len(payload)} {payload!r}".encode()


def b64decode_strict(text: object, *, what: str) -> bytes:
    """Standard base64 (padding required), also accepting the URL-safe alphabet DSSE allows."""
    if not isinstance(text, str) or not text:
        raise MalformedDocumentError(f"{what} must be a non-empty base64 string")
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedDocumentError(f"{what} is not valid base64") from exc


@dataclass(frozen=True, slots=True)
class EnvelopeSignature:
    sig: bytes
    keyid: str = ""


@dataclass(frozen=True, slots=True)
class Envelope:
    payload: bytes
    payload_type: str
    signatures: tuple[EnvelopeSignature, ...]

    @property
    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    @property
    def only_signature(self) -> EnvelopeSignature:
        """The single signature a model_signing envelope must carry."""
        if len(self.signatures) != 1:
            raise MalformedDocumentError(
                f"envelope must carry exactly one signature, not {len(self.signatures)}"
            )
        return self.signatures[0]

    @classmethod
    def from_json(cls, data: object) -> Envelope:
        if not isinstance(data, dict):
            raise MalformedDocumentError("DSSE envelope must be a JSON object")
        payload_type = data.get("payloadType")
        if not isinstance(payload_type, str) or not payload_type:
            raise MalformedDocumentError("DSSE envelope has no payloadType")
        payload = b64decode_strict(data.get("payload"), what="DSSE payload")
        raw_sigs = data.get("signatures")
        if not isinstance(raw_sigs, list):
            raise MalformedDocumentError("DSSE envelope has no signatures list")
        signatures = []
        for raw in raw_sigs:
            if not isinstance(raw, dict):
                raise MalformedDocumentError("DSSE signature must be a JSON object")
            # model_signing <= 1.0.1 writes `"keyid": null` and Go omits it: a key id that names
            # no key is the empty one. Trust never comes from it (only from the verifier).
            keyid = raw.get("keyid")
            if keyid is None:
                keyid = ""
            if not isinstance(keyid, str):
                raise MalformedDocumentError("DSSE keyid must be a string or null")
            signatures.append(
                EnvelopeSignature(
                    sig=b64decode_strict(raw.get("sig"), what="DSSE sig"), keyid=keyid
                )
            )
        return cls(payload=payload, payload_type=payload_type, signatures=tuple(signatures))

    def to_json(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"sig": base64.b64encode(s.sig).decode("ascii"), "keyid": s.keyid}
                for s in self.signatures
            ],
        }
