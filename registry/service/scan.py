"""Scan a stored checkpoint: run every scanner over its blobs, record, and attest each run.

The scanners read the verified blobs, never a copy on someone's disk. Each scanner run is a
`scans` row; when the registry's key is available it is also a signed scan attestation
(`https://modelctl.dev/attestations/scan/v1`) linked from the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from attestations.digests import Digest
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.keys import KeySigner
from attestations.scan_result import ScannedFile, ScanRun, scan_statement
from registry.blobs.base import BlobReader
from registry.db.models import AuditEvent, Checkpoint, Scan
from registry.errors import InputError
from registry.scanners import catalog
from registry.scanners.backdoor.settings import BackdoorSettings
from registry.scanners.base import FolderScanner, ScanLimits, Scanner, ScanTarget, Severity
from registry.scanners.errors import ScanInputError
from registry.scanners.runner import OpenerFile, ScanReport, scan_targets
from registry.service.attest import store_attestation
from registry.service.checkpoints import manifest_of
from registry.service.rescan import RuleVersion


def select_scanners(
    ids: Sequence[str], *, backdoor: BackdoorSettings | None = None
) -> tuple[list[Scanner], list[FolderScanner]]:
    """`catalog.select`, with the scanners' own input error made the registry's `InputError`
    (exit 2, HTTP 400), for the embedded registry and the API."""
    try:
        return catalog.select(ids, backdoor=backdoor)
    except ScanInputError as exc:
        raise InputError(exc.message) from exc


def current_versions(ids: Sequence[str]) -> dict[str, RuleVersion]:
    """What each scanner in `ids` (the default set when empty) judges by now: its version and
    rule-set version, as a scan of it would record them."""
    file_scanners, folder_scanners = select_scanners(ids)
    versions = {s.id: RuleVersion(s.version, s.ruleset_version) for s in file_scanners}
    versions.update({s.id: RuleVersion(s.version, s.ruleset_version) for s in folder_scanners})
    return versions


def checkpoint_targets(checkpoint: Checkpoint, blobs: BlobReader) -> list[ScanTarget]:
    manifest = manifest_of(checkpoint)
    targets: list[ScanTarget] = []
    for entry in manifest:
        digest = entry.sha256
        targets.append(
            OpenerFile(
                path=entry.path,
                size=entry.size,
                opener=lambda d=digest: blobs.open(d),  # type: ignore[misc]
                sha256=digest.hex,
            )
        )
    return targets


#: Worst last, as the scanners' `Severity` (registry/scanners/base.py).
SEVERITIES = tuple(s.value for s in sorted(Severity, key=lambda s: s.rank))


def report_max_severity(report: Any) -> str | None:
    """The worst severity among a stored scan report's findings; None when it has none."""
    worst = -1
    files = report.get("files", []) if isinstance(report, dict) else []
    for entry in files if isinstance(files, list) else []:
        findings = entry.get("findings", []) if isinstance(entry, dict) else []
        for finding in findings if isinstance(findings, list) else []:
            if isinstance(finding, dict) and finding.get("severity") in SEVERITIES:
                worst = max(worst, SEVERITIES.index(finding["severity"]))
    return SEVERITIES[worst] if worst >= 0 else None


def severity_counts(reports: list[dict[str, Any]]) -> dict[str, int]:
    """How many findings of each severity the stored scan reports hold (for the audit event:
    notifications tell new critical or high findings from the same ones again)."""
    counts: dict[str, int] = {}
    for report in reports:
        for entry in report.get("files", []):
            for finding in entry.get("findings", []):
                severity = finding.get("severity") if isinstance(finding, dict) else None
                if severity in SEVERITIES:
                    counts[severity] = counts.get(severity, 0) + 1
    return counts


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def scan_checkpoint(
    session: Session,
    checkpoint: Checkpoint,
    *,
    blobs: BlobReader,
    scanners: list[Scanner],
    folder_scanners: list[FolderScanner],
    signer: KeySigner | None,
    limits: ScanLimits,
    actor: str,
) -> tuple[ScanReport, list[Scan]]:
    report = scan_targets(
        checkpoint_targets(checkpoint, blobs), scanners, folder_scanners, limits=limits
    )
    digests = {f.path: f.sha256 for f in checkpoint.files}
    name = checkpoint.model.full_name
    rows: list[Scan] = []
    limits_json = {k: getattr(limits, k) for k in limits.__dataclass_fields__}
    for run in report.runs:
        files = [
            ScannedFile(
                path=path,
                # "." (the folder) is identified by the checkpoint itself.
                sha256=digests.get(path, checkpoint.manifest_digest),
                verdict=result.verdict.value,
                findings=[f.to_json() for f in result.findings],
            )
            for path, result in sorted(run.results.items())
        ]
        stored = {
            "files": [
                {
                    "path": f.path,
                    "sha256": f.sha256,
                    "verdict": f.verdict,
                    "findings": f.findings,
                }
                for f in files
            ],
            "limits": limits_json,
        }
        row = Scan(
            checkpoint=checkpoint,
            scanner_id=run.id,
            scanner_version=run.version,
            ruleset_version=run.ruleset_version,
            verdict=run.verdict.value,
            report=stored,
            max_severity=report_max_severity(stored),
            started_at=_when(report.started),
            finished_at=_when(report.finished),
        )
        session.add(row)
        if signer is not None:
            statement = scan_statement(
                name,
                Digest(checkpoint.manifest_digest),
                ScanRun(
                    scanner_id=run.id,
                    scanner_version=run.version,
                    ruleset_version=run.ruleset_version,
                    verdict=run.verdict.value,
                    files=files,
                    started=_when(report.started),
                    finished=_when(report.finished),
                    limits=limits_json,
                ),
            )
            bundle = signer.sign(INTOTO_PAYLOAD_TYPE, statement.to_payload())
            attestation = store_attestation(
                session, checkpoint, statement, bundle, f"key sha256:{signer.hint}"
            )
            session.flush()
            row.attestation_id = attestation.id
        rows.append(row)
    session.add(
        AuditEvent(
            actor=actor,
            action="checkpoint.scan",
            subject=f"{name}@sha256:{checkpoint.manifest_digest}",
            details={
                "verdict": report.verdict.value,
                "scanners": [r.id for r in report.runs],
                "attested": signer is not None,
                "severities": severity_counts([r.report for r in rows]),
            },
        )
    )
    session.flush()
    return report, rows
