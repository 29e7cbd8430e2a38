"""Serving admitted checkpoints and reviewing pods: the logic behind `/hf/{env}/` and
`/k8s/admission` (registry/api/hf.py, registry/api/k8s.py translate it to HTTP).

Nothing here trusts a stored column or an earlier decision to say "admitted":

1. **Decide now.** Every resolution evaluates the environment's policy on facts gathered now
   (`admission.checkpoint_facts`: attestations re-verified with the registry key, latest scans,
   quarantine), with the registry's exceptions merged, exactly as `modelctl policy check` does;
   only the webhook keeps a decision, in `DecisionCache`, until the decision's expiry (capped),
   and it re-reads the quarantine state on every review.
2. **Serve what was signed.** The files of a served checkpoint are the ones its newest model
   signature that verifies with the registry key lists (`pull.signed_checkpoint`), never the
   database's file rows alone; a checkpoint without one is not served, even when admitted.
3. **Re-hash while streaming.** Every response body comes from `serving.verified_chunks`: the
   blob is hashed in full (also for a range: the bytes around it are hashed, not sent) and the
   last piece is held back until the whole blob matched the signed sha256, so a tampered blob
   ends the response short: the client sees a broken transfer, never the end of wrong bytes.

The commit id shown to Hugging Face clients (`sha`, `X-Repo-Commit`) is the first 40 hex
digits of the checkpoint's manifest digest (see `served_commit`).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from attestations.digests import Digest
from policies import CheckStatus, Decision, Facts, Mode, ModelPolicy, PolicySet, evaluate
from policies.model import PolicyException
from registry.blobs.base import BlobReader
from registry.db.models import Checkpoint, CheckpointFile, Model, WaiverRow
from registry.errors import Denied, InputError, IntegrityFailure, NotFound
from registry.service import admission
from registry.service.checkpoints import source_view
from registry.service.pull import SignedCheckpoint, signed_checkpoint
from registry.service.refs import ModelName

#: The Hub pages tree listings by 1000 entries; so do we (the client follows `Link`).
TREE_PAGE = 1000
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX_PREFIX = re.compile(r"[0-9a-f]{7,40}")
_ENV = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
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


class NotAdmitted(Denied):
    """Checkpoints exist for the revision but none may be served to the environment.

    `reasons` are the failing checks (`check-id: message`) of the newest candidate.
    """


def check_environment(environment: str) -> str:
    if not _ENV.fullmatch(environment):
        raise InputError(f"bad environment name {environment!r:.80}")
    return environment


# -- the decision, now -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gatekeeper:
    """Decides with one policy set, the blob store (model cards) and the registry's key."""

    policies: PolicySet
    blobs: BlobReader
    registry_public_key: bytes | None

    def decide(
        self, session: Session, checkpoint: Checkpoint, environment: str, now: datetime
    ) -> Decision:
        """The policy's decision for `checkpoint` in `environment` on facts gathered now.

        Raises `Denied` when no policy is bound to the environment (fail closed). Nothing is
        recorded: serving and reviewing are reads (`modelctl policy check` records decisions).
        """
        self.bound(environment)  # fail closed before gathering anything
        facts, granted = self.inputs(session, checkpoint, now)
        return self.evaluate(facts, granted, environment, now)

    def bound(self, environment: str) -> tuple[ModelPolicy, Mode]:
        bound = self.policies.for_environment(environment)
        if bound is None:
            raise Denied(
                f"no policy is bound to environment {environment!r}: denied (fail closed); "
                + known_environments_hint(self.policies, environment),
                reasons=[f"binding: no policy for {environment!r}"],
            )
        return bound

    def inputs(
        self, session: Session, checkpoint: Checkpoint, now: datetime
    ) -> tuple[Facts, tuple[PolicyException, ...]]:
        """The facts as of now (attestations verified now) and the registry's exceptions:
        gathered once, they serve a decision in every environment."""
        granted = admission.registry_exceptions(
            checkpoint.id,
            f"sha256:{checkpoint.manifest_digest}",
            list(
                session.scalars(select(WaiverRow).where(WaiverRow.checkpoint_id == checkpoint.id))
            ),
        )
        facts = admission.checkpoint_facts(
            checkpoint, blobs=self.blobs, registry_public_key=self.registry_public_key, now=now
        )
        return facts, granted

    def evaluate(
        self,
        facts: Facts,
        granted: tuple[PolicyException, ...],
        environment: str,
        now: datetime,
    ) -> Decision:
        """The decision in one environment on gathered inputs (`Denied` when unbound)."""
        policy, mode = self.bound(environment)
        if granted:
            policy = replace(policy, exceptions=(*policy.exceptions, *granted))
        return evaluate(policy, facts, now=now, mode=mode, environment=environment)


