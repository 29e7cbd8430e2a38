"""Findings: a stable identity, and finding-level triage ("false positive") by two people.

A finding's id is derived from what it is about, not from the scan that reported it:
`fnd-` + the first 24 hex digits of sha256 over (scanner, rule, file sha256, location), where
the location is the finding's archive member and byte offset and, from its evidence, the keys
in `LOCATION_KEYS` (a Keras config path, a GGUF metadata key and line, an ONNX tensor). The
same bytes scanned again, under any name, give the same ids; other bytes give other ids.
Findings of `.` (whole-model scanners such as `backdoor`) are keyed by the manifest digest.

A triage is requested by one principal and approved by another (the audit actors: `token:NAME`
over the API, `local:USER` embedded); it expires (at most `MAX_TRIAGE_DAYS` ahead) and can be
revoked. Only an approved, unrevoked, unexpired triage counts (`active_triaged`). Every step
is an audit event. The caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from attestations.utc import aware
from attestations.verdicts import Severity
from policies.evaluate import blocking_findings
from policies.facts import FindingFact, ScanFact, ScannedFileFact
from registry.db.models import AuditEvent, Checkpoint, FindingTriage, Scan
from registry.errors import Forbidden, InputError, NotFound
from registry.finding_ids import ID_PREFIX, check_finding_id
from registry.views import FindingView, TriageView

#: Evidence keys that say *where* in a file a finding is (the rest says *what* it saw).
LOCATION_KEYS = ("path", "key", "line", "tensor", "where", "layer", "node")
_SEVERITIES = frozenset(s.value for s in Severity)
FALSE_POSITIVE = "false-positive"
MAX_TRIAGE_DAYS = 90
MAX_REASON = 2000


# -- identity ------------------------------------------------------------------------------------


def location(finding: Mapping[str, Any]) -> dict[str, Any]:
    where: dict[str, Any] = {}
    for key in ("member", "offset"):
        if isinstance(finding.get(key), str | int):
            where[key] = finding[key]
    evidence = finding.get("evidence")
    if isinstance(evidence, dict):
        for key in LOCATION_KEYS:
            if isinstance(evidence.get(key), str | int | float | bool):
                where[key] = evidence[key]
    return where


def finding_id(scanner: str, rule: str, file_sha256: str, where: Mapping[str, Any]) -> str:
    body = json.dumps(
        [scanner, rule, file_sha256, dict(where)],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return ID_PREFIX + hashlib.sha256(body.encode("utf-8")).hexdigest()[:24]


def _finding(scanner: str, sha256: str, raw: Mapping[str, Any]) -> FindingFact:
    rule = str(raw.get("rule") or f"{scanner}.unnamed")[:200]
    severity = raw.get("severity")
    return FindingFact(
        id=finding_id(scanner, rule, sha256, location(raw)),
        rule=rule,
        # An unknown severity is treated as the worst: fail closed.
        severity=severity if severity in _SEVERITIES else "critical",
        message=str(raw.get("message") or "")[:300],
    )


def report_files(scanner: str, report: Any) -> tuple[ScannedFileFact, ...]:
    """The files a stored scan report did not find clean, with their findings and ids.

    A malicious file that names no finding gets one (`<scanner>.verdict.malicious`), so
    there is always something to triage, and nothing passes unexplained.
    """
    files = report.get("files", []) if isinstance(report, dict) else []
    out: list[ScannedFileFact] = []
    for entry in files if isinstance(files, list) else []:
        if not isinstance(entry, dict) or entry.get("verdict") == "clean":
            continue
        path = str(entry.get("path") or "?")
        sha256 = str(entry.get("sha256") or "")
        verdict = str(entry.get("verdict") or "error")
        raw = entry.get("findings")
        findings = [
            _finding(scanner, sha256, f)
            for f in (raw if isinstance(raw, list) else [])
            if isinstance(f, dict)
        ]
        if verdict == "malicious" and not findings:
            findings.append(
                _finding(
                    scanner,
                    sha256,
                    {
                        "rule": f"{scanner}.verdict.malicious",
                        "severity": "critical",
                        "message": f"{scanner} says malicious and names no finding",
                    },
                )
            )
        out.append(ScannedFileFact(path, sha256, verdict, tuple(findings)))
    return tuple(out)


# -- what the policy reads --------------------------------------------------------------------


def active_triaged(session: Session, ids: Iterable[str], now: datetime) -> dict[str, datetime]:
    """Id -> expiry, for the ids among `ids` with an approved, unrevoked, unexpired
    false-positive triage (the latest expiry when there are several)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.scalars(
        select(FindingTriage).where(
            FindingTriage.finding_id.in_(wanted),
            FindingTriage.status == "approved",
            FindingTriage.decision == FALSE_POSITIVE,
        )
    )
    active: dict[str, datetime] = {}
    for row in rows:
        until = aware(row.expires_at)
        if until > now and until > active.get(row.finding_id, now):
            active[row.finding_id] = until
    return active


