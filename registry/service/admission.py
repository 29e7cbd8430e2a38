"""Gather the facts about a checkpoint and let the (pure) policy decide.

Facts are established now, not read from columns: every stored attestation is re-verified
with the registry's public key before it counts; scans are the latest run of each scanner;
file formats are what the scanners recognised by content.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from attestations.bundle import Bundle
from attestations.decision import DecisionRecord, decision_statement
from attestations.digests import Digest
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.errors import AttestationError
from attestations.intoto import Statement
from attestations.keys import KeySigner, PublicKeyVerifier, load_public_key
from attestations.utc import aware
from policies import REGISTRY_SIGNER, AttestationFact, Facts, FileFact, ScanFact
from policies.model import UNWAIVABLE_PREFIXES, ExceptionScope, PolicyException
from registry.blobs.base import BlobReader
from registry.db.models import Attestation, AuditEvent, Checkpoint, Quarantine, Scan, WaiverRow
from registry.db.models import Decision as DecisionRow
from registry.errors import InputError, NotFound, TwoPersonRule
from registry.scanners import catalog
from registry.service import findings
from registry.service.attest import store_attestation
from registry.service.checkpoints import UNKNOWN_LICENSE, card_license
from registry.service.findings import latest_scans
from registry.service.scan import report_max_severity
from registry.tlog import append as tlog
from registry.tlog.entries import EntryKind, LogEntry

#: Without a scan, these names are assumed pickle-based: fail closed.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")


def _formats(checkpoint: Checkpoint, scans: list[Scan]) -> dict[str, str]:
    formats: dict[str, str] = {}
    for row in scans:
        fmt = catalog.format_of(row.scanner_id)  # each scanner declares its format
        files = row.report.get("files", []) if isinstance(row.report, dict) else []
        for entry in files:
            if fmt and isinstance(entry, dict) and isinstance(entry.get("path"), str):
                formats[entry["path"]] = fmt
    for f in checkpoint.files:
        if f.path not in formats:
            lower = f.path.lower()
            if not scans and lower.endswith(_PICKLE_SUFFIXES):
                formats[f.path] = "pickle"
            else:
                formats[f.path] = Path(lower).suffix.lstrip(".") or "data"
    return formats


def model_card_license(checkpoint: Checkpoint, blobs: BlobReader) -> str | None:
    """`license:` from the model card's YAML front matter (README.md), lower-cased."""
    return card_license(((f.path, Digest(f.sha256)) for f in checkpoint.files), blobs)


def evidence_attestations(checkpoint: Checkpoint) -> list[Attestation]:
    """The attestations a decision may rest on: not earlier decisions, which are its outputs
    (and would otherwise make every check slower than the last)."""
    return list(checkpoint.evidence_attestations)


#: Verification results by (sha256 of the bundle's bytes, sha256 of the key): a signature
#: check is a pure function of the two, and live statuses re-decide many checkpoints at once.
_VERIFIED: OrderedDict[tuple[str, str], tuple[tuple[str, str], ...] | None] = OrderedDict()
_VERIFIED_MAX = 50_000
_VERIFIED_LOCK = threading.Lock()


def _verified_subjects(
    bundle: bytes, key_id: str, verifier: PublicKeyVerifier
) -> tuple[tuple[str, str], ...] | None:
    """(predicate type, subject sha256) of each subject, or None when it does not verify."""
    cache_key = (hashlib.sha256(bundle).hexdigest(), key_id)
    with _VERIFIED_LOCK:
        if cache_key in _VERIFIED:
            _VERIFIED.move_to_end(cache_key)
            return _VERIFIED[cache_key]
    try:
        envelope = verifier.verify(Bundle.from_bytes(bundle))
        statement = Statement.from_payload(envelope.payload)
    except AttestationError:
        result = None  # does not verify: it does not count (and is never trusted from columns)
    else:
        result = tuple(
            (statement.predicate_type, digest)
            for subject in statement.subjects
            if (digest := subject.digest.get("sha256"))
        )
    with _VERIFIED_LOCK:
        _VERIFIED[cache_key] = result
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    return result


def verified_attestations(
    checkpoint: Checkpoint, registry_public_key: bytes | None, now: datetime
) -> list[AttestationFact]:
    """The stored attestations that verify now with the registry's key, as policy facts."""
    if registry_public_key is None:
        return []
    verifier = PublicKeyVerifier([load_public_key(registry_public_key)])
    key_id = hashlib.sha256(registry_public_key).hexdigest()
    facts: list[AttestationFact] = []
    for row in evidence_attestations(checkpoint):
        for predicate_type, digest in _verified_subjects(row.bundle, key_id, verifier) or ():
            facts.append(
                AttestationFact(
                    predicate_type=predicate_type,
                    signer=REGISTRY_SIGNER,
                    subject_digest=f"sha256:{digest}",
                    verified_at=now,
                )
            )
    return facts


