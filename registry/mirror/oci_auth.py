"""Registry credentials as other OCI tools read them, and the registry token flow.

Credentials: `REGISTRY_AUTH_FILE` (podman, skopeo) when set, else `~/.docker/config.json`
(`DOCKER_CONFIG` moves its folder); both hold `{"auths": {"HOST": {"auth": base64(user:pass)}}}`.
Credential helpers (`credsStore`) are not run: running a program named in a config file is
not something a registry client should do unasked.

The token flow (distribution's "token authentication"): a 401 carrying
`WWW-Authenticate: Bearer realm="…",service="…",scope="…"` is answered by fetching a token
from the realm (with the basic credentials, when there are any) and retrying with it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from registry.errors import InputError

_PARAM = re.compile(r'([A-Za-z]+)="([^"]*)"')


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = ""

    def __repr__(self) -> str:  # never print a password, even in a traceback
        return f"Credentials(username={self.username!r}, password=***)"


def auth_file() -> Path:
    explicit = os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        return Path(explicit)
    folder = os.environ.get("DOCKER_CONFIG")
    return (Path(folder) if folder else Path.home() / ".docker") / "config.json"


def load_credentials(host: str, path: Path | None = None) -> Credentials | None:
    """The credentials stored for `host`, or None. A file that cannot be read is an error."""
    path = path or auth_file()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot read registry credentials {path}: {exc.strerror}") from exc
    try:
        auths = json.loads(raw).get("auths", {})
    except (ValueError, AttributeError) as exc:
        raise InputError(f"registry credentials {path} are not a JSON auth file") from exc
    if not isinstance(auths, dict):
        raise InputError(f"registry credentials {path}: `auths` is not an object")
    for key in (host, f"https://{host}", f"http://{host}", f"https://{host}/v2/"):
        entry = auths.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
            try:
                user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise InputError(f"registry credentials {path}: bad `auth` for {host}") from exc
            if not sep:
                raise InputError(f"registry credentials {path}: `auth` for {host} lacks ':'")
            return Credentials(user, password)
    return None


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "bearer" or "basic", lower-cased
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    return Challenge(scheme.lower(), dict(_PARAM.findall(rest)))