def triaged_for(session: Session, scans: Iterable[ScanFact], now: datetime) -> dict[str, datetime]:
    """What `Facts.triaged` needs: active triage of the findings of malicious scans only (a
    clean checkpoint costs no query)."""
    ids = [f.id for s in scans if s.verdict == "malicious" for _, f in blocking_findings(s)]
    return active_triaged(session, ids, now)


# -- listing -----------------------------------------------------------------------------------


def checkpoint_findings(
    session: Session, checkpoint: Checkpoint, scans: list[Scan], now: datetime
) -> list[FindingView]:
    """Every finding of the newest scan of each scanner (files not found clean), with whether
    it blocks (makes a malicious verdict) and its triage state."""
    views: dict[tuple[str, str, str], FindingView] = {}
    for row in scans:
        fact = ScanFact(
            row.scanner_id,
            row.scanner_version,
            row.verdict,
            row.finished_at,
            files=report_files(row.scanner_id, row.report),
        )
        blocking = (
            {f.id for _, f in blocking_findings(fact)} if fact.verdict == "malicious" else set()
        )
        for file in fact.files:
            for f in file.findings:
                key = (row.scanner_id, file.path, f.id)
                if key in views:  # the same location again: one finding, counted
                    seen = views[key]
                    views[key] = seen.model_copy(update={"occurrences": seen.occurrences + 1})
                    continue
                views[key] = FindingView(
                    id=f.id,
                    scanner=row.scanner_id,
                    path=file.path,
                    sha256=file.sha256,
                    file_verdict=file.verdict,
                    rule=f.rule,
                    severity=f.severity,
                    message=f.message,
                    blocking=f.id in blocking,
                    triage=None,
                )
    ids = {v.id for v in views.values()}
    if not ids:
        return []
    state: dict[str, str] = {}
    for t in session.scalars(
        select(FindingTriage)
        .where(FindingTriage.finding_id.in_(sorted(ids)))
        .order_by(FindingTriage.id)
    ):
        view = triage_view(t, now)
        if view.active:
            state[t.finding_id] = f"false positive until {view.to_json()['expires_at']}"
        elif t.status == "pending" and t.finding_id not in state:
            state[t.finding_id] = f"pending request {t.id}"
    return [v.model_copy(update={"triage": state.get(v.id)}) for v in views.values()]


# -- triage ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Located:
    scan: Scan
    file: ScannedFileFact
    finding: FindingFact


def locate(session: Session, fid: str) -> Located:
    """The newest recorded scan that reports finding `fid` (NotFound when none does)."""
    fid = check_finding_id(fid)
    for scan in session.scalars(
        select(Scan).where(Scan.verdict != "clean").order_by(Scan.id.desc())
    ):
        for file in report_files(scan.scanner_id, scan.report):
            for finding in file.findings:
                if finding.id == fid:
                    return Located(scan, file, finding)
    raise NotFound(f"no recorded scan reports finding {fid} (see modelctl finding list REF)")


def _subject(row: FindingTriage) -> str:
    return f"finding {row.finding_id}"


