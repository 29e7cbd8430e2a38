"""A small but real OpenID Connect provider on 127.0.0.1 for the single sign-on tests.

Stdlib HTTP server (``ThreadingHTTPServer``) on an ephemeral port, signing with joserfc keys:

    GET  /.well-known/openid-configuration   discovery (issuer, endpoints, S256, RS256/ES256)
    GET  /jwks                               the public signing keys
    GET  /authorize                          checks client, redirect URI, S256 challenge; the
                                             person is already signed in here (`person`), so it
                                             redirects back at once with a single-use code
    POST /token                              client_secret_basic; checks the code, the redirect
                                             URI and the PKCE verifier; issues a signed ID token
    GET  /logout                             end_session_endpoint: records the call and
                                             redirects to post_logout_redirect_uri

Misbehaviours for the tests, set as attributes before the flow: `token_issuer` (an ID token
from another issuer), `sign_with_stranger` (a key not in the JWKS, same kid), `lifetime`
(negative: already expired), `nonce_override`, `audience`, `algorithm` ("RS256" or "ES256");
`rotate()` replaces the signing keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None


@dataclass
class FakeOidcProvider:
    client_id: str = "modelctl"
    client_secret: str = "s3cret-of-the-client"
    redirect_uris: tuple[str, ...] = ()
    person: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "u-1001",
            "email": "alice@example.com",
            "email_verified": True,
            "groups": ["sec-team", "staff"],
        }
    )
    algorithm: str = "RS256"
    lifetime: int = 300
    token_issuer: str | None = None
    sign_with_stranger: bool = False
    nonce_override: str | None = None
    audience: str | list[str] | None = None  # None: our client id
    logouts: list[dict[str, str]] = field(default_factory=list)
    token_requests: int = 0

    def __post_init__(self) -> None:
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})
        self._codes: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeOidcProvider:
        provider = self

        class Handler(_Handler):
            owner = provider

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def rotate(self) -> None:
        """New signing keys under new key ids (the old ones leave the JWKS)."""
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-2", "use": "sig"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-2", "use": "sig"})

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet([self.rsa, self.ec]).as_dict(private=False))

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str]]:
        """(status, headers): a redirect back with a code, or 400 for a bad request."""
        if query.get("client_id") != self.client_id:
            return 400, {}
        if query.get("redirect_uri") not in self.redirect_uris:
            return 400, {}  # never redirect to an unregistered URI
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return 400, {}
        if len(query.get("code_challenge", "")) != 43:
            return 400, {}
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Grant(
                self.client_id, query["redirect_uri"], query["code_challenge"], query.get("nonce")
            )
        back = urlencode({"code": code, "state": query.get("state", "")})
        return 302, {"Location": f"{query['redirect_uri']}?{back}"}

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.token_requests += 1
        if not self._client_authenticated(authorization):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # single use
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        if not verifier or base64.urlsafe_b64encode(digest).decode().rstrip("=") != grant.challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        now = int(time.time())
        claims = dict(self.person)
        claims.update(
            iss=self.token_issuer or self.issuer,
            aud=self.audience if self.audience is not None else self.client_id,
            iat=now,
            exp=now + self.lifetime,
        )
        nonce = self.nonce_override if self.nonce_override is not None else grant.nonce
        if nonce is not None:
            claims["nonce"] = nonce
        key: RSAKey | ECKey = self.rsa if self.algorithm == "RS256" else self.ec
        if self.sign_with_stranger:  # same kid, another key: only the signature gives it away
            kid = str(key.kid)
            key = (
                RSAKey.generate_key(2048, parameters={"kid": kid})
                if self.algorithm == "RS256"
                else ECKey.generate_key("P-256", parameters={"kid": kid})
            )
        id_token = jwt.encode({"alg": self.algorithm, "kid": key.kid}, claims, key)
        return 200, {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "id_token": id_token,
        }

    def _client_authenticated(self, authorization: str) -> bool:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.client_id) and secrets.compare_digest(
            password, self.client_secret
        )


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOidcProvider
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/.well-known/openid-configuration":
            self._send(200, self.owner.discovery())
        elif url.path == "/jwks":
            self._send(200, self.owner.jwks())
        elif url.path == "/authorize":
            status, headers = self.owner.authorize(query)
            self._send(status, None if status == 302 else {"error": "invalid_request"}, headers)
        elif url.path == "/logout":
            self.owner.logouts.append(query)
            target = query.get("post_logout_redirect_uri", "")
            self._send(302, None, {"Location": target}) if target else self._send(200, {})
        else:
            self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        if urlsplit(self.path).path != "/token":
            self._send(404, {"error": "not_found"})
            return
        form = {k: v[-1] for k, v in parse_qs(body).items()}
        status, payload = self.owner.token(form, self.headers.get("Authorization", ""))
        self._send(status, payload, {"Cache-Control": "no-store"})
