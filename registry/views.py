"""What the registry returns to its callers: plain frozen data, the same embedded or remote.

`to_json()` gives the stable machine output documented in docs/formats/cli-json.md: fields
may be added, never renamed or removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from attestations.intoto import rfc3339


def iso(ts: datetime) -> str:
    """RFC 3339 in UTC (SQLite hands back naive datetimes; they are stored in UTC)."""
    return rfc3339(ts)


@dataclass(frozen=True, slots=True)
class FileView:
    path: str
    size: int
    sha256: str  # lowercase hex

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class SourceView:
    uri: str
    commit: str
    revisions: tuple[str, ...] = ()
    include: tuple[str, ...] | None = None  # the mirror's --include globs (None: not recorded)
    exclude: tuple[str, ...] | None = None  # the mirror's --exclude globs (None: not recorded)
    complete: bool | None = None  # every file of the commit (None: unknown, not complete)

    @property
    def filter_text(self) -> str:
        """How the checkpoint was cut from its source, for people."""
        if self.complete:
            filtered = bool(self.include or self.exclude)
            return "the whole commit" + (" (the filter left no file out)" if filtered else "")
        if self.include is None and self.exclude is None:
            return "unknown (recorded before filters were kept): not known to be the whole commit"
        globs = [f"--include {g!r}" for g in self.include or ()]
        globs += [f"--exclude {g!r}" for g in self.exclude or ()]
        return f"mirrored with {' '.join(globs) or 'a filter'}: not the whole commit"

    def to_json(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "commit": self.commit,
            "revisions": list(self.revisions),
            "include": list(self.include) if self.include is not None else None,
            "exclude": list(self.exclude) if self.exclude is not None else None,
            "complete": self.complete,
        }


@dataclass(frozen=True, slots=True)
class AttestationView:
    id: int
    predicate_type: str
    subject_digest: str  # "sha256:<hex>"
    signer: str
    created_at: datetime
    bundle_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "predicate_type": self.predicate_type,
            "subject_digest": self.subject_digest,
            "signer": self.signer,
            "created_at": iso(self.created_at),
            "bundle_sha256": self.bundle_sha256,
        }


@dataclass(frozen=True, slots=True)
class ScanView:
    id: int
    scanner: str
    version: str
    ruleset_version: str
    verdict: str
    started_at: datetime
    finished_at: datetime
    attestation_id: int | None
    flagged: int  # files this scanner did not find clean

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scanner": self.scanner,
            "version": self.version,
            "ruleset_version": self.ruleset_version,
            "verdict": self.verdict,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "attested": self.attestation_id is not None,
            "attestation_id": self.attestation_id,
            "flagged_files": self.flagged,
        }


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """A registry scan: the full report (as `scan --json` prints it) and what was recorded."""

    checkpoint: CheckpointView
    report: dict[str, Any]
    recorded: tuple[ScanView, ...]

    def to_json(self) -> dict[str, Any]:
        out = dict(self.report)
        out["name"] = self.checkpoint.name
        out["digest"] = self.checkpoint.digest
        out["recorded"] = [s.to_json() for s in self.recorded]
        return out


@dataclass(frozen=True, slots=True)
class CheckpointView:
    name: str
    digest: str  # "sha256:<hex>", the manifest digest
    source: SourceView
    created_at: datetime
    files: tuple[FileView, ...]
    scans: tuple[ScanView, ...] = ()
    attestations: tuple[AttestationView, ...] = ()
    decisions: tuple[dict[str, Any], ...] = ()
    quarantine: dict[str, Any] | None = None  # set while the checkpoint is quarantined

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.digest}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "ref": self.ref,
            "source": self.source.to_json(),
            "created_at": iso(self.created_at),
            "total_size": self.total_size,
            "files": [f.to_json() for f in self.files],
            "scans": [s.to_json() for s in self.scans],
            "attestations": [a.to_json() for a in self.attestations],
            "decisions": list(self.decisions),
            "quarantine": self.quarantine,
        }


@dataclass(frozen=True, slots=True)
class OpenFinding:
    """A file the newest scans call malicious or hold a critical finding on (what `attest`
    refuses to sign without `--allow-findings`, and warns about when it is given)."""

    path: str
    scanner: str
    verdict: str
    rule: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "scanner": self.scanner,
            "verdict": self.verdict,
            "rule": self.rule,
            "message": self.message,
        }

    def line(self) -> str:
        return f"{self.path}: {self.verdict} ({self.scanner}: {self.rule}: {self.message:.160})"


@dataclass(frozen=True, slots=True)
class AttestResult:
    checkpoint: CheckpointView
    issued: tuple[AttestationView, ...]
    model_signature: bytes  # the bundle, as signed, for `attest --signature-out`
    public_key_pem: bytes
    #: Signed anyway (`--allow-findings`): the files with open critical/malicious findings.
    findings: tuple[OpenFinding, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.checkpoint.name,
            "digest": self.checkpoint.digest,
            "issued": [a.to_json() for a in self.issued],
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class MirrorStats:
    files: int
    bytes_total: int
    bytes_transferred: int  # what crossed the wire (or was read from the folder) this time
    blobs_created: int
    blobs_reused: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes_total": self.bytes_total,
            "bytes_transferred": self.bytes_transferred,
            "blobs_created": self.blobs_created,
            "blobs_reused": self.blobs_reused,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class MirrorResult:
    checkpoint: CheckpointView
    created: bool  # False: these exact bytes were already registered under this name
    stats: MirrorStats
    scan: ScanOutcome | None = None

    def to_json(self) -> dict[str, Any]:
        out = self.checkpoint.to_json()
        out["created"] = self.created
        out["stats"] = self.stats.to_json()
        if self.scan is not None:
            out["verdict"] = self.scan.report["verdict"]
        return out


@dataclass(frozen=True, slots=True)
class CheckpointSummary:
    digest: str
    source: SourceView
    created_at: datetime
    file_count: int
    total_size: int
    #: environment -> the live status (the bound policy evaluated now, not a recorded
    #: decision): {"status", "allowed", "mode", "policy", "reasons", "expires_at"}.
    environments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "source": self.source.to_json(),
            "created_at": iso(self.created_at),
            "file_count": self.file_count,
            "total_size": self.total_size,
            "environments": {env: dict(s) for env, s in self.environments.items()},
        }


@dataclass(frozen=True, slots=True)
class ModelSummary:
    name: str
    checkpoints: tuple[CheckpointSummary, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "checkpoints": [c.to_json() for c in self.checkpoints]}


@dataclass(frozen=True, slots=True)
class DecisionView:
    """An admission decision about one checkpoint in one environment."""

    name: str
    digest: str
    environment: str
    allowed: bool
    mode: str
    policy_name: str
    policy_digest: str
    checks: tuple[dict[str, Any], ...]
    evaluated_at: datetime
    expires_at: datetime | None
    reasons: tuple[str, ...]
    #: Decided with a policy document other than the registry's: not recorded, not a status.
    what_if: bool = False

    @property
    def warnings(self) -> tuple[str, ...]:
        """`check-id: message` of every check that failed in warn mode (allowed anyway)."""
        return tuple(
            f"{c.get('id')}: {c.get('message')}" for c in self.checks if c.get("status") == "warn"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "environment": self.environment,
            "what_if": self.what_if,
            "allowed": self.allowed,
            "mode": self.mode,
            "policy": {"name": self.policy_name, "digest": self.policy_digest},
            "checks": list(self.checks),
            "evaluated_at": iso(self.evaluated_at),
            "expires_at": iso(self.expires_at) if self.expires_at else None,
            "reasons": list(self.reasons),
        }


# -- pull (added for `modelctl pull`) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PullResult:
    """A checkpoint pulled into a folder, every byte checked against the signed manifest."""

    name: str
    digest: str
    environment: str
    layout: str  # "plain" or "hf-cache"
    destination: str  # what was renamed into place
    model_path: str  # the folder holding the model files (a snapshot folder for hf-cache)
    signature_path: str  # model.sig: the signature bundle, as stored
    decision_path: str  # decision.json: the admission decision
    files: int
    bytes: int
    seconds: float
    replaced: bool  # --force replaced an existing destination
    decision: DecisionView

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "ref": f"{self.name}@{self.digest}",
            "environment": self.environment,
            "layout": self.layout,
            "destination": self.destination,
            "model_path": self.model_path,
            "signature": self.signature_path,
            "decision_file": self.decision_path,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "replaced": self.replaced,
            "decision": self.decision.to_json(),
        }


@dataclass(frozen=True, slots=True)
class ExceptionView:
    id: int
    ref: str
    waive: tuple[str, ...]
    environments: tuple[str, ...] | None
    reason: str
    approver: str
    expires_at: datetime
    created_at: datetime
    revoked_at: datetime | None
    requested_by: str | None = None  # the principal that asked (None: granted before 0011)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "waive": list(self.waive),
            "environments": list(self.environments) if self.environments else None,
            "reason": self.reason,
            "requested_by": self.requested_by,
            "approver": self.approver,
            "expires_at": iso(self.expires_at),
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
        }


@dataclass(frozen=True, slots=True)
class FindingView:
    """A finding of a checkpoint's newest scans, with its stable id and triage state."""

    id: str  # fnd-<24 hex>: (scanner, rule, file sha256, location)
    scanner: str
    path: str
    sha256: str  # the file's (the manifest digest for `.`)
    file_verdict: str
    rule: str
    severity: str
    message: str
    blocking: bool  # makes a malicious verdict: denies until triaged
    triage: str | None  # "false positive until …", "pending request N", or None
    occurrences: int = 1  # findings at the same location share the id (the first is shown)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scanner": self.scanner,
            "path": self.path,
            "sha256": self.sha256,
            "file_verdict": self.file_verdict,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "blocking": self.blocking,
            "triage": self.triage,
            "occurrences": self.occurrences,
        }


