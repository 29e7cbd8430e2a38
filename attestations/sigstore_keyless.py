"""Sigstore keyless signing (model_signing's `sign sigstore` / `verify sigstore` method).

Bundle: `verificationMaterial.certificate` = a short-lived Fulcio leaf (DER) binding an
ephemeral P-256 key to an OIDC identity (SAN) and issuer (extension), one Rekor transparency-log
entry (`tlogEntries`, with inclusion proof, signed checkpoint and usually an inclusion promise),
and one DSSE signature over the in-toto statement.

Signing needs the network (the OIDC token's Fulcio, and Rekor). Verification does not:
sigstore-python checks the certificate chain, SCT, log inclusion and signatures against a pinned
trusted root, so a keyless bundle verifies offline given `trusted_root.json`.

`sigstore` is imported inside the methods: importing `attestations` stays fast, and only the
keyless paths pay for sigstore's import (about a second). It is also optional (the `sigstore`
extra): without it, building a keyless signer or verifier raises `MissingDependencyError`, one
line naming the extra to install, never an `ImportError` traceback.

Only sigstore-python's public modules are used (`sigstore.dsse`, `errors`, `models`, `oidc`,
`sign`, `verify`); `sigstore._internal` is not an API. Its transport errors (Fulcio's and
Rekor's client errors) are therefore told apart by the HTTP request that failed (see
`_service_failure`), which rests on the services' public REST paths, not on private classes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from attestations.bundle import Bundle
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.errors import (
    InvalidInputError,
    MalformedDocumentError,
    MissingDependencyError,
    SignatureVerificationError,
    SigningError,
)
from attestations.signing import SignerIdentity, SigningMethod, VerifiedEnvelope

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig, TrustedRoot
    from sigstore.verify import Verifier

_MAX_REASON = 300

#: How to get sigstore-python when it is missing (the `sigstore` extra of pyproject.toml).
SIGSTORE_INSTALL_HINT = "pip install 'modelctl[sigstore]'"

# The public REST paths of the two Sigstore services a keyless signing talks to: Fulcio issues
# the certificate (`POST /api/v2/signingCert`), Rekor records the entry (`POST /api/v1/log/entries`,
# or `/api/v2/log/entries` for Rekor v2).
_FULCIO_PATH = "/signingCert"
_REKOR_PATH = "/log/entries"


def require_sigstore(purpose: str) -> None:
    """Check that sigstore-python imports; else one line saying which extra to install.

    `purpose` names what needed it ("keyless signing", "keyless verification"). A sigstore that
    is installed but cannot import one of its own dependencies is reported the same way, naming
    the module that is missing.
    """
    try:
        import sigstore.sign  # noqa: PLC0415 - optional: sigstore (module docstring)
        import sigstore.verify  # noqa: F401, PLC0415 (imported only to learn whether it can be)
    except ImportError as exc:
        missing = exc.name or "sigstore"
        raise MissingDependencyError(
            f"{purpose} needs the optional package sigstore (cannot import {missing}); "
            f"install it with: {SIGSTORE_INSTALL_HINT}"
        ) from exc


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line (sigstore's messages may span several), capped."""
    text = " ".join(str(exc).split())
    if not text and exc.__cause__ is not None:  # e.g. FulcioClientError wrapping an HTTPError
        text = " ".join(str(exc.__cause__).split())
    text = text or type(exc).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


