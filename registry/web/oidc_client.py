"""The OpenID Connect relying party: discovery, the authorization URL (code flow with PKCE
S256, state and nonce), the code exchange at the token endpoint, and validation of the ID token
against the provider's JWKS (RS256 or ES256; issuer, audience, expiry with a small clock skew,
nonce). Every failure is an `OidcError` with a one-line reason; nothing here trusts the browser.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
    MissingKeyError,
)
from joserfc.jwk import KeySet

from registry.web.oidc_settings import OidcSettings

ALGORITHMS = ("RS256", "ES256")
CLOCK_SKEW_SECONDS = 60
METADATA_SECONDS = 300  # discovery and JWKS are re-read this often (keys rotate)
_MAX_RESPONSE = 256 * 1024
_TIMEOUT = httpx.Timeout(10.0)


class OidcError(Exception):
    """Sign-in through the provider failed; `message` is one line for the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None


def new_verifier() -> str:
    """A PKCE code verifier: 64 characters of base64url (RFC 7636 allows 43 to 128)."""
    return secrets.token_urlsafe(48)


def challenge_of(verifier: str) -> str:
    """The S256 code challenge: base64url(SHA-256(verifier)), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class OidcClient:
    """One per server: caches discovery and the JWKS for `METADATA_SECONDS`."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._keys: tuple[float, KeySet] | None = None

    def metadata(self) -> ProviderMetadata:
        with self._lock:
            if (
                self._metadata is not None
                and time.monotonic() - self._metadata[0] < METADATA_SECONDS
            ):
                return self._metadata[1]
        url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = _get_json(url, "discovery")
        # OpenID Connect Discovery 1.0, 4.3: the document's issuer is exactly the configured one.
        if doc.get("issuer") != self.settings.issuer:
            raise OidcError(
                f"the provider's discovery names issuer {str(doc.get('issuer'))!r:.80}, "
                f"not {self.settings.issuer!r}"
            )
        try:
            meta = ProviderMetadata(
                issuer=doc["issuer"],
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
                end_session_endpoint=(
                    str(doc["end_session_endpoint"]) if doc.get("end_session_endpoint") else None
                ),
            )
        except KeyError as exc:
            raise OidcError(f"the provider's discovery document lacks {exc.args[0]}") from None
        methods = doc.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise OidcError("the provider does not support PKCE with S256")
        with self._lock:
            self._metadata = (time.monotonic(), meta)
        return meta

    def authorization_url(self, *, state: str, nonce: str, verifier: str) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": self.settings.redirect_url,
                "scope": "openid email profile",
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge_of(verifier),
                "code_challenge_method": "S256",
            }
        )
        endpoint = self.metadata().authorization_endpoint
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def exchange(self, code: str, verifier: str) -> str:
        """The ID token for an authorization code (client_secret_basic, with the verifier)."""
        try:
            response = httpx.post(
                self.metadata().token_endpoint,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.settings.redirect_url,
                    "code_verifier": verifier,
                },
                auth=(self.settings.client_id, self.settings.client_secret),
                headers={"Accept": "application/json"},
                timeout=_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise OidcError(f"the provider's token endpoint is unreachable: {exc}") from None
        body = _json_body(response, "token")
        if response.status_code != 200:
            error = str(body.get("error", response.status_code))[:80]
            raise OidcError(f"the provider refused the authorization code ({error})")
        token = body.get("id_token")
        if not isinstance(token, str) or not token:
            raise OidcError("the provider's token response has no ID token")
        return token

    def validate(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The ID token's claims once its signature, issuer, audience, expiry and nonce hold."""
        try:
            token = self._decode(id_token, self._key_set(refresh=False))
        except BadSignatureError:
            raise OidcError("the ID token's signature does not verify") from None
        except (InvalidKeyIdError, MissingKeyError):
            # an unknown key id: the provider may have rotated its keys since we read them
            try:
                token = self._decode(id_token, self._key_set(refresh=True))
            except BadSignatureError:
                raise OidcError("the ID token's signature does not verify") from None
            except JoseError:
                raise OidcError("the ID token is not signed by a key of the provider") from None
        except JoseError as exc:  # an algorithm outside RS256/ES256, a broken token
            raise OidcError(f"the ID token is malformed or unsupported ({exc.error})") from None
        claims = token.claims
        registry = jwt.JWTClaimsRegistry(
            leeway=CLOCK_SKEW_SECONDS,
            iss={"essential": True, "value": self.settings.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise OidcError("the ID token has expired") from None
        except MissingClaimError as exc:
            raise OidcError(f"the ID token lacks the claim {exc.claim}") from None
        except JoseError as exc:
            claim = getattr(exc, "claim", "?")
            what = {"iss": "issuer", "aud": "audience", "nonce": "nonce"}.get(claim, claim)
            raise OidcError(f"the ID token's {what} is wrong") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise OidcError("the ID token is for several audiences and not authorized for us")
        iat = claims["iat"]
        if not isinstance(iat, int | float) or iat > time.time() + CLOCK_SKEW_SECONDS:
            raise OidcError("the ID token was issued in the future")
        return claims

    def _decode(self, id_token: str, keys: KeySet) -> jwt.Token:
        return jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))

    def _key_set(self, *, refresh: bool) -> KeySet:
        with self._lock:
            cached = self._keys
        if not refresh and cached is not None and time.monotonic() - cached[0] < METADATA_SECONDS:
            return cached[1]
        doc = _get_json(self.metadata().jwks_uri, "JWKS")
        try:
            keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OidcError(f"the provider's JWKS is malformed: {exc}") from None
        with self._lock:
            self._keys = (time.monotonic(), keys)
        return keys


def _get_json(url: str, what: str) -> Mapping[str, Any]:
    try:
        response = httpx.get(url, timeout=_TIMEOUT, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise OidcError(f"the provider's {what} is unreachable: {exc}") from None
    if response.status_code != 200:
        raise OidcError(f"the provider's {what} answered HTTP {response.status_code}")
    return _json_body(response, what)


def _json_body(response: httpx.Response, what: str) -> dict[str, Any]:
    if len(response.content) > _MAX_RESPONSE:
        raise OidcError(f"the provider's {what} response is too large")
    try:
        body = response.json()
    except ValueError:
        raise OidcError(f"the provider's {what} response is not JSON") from None
    if not isinstance(body, dict):
        raise OidcError(f"the provider's {what} response is not a JSON object")
    return body
