"""What a Hugging Face client sees under `/hf/{env}/` (registry/api/hf.py translates it to
HTTP): the served commit id, the served files and tree entries, revision resolution, and the
Hub's error types. Every resolution decides now through `gate.Gatekeeper`; see `gate` for
what "admitted" means and why served files are the signed ones.

The commit id shown to Hugging Face clients (`sha`, `X-Repo-Commit`) is the first 40 hex
digits of the checkpoint's manifest digest (see `served_commit`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from attestations.digests import Digest
from attestations.utc import aware
from policies import Decision
from registry.blobs.base import BlobReader
from registry.db.models import Checkpoint, Model
from registry.errors import InputError, IntegrityFailure, NotFound
from registry.refs import ModelName
from registry.service.gate import Gatekeeper, NotAdmitted, check_environment, failing_checks
from registry.service.pull import SignedCheckpoint, signed_checkpoint

#: The Hub pages tree listings by 1000 entries; so do we (the client follows `Link`).
TREE_PAGE = 1000
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX_PREFIX = re.compile(r"[0-9a-f]{7,40}")
_LFS_SPEC = "https://git-lfs.github.com/spec/v1"


# -- errors the HTTP layer maps to the Hub's error codes -------------------------------------


class RepoNotFound(NotFound):
    """No model of that name (the Hub's `RepoNotFound`)."""


class RevisionNotFound(NotFound):
    """The model exists, the revision names none of its checkpoints (`RevisionNotFound`)."""


class EntryNotFound(NotFound):
    """The file or folder is not in the served checkpoint (`EntryNotFound`)."""

    def __init__(self, message: str, *, commit: str) -> None:
        super().__init__(message)
        self.commit = commit


# -- what a Hugging Face client sees ---------------------------------------------------------


def served_commit(manifest_digest_hex: str) -> str:
    """The 40-hex commit id a Hugging Face client sees for a checkpoint.

    The manifest digest's first 40 hex digits: stable for the checkpoint (it is its identity),
    and different for different bytes. The source commit would be the natural choice, but one
    commit can map to several checkpoints of a name (`--include`/`--exclude`, a local folder
    has none, a hub that changed bytes under a commit), and clients keep files in
    `snapshots/<commit>/` and reuse them without looking at their ETag: one id for two sets
    of bytes could hand a client the files of a checkpoint that is no longer admitted.
    """
    return manifest_digest_hex[:40]


@dataclass(frozen=True, slots=True)
class ServedFile:
    """One file as the Hub would list an LFS file: every file is served as LFS, so the ETag
    (the client's cache file name) is always the attested sha256."""

    path: str
    size: int
    sha256: str

    @property
    def pointer(self) -> bytes:
        return f"version {_LFS_SPEC}\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    @property
    def git_oid(self) -> str:
        """The git blob id of the LFS pointer (what the Hub lists as `oid` for LFS files)."""
        pointer = self.pointer
        return hashlib.sha1(
            b"blob %d\x00" % len(pointer) + pointer, usedforsecurity=False
        ).hexdigest()

    def tree_entry(self) -> dict[str, Any]:
        return {
            "type": "file",
            "oid": self.git_oid,
            "size": self.size,
            "path": self.path,
            "lfs": {"oid": self.sha256, "size": self.size, "pointerSize": len(self.pointer)},
        }

    def sibling(self, *, blobs: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"rfilename": self.path}
        if blobs:
            entry.update(
                size=self.size,
                blobId=self.git_oid,
                lfs={"sha256": self.sha256, "size": self.size, "pointerSize": len(self.pointer)},
            )
        return entry


@dataclass(frozen=True, slots=True)
class ServedCheckpoint:
    name: str  # NS/NAME
    digest: str  # sha256:<hex>, the manifest digest
    commit: str  # served_commit(digest)
    source_commit: str
    created_at: datetime
    files: tuple[ServedFile, ...]  # as signed, sorted by path
    decision: Decision
    _by_path: Mapping[str, ServedFile] = field(repr=False, compare=False)

    @classmethod
    def build(
        cls,
        checkpoint: Checkpoint,
        signed: SignedCheckpoint,
        decision: Decision,
        *,
        commit: str | None = None,
    ) -> Self:
        missing = [path for path, _ in signed.files if path not in signed.sizes]
        if missing:
            raise IntegrityFailure(
                f"{signed.name}@{signed.digest}: signed files without a recorded size: "
                + ", ".join(missing[:5])
            )
        files = tuple(
            sorted(
                (ServedFile(path, signed.sizes[path], sha) for path, sha in signed.files),
                key=lambda f: f.path,
            )
        )
        return cls(
            name=signed.name,
            digest=signed.digest,
            commit=commit or served_commit(checkpoint.manifest_digest),
            source_commit=checkpoint.source_commit,
            created_at=aware(checkpoint.created_at),
            files=files,
            decision=decision,
            _by_path={f.path: f for f in files},
        )

    def file(self, path: str) -> ServedFile:
        found = self._by_path.get(path)
        if found is None:
            raise EntryNotFound(f"{path} is not a file of {self.name}", commit=self.commit)
        return found

    def directories(self) -> dict[str, str]:
        """Every folder implied by the file paths, with a stable oid (sha1 of its members)."""
        members: dict[str, list[str]] = {}
        for f in self.files:
            parts = f.path.split("/")
            for i in range(1, len(parts)):
                members.setdefault("/".join(parts[:i]), []).append(f"{f.path} {f.git_oid}")
        return {
            folder: hashlib.sha1(
                "\n".join(sorted(lines)).encode(), usedforsecurity=False
            ).hexdigest()
            for folder, lines in members.items()
        }

    def tree(self, path: str, *, recursive: bool) -> list[dict[str, Any]]:
        """Tree entries under `path` ("" = the root), as the Hub lists them, sorted by path."""
        folders = self.directories()
        if path and path not in folders:
            raise EntryNotFound(f"{path} is not a folder of {self.name}", commit=self.commit)
        entries = [f.tree_entry() for f in self.files]
        entries += [
            {"type": "directory", "oid": oid, "size": 0, "path": folder}
            for folder, oid in folders.items()
        ]
        prefix = f"{path}/" if path else ""

        def wanted(entry_path: str) -> bool:
            if not entry_path.startswith(prefix):
                return False
            return recursive or "/" not in entry_path[len(prefix) :]

        return sorted((e for e in entries if wanted(e["path"])), key=lambda e: str(e["path"]))

    def model_info(self, *, blobs: bool) -> dict[str, Any]:
        stamp = self.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {
            "_id": self.commit[:24],
            "id": self.name,
            "modelId": self.name,
            "author": self.name.split("/", 1)[0],
            "sha": self.commit,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "createdAt": stamp,
            "lastModified": stamp,
            "tags": [],
            "siblings": [f.sibling(blobs=blobs) for f in self.files],
            "modelctl": {
                "digest": self.digest,
                "sourceCommit": self.source_commit,
                "environment": self.decision.environment,
                "policy": self.decision.policy_name,
                "policyDigest": self.decision.policy_digest,
            },
        }


@dataclass(frozen=True, slots=True)
class _Candidates:
    name: str  # canonical NS/NAME
    checkpoints: list[Checkpoint]  # newest first
    echo: str | None = None  # a 40-hex source commit the client asked for (see `resolve`)


def _candidates(session: Session, name: str, revision: str) -> _Candidates:
    """The checkpoints a revision can name, newest first."""
    try:
        parsed = ModelName.parse(name)
    except InputError as exc:
        raise RepoNotFound(f"repository {name!r:.120} not found") from exc
    model = session.scalars(
        select(Model).where(Model.namespace == parsed.namespace, Model.name == parsed.name)
    ).one_or_none()
    if model is None:
        raise RepoNotFound(f"repository {parsed} not found")
    everything = list(
        session.scalars(
            select(Checkpoint)
            .where(Checkpoint.model_id == model.id)
            .options(
                selectinload(Checkpoint.files),
                selectinload(Checkpoint.revisions),
                selectinload(Checkpoint.evidence_attestations),
                selectinload(Checkpoint.scans),
                selectinload(Checkpoint.quarantines),
                selectinload(Checkpoint.file_quarantines),
            )
            .order_by(Checkpoint.id.desc())
        )
    )
    rev = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
    by_revision = [c for c in everything if rev in {r.revision for r in c.revisions}]
    if rev == "main":
        return _Candidates(str(parsed), everything)
    if rev.startswith("sha256:"):
        hex_ = rev.removeprefix("sha256:")
        digest = [c for c in everything if _HEX64.fullmatch(hex_) and c.manifest_digest == hex_]
        return _Candidates(str(parsed), digest)
    if not _HEX_PREFIX.fullmatch(rev):
        return _Candidates(str(parsed), by_revision)
    served = [c for c in everything if len(rev) == 40 and served_commit(c.manifest_digest) == rev]
    if served:
        return _Candidates(str(parsed), served)
    if len(rev) == 40 and any(c.source_commit == rev for c in everything):
        source = [c for c in everything if c.source_commit == rev]
        _check_same_bytes(str(parsed), rev, source)
        return _Candidates(str(parsed), source, echo=rev)
    prefix = [
        c
        for c in everything
        if _HEX40.fullmatch(c.source_commit) and c.source_commit.startswith(rev)
    ]
    return _Candidates(str(parsed), prefix or by_revision)


def _check_same_bytes(name: str, commit: str, checkpoints: Sequence[Checkpoint]) -> None:
    """Refuse a source commit whose checkpoints disagree on a file's bytes (a hub that served
    other bytes under one commit): one client cache folder must never hold two versions."""
    seen: dict[str, str] = {}
    for checkpoint in checkpoints:
        for f in checkpoint.files:
            if seen.setdefault(f.path, f.sha256) != f.sha256:
                raise NotAdmitted(
                    f"{name}@{commit} names checkpoints with different bytes for {f.path}; "
                    "ask for one by sha256:<digest>",
                    reasons=[f"revision: {commit} is ambiguous ({f.path})"],
                )


def resolve(
    session: Session,
    gate: Gatekeeper,
    name: str,
    revision: str,
    environment: str,
    *,
    now: datetime | None = None,
) -> ServedCheckpoint:
    """The checkpoint `name@revision` serves in `environment`, decided now.

    `main` (and a branch or tag the mirror recorded) names every checkpoint it may mean; the
    newest one that is admitted and carries a verified model signature is served. A digest
    (`sha256:…`), a served commit id, or a source commit (or a 7+ hex prefix of one) names
    specific checkpoints, served only if admitted. Raises RepoNotFound, RevisionNotFound, or
    NotAdmitted with the newest candidate's failing checks.

    A full 40-hex source commit is answered under that same id (`sha`, `X-Repo-Commit`):
    `huggingface_hub` takes a 40-hex revision as the commit itself and files the snapshot
    under it, so any other id would leave its snapshot folder empty. That is safe only while
    every checkpoint mirrored from the commit has the same bytes for each path it holds
    (`--include` subsets do), which is checked: otherwise the revision is refused.
    """
    now = now or datetime.now(UTC)
    check_environment(environment)
    found = _candidates(session, name, revision)
    canonical, candidates = found.name, found.checkpoints
    if not candidates:
        raise RevisionNotFound(f"{canonical} has no revision {revision!r:.120}")
    first_refusal: tuple[str, list[str]] | None = None
    for checkpoint in candidates:
        decision = gate.decide(session, checkpoint, environment, now)
        ref = f"{canonical}@sha256:{checkpoint.manifest_digest}"
        if not decision.allowed:
            refusal = (
                f"{ref} is not admitted to {environment!r}",
                failing_checks(decision) or ["policy: denied"],
            )
        else:
            try:
                signed = signed_checkpoint(checkpoint, gate.registry_public_key)
            except IntegrityFailure as exc:
                refusal = (f"{ref} cannot be served", [f"signature: {exc.message}"])
            else:
                return ServedCheckpoint.build(checkpoint, signed, decision, commit=found.echo)
        first_refusal = first_refusal or refusal
    assert first_refusal is not None
    message, reasons = first_refusal
    others = len(candidates) - 1
    if others:
        message += f" (nor are the {others} older checkpoint(s) {revision!r:.80} names)"
    raise NotAdmitted(f"{message}: {'; '.join(reasons)}", reasons=reasons)


# -- bytes ----------------------------------------------------------------------------------


def check_blob(blobs: BlobReader, file: ServedFile) -> None:
    """Before any header is sent: the blob is there and has the signed size."""
    try:
        stored = blobs.size(Digest(file.sha256))
    except NotFound as exc:
        raise IntegrityFailure(
            f"{file.path}: its blob sha256:{file.sha256} is missing from the store"
        ) from exc
    if stored != file.size:
        raise IntegrityFailure(
            f"{file.path}: the stored blob has {stored} bytes, the signed manifest {file.size}"
        )


# -- tree pagination -------------------------------------------------------------------------


def page(
    entries: Sequence[dict[str, Any]], cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a listing and the cursor of the next (None at the end)."""
    try:
        offset = int(base64.urlsafe_b64decode((cursor or "MA==").encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InputError("invalid cursor") from exc
    if offset < 0:
        raise InputError("invalid cursor")
    chunk = list(entries[offset : offset + TREE_PAGE])
    if offset + TREE_PAGE < len(entries):
        return chunk, base64.urlsafe_b64encode(str(offset + TREE_PAGE).encode()).decode()
    return chunk, None
