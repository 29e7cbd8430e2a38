"""What the registry returns to its callers: plain frozen data, the same embedded or remote.

`to_json()` gives the stable machine output documented in docs/formats/cli-json.md: fields
may be added, never renamed or removed.
"""

from __future__ import annotations

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

    def to_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "commit": self.commit, "revisions": list(self.revisions)}


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

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "source": self.source.to_json(),
            "created_at": iso(self.created_at),
            "file_count": self.file_count,
            "total_size": self.total_size,
            # Admission status per environment arrives with the policy engine.
            "environments": {},
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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "environment": self.environment,
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

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "waive": list(self.waive),
            "environments": list(self.environments) if self.environments else None,
            "reason": self.reason,
            "approver": self.approver,
            "expires_at": iso(self.expires_at),
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
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

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "expires_at": _iso_or_none(self.expires_at),
            "revoked_at": _iso_or_none(self.revoked_at),
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
