"""Browser sessions: an API token, checked once, becomes a signed session cookie; or a person
signed in through OpenID Connect (`oidc_login`), whose name and mapped role the cookie carries.

The cookie carries no secret of the token: only the token's row id, a random session id and
the time it was issued, signed with HMAC-SHA256 under the server's session key. Every request
re-reads the token row, so revoking the token (or changing its role) ends the session at once.
A single sign-on session has no row to re-read: its role is the one the ID token's claims mapped
to at sign-in, for at most `SESSION_SECONDS` (and only while OIDC stays configured).

CSRF: the synchronizer token of a session is HMAC(key, "csrf" | session id); every form
carries it and every POST is refused without it (compared in constant time). Before sign-in,
the sign-in form is bound the same way to a short-lived pre-session cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from registry.errors import InputError, StorageError
from registry.fsutil import atomic_write

SESSION_COOKIE = "mctl_session"
PRESESSION_COOKIE = "mctl_pre"
SESSION_SECONDS = 8 * 3600
PRESESSION_SECONDS = 1800
KEY_VARIABLE = "MODELCTL_WEB_SESSION_KEY"  # hex; several servers behind one name share it
_MAX_COOKIE = 1024


def session_key(home: Path) -> bytes:
    """The HMAC key for cookies: from the environment, else `<home>/keys/web-session.key`
    (32 random bytes, made on first use, mode 0600)."""
    env = os.environ.get(KEY_VARIABLE, "").strip()
    if env:
        try:
            key = bytes.fromhex(env)
        except ValueError as exc:
            raise StorageError(f"{KEY_VARIABLE} must be hex") from exc
        if len(key) < 32:
            raise StorageError(f"{KEY_VARIABLE} must be at least 32 bytes (64 hex digits)")
        return key
    path = home / "keys" / "web-session.key"
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot create {path.parent}: {exc.strerror}") from exc
        try:
            atomic_write(path, secrets.token_bytes(32), mode=0o600, overwrite=False)
        except InputError:  # another server made it first: use theirs
            if not path.exists():
                raise
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
    if len(key) < 32:
        raise StorageError(f"{path} is too short to be a session key")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, purpose: str, payload: bytes) -> str:
    return _b64(hmac.new(key, purpose.encode() + b"|" + payload, hashlib.sha256).digest())


@dataclass(frozen=True, slots=True)
class WebSession:
    token_id: int | None  # None: a single sign-on session (`user` and `role` say who)
    sid: str  # random, per sign-in
    issued: int  # epoch seconds
    user: str | None = None  # the audit name of a person, e.g. "oidc:alice@example.com"
    role: int | None = None  # a `Role` value, mapped from the ID token's claims at sign-in

    def csrf(self, key: bytes) -> str:
        return _sign(key, "csrf", self.sid.encode())


def encode_session(key: bytes, session: WebSession) -> str:
    fields: dict[str, object] = {"t": session.token_id, "s": session.sid, "i": session.issued}
    if session.user is not None:
        fields.update(u=session.user, r=session.role)
    payload = json.dumps(fields, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_sign(key, 'session', payload)}"


def decode_session(
    key: bytes, cookie: str | None, *, now: float | None = None
) -> WebSession | None:
    """The session a cookie stands for, or None: unsigned, tampered, malformed or expired."""
    if not cookie or len(cookie) > _MAX_COOKIE or cookie.count(".") != 1:
        return None
    body, mac = cookie.split(".")
    try:
        payload = _unb64(body)
    except ValueError:
        return None
    if not hmac.compare_digest(mac, _sign(key, "session", payload)):
        return None
    try:
        data = json.loads(payload)
        user = data.get("u")
        session = WebSession(
            token_id=None if data["t"] is None else int(data["t"]),
            sid=str(data["s"]),
            issued=int(data["i"]),
            user=None if user is None else str(user),
            role=None if user is None else int(data["r"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    now = time.time() if now is None else now
    fresh = session.issued <= now + 60 and now - session.issued <= SESSION_SECONDS
    one_kind = (session.token_id is None) != (session.user is None)  # a token or a person
    return session if fresh and one_kind else None


def new_session(token_id: int) -> WebSession:
    return WebSession(token_id=token_id, sid=secrets.token_urlsafe(18), issued=int(time.time()))


def new_person_session(user: str, role: int) -> WebSession:
    return WebSession(
        token_id=None,
        sid=secrets.token_urlsafe(18),
        issued=int(time.time()),
        user=user,
        role=role,
    )


def sign(key: bytes, purpose: str, payload: bytes) -> str:
    """HMAC-SHA256 of `payload` under `key`, bound to `purpose` (base64url)."""
    return _sign(key, purpose, payload)


def new_presession() -> str:
    return secrets.token_urlsafe(18)


def presession_csrf(key: bytes, presession: str) -> str:
    return _sign(key, "login", presession.encode())


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