def known_environments_hint(policies: PolicySet, environment: str) -> str:
    """`known environments: dev, prod, staging; did you mean prod?` (the nearest name)."""
    known = policies.environments()
    if not known:
        return "no environment is bound by the policy"
    hint = f"known environments: {', '.join(known)}"
    near = difflib.get_close_matches(environment.lower(), known, n=1, cutoff=0.6)
    return hint + (f"; did you mean {near[0]}?" if near else "")


def failing_checks(decision: Decision) -> list[str]:
    """`check-id: message` for every check that failed (what a denial is explained by)."""
    return [f"{c.id}: {c.message}" for c in decision.checks if c.status is CheckStatus.FAIL]


def warning_checks(decision: Decision) -> list[str]:
    return [f"{c.id}: {c.message}" for c in decision.checks if c.status is CheckStatus.WARN]


#: The response header that carries warn-mode failures wherever bytes leave over HTTP
#: (`/hf/{env}` and gated `/v1` byte reads); the webhook uses AdmissionReview `warnings`.
WARNING_HEADER = "X-Modelctl-Warning"
MAX_WARNING_HEADER = 1024


def warning_header(decision: Decision, environment: str) -> str | None:
    """One header value listing the checks that failed but only warn (`warn` mode), or None.

    Printable ASCII only (check messages quote names from outside; a header must be latin-1
    and one line) and at most MAX_WARNING_HEADER characters."""
    warned = warning_checks(decision)
    if not warned:
        return None
    text = (
        f"{len(warned)} check(s) failed in warn mode for {environment!r}, allowed anyway: "
        + "; ".join(warned)
    )
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    if len(safe) > MAX_WARNING_HEADER:
        safe = safe[: MAX_WARNING_HEADER - 3] + "..."
    return safe


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
            created_at=checkpoint.created_at
            if checkpoint.created_at.tzinfo
            else checkpoint.created_at.replace(tzinfo=UTC),
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


# -- raw byte reads (`/v1/.../files/…`, `/v1/blobs/…`) ------------------------------------------

#: A blob shared by more checkpoints than this is decided for its newest ones only.
MAX_BLOB_CHECKPOINTS = 20


def checkpoints_holding_blob(session: Session, sha256: str) -> list[Checkpoint]:
    """The checkpoints whose file list holds the blob, newest first (at most
    MAX_BLOB_CHECKPOINTS)."""
    holders = select(CheckpointFile.checkpoint_id).where(CheckpointFile.sha256 == sha256)
    return list(
        session.scalars(
            select(Checkpoint)
            .where(Checkpoint.id.in_(holders))
            .order_by(Checkpoint.id.desc())
            .limit(MAX_BLOB_CHECKPOINTS)
        )
    )


