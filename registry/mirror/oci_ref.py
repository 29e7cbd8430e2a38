"""`oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]`: an OCI artifact reference, parsed strictly.

Plain HTTP only for loopback hosts: a registry anywhere else is spoken to over HTTPS, so a
token or a layer never crosses a network in clear.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.errors import InputError

SCHEME = "oci://"
# The distribution spec's grammar: lowercase path components joined by `/`.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPO = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*|\[::1\])(?::[0-9]{1,5})?"
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


@dataclass(frozen=True, slots=True)
class OciRef:
    host: str  # HOST[:PORT]
    repository: str
    tag: str | None
    digest: str | None  # "sha256:<hex>"

    @property
    def hostname(self) -> str:
        return self.host.rsplit(":", 1)[0] if not self.host.endswith("]") else self.host

    @property
    def base_url(self) -> str:
        scheme = "http" if self.hostname in LOOPBACK_HOSTS else "https"
        return f"{scheme}://{self.host}"

    @property
    def reference(self) -> str:
        """What `/v2/<name>/manifests/<reference>` takes: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.host}/{self.repository}"

    def __str__(self) -> str:
        suffix = f"@{self.digest}" if self.digest else f":{self.tag or 'latest'}"
        return self.uri + suffix


def parse_oci_ref(text: str) -> OciRef:
    """Parse an `oci://` reference. Raises `InputError` with a one-line reason."""
    if not text.startswith(SCHEME):
        raise InputError(f"bad OCI reference {text!r}: expected oci://HOST[:PORT]/REPO[:TAG]")
    host, slash, rest = text[len(SCHEME) :].partition("/")
    if not slash or not _HOST.fullmatch(host):
        raise InputError(f"bad OCI reference {text!r}: expected oci://HOST[:PORT]/REPO[:TAG]")
    digest: str | None = None
    tag: str | None = None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not _DIGEST.fullmatch(digest):
            raise InputError(f"bad OCI reference {text!r}: digest must be sha256:<64 hex>")
    if ":" in rest:
        rest, _, tag = rest.partition(":")
        if not _TAG.fullmatch(tag):
            raise InputError(f"bad OCI reference {text!r}: bad tag {tag!r}")
    if not _REPO.fullmatch(rest) or len(rest) > 255:
        raise InputError(f"bad OCI reference {text!r}: bad repository name {rest!r}")
    return OciRef(host=host, repository=rest, tag=tag, digest=digest)
