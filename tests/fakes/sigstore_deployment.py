"""A private Sigstore deployment in-process: Fulcio-like CA, CT log, Rekor-like log, trusted root.

Everything sigstore-python checks when it verifies a keyless DSSE bundle offline is produced
honestly here, with real keys and real signatures (nothing in sigstore is patched):

* **Fulcio**: a self-signed root CA and an intermediate CA (both P-384/SHA-384, BasicConstraints
  critical, KeyUsage keyCertSign, SKI/AKI). :meth:`FakeSigstore.issue_certificate` issues a
  short-lived (10 minute) P-256 leaf like Fulcio's: empty subject, critical SAN (email or URI),
  KeyUsage digitalSignature, EKU codeSigning, the OIDC issuer both in the legacy extension
  ``1.3.6.1.4.1.57264.1.1`` (raw UTF-8, which is what ``policy.Identity`` reads) and in
  ``1.3.6.1.4.1.57264.1.8`` (DER UTF8String), and one embedded **precertificate SCT**.
* **CT log**: the SCT is an RFC 6962 ``precert_entry`` signed by the CT key over
  ``issuer_key_hash || TBSCertificate-without-SCT-list``. The TBS is built first without the
  extension, signed, and the builder checks that the final certificate's
  ``tbs_precertificate_bytes`` are exactly those bytes.
* **Rekor**: an RFC 6962 Merkle log with a ``dsse`` 0.0.1 entry per signature (canonical JSON
  body holding the payload hash and the signature with its PEM certificate), an **inclusion
  proof** against the current tree (a few filler leaves are logged first so the proof has real
  hashes), a **checkpoint** in the signed-note format (origin, size, base64 root hash; an
  em-dash signature line whose 4-byte key hint is the start of the log ID), and an **inclusion
  promise** (SET: ECDSA over the RFC 8785 JSON ``{body, integratedTime, logID, logIndex}``).
  ``integratedTime`` lies inside the leaf's validity window: it is the time sigstore-python
  verifies the chain at.
* **Trusted root** (``application/vnd.dev.sigstore.trustedroot+json;version=0.1``): the CA
  chain, the Rekor key (tlogs) and the CT key (ctlogs), with validity windows; and a client
  trust config (trusted root + signing config) pointing at configurable service URLs.

:class:`FakeSigstoreServer` serves the two write endpoints sigstore-python's signer calls
(Fulcio ``POST /api/v2/signingCert`` and Rekor ``POST /api/v1/log/entries``) on 127.0.0.1, so
keyless *signing* can be exercised end to end too.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "OIDC_ISSUER_OID",
    "OIDC_ISSUER_V2_OID",
    "FakeSigstore",
    "FakeSigstoreServer",
    "LoggedEntry",
    "fake_identity_token",
]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
OIDC_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # legacy: raw string
OIDC_ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # DER UTF8String
LEAF_LIFETIME = dt.timedelta(minutes=10)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962 key ID: SHA-256 of the DER SubjectPublicKeyInfo (Rekor log ID, CT log ID)."""
    return hashlib.sha256(_spki_der(key)).digest()


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _der_utf8_string(text: str) -> bytes:
    data = text.encode()
    if len(data) < 0x80:
        return bytes([0x0C, len(data)]) + data
    length = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(length)]) + length + data


def _der_octet_string(data: bytes) -> bytes:
    if len(data) < 0x80:
        return bytes([0x04, len(data)]) + data
    length = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return bytes([0x04, 0x80 | len(length)]) + length + data


# --- RFC 6962 Merkle tree --------------------------------------------------------------------


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _tree_hash(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node_hash(_tree_hash(leaves[:k]), _tree_hash(leaves[k:]))


def _audit_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n]), from the leaf's sibling up to the root's child."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_audit_path(index, leaves[:k]), _tree_hash(leaves[k:])]
    return [*_audit_path(index - k, leaves[k:]), _tree_hash(leaves[:k])]


