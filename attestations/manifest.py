"""The model manifest: every file's path, size and sha256, and the checkpoint identity.

The manifest digest follows OpenSSF model signing v1.0, method `files`, hash `sha256`:
sha256 over the *raw* per-file digests, the files sorted by path components (so `extra/x`
sorts before `extra-notes.txt`). A `modelctl` manifest digest therefore equals the subject
digest `model_signing` computes for the same folder.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from attestations.digests import Digest
from attestations.errors import InvalidInputError, UnsafePathError

#: Paths model_signing leaves out of a signature by default (relative to the model root).
#: They are git metadata, not the model, so a mirror does not store them either.
DEFAULT_IGNORED_PATHS: frozenset[str] = frozenset(
    {".git", ".gitattributes", ".github", ".gitignore"}
)

MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255


def validate_path(path: str) -> str:
    """Return `path` if it is a safe manifest path, else raise `UnsafePathError`.

    A manifest path is relative, POSIX, NFC-normalised, with no empty, `.` or `..` parts, no
    backslash, no NUL or other control characters, and bounded in length. Nothing is
    repaired: a path that needs repair is refused, so two names can never collapse into one.
    """
    if not isinstance(path, str) or path == "":
        raise UnsafePathError("empty file path")
    shown = ascii(path)[:120]
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for ch in path):
        raise UnsafePathError(f"file path has control or invisible characters: {shown}")
    if unicodedata.normalize("NFC", path) != path:
        raise UnsafePathError(f"file path is not NFC-normalised: {shown}")
    if path.startswith("/"):
        raise UnsafePathError(f"absolute file path: {shown}")
    if "\\" in path:
        raise UnsafePathError(f"file path contains a backslash: {shown}")
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise UnsafePathError(f"file path longer than {MAX_PATH_BYTES} bytes: {shown}")
    for part in path.split("/"):
        if part == "":
            raise UnsafePathError(f"file path has an empty part: {shown}")
        if part in (".", ".."):
            raise UnsafePathError(f"file path has a '{part}' part: {shown}")
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise UnsafePathError(f"file name longer than {MAX_COMPONENT_BYTES} bytes: {shown}")
    return path


def is_ignored(path: str) -> bool:
    """True for git metadata at the model root, which model_signing leaves out."""
    return path.split("/", 1)[0] in DEFAULT_IGNORED_PATHS


def sort_key(path: str) -> tuple[str, ...]:
    """model_signing's order: by path components, as `PurePosixPath` compares them."""
    return tuple(path.split("/"))


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str
    size: int
    sha256: Digest

    def __post_init__(self) -> None:
        validate_path(self.path)
        if self.size < 0:
            raise InvalidInputError(f"negative size for {self.path!r}")


@dataclass(frozen=True, slots=True)
class Manifest:
    """Every file of a checkpoint, in model_signing order. Construct with `Manifest.build`."""

    entries: tuple[ManifestEntry, ...]

    def __post_init__(self) -> None:
        paths = [e.path for e in self.entries]
        if sorted(paths, key=sort_key) != paths:
            raise InvalidInputError("manifest entries are not in path-component order")
        _check_unique_and_not_nested(paths)

    @classmethod
    def build(cls, entries: Iterable[ManifestEntry]) -> Manifest:
        return cls(tuple(sorted(entries, key=lambda e: sort_key(e.path))))

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def digest(self) -> Digest:
        """The checkpoint identity: sha256 over the raw file digests, in manifest order."""
        h = hashlib.sha256()
        for entry in self.entries:
            h.update(entry.sha256.raw)
        return Digest(h.hexdigest())


def _check_unique_and_not_nested(paths: list[str]) -> None:
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            raise InvalidInputError(f"duplicate file path in manifest: {ascii(path)[:120]}")
        seen.add(path)
    # A path that is both a file and a folder of another file cannot be laid out on disk.
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in seen:
                raise InvalidInputError(
                    f"{ascii(prefix)[:120]} is both a file and a folder in the manifest"
                )
