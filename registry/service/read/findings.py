"""The findings page: findings of the newest scan of each scanner on each checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from attestations.utc import aware
from registry.db.models import Checkpoint, Model, Scan
from registry.errors import InputError
from registry.service.findings import raw_finding_id
from registry.service.quarantines import quarantined_checkpoint_ids
from registry.service.read.common import (
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    SEVERITIES,
    latest_scan_ids,
    report_findings,
)


@dataclass(frozen=True, slots=True)
class FindingRow:
    id: str  # the stable finding id (registry/service/findings.py)
    ref: str
    namespace: str
    name: str
    digest: str
    scanner: str
    rule: str
    severity: str
    message: str
    path: str
    evidence: dict[str, Any]
    status: str  # open | quarantined | waived
    found_at: datetime


@dataclass(frozen=True, slots=True)
class FindingQuery:
    scanner: str = ""
    rule: str = ""
    severity: str = ""  # at least this severity
    status: str = ""  # open | quarantined
    page: int = 1
    per_page: int = PAGE_SIZE


def findings(session: Session, query: FindingQuery) -> tuple[list[FindingRow], int]:
    """Findings of the newest scan of each scanner on each checkpoint, worst first."""
    if query.severity and query.severity not in SEVERITIES:
        raise InputError(f"unknown severity {query.severity!r}")
    if query.status and query.status not in ("open", "quarantined"):
        raise InputError(f"unknown status {query.status!r}")
    if query.page < 1 or not 1 <= query.per_page <= MAX_PAGE_SIZE:
        raise InputError("bad page")
    stmt = (
        select(Scan, Model.namespace, Model.name, Checkpoint.manifest_digest)
        .join(Checkpoint, Checkpoint.id == Scan.checkpoint_id)
        .join(Model, Model.id == Checkpoint.model_id)
        .where(Scan.id.in_(latest_scan_ids()))
        .where(Scan.verdict != "clean")
    )
    if query.scanner:
        stmt = stmt.where(Scan.scanner_id == query.scanner)
    quarantined = set(session.scalars(quarantined_checkpoint_ids()))
    min_rank = SEVERITIES.index(query.severity) if query.severity else 0
    rows: list[FindingRow] = []
    for scan, ns, name, digest in session.execute(stmt):
        status = "quarantined" if scan.checkpoint_id in quarantined else "open"
        if query.status and status != query.status:
            continue
        for f in report_findings(scan.report):
            sev = str(f.get("severity", "info"))
            if sev not in SEVERITIES or SEVERITIES.index(sev) < min_rank:
                continue
            if query.rule and query.rule != f.get("rule"):
                continue
            evidence = f.get("evidence")
            rows.append(
                FindingRow(
                    id=raw_finding_id(scan.scanner_id, str(f.get("sha256", "")), f),
                    ref=f"{ns}/{name}@sha256:{digest}",
                    namespace=ns,
                    name=name,
                    digest=digest,
                    scanner=str(f.get("scanner", scan.scanner_id)),
                    rule=str(f.get("rule", "")),
                    severity=sev,
                    message=str(f.get("message", "")),
                    path=str(f.get("path", "")),
                    evidence=evidence if isinstance(evidence, dict) else {},
                    status=status,
                    found_at=aware(scan.finished_at),
                )
            )
    rows.sort(key=lambda r: (-SEVERITIES.index(r.severity), r.ref, r.path, r.rule))
    start = (query.page - 1) * query.per_page
    return rows[start : start + query.per_page], len(rows)
