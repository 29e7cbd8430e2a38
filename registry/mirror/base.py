"""The mirror source port: resolve a source to a pinned snapshot, then stream its files.

A `Source` never writes to disk itself: it streams a file's bytes into a sink that the
caller gives it (a blob upload that hashes while it writes), so every byte is read once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from attestations.errors import UnsafePathError
from attestations.manifest import validate_path
from registry.errors import InputError
from registry.mirror.oci_ref import SCHEME as OCI_SCHEME
from registry.mirror.oci_ref import parse_oci_ref

SourceKind = Literal["hf", "ms", "local", "oci"]

# Hub repo ids: `org/name`, conservative characters only (both hubs allow no more).
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,254}")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A parsed SOURCE argument: `hf://org/name[@rev]`, `ms://org/name[@rev]`,
    `oci://host/repo[:tag|@sha256:…]` or a folder."""

    kind: SourceKind
    #: `org/name` for hubs; `HOST[:PORT]/REPO` for OCI; the absolute folder path for folders
    repo_id: str
    revision: str | None  # OCI: the tag or the `sha256:…` manifest digest

    @property
    def uri(self) -> str:
        """The source URI recorded with a checkpoint (without the revision; the commit pins it)."""
        if self.kind == "local":
            return Path(self.repo_id).as_uri()
        return f"{self.kind}://{self.repo_id}"

    @property
    def default_name(self) -> str:
        """The registry name a mirror gets without `--name`."""
        if self.kind == "local":
            return "local/" + _safe_name_part(Path(self.repo_id).name)
        if self.kind == "oci":  # the repository's last two path components, or oci/NAME
            parts = self.repo_id.split("/")[1:]
            namespace = _safe_name_part(parts[-2]) if len(parts) > 1 else "oci"
            return f"{namespace}/{_safe_name_part(parts[-1])}"
        return self.repo_id


def _safe_name_part(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"
    return cleaned[:96]


def parse_source(text: str) -> SourceSpec:
    """Parse SOURCE. Raises `InputError` with a one-line reason."""
    for kind in ("hf", "ms"):
        prefix = f"{kind}://"
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            repo_id, sep, revision = rest.partition("@")
            if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
                raise InputError(f"bad source {text!r}: expected {prefix}ORG/NAME[@REVISION]")
            if sep and not (_REVISION.fullmatch(revision) and ".." not in revision):
                raise InputError(f"bad revision in source {text!r}")
            return SourceSpec(kind=kind, repo_id=repo_id, revision=revision or None)
    if text.startswith(OCI_SCHEME):
        ref = parse_oci_ref(text)
        return SourceSpec(
            kind="oci", repo_id=f"{ref.host}/{ref.repository}", revision=ref.digest or ref.tag
        )
    if "://" in text:
        raise InputError(
            f"unsupported source {text!r}: use hf://ORG/NAME, ms://ORG/NAME, "
            "oci://HOST/REPO[:TAG] or a local folder"
        )
    path = Path(text).expanduser()
    try:
        is_folder = path.is_dir()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        is_folder = False
    if not is_folder:
        raise InputError(f"source {text!r} is not a folder, nor hf:// or ms:// URI")
    return SourceSpec(kind="local", repo_id=str(path.resolve()), revision=None)


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file of a snapshot as the source lists it.

    `path` is already validated (safe, NFC, relative). The expected digests come from the
    source's listing; whatever is given is enforced while the bytes stream.
    """

    path: str
    size: int | None
    sha256: str | None = None  # lowercase hex, from an LFS pointer or the hub's listing
    git_blob_sha1: str | None = None  # git object id, for files stored in git proper

    def __post_init__(self) -> None:
        validate_path(self.path)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A source pinned to one immutable commit, with its full file listing."""

    uri: str
    requested_revision: str | None
    commit: str
    files: tuple[RemoteFile, ...]


class ByteSink(Protocol):
    """Where a source streams a file: an append-only, hashing blob upload.

    `resume_offset` bytes are already in the sink from an interrupted transfer, and `tell()`
    is where the next `write` appends. There is no seek and no truncate: a source that cannot
    continue the bytes the sink holds calls `restart()`, which throws them away (the upload is
    aborted and a fresh one begun) so that it can send the file from byte 0.
    """

    @property
    def resume_offset(self) -> int: ...
    def write(self, data: bytes | memoryview, /) -> int: ...
    def tell(self) -> int: ...
    def restart(self) -> None: ...


class Source(Protocol):
    spec: SourceSpec

    def resolve(self) -> Snapshot:
        """Pin the requested revision to a commit and list every file at that commit.

        Raises `NotFound` (unknown repo or revision), `AuthenticationRequired`,
        `UpstreamError`, or `InputError` for listings with unsafe paths.
        """
        ...

    def fetch(self, snapshot: Snapshot, file: RemoteFile, sink: ByteSink) -> None:
        """Stream `file` at `snapshot.commit` into `sink`, starting at `sink.resume_offset`.

        Raises `UpstreamError` (with the file's path in the message) on any transfer fault.
        Digest checks are the sink's job, not the source's.
        """
        ...


def checked_path(raw: str, *, where: str) -> str:
    """Validate a path from a listing, turning the core's error into an `InputError`."""
    try:
        return validate_path(raw)
    except UnsafePathError as exc:
        raise InputError(f"{where}: refused unsafe file path: {exc.message}") from exc