def report_differential_base(report: Any) -> str | None:
    """The base a stored backdoor scan report compared the model with: the folder finding's
    `evidence.differential.base` (the differential mode's evidence); None for any other scan."""
    files = report.get("files", []) if isinstance(report, dict) else []
    for entry in files if isinstance(files, list) else []:
        findings_ = entry.get("findings", []) if isinstance(entry, dict) else []
        for finding in findings_ if isinstance(findings_, list) else []:
            evidence = finding.get("evidence") if isinstance(finding, dict) else None
            diff = evidence.get("differential") if isinstance(evidence, dict) else None
            base = diff.get("base") if isinstance(diff, dict) else None
            if isinstance(base, str) and base:
                return base
    return None


def checkpoint_facts(
    checkpoint: Checkpoint,
    *,
    blobs: BlobReader,
    registry_public_key: bytes | None,
    now: datetime | None = None,
) -> Facts:
    now = now or datetime.now(UTC)
    scans = latest_scans(checkpoint)
    formats = _formats(checkpoint, scans)
    license = model_card_license(checkpoint, blobs)
    if checkpoint.license is None:  # recorded before migration 0009: record it now, once
        checkpoint.license = license or UNKNOWN_LICENSE
    scan_facts = tuple(
        ScanFact(
            scanner=row.scanner_id,
            version=row.scanner_version,
            verdict=row.verdict,
            finished_at=aware(row.finished_at),
            max_severity=report_max_severity(row.report),
            files=findings.report_files(row.scanner_id, row.report),
            differential_base=report_differential_base(row.report),
        )
        for row in scans
    )
    session = object_session(checkpoint)
    # Finding-level triage is read only when a scan is malicious: a clean checkpoint costs none.
    triaged = findings.triaged_for(session, scan_facts, now) if session is not None else {}
    return Facts(
        name=checkpoint.model.full_name,
        digest=f"sha256:{checkpoint.manifest_digest}",
        source_uri=checkpoint.source_uri,
        commit=checkpoint.source_commit,
        files=tuple(
            FileFact(path=f.path, size=f.size, sha256=f.sha256, format=formats[f.path])
            for f in checkpoint.files
        ),
        license=license,
        attestations=tuple(verified_attestations(checkpoint, registry_public_key, now)),
        scans=scan_facts,
        revisions=tuple(r.revision for r in checkpoint.revisions),
        base_model=checkpoint.base_model,
        quarantined=active_quarantine(checkpoint) is not None,
        triaged=MappingProxyType(triaged),
    )


# -- quarantine ----------------------------------------------------------------------------------


def active_quarantine(checkpoint: Checkpoint) -> Quarantine | None:
    """The first active quarantine holding these bytes: of the manifest digest (under any
    name) or of one of its files' sha256 (`registry.service.quarantines`)."""
    for row in (*checkpoint.quarantines, *checkpoint.file_quarantines):
        if row.released_at is None:
            return row
    return None


# -- decisions -------------------------------------------------------------------------------------


Outcome = tuple[bool, str, str, frozenset[tuple[str, str]]]


def _outcome(allowed: bool, mode: str, policy_digest: str, checks: Iterable[object]) -> Outcome:
    return (
        allowed,
        mode,
        policy_digest,
        frozenset(
            (str(c.get("id")), str(c.get("status"))) for c in checks if isinstance(c, Mapping)
        ),
    )


