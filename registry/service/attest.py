"""Registry attestations: the registry signs what it knows about a checkpoint.

For a mirrored checkpoint: a model_signing v1.0 signature built from the stored manifest (no
second hashing pass: the digests were computed while the bytes streamed in), and SLSA
provenance v1 for the mirror step. Bundles are stored verbatim, with predicate type and
subject digest indexed; re-attesting adds new ones and keeps the old.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy.orm import Session, object_session

from attestations.bundle import Bundle
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.intoto import Statement
from attestations.keys import KeySigner
from attestations.model_signature import build_statement, resources_from_manifest
from attestations.provenance import MirrorRecord, mirror_provenance
from attestations.serialization import Serialization
from attestations.utc import utc_now
from registry.db.models import Attestation, AuditEvent, Checkpoint
from registry.errors import Denied
from registry.service import findings
from registry.service.checkpoints import attestation_view, checkpoint_view, manifest_of
from registry.tlog import append as tlog
from registry.tlog.entries import EntryKind, LogEntry
from registry.views import AttestResult, OpenFinding


def store_attestation(
    session: Session, checkpoint: Checkpoint, statement: Statement, bundle: Bundle, signer: str
) -> Attestation:
    data = bundle.to_bytes()
    row = Attestation(
        checkpoint=checkpoint,
        predicate_type=statement.predicate_type,
        subject_digest=statement.subjects[0].digest["sha256"],
        signer=signer,
        bundle=data,
        bundle_sha256=hashlib.sha256(data).hexdigest(),
    )
    session.add(row)
    row.log_index = tlog.append(
        session,
        LogEntry(
            kind=EntryKind.ATTESTATION,
            subject=f"sha256:{row.subject_digest}",
            actor=signer,
            time=utc_now(),
            digest=f"sha256:{row.bundle_sha256}",
            detail=row.predicate_type,
        ),
    )
    return row


def open_findings(checkpoint: Checkpoint, now: datetime | None = None) -> list[OpenFinding]:
    """One entry per file and scanner whose newest scan calls it malicious or holds a
    critical finding on it, unless two people triaged every such finding as a false positive
    (the same finding-level decision that clears the `malicious` check)."""
    session = object_session(checkpoint)
    found: list[tuple[OpenFinding, set[str]]] = []
    for scan in findings.latest_scans(checkpoint):
        by_path = {f.path: f for f in findings.report_files(scan.scanner_id, scan.report)}
        files = scan.report.get("files", []) if isinstance(scan.report, dict) else []
        for entry in files if isinstance(files, list) else []:
            if not isinstance(entry, dict):
                continue
            raw = [f for f in entry.get("findings") or [] if isinstance(f, dict)]
            critical = [f for f in raw if f.get("severity") == "critical"]
            verdict = str(entry.get("verdict", ""))
            if verdict != "malicious" and not critical:
                continue
            path = str(entry.get("path", "."))
            scanned = by_path.get(path)
            ids = {
                f.id
                for f in (scanned.findings if scanned is not None else ())
                if f.severity == "critical" or verdict == "malicious"
            }
            first = (critical or raw or [{}])[0]
            line = OpenFinding(
                path=path,
                scanner=scan.scanner_id,
                verdict=verdict or "critical",
                rule=str(first.get("rule", "")),
                message=" ".join(str(first.get("message", "")).split()),
            )
            found.append((line, ids))
    wanted = set().union(*(ids for _, ids in found)) if found else set()
    triaged = (
        findings.active_triaged(session, wanted, now or datetime.now(UTC))
        if session is not None and wanted
        else {}
    )
    return [line for line, ids in found if not ids or not ids <= triaged.keys()]


def attest_checkpoint(
    session: Session,
    checkpoint: Checkpoint,
    *,
    signer: KeySigner,
    tool_version: str,
    actor: str,
    allow_findings: bool = False,
) -> AttestResult:
    """Sign the checkpoint's manifest and mirror provenance.

    A signature attests identity (these are the bytes that were mirrored), not safety, yet a
    registry signature over bytes its own scanners call malicious reads as an endorsement:
    with open critical or malicious findings it refuses (`Denied`) unless `allow_findings`,
    and then the result and the audit event carry the findings."""
    unresolved = open_findings(checkpoint)
    ref = f"{checkpoint.model.full_name}@sha256:{checkpoint.manifest_digest}"
    if unresolved and not allow_findings:
        raise Denied(
            f"refusing to sign {ref}: {len(unresolved)} file(s) with critical or malicious "
            f"findings ({unresolved[0].line():.200}); pass --allow-findings to sign anyway "
            "(a signature attests identity, not safety)",
            reasons=[f.line() for f in unresolved],
        )
    manifest = manifest_of(checkpoint)  # re-checks the stored list against the digest
    signed_by = f"key sha256:{signer.hint}"
    signature_statement = build_statement(
        checkpoint.model.full_name, resources_from_manifest(manifest), Serialization()
    )
    signature = signer.sign(INTOTO_PAYLOAD_TYPE, signature_statement.to_payload())
    provenance_statement = mirror_provenance(
        MirrorRecord(
            name=checkpoint.model.full_name,
            source_uri=checkpoint.source_uri,
            commit=checkpoint.source_commit,
            revisions=[r.revision for r in checkpoint.revisions],
            manifest=manifest,
            mirrored_at=checkpoint.created_at,
            tool_version=tool_version,
        )
    )
    provenance = signer.sign(INTOTO_PAYLOAD_TYPE, provenance_statement.to_payload())
    rows = [
        store_attestation(session, checkpoint, signature_statement, signature, signed_by),
        store_attestation(session, checkpoint, provenance_statement, provenance, signed_by),
    ]
    session.add(
        AuditEvent(
            actor=actor,
            action="checkpoint.attest",
            subject=f"{checkpoint.model.full_name}@sha256:{checkpoint.manifest_digest}",
            details={
                "signer": signed_by,
                "predicates": [r.predicate_type for r in rows],
                "open_findings": [f.to_json() for f in unresolved],
            },
        )
    )
    session.flush()
    return AttestResult(
        checkpoint=checkpoint_view(checkpoint),
        issued=tuple(attestation_view(r) for r in rows),
        model_signature=rows[0].bundle,
        public_key_pem=signer.public_pem,
        findings=tuple(unresolved),
    )
