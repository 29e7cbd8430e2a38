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

Besides it (ADR 0025), a finding can be *confirmed* (a real problem) and *assigned* to a
person (`FindingState`, one row per id). Confirming never loosens anything: it ends any
pending or approved false-positive triage of the finding, and a confirmed finding cannot be
requested as a false positive until the confirmation is withdrawn. The policy reads only the
false-positive triage; a confirmation or an assignment changes no decision.
"""

from __future__ import annotations

import hashlib
import json
import re
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
from registry.db.models import AuditEvent, Checkpoint, FindingState, FindingTriage, Scan
from registry.errors import Forbidden, InputError, NotFound
from registry.finding_ids import ID_PREFIX, check_finding_id
from registry.views import FindingStateView, FindingView, TriageView

#: Evidence keys that say *where* in a file a finding is (the rest says *what* it saw).
LOCATION_KEYS = ("path", "key", "line", "tensor", "where", "layer", "node")
_SEVERITIES = frozenset(s.value for s in Severity)
FALSE_POSITIVE = "false-positive"
MAX_TRIAGE_DAYS = 90
MAX_REASON = 2000
#: Whom a finding may be assigned to: a user (an OIDC name, `token:NAME`, `local:USER`).
_ASSIGNEE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,199}")
#: The states a finding can be in (ADR 0025).
NEW = "new"
FP_REQUESTED = "false-positive-requested"
CONFIRMED = "confirmed"
STATES = (NEW, FP_REQUESTED, FALSE_POSITIVE, CONFIRMED)


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


def _rule(scanner: str, raw: Mapping[str, Any]) -> str:
    return str(raw.get("rule") or f"{scanner}.unnamed")[:200]


def raw_finding_id(scanner: str, sha256: str, raw: Mapping[str, Any]) -> str:
    """The id of one finding of a stored report (`scanner`: the scan's scanner id)."""
    return finding_id(scanner, _rule(scanner, raw), sha256, location(raw))


def _finding(scanner: str, sha256: str, raw: Mapping[str, Any]) -> FindingFact:
    rule = _rule(scanner, raw)
    severity = raw.get("severity")
    return FindingFact(
        id=raw_finding_id(scanner, sha256, raw),
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
    states = triage_states(session, ids, now)
    return [v.model_copy(update=states[v.id]) for v in views.values()]


def triage_states(session: Session, ids: Iterable[str], now: datetime) -> dict[str, dict[str, Any]]:
    """Id -> the triage fields of `FindingView` (triage, state, confirmed_by, assignee,
    pending_request), for every id in `ids` (two queries)."""
    wanted = sorted(set(ids))
    out: dict[str, dict[str, Any]] = {
        i: {
            "triage": None,
            "state": NEW,
            "confirmed_by": None,
            "assignee": None,
            "pending_request": None,
        }
        for i in wanted
    }
    if not wanted:
        return out
    for t in session.scalars(
        select(FindingTriage).where(FindingTriage.finding_id.in_(wanted)).order_by(FindingTriage.id)
    ):
        view = triage_view(t, now)
        entry = out[t.finding_id]
        if view.active:
            entry["triage"] = f"false positive until {view.to_json()['expires_at']}"
            entry["state"] = FALSE_POSITIVE
            entry["pending_request"] = None
        elif t.status == "pending" and entry["state"] == NEW and aware(t.expires_at) > now:
            entry["triage"] = f"pending request {t.id}"
            entry["state"] = FP_REQUESTED
            entry["pending_request"] = t.id
    for row in session.scalars(select(FindingState).where(FindingState.finding_id.in_(wanted))):
        entry = out[row.finding_id]
        entry["assignee"] = row.assignee
        if row.confirmed_by is not None:
            entry["confirmed_by"] = row.confirmed_by
            entry["state"] = CONFIRMED  # confirming ended every false-positive triage
    return out


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
    confirmed = session.get(FindingState, found.finding.id)
    if confirmed is not None and confirmed.confirmed_by is not None:
        raise InputError(
            f"finding {found.finding.id} was confirmed by {confirmed.confirmed_by}: withdraw "
            "the confirmation first (modelctl finding confirm ID --withdraw)"
        )
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


def _state_row(session: Session, found: Located) -> FindingState:
    row = session.get(FindingState, found.finding.id)
    if row is None:
        row = FindingState(
            finding_id=found.finding.id,
            scanner=found.scan.scanner_id[:100],
            rule=found.finding.rule,
            path=found.file.path,
            file_sha256=found.file.sha256[:64],
        )
        session.add(row)
    return row


def confirm(
    session: Session, fid: str, *, actor: str, now: datetime, reason: str = ""
) -> FindingStateView:
    """Confirm a finding as a real problem. It loosens nothing: every pending or approved
    false-positive triage of it ends here (audited), and none can be requested while it
    stays confirmed."""
    if len(reason) > MAX_REASON:
        raise InputError(f"the reason is longer than {MAX_REASON} characters")
    found = locate(session, fid)
    row = _state_row(session, found)
    if row.confirmed_by is not None:
        raise InputError(f"finding {row.finding_id} was already confirmed by {row.confirmed_by}")
    row.confirmed_by = actor
    row.confirmed_at = now
    ended: list[int] = []
    for t in session.scalars(
        select(FindingTriage).where(
            FindingTriage.finding_id == row.finding_id,
            FindingTriage.status.in_(("pending", "approved")),
        )
    ):
        was = t.status
        t.status = "revoked"
        t.revoked_by = actor
        t.revoked_at = now
        ended.append(t.id)
        session.add(
            AuditEvent(
                actor=actor,
                action="finding.triage.revoke",
                subject=_subject(t),
                details={"request": t.id, "was": was, "reason": "the finding was confirmed"},
            )
        )
    session.add(
        AuditEvent(
            actor=actor,
            action="finding.confirm",
            subject=f"finding {row.finding_id}",
            details={
                "scanner": row.scanner,
                "rule": row.rule,
                "path": row.path,
                "file_sha256": row.file_sha256,
                "ended_triage": ended,
                "reason": reason.strip(),
            },
        )
    )
    session.flush()
    return state_view(session, row, now)


def withdraw_confirmation(
    session: Session, fid: str, *, actor: str, now: datetime, reason: str = ""
) -> FindingStateView:
    """Withdraw a confirmation (a mistake): the finding is new again, and still blocks
    exactly as its scan says until a false positive is approved by two people."""
    fid = check_finding_id(fid)
    row = session.get(FindingState, fid)
    if row is None or row.confirmed_by is None:
        raise InputError(f"finding {fid} is not confirmed")
    was = row.confirmed_by
    row.confirmed_by = None
    row.confirmed_at = None
    session.add(
        AuditEvent(
            actor=actor,
            action="finding.unconfirm",
            subject=f"finding {fid}",
            details={"confirmed_by": was, "reason": reason.strip()[:MAX_REASON]},
        )
    )
    session.flush()
    return state_view(session, row, now)


def assign(
    session: Session, fid: str, assignee: str | None, *, actor: str, now: datetime
) -> FindingStateView:
    """Assign a finding to a user (None or blank: unassign). Changes no decision."""
    name = (assignee or "").strip() or None
    if name is not None and not _ASSIGNEE.fullmatch(name):
        raise InputError(
            f"{name[:80]!r} is not a user name (letters, digits and . _ @ : + -, at most 200)"
        )
    found = locate(session, fid)
    row = _state_row(session, found)
    before = row.assignee
    if before == name:
        raise InputError(
            f"finding {row.finding_id} is already "
            + (f"assigned to {name}" if name else "unassigned")
        )
    row.assignee = name
    row.assigned_by = actor
    row.assigned_at = now
    session.add(
        AuditEvent(
            actor=actor,
            action="finding.assign",
            subject=f"finding {row.finding_id}",
            details={"assignee": name, "was": before, "rule": row.rule, "path": row.path},
        )
    )
    session.flush()
    return state_view(session, row, now)


def finding_state(session: Session, fid: str, now: datetime) -> FindingStateView:
    """The triage state of one finding (NotFound when no recorded scan reports it)."""
    fid = check_finding_id(fid)
    row = session.get(FindingState, fid)
    if row is None:
        found = locate(session, fid)
        row = FindingState(
            finding_id=fid,
            scanner=found.scan.scanner_id[:100],
            rule=found.finding.rule,
            path=found.file.path,
            file_sha256=found.file.sha256[:64],
        )
    return state_view(session, row, now)


def state_view(session: Session, row: FindingState, now: datetime) -> FindingStateView:
    state = triage_states(session, [row.finding_id], now)[row.finding_id]["state"]
    if row.confirmed_by is not None:
        state = CONFIRMED
    return FindingStateView(
        finding_id=row.finding_id,
        scanner=row.scanner,
        rule=row.rule,
        path=row.path,
        file_sha256=row.file_sha256,
        state=state,
        confirmed_by=row.confirmed_by,
        confirmed_at=aware(row.confirmed_at) if row.confirmed_at else None,
        assignee=row.assignee,
        assigned_by=row.assigned_by,
        assigned_at=aware(row.assigned_at) if row.assigned_at else None,
    )


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