class SigstoreSigner:
    """Keyless signing through sigstore-python: OIDC token → Fulcio certificate → Rekor entry.

    With no `trust_config` it signs against the Sigstore public-good instance
    (`ClientTrustConfig.production()`, which refreshes the trust root over TUF); with one, against
    the private deployment that `ClientTrustConfig` JSON file describes (trusted root and signing
    config: Fulcio, Rekor, OIDC and TSA URLs).

    Only in-toto payloads can be signed (sigstore-python's `sign_dsse` signs in-toto statements
    only). The payload bytes are signed exactly as given, never re-serialised. Every failure
    (unreachable services, a rejected token, a bad trust config) raises `SigningError` with a
    one-line reason; the token itself never appears in a message.
    """

    method: SigningMethod = "sigstore"

    def __init__(self, identity_token: str, *, trust_config: Path | None = None) -> None:
        require_sigstore("Sigstore keyless signing")
        self._token = identity_token.strip()
        self._trust_config_path = trust_config

    def _trust_config(self) -> ClientTrustConfig:
        from sigstore.errors import Error as SigstoreError  # noqa: PLC0415 - optional: sigstore (module docstring)
        from sigstore.models import ClientTrustConfig  # noqa: PLC0415

        path = self._trust_config_path
        if path is None:
            try:
                return ClientTrustConfig.production()
            except SigstoreError as exc:
                raise SigningError(
                    f"cannot refresh the Sigstore public-good trust root over TUF: {_one_line(exc)}"
                ) from exc
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SigningError(f"cannot read the trust config {path}: {_one_line(exc)}") from exc
        try:
            config = ClientTrustConfig.from_json(text)
            # Both are built on access: check the root's media type and that the signing
            # config names a usable Fulcio and Rekor now, rather than in the middle of signing.
            _root, _signing = config.trusted_root, config.signing_config
        except (ValueError, SigstoreError) as exc:  # pydantic's ValidationError is a ValueError
            raise SigningError(f"invalid trust config {path}: {_one_line(exc)}") from exc
        return config

    def sign(self, payload_type: str, payload: bytes) -> Bundle:
        if payload_type != INTOTO_PAYLOAD_TYPE:
            raise SigningError(
                f"Sigstore keyless signing only signs in-toto statements "
                f"({INTOTO_PAYLOAD_TYPE}), not {payload_type!r:.100}"
            )
        import requests  # noqa: PLC0415 - 50 ms, for a failed Sigstore request only
        from sigstore import dsse  # noqa: PLC0415 - optional: sigstore (module docstring)
        from sigstore.errors import Error as SigstoreError  # noqa: PLC0415
        from sigstore.oidc import ExpiredIdentity, IdentityError, IdentityToken  # noqa: PLC0415
        from sigstore.sign import SigningContext  # noqa: PLC0415

        try:
            statement = dsse.Statement(payload)
        except SigstoreError as exc:
            raise SigningError(
                f"payload is not a valid in-toto statement: {_one_line(exc)}"
            ) from exc
        if not self._token:
            raise SigningError("identity token rejected: the token is empty")
        try:
            token = IdentityToken(self._token)
        except IdentityError as exc:
            raise SigningError(f"identity token rejected: {_one_line(exc)}") from exc
        config = self._trust_config()

        try:
            context = SigningContext.from_trust_config(config)
            # One signer per signature: its certificate cache never outlives this call, so the
            # cached-certificate expiry (sigstore's private ExpiredCertificate) cannot occur.
            with context.signer(token, cache=True) as signer:
                signed = signer.sign_dsse(statement)
        except ExpiredIdentity as exc:
            raise SigningError("identity token rejected: it expired while signing") from exc
        except requests.RequestException as exc:
            # connection refused, DNS failure, timeout, TLS error, or an answer that is not JSON
            raise SigningError(f"cannot reach Fulcio/Rekor: {_one_line(exc)}") from exc
        except SigstoreError as exc:  # e.g. an SCT or log entry that does not verify
            raise SigningError(f"Sigstore signing failed: {_one_line(exc)}") from exc
        except (KeyError, ValueError) as exc:
            raise SigningError(f"unexpected answer from Fulcio/Rekor: {_one_line(exc)}") from exc
        except Exception as exc:
            # sigstore's Fulcio and Rekor client errors are private classes deriving from
            # Exception: tell them apart by the HTTP request that failed beneath them.
            raise _service_failure(exc) from exc

        try:
            return Bundle.from_json(json.loads(signed.to_json()))
        except MalformedDocumentError as exc:  # pragma: no cover - sigstore emits v0.3 DSSE
            raise SigningError(f"sigstore produced an unusable bundle: {exc.message}") from exc


def _failed_request(exc: BaseException) -> tuple[str, str] | None:
    """The (URL, one-line reason) of the `requests.HTTPError` under `exc`, if there is one.

    sigstore's service clients raise their own errors `from` the HTTP error (Fulcio) or with it
    as their argument (Rekor); both ways are followed, a few links deep at most.
    """
    import requests  # noqa: PLC0415 - 50 ms, for a failed Sigstore request only

    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 8:
        current = pending.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, requests.HTTPError):
            request = current.request
            url = str(request.url) if request is not None and request.url else ""
            return url, _one_line(current)
        pending += [a for a in current.args if isinstance(a, BaseException)]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return None


