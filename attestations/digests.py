"""The `sha256:<hex>` digest type used everywhere in text."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from attestations.errors import InvalidInputError

_HEX64 = re.compile(r"[0-9a-f]{64}")
SHA256_PREFIX = "sha256:"


@dataclass(frozen=True, order=True, slots=True)
class Digest:
    """A sha256 digest. Constructed only from 64 lowercase hex characters."""

    hex: str

    def __post_init__(self) -> None:
        if not isinstance(self.hex, str) or not _HEX64.fullmatch(self.hex):
            raise InvalidInputError(f"not a sha256 hex digest: {self.hex!r:.80}")

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse `sha256:<64 hex>`; anything else raises `InvalidInputError`."""
        if not text.startswith(SHA256_PREFIX):
            raise InvalidInputError(f"digest must start with 'sha256:': {text!r:.80}")
        return cls(text[len(SHA256_PREFIX) :])

    @classmethod
    def from_bytes(cls, raw: bytes) -> Digest:
        if len(raw) != 32:
            raise InvalidInputError("a sha256 digest is 32 bytes")
        return cls(raw.hex())

    @classmethod
    def of(cls, data: bytes) -> Digest:
        return cls(hashlib.sha256(data).hexdigest())

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.hex)

    def __str__(self) -> str:
        return SHA256_PREFIX + self.hex


def git_blob_sha1(size: int) -> hashlib._Hash:
    """A sha1 primed with git's blob header, to compare a file with its git object id."""
    # git identifies non-LFS files by sha1("blob <size>\0" + content); the Hub's tree listing
    # gives that id, so we can check small files against it in the same pass.
    h = hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\0" % size)
    return h