# --- the deployment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedEntry:
    """What Rekor returns for one integrated entry."""

    log_index: int
    integrated_time: int
    body: bytes  # canonicalized body
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str
    signed_entry_timestamp: bytes
    log_id: bytes

    def bundle_json(self) -> dict[str, Any]:
        """The entry as a bundle v0.3 `tlogEntries[]` item (protobuf JSON)."""
        return {
            "logIndex": str(self.log_index),
            "logId": {"keyId": _b64(self.log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(self.integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(self.signed_entry_timestamp)},
            "inclusionProof": {
                "logIndex": str(self.log_index),
                "rootHash": _b64(self.root_hash),
                "treeSize": str(self.tree_size),
                "hashes": [_b64(h) for h in self.hashes],
                "checkpoint": {"envelope": self.checkpoint},
            },
            "canonicalizedBody": _b64(self.body),
        }

    def rekor_response(self) -> dict[str, Any]:
        """The entry as Rekor v1's `POST /api/v1/log/entries` answers it."""
        uuid = _leaf_hash(self.body).hex()
        return {
            uuid: {
                "body": _b64(self.body),
                "integratedTime": self.integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": self.log_index,
                "verification": {
                    "inclusionProof": {
                        "logIndex": self.log_index,
                        "rootHash": self.root_hash.hex(),
                        "treeSize": self.tree_size,
                        "hashes": [h.hex() for h in self.hashes],
                        "checkpoint": self.checkpoint,
                    },
                    "signedEntryTimestamp": _b64(self.signed_entry_timestamp),
                },
            }
        }


def _ca_certificate(
    *,
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    path_length: int | None,
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modelctl-test"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA384())
    )


@dataclass
class FakeSigstore:
    """One private Sigstore instance: its keys, its CA chain and its transparency log."""

    name: str
    created: dt.datetime
    root_key: ec.EllipticCurvePrivateKey
    root_cert: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate_cert: x509.Certificate
    ct_key: ec.EllipticCurvePrivateKey
    rekor_key: ec.EllipticCurvePrivateKey
    fulcio_url: str = "http://127.0.0.1:1"
    rekor_url: str = "http://127.0.0.1:1"
    tree_id: int = 7_305_118_292_184_007_101
    leaves: list[bytes] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(cls, name: str = "sigstore.test", *, filler_entries: int = 5) -> FakeSigstore:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        start = now - dt.timedelta(days=1)
        end = now + dt.timedelta(days=365)
        root_key = ec.generate_private_key(ec.SECP384R1())
        root = _ca_certificate(
            name=f"{name} root",
            key=root_key,
            issuer_name=None,
            issuer_key=root_key,
            not_before=start,
            not_after=end,
            path_length=1,
        )
        intermediate_key = ec.generate_private_key(ec.SECP384R1())
        intermediate = _ca_certificate(
            name=f"{name} intermediate",
            key=intermediate_key,
            issuer_name=root.subject,
            issuer_key=root_key,
            not_before=start,
            not_after=end,
            path_length=0,
        )
        deployment = cls(
            name=name,
            created=start,
            root_key=root_key,
            root_cert=root,
            intermediate_key=intermediate_key,
            intermediate_cert=intermediate,
            ct_key=ec.generate_private_key(ec.SECP256R1()),
            rekor_key=ec.generate_private_key(ec.SECP256R1()),
        )
        for i in range(filler_entries):  # other people's entries, so proofs are not trivial
            deployment.leaves.append(_leaf_hash(b"filler entry %d of %b" % (i, name.encode())))
        return deployment

    # -- Fulcio + CT log ------------------------------------------------------------------------

    @property
    def rekor_log_id(self) -> bytes:
        return _key_id(self.rekor_key.public_key())

    @property
    def ct_log_id(self) -> bytes:
        return _key_id(self.ct_key.public_key())

    def issue_certificate(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        identity: str,
        issuer: str,
        not_before: dt.datetime | None = None,
        legacy_issuer_extension: bool = True,
        with_sct: bool = True,
    ) -> x509.Certificate:
        """A Fulcio-style short-lived leaf for `identity` (email, or URI when it has "://")."""
        start = (not_before or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(identity)
            if "://" in identity
            else x509.RFC822Name(identity)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + LEAF_LIFETIME)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.intermediate_key.public_key()
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        )
        if legacy_issuer_extension:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(OIDC_ISSUER_OID, issuer.encode()), critical=False
            )
        builder = builder.add_extension(
            x509.UnrecognizedExtension(OIDC_ISSUER_V2_OID, _der_utf8_string(issuer)),
            critical=False,
        )
        precert = builder.sign(self.intermediate_key, hashes.SHA384())
        if not with_sct:
            return precert
        sct_list = self._sct_list(precert.tbs_certificate_bytes, timestamp=start)
        cert = builder.add_extension(
            x509.UnrecognizedExtension(
                ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS, _der_octet_string(sct_list)
            ),
            critical=False,
        ).sign(self.intermediate_key, hashes.SHA384())
        # What the CT log signed must be exactly what a verifier reconstructs.
        assert cert.tbs_precertificate_bytes == precert.tbs_certificate_bytes
        return cert

    def _sct_list(self, tbs: bytes, *, timestamp: dt.datetime) -> bytes:
        """An RFC 6962 SignedCertificateTimestampList holding one precert SCT by our CT log."""
        millis = int(timestamp.timestamp() * 1000)
        issuer_key_hash = _key_id(self.intermediate_key.public_key())
        extensions = b""
        signed = (
            struct.pack("!BBQH", 0, 0, millis, 1)  # v1, certificate_timestamp, time, precert
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", len(extensions))
            + extensions
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            struct.pack("!B", 0)
            + self.ct_log_id
            + struct.pack("!QH", millis, len(extensions))
            + extensions
            + struct.pack("!BBH", 4, 3, len(signature))  # sha256, ecdsa
            + signature
        )
        serialized = struct.pack("!H", len(sct)) + sct
        return struct.pack("!H", len(serialized)) + serialized

    # -- Rekor ----------------------------------------------------------------------------------

    @staticmethod
    def dsse_entry_body(envelope: dict[str, Any], certificate: x509.Certificate) -> bytes:
        """Rekor's canonicalized `dsse` 0.0.1 body for an envelope signed by `certificate`."""
        payload = base64.b64decode(envelope["payload"])
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        return rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(rfc8785.dumps(envelope)).hexdigest(),
                    },
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(payload).hexdigest(),
                    },
                    "signatures": [
                        {"signature": s["sig"], "verifier": _b64(pem)}
                        for s in envelope["signatures"]
                    ],
                },
            }
        )

    def log_entry(self, body: bytes, *, integrated_time: int | None = None) -> LoggedEntry:
        """Append `body` to the log; returns it with inclusion proof, checkpoint and SET."""
        now = int(dt.datetime.now(dt.UTC).timestamp())
        when = integrated_time if integrated_time is not None else now
        with self._lock:
            index = len(self.leaves)
            self.leaves.append(_leaf_hash(body))
            leaves = list(self.leaves)
        root = _tree_hash(leaves)
        log_id = self.rekor_log_id
        note = f"{self.name} - {self.tree_id}\n{len(leaves)}\n{_b64(root)}\n"
        note_sig = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 {self.name} {_b64(log_id[:4] + note_sig)}\n"
        promise = rfc8785.dumps(
            {
                "body": _b64(body),
                "integratedTime": when,
                "logID": log_id.hex(),
                "logIndex": index,
            }
        )
        return LoggedEntry(
            log_index=index,
            integrated_time=when,
            body=body,
            tree_size=len(leaves),
            root_hash=root,
            hashes=tuple(_audit_path(index, leaves)),
            checkpoint=checkpoint,
            signed_entry_timestamp=self.rekor_key.sign(promise, ec.ECDSA(hashes.SHA256())),
            log_id=log_id,
        )

    # -- a whole keyless signature --------------------------------------------------------------

    def sign_bundle(
        self,
        payload: bytes,
        *,
        identity: str = "alice@example.com",
        issuer: str = "https://issuer.example.com",
        payload_type: str = INTOTO_PAYLOAD_TYPE,
        integrated_time: int | None = None,
        legacy_issuer_extension: bool = True,
    ) -> dict[str, Any]:
        """What `sigstore sign` would produce against this deployment: a bundle v0.3 (JSON)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        cert = self.issue_certificate(
            key.public_key(),
            identity=identity,
            issuer=issuer,
            not_before=now,
            legacy_issuer_extension=legacy_issuer_extension,
        )
        signature = key.sign(_pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
        envelope = {
            "payload": _b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": _b64(signature)}],
        }
        entry = self.log_entry(
            self.dsse_entry_body(envelope, cert),
            integrated_time=integrated_time
            if integrated_time is not None
            else int(now.timestamp()) + 1,
        )
        return {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [entry.bundle_json()],
            },
            "dsseEnvelope": envelope,
        }

    # -- trust material -------------------------------------------------------------------------

    def _log_instance(self, key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, Any]:
        public = key.public_key()
        return {
            "baseUrl": url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": _b64(_spki_der(public)),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": _iso(self.created)},
            },
            "logId": {"keyId": _b64(_key_id(public))},
        }

    def trusted_root(self) -> dict[str, Any]:
        chain = [self.intermediate_cert, self.root_cert]  # leaf-most first
        return {
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [self._log_instance(self.rekor_key, self.rekor_url)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "modelctl-test", "commonName": self.name},
                    "uri": self.fulcio_url,
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))}
                            for c in chain
                        ]
                    },
                    "validFor": {"start": _iso(self.created)},
                }
            ],
            "ctlogs": [self._log_instance(self.ct_key, f"{self.fulcio_url}/ct")],
            "timestampAuthorities": [],
        }

    def write_trusted_root(self, path: Path) -> Path:
        path.write_text(json.dumps(self.trusted_root(), indent=2))
        return path

    def client_trust_config(self, *, oidc_url: str = "http://127.0.0.1:1/oidc") -> dict[str, Any]:
        def service(url: str) -> dict[str, Any]:
            return {
                "url": url,
                "majorApiVersion": 1,
                "validFor": {"start": _iso(self.created)},
                "operator": self.name,
            }

        return {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": self.trusted_root(),
            "signingConfig": {
                "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [service(self.fulcio_url)],
                "oidcUrls": [service(oidc_url)],
                "rekorTlogUrls": [service(self.rekor_url)],
                "tsaUrls": [],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"},
            },
        }

    def write_client_trust_config(self, path: Path) -> Path:
        path.write_text(json.dumps(self.client_trust_config(), indent=2))
        return path


def fake_identity_token(
    *,
    email: str = "alice@example.com",
    issuer: str = "https://issuer.example.com",
    lifetime: int = 300,
) -> str:
    """An OIDC ID token as sigstore-python reads it (claims only; the fake Fulcio trusts it).

    sigstore-python does not verify the token's signature (Fulcio does), so an unsigned
    (`alg: none`) JWT carries the claims.
    """
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {
        "iss": issuer,
        "sub": email,
        "email": email,
        "email_verified": True,
        "aud": "sigstore",
        "iat": now - 1,
        "nbf": now - 1,
        "exp": now + lifetime,
    }

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


# --- a local Fulcio + Rekor for keyless signing -------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")  # no pooled socket left for the GC to warn about
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(self.path)
        deployment = self.server.deployment
        if self.path == "/api/v2/signingCert":
            self._fulcio(deployment, request)
        elif self.path == "/api/v1/log/entries":
            self._rekor(deployment, request)
        else:
            self._reply(404, {"code": 404, "message": f"no route {self.path}"})

    def _fulcio(self, deployment: FakeSigstore, request: dict[str, Any]) -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        except (ValueError, IndexError):
            self._reply(401, {"code": 401, "message": "invalid identity token"})
            return
        if self.server.reject_tokens:
            self._reply(401, {"code": 401, "message": "There was an error processing the token"})
            return
        csr = x509.load_pem_x509_csr(base64.b64decode(request["certificateSigningRequest"]))
        if not csr.is_signature_valid:  # proof of possession
            self._reply(400, {"code": 400, "message": "bad CSR signature"})
            return
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        cert = deployment.issue_certificate(
            public_key, identity=claims["email"], issuer=claims["iss"]
        )
        chain = [cert, deployment.intermediate_cert, deployment.root_cert]
        pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]
        self._reply(201, {"signedCertificateEmbeddedSct": {"chain": {"certificates": pems}}})

    def _rekor(self, deployment: FakeSigstore, request: dict[str, Any]) -> None:
        content = request["spec"]["proposedContent"]
        envelope = json.loads(content["envelope"])
        cert = x509.load_pem_x509_certificate(base64.b64decode(content["verifiers"][0]))
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        payload = base64.b64decode(envelope["payload"])
        for sig in envelope["signatures"]:  # Rekor checks the envelope before logging it
            key.verify(
                base64.b64decode(sig["sig"]),
                _pae(envelope["payloadType"], payload),
                ec.ECDSA(hashes.SHA256()),
            )
        entry = deployment.log_entry(deployment.dsse_entry_body(envelope, cert))
        self._reply(201, entry.rekor_response())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, deployment: FakeSigstore) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.deployment = deployment
        self.requests: list[str] = []
        self.reject_tokens = False


@dataclass
class FakeSigstoreServer:
    """Fulcio and Rekor of a `FakeSigstore`, over HTTP on one 127.0.0.1 port."""

    deployment: FakeSigstore
    server: _Server

    @property
    def requests(self) -> list[str]:
        return self.server.requests

    def reject_tokens(self) -> None:
        self.server.reject_tokens = True

    @classmethod
    @contextmanager
    def running(cls, deployment: FakeSigstore) -> Iterator[FakeSigstoreServer]:
        server = _Server(deployment)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        deployment.fulcio_url = base  # sigstore joins "/api/v2/signingCert" onto the host
        deployment.rekor_url = base  # and "/api/v1/log/entries" onto the Rekor base URL
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield cls(deployment=deployment, server=server)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
