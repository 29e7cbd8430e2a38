"""One sign-in's secrets between the redirect to the provider and its return: the state, the
nonce and the PKCE verifier, kept in a signed, HttpOnly cookie bound to this browser (the
provider sees only the state and the verifier's S256 challenge). A state is good once: the
callback spends it in `SpentStates` before anything else, so a replayed callback is refused
even while its cookie lives.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass

from registry.web import session as websession
from registry.web.oidc_client import new_verifier

FLOW_COOKIE = "mctl_oidc"
FLOW_SECONDS = 600  # the person has ten minutes at the provider
_MAX_COOKIE = 1024


@dataclass(frozen=True, slots=True)
class Flow:
    state: str
    nonce: str
    verifier: str
    next: str  # where to go after sign-in: a path on this site (checked by the caller)
    issued: int


def new_flow(next_url: str) -> Flow:
    return Flow(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=new_verifier(),
        next=next_url,
        issued=int(time.time()),
    )


def encode_flow(key: bytes, flow: Flow) -> str:
    payload = json.dumps(
        {"s": flow.state, "n": flow.nonce, "v": flow.verifier, "x": flow.next, "i": flow.issued},
        separators=(",", ":"),
    ).encode()
    body = base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")
    return f"{body}.{websession.sign(key, 'oidc-flow', payload)}"


def decode_flow(key: bytes, cookie: str | None, *, now: float | None = None) -> Flow | None:
    """The flow a cookie stands for, or None: missing, tampered, malformed or expired."""
    if not cookie or len(cookie) > _MAX_COOKIE or cookie.count(".") != 1:
        return None
    body, mac = cookie.split(".")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        return None
    if not hmac.compare_digest(mac, websession.sign(key, "oidc-flow", payload)):
        return None
    try:
        data = json.loads(payload)
        flow = Flow(
            state=str(data["s"]),
            nonce=str(data["n"]),
            verifier=str(data["v"]),
            next=str(data["x"]),
            issued=int(data["i"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    now = time.time() if now is None else now
    if not flow.issued <= now + 60 or now - flow.issued > FLOW_SECONDS:
        return None
    return flow


class SpentStates:
    """States already used by a callback, remembered for as long as their cookie could live.

    Per server process: behind several servers the provider's single-use authorization code
    is what refuses a replay that lands on another process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: dict[str, float] = {}

    def spend(self, state: str, *, now: float | None = None) -> bool:
        """True the first time `state` is spent; False ever after (a replay)."""
        now = time.time() if now is None else now
        with self._lock:
            for old in [s for s, at in self._spent.items() if now - at > 2 * FLOW_SECONDS]:
                del self._spent[old]
            if state in self._spent:
                return False
            self._spent[state] = now
            return True