def newest_outcome(session: Session, checkpoint_id: int, environment: str) -> Outcome | None:
    """What the newest recorded decision for (checkpoint, environment) said: one indexed row,
    read as columns (no decision object is loaded)."""
    row = session.execute(
        select(DecisionRow.allowed, DecisionRow.mode, DecisionRow.policy_digest, DecisionRow.checks)
        .where(DecisionRow.checkpoint_id == checkpoint_id)
        .where(DecisionRow.environment == environment)
        .order_by(DecisionRow.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return _outcome(row.allowed, row.mode, row.policy_digest, row.checks or ())


def outcome_changed(previous: Outcome | None, record: DecisionRecord) -> bool:
    """Whether `record` says something the newest recorded decision does not: allowed, mode,
    policy digest or the status of any check (messages and times alone are not a change)."""
    return previous != _outcome(record.allowed, record.mode, record.policy_digest, record.checks)


def record_decision_if_changed(
    session: Session,
    checkpoint: Checkpoint,
    record: DecisionRecord,
    *,
    signer: KeySigner | None,
    actor: str,
) -> DecisionRow | None:
    """Record (row, signed VSA, audit event) only when the outcome changed for (checkpoint,
    environment): a reader repeating a check adds nothing to the database."""
    if not outcome_changed(newest_outcome(session, checkpoint.id, record.environment), record):
        return None
    return record_decision(session, checkpoint, record, signer=signer, actor=actor)


def record_decision(
    session: Session,
    checkpoint: Checkpoint,
    record: DecisionRecord,
    *,
    signer: KeySigner | None,
    actor: str,
) -> DecisionRow:
    """Keep the decision as made; sign it as a VSA when the registry key is available."""
    row = DecisionRow(
        environment=record.environment,
        allowed=record.allowed,
        mode=record.mode,
        policy_name=record.policy_name,
        policy_digest=record.policy_digest,
        checks=[dict(c) for c in record.checks],
        evaluated_at=record.evaluated_at,
        expires_at=record.expires_at,
        checkpoint_id=checkpoint.id,  # not decisions.append: that would load every past one
    )
    session.add(row)
    if signer is not None:
        statement = decision_statement(record)
        bundle = signer.sign(INTOTO_PAYLOAD_TYPE, statement.to_payload())
        attestation = store_attestation(
            session, checkpoint, statement, bundle, f"key sha256:{signer.hint}"
        )
        session.flush()
        row.attestation_id = attestation.id
    else:  # a signed decision is logged as its VSA attestation; an unsigned one as itself
        outcome = "allowed" if record.allowed else "denied"
        tlog.append(
            session,
            LogEntry(
                kind=EntryKind.DECISION,
                subject=f"sha256:{checkpoint.manifest_digest}",
                actor=actor,
                time=record.evaluated_at,
                detail=f"{record.environment}: {outcome} by policy {record.policy_name} "
                f"({record.policy_digest})",
            ),
        )
    session.add(
        AuditEvent(
            actor=actor,
            action="checkpoint.decide",
            subject=f"{checkpoint.model.full_name}@sha256:{checkpoint.manifest_digest}",
            details={
                "environment": record.environment,
                "allowed": record.allowed,
                "policy": record.policy_name,
                "attested": signer is not None,
            },
        )
    )
    session.flush()
    return row


# -- exceptions granted through the registry --------------------------------------------------


def add_exception(
    session: Session,
    checkpoint: Checkpoint,
    *,
    waive: list[str],
    reason: str,
    approver: str,
    requested_by: str,
    expires_at: datetime,
    environments: list[str] | None,
    actor: str,
    now: datetime,
) -> WaiverRow:
    """Waive checks for one checkpoint until `expires_at`; never signatures, digests, quarantine.

    Only through an approved request (`exception_requests.approve`): `requested_by` and
    `approver` are authenticated principals and never the same one.
    """
    if not waive:
        raise InputError("an exception must name the checks it waives (--waive CHECK_ID)")
    barred = [c for c in waive if c.split(".", 1)[0] in UNWAIVABLE_PREFIXES]
    if barred:
        raise InputError(f"these checks can never be waived: {', '.join(barred)}")
    if not reason.strip() or not approver.strip() or not requested_by.strip():
        raise InputError("an exception needs a reason, a requester and an approver")
    if requested_by == approver:
        raise TwoPersonRule(
            f"an exception needs a second person: {approver} requested it and may not approve it"
        )
    if expires_at.tzinfo is None:
        raise InputError("the expiry needs a time zone (e.g. 2026-12-31T00:00:00Z)")
    if expires_at <= now:
        raise InputError(f"the expiry {expires_at.isoformat()} is in the past")
    row = WaiverRow(
        checkpoint=checkpoint,
        waive=sorted(set(waive)),
        environments=sorted(set(environments)) if environments else None,
        reason=reason.strip(),
        approver=approver.strip(),
        requested_by=requested_by,
        expires_at=expires_at,
        actor=actor,
    )
    session.add(row)
    session.flush()
    tlog.append(
        session,
        LogEntry(
            kind=EntryKind.EXCEPTION,
            subject=f"sha256:{checkpoint.manifest_digest}",
            actor=actor,
            time=now,
            detail=f"exception {row.id} waives {', '.join(row.waive)} until "
            f"{expires_at.isoformat()}; approved by {row.approver}",
        ),
    )
    session.add(
        AuditEvent(
            actor=actor,
            action="exception.add",
            subject=f"{checkpoint.model.full_name}@sha256:{checkpoint.manifest_digest}",
            details={
                "id": row.id,
                "waive": row.waive,
                "environments": row.environments,
                "requested_by": row.requested_by,
                "approver": row.approver,
                "expires_at": expires_at.isoformat(),
                "reason": row.reason,
            },
        )
    )
    session.flush()
    return row


def revoke_exception(
    session: Session, exception_id: int, *, actor: str, now: datetime
) -> WaiverRow:
    row = session.get(WaiverRow, exception_id)
    if row is None:
        raise NotFound(f"no exception {exception_id}")
    if row.revoked_at is not None:
        raise InputError(f"exception {exception_id} was already revoked")
    row.revoked_at = now
    row.revoked_by = actor
    session.add(
        AuditEvent(
            actor=actor, action="exception.revoke", subject=f"exception {exception_id}", details={}
        )
    )
    session.flush()
    return row


def registry_exceptions(
    checkpoint_id: int, digest: str, rows: list[WaiverRow]
) -> tuple[PolicyException, ...]:
    """Active registry exceptions as policy exceptions scoped to this checkpoint's digest."""
    out = []
    for row in rows:
        if row.checkpoint_id != checkpoint_id or row.revoked_at is not None:
            continue
        expires = aware(row.expires_at)
        out.append(
            PolicyException(
                id=f"registry-exception-{row.id}",
                scope=ExceptionScope(name=None, digest=digest, source=None),
                waive=frozenset(row.waive),
                reason=row.reason,
                approver=row.approver,
                expires=expires,
                environments=frozenset(row.environments) if row.environments else None,
                line=0,
            )
        )
    return tuple(out)