def _service_failure(exc: BaseException) -> SigningError:
    """A one-line `SigningError` for a failure inside sigstore's Fulcio or Rekor clients."""
    failed = _failed_request(exc)
    reason = failed[1] if failed is not None and not str(exc).strip() else _one_line(exc)
    url = failed[0] if failed is not None else ""
    if _FULCIO_PATH in url:
        return SigningError(f"identity token rejected by Fulcio: {reason}")
    if _REKOR_PATH in url:
        return SigningError(f"Rekor refused the log entry: {reason}")
    return SigningError(f"Sigstore signing failed: {reason}")


class SigstoreIdentityVerifier:
    """Trusts keyless signatures by one exact (identity, OIDC issuer), and nothing else. Offline.

    What is trusted is fixed at construction: a pinned trusted root (Fulcio CAs, Rekor and CT log
    keys) read from a file, plus the expected identity (the certificate's SAN: email, URI or
    Sigstore othername, compared exactly) and the OIDC issuer URL (compared exactly). No network
    is used: sigstore-python verifies everything against the trusted root.

    Steps:

    1. The bundle carries Sigstore verification material: a single signing certificate
       (`material.kind == "certificate"`) and a transparency-log entry. Anything else is "not a
       keyless signature"; no tlog entry is refused (log inclusion is required).
    2. sigstore-python parses the bundle (`Bundle.from_json`), which insists on exactly one tlog
       entry with an inclusion proof and checkpoint, and an inclusion promise or a signed
       timestamp. A bundle it cannot read is a `MalformedDocumentError`.
    3. `Verifier(trusted_root=…).verify_dsse(bundle, policy.Identity(identity=…, issuer=…))`:
       the verified time (Rekor integrated time bound by the inclusion promise, and/or RFC 3161
       timestamps from the root's TSAs); the certificate chain to the root's CA at that time; the
       embedded SCT against the root's CT keys; KeyUsage digitalSignature and EKU codeSigning;
       the SAN and OIDC-issuer extension (`1.3.6.1.4.1.57264.1.1`) against the policy; the Merkle
       inclusion proof, the checkpoint signature and the inclusion promise against the root's
       Rekor keys; the integrated time inside the certificate's validity; the DSSE signature over
       the PAE with the certificate's key; and that the log entry records this envelope (payload
       hash and signature). Any failure is a `SignatureVerificationError`.
    4. Returns the payload and payload type exactly as signed (the caller checks that the type
       is in-toto) with `SignerIdentity(method="sigstore", subject=identity, issuer=issuer)`.
    """

    def __init__(self, *, identity: str, issuer: str, trusted_root: Path) -> None:
        require_sigstore("Sigstore keyless verification")
        self._identity, self._issuer = _check_identity(identity, issuer)
        self._verifier = _load_verifier(trusted_root)
        self._root_source = str(trusted_root)

    @classmethod
    def production(cls, identity: str, issuer: str) -> SigstoreIdentityVerifier:
        """A verifier for the Sigstore public-good instance, using the trusted root offline.

        This is sigstore-python's `ClientTrustConfig.production(offline=True)`: the trusted root
        in the local TUF cache (seeded from the copy embedded in sigstore-python), with no TUF
        refresh and no network. That copy can lag behind the live instance (key rotations), so
        refresh it (`ClientTrustConfig.production()` while online) or pin a `trusted_root.json`
        and use the constructor for reproducible verification. Side effect (sigstore-python's):
        the embedded copy is written to the user's cache directory on first use.
        """
        require_sigstore("Sigstore keyless verification")
        from sigstore.errors import Error as SigstoreError  # noqa: PLC0415 - optional: sigstore (module docstring)
        from sigstore.models import ClientTrustConfig  # noqa: PLC0415
        from sigstore.verify import Verifier  # noqa: PLC0415

        verifier = cls.__new__(cls)
        verifier._identity, verifier._issuer = _check_identity(identity, issuer)
        try:
            root = ClientTrustConfig.production(offline=True).trusted_root
            verifier._verifier = Verifier(trusted_root=root)
        except (OSError, ValueError, SigstoreError) as exc:
            raise InvalidInputError(
                f"cannot load the cached Sigstore public-good trusted root: {_one_line(exc)}"
            ) from exc
        verifier._root_source = "sigstore public-good, cached trusted root"
        return verifier

    def verify(self, bundle: Bundle) -> VerifiedEnvelope:
        from cryptography.x509 import ExtensionNotFound  # noqa: PLC0415 - x509 costs 20 ms: keyless only
        from sigstore.errors import Error as SigstoreError  # noqa: PLC0415 - optional: sigstore (module docstring)
        from sigstore.models import Bundle as SigstoreBundle  # noqa: PLC0415
        from sigstore.verify import policy  # noqa: PLC0415

        # (1) keyless material only, with the transparency-log entry it must carry
        material = bundle.material
        if material.kind != "certificate":
            raise SignatureVerificationError(
                f"not a keyless signature: the bundle carries a {material.kind.replace('_', ' ')}"
                ", not a Sigstore signing certificate"
            )
        if not material.tlog_entries:
            raise SignatureVerificationError(
                "keyless signature has no transparency-log entry: log inclusion is required"
            )

        # (2) sigstore-python's own reading of the bundle
        try:
            sigstore_bundle = SigstoreBundle.from_json(json.dumps(bundle.raw))
        except (SigstoreError, ValueError) as exc:
            raise MalformedDocumentError(
                f"not a valid Sigstore bundle: {_one_line(exc)}", details=str(exc)
            ) from exc

        # (3) certificate, SCT, identity, log inclusion, signature: all offline
        try:
            payload_type, payload = self._verifier.verify_dsse(
                sigstore_bundle, policy.Identity(identity=self._identity, issuer=self._issuer)
            )
        except SigstoreError as exc:  # VerificationError, CertValidationError, InvalidEnvelope…
            raise SignatureVerificationError(
                f"Sigstore verification failed: {_one_line(exc)}", details=str(exc)
            ) from exc
        except ExtensionNotFound as exc:
            raise SignatureVerificationError(
                f"signing certificate lacks a required extension: {_one_line(exc)}"
            ) from exc
        except ValueError as exc:  # an extension sigstore-python cannot decode
            raise SignatureVerificationError(
                f"signing certificate is not usable: {_one_line(exc)}"
            ) from exc

        # (4) the payload exactly as signed, and who signed it
        return VerifiedEnvelope(
            payload_type=payload_type,
            payload=payload,
            signer=SignerIdentity(
                method="sigstore", subject=self._identity, issuer=self._issuer, key_hint=None
            ),
            checks=(
                "bundle carries a Sigstore signing certificate and a transparency-log entry",
                f"certificate chains to a CA of the trusted root ({self._root_source}) at the "
                "log's verified time, with a valid embedded SCT, digitalSignature and codeSigning",
                f"certificate identity is {self._identity} with OIDC issuer {self._issuer}",
                "Rekor inclusion proof, signed checkpoint and inclusion promise (when present) "
                "verify with the trusted root's log key; the verified time lies in the "
                "certificate's validity",
                "ECDSA signature over the DSSE PAE verifies with the certificate's key, and the "
                "log entry records this payload and signature",
            ),
        )


