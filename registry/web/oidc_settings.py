"""Single sign-on settings (OpenID Connect), read once from the environment, and the two
decisions they drive: which role a person's ID token claims map to, and the name the audit log
gives that person.

A person whose claims match no configured group is refused (fail closed): to let everyone in the
provider read, map `reader` to a group everyone is in (`reader=staff`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from registry.errors import StorageError
from registry.service.tokens import Role

ISSUER = "MODELCTL_OIDC_ISSUER"
CLIENT_ID = "MODELCTL_OIDC_CLIENT_ID"
CLIENT_SECRET = "MODELCTL_OIDC_CLIENT_SECRET"  # noqa: S105 (a variable's name)
ROLE_CLAIM = "MODELCTL_OIDC_ROLE_CLAIM"
ROLES = "MODELCTL_OIDC_ROLES"
REDIRECT_URL = "MODELCTL_OIDC_REDIRECT_URL"
CALLBACK_PATH = "/ui/oidc/callback"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,190}")  # the audit actor column holds 200


@dataclass(frozen=True, slots=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    redirect_url: str
    role_claim: str = "groups"
    #: (role, group) pairs; a person gets the highest role one of their groups is mapped to.
    roles: tuple[tuple[Role, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OidcSettings | None:
        """None when MODELCTL_OIDC_ISSUER is unset (token sign-in only); a StorageError, at
        start, when it is set but the rest is missing or malformed."""
        env = os.environ if env is None else env
        issuer = env.get(ISSUER, "").strip()
        if not issuer:
            return None
        missing = [n for n in (CLIENT_ID, CLIENT_SECRET, REDIRECT_URL, ROLES) if not env.get(n)]
        if missing:
            raise StorageError(f"{ISSUER} is set but not {', '.join(missing)}")
        _require_https(ISSUER, issuer)
        redirect = env[REDIRECT_URL].strip()
        _require_https(REDIRECT_URL, redirect)
        if urlsplit(redirect).path != CALLBACK_PATH:
            raise StorageError(f"{REDIRECT_URL} must end in {CALLBACK_PATH}")
        return cls(
            issuer=issuer,
            client_id=env[CLIENT_ID].strip(),
            client_secret=env[CLIENT_SECRET],
            redirect_url=redirect,
            role_claim=env.get(ROLE_CLAIM, "").strip() or "groups",
            roles=parse_roles(env[ROLES]),
        )

    def role_for(self, claims: Mapping[str, Any]) -> Role | None:
        """The highest role any of the person's groups maps to; None: no mapped group."""
        groups = set(_claim_values(claims, self.role_claim))
        granted = [role for role, group in self.roles if group in groups]
        return max(granted) if granted else None


def parse_roles(text: str) -> tuple[tuple[Role, str], ...]:
    """`security=sec-team,admin=platform-admins,reader=staff`: a role may appear more than once."""
    pairs: list[tuple[Role, str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        role, sep, group = item.partition("=")
        if not sep or not group.strip():
            raise StorageError(f"{ROLES}: {item.strip()!r} is not ROLE=GROUP")
        try:
            pairs.append((Role.parse(role), group.strip()))
        except Exception as exc:  # InputError: an unknown role name is a configuration error
            raise StorageError(f"{ROLES}: {exc}") from exc
    if not pairs:
        raise StorageError(f"{ROLES} maps no group to a role")
    return tuple(pairs)


def _claim_values(claims: Mapping[str, Any], path: str) -> list[str]:
    """A claim's string values; a dotted path reaches into objects (`realm_access.roles`)."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def person_name(claims: Mapping[str, Any]) -> str | None:
    """`oidc:<email>` when the provider vouches for the email, else `oidc:<sub>`; None when
    neither is a short printable string (the name goes into the audit log and the cookie)."""
    email = claims.get("email")
    if (
        claims.get("email_verified") is True
        and isinstance(email, str)
        and _PRINTABLE.fullmatch(email)
    ):
        return f"oidc:{email}"
    sub = claims.get("sub")
    if isinstance(sub, str) and _PRINTABLE.fullmatch(sub):
        return f"oidc:{sub}"
    return None


def _require_https(name: str, url: str) -> None:
    """HTTPS, or plain HTTP to this machine only (a provider on loopback, as in tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return
    raise StorageError(f"{name} must be an https:// URL (got {url!r:.80})")