@dataclass(frozen=True, slots=True)
class TriageView:
    """A finding-level decision: requested by one principal, approved by another."""

    id: int
    finding_id: str
    decision: str  # false-positive
    status: str  # pending | approved | revoked
    reason: str
    scanner: str
    rule: str
    path: str
    file_sha256: str
    requested_by: str
    created_at: datetime
    expires_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    revoked_by: str | None
    revoked_at: datetime | None
    active: bool  # approved, not revoked, not expired

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "finding_id": self.finding_id,
            "decision": self.decision,
            "status": self.status,
            "reason": self.reason,
            "scanner": self.scanner,
            "rule": self.rule,
            "path": self.path,
            "file_sha256": self.file_sha256,
            "requested_by": self.requested_by,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "approved_by": self.approved_by,
            "approved_at": iso(self.approved_at) if self.approved_at else None,
            "revoked_by": self.revoked_by,
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
            "active": self.active,
        }


# -- server: API tokens, audit log, jobs (added for `modelctl serve`) ---------------------------


def _iso_or_none(ts: datetime | None) -> str | None:
    return iso(ts) if ts is not None else None


@dataclass(frozen=True, slots=True)
class TokenView:
    id: int
    name: str
    role: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    environments: tuple[str, ...] | None = None  # the scope; None: every environment

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "expires_at": _iso_or_none(self.expires_at),
            "revoked_at": _iso_or_none(self.revoked_at),
            "environments": list(self.environments) if self.environments is not None else None,
        }