def _check_identity(identity: str, issuer: str) -> tuple[str, str]:
    for name, value in (("identity", identity), ("issuer", issuer)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(f"a Sigstore verifier needs a non-empty {name}")
        if value != value.strip():
            raise InvalidInputError(f"the Sigstore {name} has surrounding whitespace: {value!r}")
    return identity, issuer


def _load_verifier(path: Path) -> Verifier:
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415 - optional: sigstore (module docstring)
    from sigstore.models import TrustedRoot  # noqa: PLC0415
    from sigstore.verify import Verifier  # noqa: PLC0415

    try:
        root: TrustedRoot = TrustedRoot.from_file(str(path))
    except OSError as exc:
        raise InvalidInputError(f"cannot read the trusted root {path}: {_one_line(exc)}") from exc
    except (ValueError, SigstoreError) as exc:  # pydantic's ValidationError is a ValueError
        raise MalformedDocumentError(f"invalid trusted root {path}: {_one_line(exc)}") from exc
    try:
        return Verifier(trusted_root=root)
    except (ValueError, SigstoreError) as exc:  # no log, no Fulcio certificate, bad DER
        raise MalformedDocumentError(f"unusable trusted root {path}: {_one_line(exc)}") from exc


__all__ = [
    "SIGSTORE_INSTALL_HINT",
    "SigstoreIdentityVerifier",
    "SigstoreSigner",
    "require_sigstore",
]