def request(
    session: Session,
    fid: str,
    *,
    decision: str,
    reason: str,
    expires_at: datetime,
    actor: str,
    now: datetime,
) -> TriageView:
    if decision != FALSE_POSITIVE:
        raise InputError(f"the only triage decision is {FALSE_POSITIVE} (--false-positive)")
    if not reason.strip():
        raise InputError("a triage needs a --reason")
    if len(reason) > MAX_REASON:
        raise InputError(f"the reason is longer than {MAX_REASON} characters")
    if expires_at.tzinfo is None:
        raise InputError("the expiry needs a time zone (e.g. 2026-12-31T00:00:00Z)")
    if expires_at <= now:
        raise InputError(f"the expiry {expires_at.isoformat()} is in the past")
    if expires_at > now + timedelta(days=MAX_TRIAGE_DAYS):
        raise InputError(f"a triage expires within {MAX_TRIAGE_DAYS} days (--expires 90d at most)")
    found = locate(session, fid)
    row = FindingTriage(
        finding_id=found.finding.id,
        decision=decision,
        status="pending",
        reason=reason.strip(),
        scanner=found.scan.scanner_id[:100],
        rule=found.finding.rule,
        path=found.file.path,
        file_sha256=found.file.sha256[:64],
        requested_by=actor,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    session.add(
        AuditEvent(
            actor=actor,
            action="finding.triage.request",
            subject=_subject(row),
            details={
                "request": row.id,
                "decision": decision,
                "scanner": row.scanner,
                "rule": row.rule,
                "path": row.path,
                "file_sha256": row.file_sha256,
                "expires_at": expires_at.isoformat(),
                "reason": row.reason,
            },
        )
    )
    session.flush()
    return triage_view(row, now)


def _get(session: Session, request_id: int) -> FindingTriage:
    row = session.get(FindingTriage, request_id) if 0 < request_id < 2**31 else None
    if row is None:
        raise NotFound(f"no triage request {request_id}")
    return row


def approve(session: Session, request_id: int, *, actor: str, now: datetime) -> TriageView:
    """Approve a pending triage: by anyone but its requester (two people)."""
    row = _get(session, request_id)
    if row.status != "pending":
        raise InputError(f"triage request {request_id} is {row.status}, not pending")
    if row.requested_by == actor:
        raise Forbidden(
            f"triage request {request_id} was made by {actor}: a second person must approve it"
        )
    if aware(row.expires_at) <= now:
        raise InputError(f"triage request {request_id} expired; request it again")
    row.status = "approved"
    row.approved_by = actor
    row.approved_at = now
    session.add(
        AuditEvent(
            actor=actor,
            action="finding.triage.approve",
            subject=_subject(row),
            details={
                "request": row.id,
                "decision": row.decision,
                "requested_by": row.requested_by,
                "expires_at": aware(row.expires_at).isoformat(),
            },
        )
    )
    session.flush()
    return triage_view(row, now)


def revoke(
    session: Session, request_id: int, *, actor: str, now: datetime, reason: str = ""
) -> TriageView:
    """End a triage (approved: the finding blocks again) or withdraw a pending request."""
    row = _get(session, request_id)
    if row.status == "revoked":
        raise InputError(f"triage request {request_id} was already revoked")
    was = row.status
    row.status = "revoked"
    row.revoked_by = actor
    row.revoked_at = now
    session.add(
        AuditEvent(
            actor=actor,
            action="finding.triage.revoke",
            subject=_subject(row),
            details={"request": row.id, "was": was, "reason": reason.strip()[:MAX_REASON]},
        )
    )
    session.flush()
    return triage_view(row, now)


def list_triage(
    session: Session, *, finding: str | None = None, status: str | None = None, now: datetime
) -> list[TriageView]:
    query = select(FindingTriage).order_by(FindingTriage.id.desc()).limit(500)
    if finding is not None:
        query = query.where(FindingTriage.finding_id == check_finding_id(finding))
    if status is not None:
        if status not in ("pending", "approved", "revoked"):
            raise InputError(f"unknown status {status!r}: pending, approved or revoked")
        query = query.where(FindingTriage.status == status)
    return [triage_view(r, now) for r in session.scalars(query)]


def triage_view(row: FindingTriage, now: datetime) -> TriageView:
    return TriageView(
        id=row.id,
        finding_id=row.finding_id,
        decision=row.decision,
        status=row.status,
        reason=row.reason,
        scanner=row.scanner,
        rule=row.rule,
        path=row.path,
        file_sha256=row.file_sha256,
        requested_by=row.requested_by,
        created_at=aware(row.created_at),
        expires_at=aware(row.expires_at),
        approved_by=row.approved_by,
        approved_at=aware(row.approved_at) if row.approved_at else None,
        revoked_by=row.revoked_by,
        revoked_at=aware(row.revoked_at) if row.revoked_at else None,
        active=row.status == "approved" and aware(row.expires_at) > now,
    )


def latest_scans(checkpoint: Checkpoint) -> list[Scan]:
    """The newest scan of each scanner on `checkpoint`, by scanner id (what admission and
    attestation judge)."""
    latest: dict[str, Scan] = {}
    for row in checkpoint.scans:
        if row.scanner_id not in latest or row.id > latest[row.scanner_id].id:
            latest[row.scanner_id] = row
    return [latest[k] for k in sorted(latest)]