@dataclass(frozen=True, slots=True)
class TokenCreated:
    token: TokenView
    secret: str  # shown once; never stored, never logged

    def to_json(self) -> dict[str, Any]:
        return {**self.token.to_json(), "token": self.secret}


@dataclass(frozen=True, slots=True)
class AuditEventView:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class ExceptionRequestView:
    """A requested exception: it waives nothing until another principal approves it."""

    id: int
    ref: str
    waive: tuple[str, ...]
    environments: tuple[str, ...] | None
    reason: str
    expires_at: datetime
    status: str  # pending | approved | rejected
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    exception_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "waive": list(self.waive),
            "environments": list(self.environments) if self.environments else None,
            "reason": self.reason,
            "expires_at": iso(self.expires_at),
            "status": self.status,
            "requested_by": self.requested_by,
            "requested_at": iso(self.requested_at),
            "decided_by": self.decided_by,
            "exception_id": self.exception_id,
        }


@dataclass(frozen=True, slots=True)
class QuarantineView:
    """A quarantine of bytes: a manifest digest (`kind` checkpoint) or a file's sha256 (`file`),
    with every checkpoint it covers now, under every name."""

    id: int
    kind: str  # checkpoint | file
    digest: str  # sha256:<hex>
    reason: str
    by: str
    since: datetime
    covers: tuple[str, ...]  # NS/NAME@sha256:<manifest digest>, every name
    paths: tuple[str, ...] = ()  # for a file quarantine: the paths that file has
    released_at: datetime | None = None
    released_by: str | None = None
    release_reason: str | None = None
    #: After a release: other quarantines that still hold some of what this one covered.
    still_quarantined_by: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.released_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "digest": self.digest,
            "reason": self.reason,
            "by": self.by,
            "since": iso(self.since),
            "active": self.active,
            "covers": list(self.covers),
            "paths": list(self.paths),
            "released_at": iso(self.released_at) if self.released_at else None,
            "released_by": self.released_by,
            "release_reason": self.release_reason,
            "still_quarantined_by": list(self.still_quarantined_by),
        }