def admit_bytes(
    session: Session,
    gate: Gatekeeper,
    candidates: Sequence[Checkpoint],
    environment: str,
    *,
    what: str,
    now: datetime | None = None,
) -> Decision:
    """The decision that lets `what` (a file or a blob) leave the registry for `environment`:
    that of the first of `candidates` admitted there now, decided as pull and `/hf` decide.

    A blob is as readable as the most admitted checkpoint holding it: the same bytes are served
    for that checkpoint anyway. Raises NotAdmitted naming the failing checks of the first
    candidate (NotFound when there is none).
    """
    now = now or datetime.now(UTC)
    check_environment(environment)
    if not candidates:
        raise NotFound(f"no checkpoint holds {what}")
    refusal: list[str] | None = None
    for checkpoint in candidates:
        decision = gate.decide(session, checkpoint, environment, now)
        if decision.allowed:
            return decision
        refusal = refusal or failing_checks(decision) or ["policy: denied"]
    assert refusal is not None
    holders = (
        "its checkpoint is not"
        if len(candidates) == 1
        else f"none of the {len(candidates)} checkpoints holding it is"
    )
    raise NotAdmitted(
        f"{what}: {holders} admitted to {environment!r}: {'; '.join(refusal)}",
        reasons=refusal,
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


# -- the Kubernetes webhook -----------------------------------------------------------------

ANNOTATION = "modelctl.dev/model"
#: Every annotation under this prefix is ours: one we do not know (a typo, `modelctl.dev/Model`)
#: refuses the pod, lest a misspelt model reference let it through as model-free.
ANNOTATION_PREFIX = "modelctl.dev/"
KNOWN_ANNOTATIONS = f"{ANNOTATION}, {ANNOTATION}.<suffix> (lower-case letters, digits, '-')"
KSERVE_SOURCE_ANNOTATION = "internal.serving.kserve.io/storage-initializer-sourceuri"
STORAGE_INITIALIZER = "storage-initializer"
_ANNOTATION_KEY = re.compile(r"modelctl\.dev/model(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?")
_HF_URI = re.compile(
    r"hf://(?P<ns>[A-Za-z0-9][A-Za-z0-9._-]{0,95})/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,95})"
    r"(?::(?P<hash>[^/\s]*))?(?P<rest>/.*)?"
)
#: Bounds on what a review may carry (the API server caps requests at 3 MiB anyway).
MAX_REFERENCES = 64
MAX_REFERENCE_CHARS = 512


class MalformedReview(InputError):
    """The body is not an AdmissionReview v1 we can answer (no uid to echo, wrong shape)."""


@dataclass(frozen=True, slots=True)
class ModelReference:
    """One model a pod uses: where it was found, what was written, and what it pins."""

    where: str
    text: str
    name: str | None = None  # NS/NAME
    digest: str | None = None  # sha256:<hex> (annotation) ...
    commit: str | None = None  # ... or a 40-hex source commit (annotation or hf://…:HASH)
    problem: str | None = None  # why it cannot be admitted as written
    source_uri: str | None = None  # hf://NS/NAME: checkpoints mirrored from it, any name


@dataclass(frozen=True, slots=True)
class PodReview:
    uid: str
    kind: str
    operation: str
    namespace: str
    name: str
    references: tuple[ModelReference, ...]


def parse_reference(text: str, where: str) -> ModelReference:
    """`NS/NAME@sha256:<64 hex>` or `NS/NAME@<40-hex source commit>` (annotation), or
    `hf://NS/NAME:<40-hex commit>` (KServe). Anything unpinned or unparsable carries a
    `problem` and is denied."""
    text = text.strip()
    if len(text) > MAX_REFERENCE_CHARS:
        return ModelReference(where, text[:80] + "...", problem="reference too long")
    if text.startswith("hf://"):
        return _parse_hf_uri(text, where)
    if "://" in text:
        return ModelReference(
            where, text, problem="unsupported scheme (modelctl checks hf:// only)"
        )
    return _parse_name_reference(text, where)


def _parse_name_reference(text: str, where: str) -> ModelReference:
    name, sep, selector = text.partition("@")
    try:
        ModelName.parse(name)
    except InputError:
        return ModelReference(where, text, problem="not NAMESPACE/NAME@sha256:<digest>")
    if not sep:
        return ModelReference(where, text, name=name, problem="unpinned: add @sha256:<digest>")
    if selector.startswith("sha256:") and _HEX64.fullmatch(selector[7:]):
        return ModelReference(where, text, name=name, digest=selector)
    if _HEX40.fullmatch(selector):
        return ModelReference(where, text, name=name, commit=selector)
    return ModelReference(
        where, text, name=name, problem="pin by @sha256:<manifest digest> or a 40-hex commit"
    )


def _parse_hf_uri(text: str, where: str) -> ModelReference:
    m = _HF_URI.fullmatch(text)
    if m is None or m.group("rest") or ".." in text:
        return ModelReference(where, text, problem="not an hf://NAMESPACE/NAME[:COMMIT] URI")
    name = f"{m.group('ns')}/{m.group('name')}"
    commit = m.group("hash")
    if not commit:
        return ModelReference(
            where, text, name=name, problem=f"unpinned: write hf://{name}:<40-hex commit>"
        )
    if not _HEX40.fullmatch(commit):
        return ModelReference(where, text, name=name, problem="the :HASH is not a 40-hex commit")
    return ModelReference(where, text, name=name, commit=commit, source_uri=f"hf://{name}")


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedReview(f"{what} is not an object")
    return value


def _strings(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedReview(f"{what} is not a list of strings")
    return list(value)


def review_uid(document: object) -> str | None:
    """The request's uid if the body has one we can echo (even when the rest is malformed)."""
    if isinstance(document, dict):
        request = document.get("request")
        if isinstance(request, dict):
            uid = request.get("uid")
            if isinstance(uid, str) and 0 < len(uid) <= 128:
                return uid
    return None


def parse_admission_review(document: object) -> PodReview:
    """An `admission.k8s.io/v1` AdmissionReview for a Pod, and the models it references.

    Recognised, in this order (each occurrence is one reference; duplicates are kept once):
    1. annotation `modelctl.dev/model`: one or several references separated by commas or
       whitespace; and annotations `modelctl.dev/model.<suffix>` (one reference each);
    2. annotation `internal.serving.kserve.io/storage-initializer-sourceuri` (what KServe
       puts on the predictor pod) when it is an `hf://` URI;
    3. every argument of an init container or container named `storage-initializer` that
       starts with `hf://` (KServe passes the storage URI as its first argument).
    """
    doc = _mapping(document, "the body")
    if doc.get("apiVersion") != "admission.k8s.io/v1" or doc.get("kind") != "AdmissionReview":
        raise MalformedReview("expected apiVersion admission.k8s.io/v1, kind AdmissionReview")
    request = _mapping(doc.get("request"), "request")
    uid = review_uid(doc)
    if uid is None:
        raise MalformedReview("request.uid is missing")
    kind_obj = _mapping(request.get("kind") or {}, "request.kind")
    kind = kind_obj.get("kind")
    operation = request.get("operation")
    if not isinstance(kind, str) or not isinstance(operation, str):
        raise MalformedReview("request.kind.kind and request.operation are required")
    namespace = request.get("namespace") or ""
    name = request.get("name") or ""
    if not isinstance(namespace, str) or not isinstance(name, str):
        raise MalformedReview("request.namespace and request.name must be strings")
    refs: list[ModelReference] = []
    if kind == "Pod" and operation in ("CREATE", "UPDATE"):
        pod = _mapping(request.get("object"), "request.object")
        metadata = _mapping(pod.get("metadata") or {}, "request.object.metadata")
        name = name or str(metadata.get("name") or metadata.get("generateName") or "")
        refs = _pod_references(pod, metadata)
    seen: set[tuple[str, str]] = set()
    unique = []
    for ref in refs:
        if (ref.where, ref.text) not in seen:
            seen.add((ref.where, ref.text))
            unique.append(ref)
    if len(unique) > MAX_REFERENCES:
        raise MalformedReview(f"more than {MAX_REFERENCES} model references")
    return PodReview(uid, kind, operation, namespace, name, tuple(unique))


def _pod_references(pod: Mapping[str, Any], metadata: Mapping[str, Any]) -> list[ModelReference]:
    annotations = _mapping(metadata.get("annotations") or {}, "metadata.annotations")
    refs = _annotation_references(annotations)
    spec = _mapping(pod.get("spec") or {}, "spec")
    for field_name in ("initContainers", "containers"):
        containers = spec.get(field_name) or []
        if not isinstance(containers, list):
            raise MalformedReview(f"spec.{field_name} is not a list")
        for i, container in enumerate(containers):
            c = _mapping(container, f"spec.{field_name}[{i}]")
            if c.get("name") != STORAGE_INITIALIZER:
                continue
            for j, arg in enumerate(_strings(c.get("args"), f"spec.{field_name}[{i}].args")):
                if arg.strip().startswith("hf://"):
                    where = f"{field_name}[{STORAGE_INITIALIZER}].args[{j}]"
                    refs.append(parse_reference(arg, where))
    return refs


def _annotation_references(annotations: Mapping[str, Any]) -> list[ModelReference]:
    refs: list[ModelReference] = []
    for key in sorted(annotations):
        value = annotations[key]
        if not isinstance(value, str):
            raise MalformedReview(f"annotation {key!r:.80} is not a string")
        where = f"annotation {key[:100]}"
        if key == ANNOTATION:
            items = [t for t in re.split(r"[\s,]+", value) if t]
            if not items:
                refs.append(ModelReference(where, value, problem="empty"))
            refs += [parse_reference(t, where) for t in items]
        elif _ANNOTATION_KEY.fullmatch(key):
            refs.append(parse_reference(value, where))
        elif key.lower().startswith(ANNOTATION_PREFIX):
            refs.append(
                ModelReference(
                    where,
                    value[:80],
                    problem=f"unknown modelctl annotation; the known keys are {KNOWN_ANNOTATIONS}",
                )
            )
        elif key == KSERVE_SOURCE_ANNOTATION and value.strip().startswith("hf://"):
            refs.append(parse_reference(value, where))
    return refs


@dataclass(frozen=True, slots=True)
class ReferenceVerdict:
    reference: ModelReference
    allowed: bool
    message: str  # one line: why (failing checks) or what was admitted
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PodVerdict:
    allowed: bool
    message: str
    verdicts: tuple[ReferenceVerdict, ...]
    warnings: tuple[str, ...]


class DecisionCache:
    """Allowing decisions by (environment, checkpoint digest), kept until the decision's
    expiry, at most `max_age` (facts without an expiry change too: new scans, revoked
    exceptions), at most `max_entries` (least recently used go first).

    Denials are not kept: a checkpoint attested a moment ago is admitted on the next review,
    and a denial costs one evaluation. Only decisions made while the checkpoint was not
    quarantined are kept, and the caller reads the quarantine state before every lookup: a
    quarantine denies at once, whatever is cached.
    """

    def __init__(self, *, max_age: timedelta = timedelta(seconds=60), max_entries: int = 4096):
        self.max_age = max_age
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[Decision, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, environment: str, digest: str, now: datetime) -> Decision | None:
        with self._lock:
            entry = self._entries.get((environment, digest))
            if entry is None or entry[1] <= now.timestamp():
                if entry is not None:
                    del self._entries[(environment, digest)]
                self.misses += 1
                return None
            self._entries.move_to_end((environment, digest))
            self.hits += 1
            return entry[0]

    def put(self, environment: str, digest: str, decision: Decision, now: datetime) -> None:
        until = now + self.max_age
        if decision.expires_at is not None:
            until = min(until, decision.expires_at)
        quarantine = decision.check("quarantine")
        if (
            not decision.allowed
            or until <= now
            or quarantine is None
            or quarantine.status is not CheckStatus.PASS
        ):
            return
        with self._lock:
            self._entries[(environment, digest)] = (decision, until.timestamp())
            self._entries.move_to_end((environment, digest))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def invalidate(self, digest: str | None = None) -> None:
        with self._lock:
            if digest is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if k[1] == digest]:
                    del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _lookup(session: Session, ref: ModelReference) -> list[Checkpoint]:
    """The checkpoints a reference names: by registry name and digest or source commit, or,
    for `hf://NS/NAME:COMMIT`, every checkpoint mirrored from that repository at that commit
    whatever its registry name (that is what the pod will fetch)."""
    query = (  # quarantine by digest: of the manifest (any name) or of one of its files
        select(Checkpoint)
        .options(selectinload(Checkpoint.quarantines), selectinload(Checkpoint.file_quarantines))
        .order_by(Checkpoint.id)
    )
    if ref.source_uri is not None:
        query = query.where(
            Checkpoint.source_uri == ref.source_uri, Checkpoint.source_commit == ref.commit
        )
        return list(session.scalars(query))
    assert ref.name is not None
    parsed = ModelName.parse(ref.name)
    query = query.join(Model, Checkpoint.model_id == Model.id).where(
        Model.namespace == parsed.namespace, Model.name == parsed.name
    )
    if ref.digest is not None:
        query = query.where(Checkpoint.manifest_digest == ref.digest.removeprefix("sha256:"))
    else:
        query = query.where(Checkpoint.source_commit == ref.commit)
    return list(session.scalars(query))


def _whole_commit_refusal(ref: ModelReference, checkpoints: Sequence[Checkpoint]) -> str | None:
    """Why `hf://NS/NAME:<commit>` cannot be admitted on these (admitted) checkpoints, or None.

    The pod fetches every file of the commit from the hub: that is covered only by a
    checkpoint known to hold the commit's complete file list. One mirrored with `--include`
    or `--exclude` (or recorded before filters were kept) leaves files nobody scanned."""
    if any(c.complete for c in checkpoints):
        return None
    cuts = "; ".join(
        f"sha256:{c.manifest_digest[:12]}… {source_view(c).filter_text}" for c in checkpoints[:3]
    )
    return (
        f"{cuts}; the pod would fetch files nobody scanned: mirror {ref.source_uri}@{ref.commit} "
        "without --include/--exclude and attest it"
    )


def review_pod(
    session: Session,
    gate: Gatekeeper,
    cache: DecisionCache,
    review: PodReview,
    environment: str,
    *,
    now: datetime | None = None,
) -> PodVerdict:
    """Allowed iff every referenced model is admitted to `environment` now.

    A source commit shared by several checkpoints (e.g. mirrored with different `--include`)
    must be admitted for every one of them: the pod fetches the commit, not one of our subsets.
    A pod that references no model is allowed (scope the webhook with selectors).
    """
    now = now or datetime.now(UTC)
    check_environment(environment)
    if review.kind != "Pod":
        return PodVerdict(
            False,
            f"modelctl reviews Pods only, not {review.kind!r:.60}: fix the webhook's rules",
            (),
            (),
        )
    verdicts = tuple(
        _review_reference(session, gate, cache, ref, environment=environment, now=now)
        for ref in review.references
    )
    denied = [v for v in verdicts if not v.allowed]
    warnings = tuple(w for v in verdicts for w in v.warnings)
    if denied:
        message = f"{len(denied)} of {len(verdicts)} model reference(s) not admitted to " + (
            f"{environment!r}: "
            + " | ".join(f"{v.reference.text} ({v.reference.where}): {v.message}" for v in denied)
        )
        return PodVerdict(False, message, verdicts, warnings)
    if not verdicts:
        return PodVerdict(True, "no model references", verdicts, warnings)
    return PodVerdict(
        True, f"{len(verdicts)} model reference(s) admitted to {environment!r}", verdicts, warnings
    )


def _review_reference(
    session: Session,
    gate: Gatekeeper,
    cache: DecisionCache,
    ref: ModelReference,
    *,
    environment: str,
    now: datetime,
) -> ReferenceVerdict:
    if ref.problem is not None:
        return ReferenceVerdict(ref, False, ref.problem)
    try:
        return _decide_reference(session, gate, cache, ref, environment=environment, now=now)
    except Denied as exc:  # no policy bound to the environment: fail closed
        return ReferenceVerdict(ref, False, exc.message)


def _decide_reference(
    session: Session,
    gate: Gatekeeper,
    cache: DecisionCache,
    ref: ModelReference,
    *,
    environment: str,
    now: datetime,
) -> ReferenceVerdict:
    checkpoints = _lookup(session, ref)
    if not checkpoints:
        return ReferenceVerdict(ref, False, "no such checkpoint in the registry")
    warnings: list[str] = []
    for checkpoint in checkpoints:
        digest = f"sha256:{checkpoint.manifest_digest}"
        held = admission.active_quarantine(checkpoint)
        if held is not None:  # read now, on every review: never from the cache
            by = f" by file sha256:{held.digest}" if held.kind == "file" else ""
            return ReferenceVerdict(ref, False, f"{digest} is quarantined{by}: {held.reason}")
        decision = cache.get(environment, digest, now)
        if decision is None:
            decision = gate.decide(session, checkpoint, environment, now)
            cache.put(environment, digest, decision, now)
        if not decision.allowed:
            reasons = failing_checks(decision) or ["policy: denied"]
            return ReferenceVerdict(ref, False, f"{digest}: " + "; ".join(reasons))
        warnings += [f"{ref.text}: {w}" for w in warning_checks(decision)]
    if ref.source_uri is not None:
        incomplete = _whole_commit_refusal(ref, checkpoints)
        if incomplete is not None:
            return ReferenceVerdict(ref, False, incomplete)
    admitted = ", ".join(f"sha256:{c.manifest_digest[:12]}…" for c in checkpoints)
    return ReferenceVerdict(ref, True, f"admitted ({admitted})", tuple(warnings))
