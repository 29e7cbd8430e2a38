"""Read-side queries for the web UI: overview, model search, findings, diff, audit log.

Everything here reads; nothing writes or commits. Queries are shaped for a registry with
thousands of checkpoints: the newest scan per (checkpoint, scanner) comes from grouped
subqueries, pages are fetched with LIMIT/OFFSET and the details (badges, verdicts) only for the
rows on the page. Every status, badge and count is the live status (`live_status`): the
policy in force evaluated now, never the newest recorded decision.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session, selectinload

from registry.db.models import (
    ApiToken,
    AuditEvent,
    Checkpoint,
    CheckpointFile,
    Model,
    Scan,
    WaiverRow,
)
from registry.errors import InputError, NotFound
from registry.service.checkpoints import UNKNOWN_LICENSE
from registry.service.live_status import STATUSES, LiveStatus, LiveStatuses, Status
from registry.service.quarantines import quarantined_checkpoint_ids
from registry.service.tokens import Principal, Role

#: Worst first. `error` is as bad as `malformed` for a reader: the scan did not say clean.
VERDICT_RANK = {
    "clean": 0,
    "unsupported": 1,
    "suspicious": 2,
    "error": 3,
    "malformed": 3,
    "malicious": 4,
}
SEVERITIES = ("info", "low", "medium", "high", "critical")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with the wildcards in it taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def latest_scan_ids() -> Select[int]:
    """The newest scan row per (checkpoint, scanner)."""
    return select(func.max(Scan.id)).group_by(Scan.checkpoint_id, Scan.scanner_id)


# -- overview -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Denial:
    """A checkpoint denied now in one environment (newest checkpoints first)."""

    ref: str
    namespace: str
    name: str
    digest: str
    environment: str
    policy: str
    failed: tuple[str, ...]
    at: datetime  # when the checkpoint was mirrored


@dataclass(frozen=True, slots=True)
class ExpiringException:
    id: int
    ref: str
    waive: tuple[str, ...]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Overview:
    models: int
    checkpoints: int
    files: int
    quarantined: int  # checkpoints whose live status is quarantined
    by_environment: dict[str, dict[str, int]]  # env -> live status -> count
    findings_by_severity: dict[str, int]
    recent_denials: tuple[Denial, ...]
    expiring: tuple[ExpiringException, ...]
    stale_scans: int  # checkpoints whose newest scan is older than `stale_after`
    unscanned: int


def overview(
    session: Session,
    environments: Sequence[str],
    *,
    now: datetime,
    live: LiveStatuses,
    stale_after: timedelta = timedelta(days=30),
    expiring_within: timedelta = timedelta(days=14),
) -> Overview:
    models = session.scalar(select(func.count(Model.id))) or 0
    files = session.scalar(select(func.count(CheckpointFile.id))) or 0
    ids = live.all_ids(session)
    statuses = live.statuses(session, ids, environments, now=now)
    by_env: dict[str, dict[str, int]] = {env: dict.fromkeys(STATUSES, 0) for env in environments}
    for (_, env), status in statuses.items():
        by_env[env][status.status] += 1
    quarantined = {cid for (cid, _), st in statuses.items() if st.status == "quarantined"}
    denials = _denials(session, statuses)

    severities = dict.fromkeys(reversed(SEVERITIES), 0)
    for report in session.scalars(
        select(Scan.report).where(Scan.id.in_(latest_scan_ids())).where(Scan.verdict != "clean")
    ):
        for finding in _report_findings(report):
            sev = finding.get("severity")
            if sev in severities:
                severities[sev] += 1

    exp_rows = session.execute(
        select(WaiverRow, Model.namespace, Model.name, Checkpoint.manifest_digest)
        .join(Checkpoint, Checkpoint.id == WaiverRow.checkpoint_id)
        .join(Model, Model.id == Checkpoint.model_id)
        .where(WaiverRow.revoked_at.is_(None))
        .where(WaiverRow.expires_at > now)
        .where(WaiverRow.expires_at <= now + expiring_within)
        .order_by(WaiverRow.expires_at)
        .limit(20)
    ).all()
    expiring = tuple(
        ExpiringException(
            id=w.id,
            ref=f"{ns}/{name}@sha256:{digest}",
            waive=tuple(w.waive),
            expires_at=_aware(w.expires_at),
        )
        for w, ns, name, digest in exp_rows
    )

    newest_scan = (
        select(Scan.checkpoint_id, func.max(Scan.finished_at).label("newest"))
        .group_by(Scan.checkpoint_id)
        .subquery()
    )
    stale = (
        session.scalar(
            select(func.count())
            .select_from(newest_scan)
            .where(newest_scan.c.newest < now - stale_after)
        )
        or 0
    )
    scanned = session.scalar(select(func.count(func.distinct(Scan.checkpoint_id)))) or 0
    total = len(ids)
    return Overview(
        models=models,
        checkpoints=total,
        files=files,
        quarantined=len(quarantined),
        by_environment=by_env,
        findings_by_severity=severities,
        recent_denials=denials,
        expiring=expiring,
        stale_scans=stale,
        unscanned=max(0, total - scanned),
    )


def _denials(
    session: Session, statuses: dict[tuple[int, str], LiveStatus], limit: int = 10
) -> tuple[Denial, ...]:
    """The newest checkpoints denied now (quarantined ones are counted apart)."""
    denied = sorted(
        ((cid, env, st) for (cid, env), st in statuses.items() if st.status == "denied"),
        key=lambda item: (-item[0], item[1]),
    )[:limit]
    if not denied:
        return ()
    names = {
        cid: (ns, name, digest, created)
        for cid, ns, name, digest, created in session.execute(
            select(
                Checkpoint.id,
                Model.namespace,
                Model.name,
                Checkpoint.manifest_digest,
                Checkpoint.created_at,
            )
            .join(Model, Model.id == Checkpoint.model_id)
            .where(Checkpoint.id.in_({cid for cid, _, _ in denied}))
        )
    }
    return tuple(
        Denial(
            ref=f"{ns}/{name}@sha256:{digest}",
            namespace=ns,
            name=name,
            digest=digest,
            environment=env,
            policy=st.policy,
            failed=st.failed,
            at=_aware(created),
        )
        for cid, env, st in denied
        if cid in names
        for ns, name, digest, created in [names[cid]]
    )


def _report_findings(report: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(report, dict):
        return
    for entry in report.get("files", []):
        if not isinstance(entry, dict):
            continue
        for finding in entry.get("findings", []):
            if isinstance(finding, dict):
                yield {**finding, "path": entry.get("path", "")}


# -- models ---------------------------------------------------------------------------------------

SORTS = {
    "name": (Model.namespace, Model.name, Checkpoint.id),
    "newest": (Checkpoint.created_at.desc(), Checkpoint.id.desc()),
    "oldest": (Checkpoint.created_at, Checkpoint.id),
    "size": (Checkpoint.total_size.desc(), Checkpoint.id),
    "files": (Checkpoint.file_count.desc(), Checkpoint.id),
}
SOURCE_KINDS = {"hf": "hf://%", "ms": "ms://%", "local": "file:%"}
#: Live statuses to filter on (as the badges show them: "warn" is allowed with warnings).
DECISION_FILTERS = STATUSES
VERDICT_FILTERS = ("clean", "suspicious", "malicious", "malformed", "error", "unsupported")
#: The license filter's value for checkpoints recorded before migration 0009 whose card has
#: not been read yet (they get their license when next decided).
NOT_RECORDED = "(not recorded)"


@dataclass(frozen=True, slots=True)
class ModelQuery:
    q: str = ""
    source: str = ""  # hf | ms | local
    org: str = ""
    env: str = ""
    decision: str = ""  # with env: a live status (DECISION_FILTERS)
    verdict: str = ""  # worst newest-scan verdict
    format: str = ""  # a file extension present in the checkpoint, e.g. safetensors
    license: str = ""  # the model card's license, "unknown" (none), or NOT_RECORDED
    severity: str = ""  # an open finding at or above this, in a newest scan per scanner
    sort: str = "newest"
    page: int = 1
    per_page: int = PAGE_SIZE

    def check(self, environments: Sequence[str]) -> None:
        if self.sort not in SORTS:
            raise InputError(f"unknown sort {self.sort!r}")
        if self.source and self.source not in SOURCE_KINDS:
            raise InputError(f"unknown source kind {self.source!r}")
        if self.decision and self.decision not in DECISION_FILTERS:
            raise InputError(f"unknown decision {self.decision!r}")
        if self.decision and self.env not in environments:
            raise InputError("a decision filter needs a bound environment")
        if self.verdict and self.verdict not in VERDICT_FILTERS:
            raise InputError(f"unknown verdict {self.verdict!r}")
        if self.format and not self.format.replace("-", "").replace("_", "").isalnum():
            raise InputError(f"bad format {self.format!r:.40}")
        if self.severity and self.severity not in SEVERITIES:
            raise InputError(f"unknown severity {self.severity!r}")
        if len(self.license) > 100:
            raise InputError("bad license")
        if self.page < 1 or not 1 <= self.per_page <= MAX_PAGE_SIZE:
            raise InputError("bad page")


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    id: int
    namespace: str
    name: str
    digest: str
    source_uri: str
    commit: str
    created_at: datetime
    file_count: int
    total_size: int
    statuses: dict[str, Status]  # live: the policy in force evaluated now
    verdict: str | None  # worst newest-scan verdict; None: never scanned
    license: str | None  # the model card's; "unknown": none; None: not recorded yet
    reasons: dict[str, tuple[str, ...]] = field(default_factory=dict)  # env -> failed checks

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}@sha256:{self.digest}"


@dataclass(frozen=True, slots=True)
class Page:
    rows: tuple[CheckpointRow, ...]
    total: int
    page: int
    per_page: int
    orgs: tuple[str, ...] = field(default=())
    licenses: tuple[str, ...] = field(default=())  # those recorded, for the filter

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _verdict_rank_expr() -> Any:
    return case(
        *((Scan.verdict == v, r) for v, r in VERDICT_RANK.items()),
        else_=3,
    )


def search_checkpoints(
    session: Session,
    query: ModelQuery,
    environments: Sequence[str],
    *,
    now: datetime,
    live: LiveStatuses,
) -> Page:
    query.check(environments)
    stmt = select(Checkpoint.id).join(Model, Model.id == Checkpoint.model_id)
    if query.q:
        pattern = like_pattern(query.q.strip().lower())
        full = func.lower(Model.namespace + "/" + Model.name)
        stmt = stmt.where(
            or_(
                full.like(pattern, escape="\\"),
                func.lower(Checkpoint.manifest_digest).like(pattern, escape="\\"),
                func.lower(Checkpoint.source_uri).like(pattern, escape="\\"),
            )
        )
    if query.source:
        stmt = stmt.where(Checkpoint.source_uri.like(SOURCE_KINDS[query.source]))
    if query.org:
        stmt = stmt.where(Model.namespace == query.org)
    if query.format:
        stmt = stmt.where(
            select(CheckpointFile.id)
            .where(CheckpointFile.checkpoint_id == Checkpoint.id)
            .where(CheckpointFile.path.like(f"%.{query.format}"))
            .exists()
        )
    if query.verdict:
        newest_scans = select(func.max(Scan.id).label("sid")).group_by(
            Scan.checkpoint_id, Scan.scanner_id
        )
        worst = (
            select(
                Scan.checkpoint_id.label("cid"),
                func.max(_verdict_rank_expr()).label("rank"),
            )
            .where(Scan.id.in_(newest_scans))
            .group_by(Scan.checkpoint_id)
            .subquery()
        )
        stmt = stmt.join(worst, worst.c.cid == Checkpoint.id).where(
            worst.c.rank == VERDICT_RANK[query.verdict]
        )
        if query.verdict in ("error", "malformed"):  # the two share a rank
            stmt = stmt.where(
                select(Scan.id)
                .where(Scan.checkpoint_id == Checkpoint.id)
                .where(Scan.id.in_(newest_scans))
                .where(Scan.verdict == query.verdict)
                .exists()
            )
    stmt = _license_and_severity(stmt, query)
    first = (query.page - 1) * query.per_page
    if query.decision:
        # The live status filters: the SQL filters first, then the status of each match.
        matched = _with_live_status(session, stmt.order_by(*SORTS[query.sort]), query, live, now)
        total = len(matched)
        ids = matched[first : first + query.per_page]
    else:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        ids = list(
            session.scalars(stmt.order_by(*SORTS[query.sort]).limit(query.per_page).offset(first))
        )
    rows = checkpoint_rows(session, ids, environments, now=now, live=live)
    orgs = tuple(session.scalars(select(Model.namespace).distinct().order_by(Model.namespace)))
    recorded = set(session.scalars(select(Checkpoint.license).distinct()))
    licenses = (
        *sorted({UNKNOWN_LICENSE, *(x for x in recorded if x is not None)}),
        *((NOT_RECORDED,) if None in recorded else ()),
    )
    return Page(
        rows=rows,
        total=total,
        page=query.page,
        per_page=query.per_page,
        orgs=orgs,
        licenses=licenses,
    )


def _with_live_status(
    session: Session, ordered: Select[int], query: ModelQuery, live: LiveStatuses, now: datetime
) -> list[int]:
    ids = list(session.scalars(ordered))
    statuses = live.statuses(session, ids, [query.env], now=now)
    return [cid for cid in ids if statuses[(cid, query.env)].status == query.decision]


def _license_and_severity(stmt: Select[int], query: ModelQuery) -> Select[int]:
    """The license filter on the recorded column; the severity filter on `scans.max_severity`
    of each checkpoint's newest scan per scanner (no report JSON is read)."""
    if query.license == NOT_RECORDED:
        stmt = stmt.where(Checkpoint.license.is_(None))
    elif query.license:
        stmt = stmt.where(Checkpoint.license == query.license)
    if query.severity:
        at_or_above = list(SEVERITIES[SEVERITIES.index(query.severity) :])
        flagged = (
            select(Scan.checkpoint_id)
            .where(Scan.id.in_(latest_scan_ids()))
            .where(Scan.max_severity.in_(at_or_above))
        )
        stmt = stmt.where(Checkpoint.id.in_(flagged))
    return stmt


def checkpoint_rows(
    session: Session,
    ids: Sequence[int],
    environments: Sequence[str],
    *,
    now: datetime,
    live: LiveStatuses,
) -> tuple[CheckpointRow, ...]:
    """Rows with their live badges, in the order of `ids`."""
    if not ids:
        return ()
    base = {
        c.id: (c, ns, name)
        for c, ns, name in session.execute(
            select(Checkpoint, Model.namespace, Model.name)
            .join(Model, Model.id == Checkpoint.model_id)
            .where(Checkpoint.id.in_(ids))
        )
    }
    statuses = live.statuses(session, ids, environments, now=now)
    worst: dict[int, str] = {}
    for cid, verdict in session.execute(
        select(Scan.checkpoint_id, Scan.verdict).where(
            Scan.id.in_(latest_scan_ids().where(Scan.checkpoint_id.in_(ids)))
        )
    ):
        if cid not in worst or VERDICT_RANK.get(verdict, 3) > VERDICT_RANK.get(worst[cid], 3):
            worst[cid] = verdict
    out = []
    for cid in ids:
        c, ns, name = base[cid]
        out.append(
            CheckpointRow(
                id=c.id,
                namespace=ns,
                name=name,
                digest=c.manifest_digest,
                source_uri=c.source_uri,
                commit=c.source_commit,
                created_at=_aware(c.created_at),
                file_count=c.file_count,
                total_size=c.total_size,
                statuses={env: statuses[(cid, env)].status for env in environments},
                reasons={env: statuses[(cid, env)].reasons for env in environments},
                verdict=worst.get(cid),
                license=c.license,
            )
        )
    return tuple(out)


def get_checkpoint(session: Session, namespace: str, name: str, digest_hex: str) -> Checkpoint:
    """One checkpoint with everything its page shows, loaded in a handful of queries."""
    row = session.scalars(
        select(Checkpoint)
        .join(Model, Model.id == Checkpoint.model_id)
        .where(Model.namespace == namespace, Model.name == name)
        .where(Checkpoint.manifest_digest == digest_hex)
        .options(
            selectinload(Checkpoint.files),
            selectinload(Checkpoint.scans),
            selectinload(Checkpoint.attestations),
            selectinload(Checkpoint.revisions),
            selectinload(Checkpoint.quarantines),
            selectinload(Checkpoint.file_quarantines),
        )
    ).first()
    if row is None:
        raise NotFound(f"no checkpoint {namespace}/{name}@sha256:{digest_hex}")
    return row


def all_checkpoints(session: Session, *, limit: int) -> list[Checkpoint]:
    """Every checkpoint (up to `limit`) with what a decision reads, loaded in a few queries."""
    return list(
        session.scalars(
            select(Checkpoint)
            .order_by(Checkpoint.id)
            .limit(limit)
            .options(
                selectinload(Checkpoint.model),
                selectinload(Checkpoint.files),
                selectinload(Checkpoint.scans),
                selectinload(Checkpoint.evidence_attestations),
                selectinload(Checkpoint.revisions),
                selectinload(Checkpoint.quarantines),
                selectinload(Checkpoint.file_quarantines),
            )
        )
    )


def other_checkpoints(session: Session, model_id: int) -> list[tuple[int, str, datetime]]:
    return [
        (cid, digest, _aware(at))
        for cid, digest, at in session.execute(
            select(Checkpoint.id, Checkpoint.manifest_digest, Checkpoint.created_at)
            .where(Checkpoint.model_id == model_id)
            .order_by(Checkpoint.id.desc())
            .limit(200)
        )
    ]


# -- findings -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FindingRow:
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
        for f in _report_findings(scan.report):
            sev = str(f.get("severity", "info"))
            if sev not in SEVERITIES or SEVERITIES.index(sev) < min_rank:
                continue
            if query.rule and query.rule != f.get("rule"):
                continue
            evidence = f.get("evidence")
            rows.append(
                FindingRow(
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
                    found_at=_aware(scan.finished_at),
                )
            )
    rows.sort(key=lambda r: (-SEVERITIES.index(r.severity), r.ref, r.path, r.rule))
    start = (query.page - 1) * query.per_page
    return rows[start : start + query.per_page], len(rows)


def checkpoint_findings(checkpoint: Checkpoint) -> list[dict[str, Any]]:
    """Findings of the newest scan of each scanner on one checkpoint."""
    latest: dict[str, Scan] = {}
    for row in checkpoint.scans:
        if row.scanner_id not in latest or row.id > latest[row.scanner_id].id:
            latest[row.scanner_id] = row
    out = [f for s in latest.values() for f in _report_findings(s.report)]
    out.sort(key=lambda f: (-SEVERITIES.index(f.get("severity", "info")), f["path"]))
    return out


def file_verdicts(checkpoint: Checkpoint) -> dict[str, dict[str, str]]:
    """path -> scanner -> verdict, from the newest scan of each scanner."""
    latest: dict[str, Scan] = {}
    for row in checkpoint.scans:
        if row.scanner_id not in latest or row.id > latest[row.scanner_id].id:
            latest[row.scanner_id] = row
    out: dict[str, dict[str, str]] = {}
    for scanner, scan in sorted(latest.items()):
        report = scan.report if isinstance(scan.report, dict) else {}
        for entry in report.get("files", []):
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                out.setdefault(entry["path"], {})[scanner] = str(entry.get("verdict", ""))
    return out


# -- diff -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileChange:
    path: str
    old: tuple[int, str] | None  # size, sha256
    new: tuple[int, str] | None


@dataclass(frozen=True, slots=True)
class Diff:
    old: Checkpoint
    new: Checkpoint
    added: tuple[FileChange, ...]
    removed: tuple[FileChange, ...]
    changed: tuple[FileChange, ...]
    unchanged: int
    findings_added: tuple[dict[str, Any], ...]
    findings_removed: tuple[dict[str, Any], ...]
    decisions: tuple[tuple[str, Status, Status], ...]  # env, old, new


def diff(
    session: Session,
    old: Checkpoint,
    new: Checkpoint,
    environments: Sequence[str],
    now: datetime,
    *,
    live: LiveStatuses,
) -> Diff:
    if old.model_id != new.model_id:
        raise InputError("a diff compares two checkpoints of one model")
    a = {f.path: (f.size, f.sha256) for f in old.files}
    b = {f.path: (f.size, f.sha256) for f in new.files}
    added = tuple(FileChange(p, None, b[p]) for p in sorted(b.keys() - a.keys()))
    removed = tuple(FileChange(p, a[p], None) for p in sorted(a.keys() - b.keys()))
    changed = tuple(FileChange(p, a[p], b[p]) for p in sorted(a.keys() & b.keys()) if a[p] != b[p])

    def key(f: dict[str, Any]) -> tuple[str, str, str, str]:
        return (str(f.get("scanner")), str(f.get("rule")), str(f["path"]), str(f.get("message")))

    fa = {key(f): f for f in checkpoint_findings(old)}
    fb = {key(f): f for f in checkpoint_findings(new)}
    statuses = live.statuses(session, [old.id, new.id], environments, now=now)
    decisions = tuple(
        (env, statuses[(old.id, env)].status, statuses[(new.id, env)].status)
        for env in environments
    )
    return Diff(
        old=old,
        new=new,
        added=added,
        removed=removed,
        changed=changed,
        unchanged=len(a.keys() & b.keys()) - len(changed),
        findings_added=tuple(fb[k] for k in sorted(fb.keys() - fa.keys())),
        findings_removed=tuple(fa[k] for k in sorted(fa.keys() - fb.keys())),
        decisions=decisions,
    )


# -- audit log ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actor: str = ""
    action: str = ""
    target: str = ""
    since: datetime | None = None
    until: datetime | None = None
    page: int = 1
    per_page: int = PAGE_SIZE


def _audit_stmt(query: AuditQuery) -> Select[Any]:
    stmt = select(AuditEvent)
    if query.actor:
        stmt = stmt.where(AuditEvent.actor == query.actor)
    if query.action:
        stmt = stmt.where(AuditEvent.action == query.action)
    if query.target:
        stmt = stmt.where(AuditEvent.subject.like(like_pattern(query.target), escape="\\"))
    if query.since is not None:
        stmt = stmt.where(AuditEvent.at >= query.since)
    if query.until is not None:
        stmt = stmt.where(AuditEvent.at < query.until)
    return stmt


def audit_page(session: Session, query: AuditQuery) -> tuple[list[AuditEvent], int, list[str]]:
    if query.page < 1 or not 1 <= query.per_page <= MAX_PAGE_SIZE:
        raise InputError("bad page")
    stmt = _audit_stmt(query)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(
        session.scalars(
            stmt.order_by(AuditEvent.id.desc())
            .limit(query.per_page)
            .offset((query.page - 1) * query.per_page)
        )
    )
    actions = list(
        session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    )
    return rows, total, actions


AUDIT_COLUMNS = ("id", "at", "actor", "action", "subject", "details")


def _audit_record(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": _aware(e.at).isoformat(),
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "details": e.details,
    }


def _csv_cell(value: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: defuse them (CWE-1236)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def audit_export(
    session: Session, query: AuditQuery, fmt: Literal["csv", "json"], *, batch: int = 1000
) -> Iterator[str]:
    """The whole filtered log, oldest first, streamed in batches (keyset pagination)."""
    stmt = _audit_stmt(query).order_by(AuditEvent.id)
    last = 0
    first = True
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(AUDIT_COLUMNS)
        yield buf.getvalue()
    else:
        yield "["
    while True:
        rows = list(session.scalars(stmt.where(AuditEvent.id > last).limit(batch)))
        if not rows:
            break
        last = rows[-1].id
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf)
            for e in rows:
                rec = _audit_record(e)
                writer.writerow(
                    [
                        rec["id"],
                        rec["at"],
                        _csv_cell(rec["actor"]),
                        _csv_cell(rec["action"]),
                        _csv_cell(rec["subject"]),
                        _csv_cell(json.dumps(rec["details"], sort_keys=True)),
                    ]
                )
            yield buf.getvalue()
        else:
            parts = [json.dumps(_audit_record(e), sort_keys=True) for e in rows]
            yield ("" if first else ",") + "\n" + ",\n".join(parts)
            first = False
    if fmt == "json":
        yield "\n]\n"


def exceptions(session: Session) -> list[tuple[WaiverRow, str, str]]:
    """Registry exceptions with their model name and digest, newest first."""
    return [
        (w, f"{ns}/{name}", digest)
        for w, ns, name, digest in session.execute(
            select(WaiverRow, Model.namespace, Model.name, Checkpoint.manifest_digest)
            .join(Checkpoint, Checkpoint.id == WaiverRow.checkpoint_id)
            .join(Model, Model.id == Checkpoint.model_id)
            .order_by(WaiverRow.id.desc())
            .limit(500)
        )
    ]


def token_principal(session: Session, token_id: int, *, now: datetime) -> Principal | None:
    """The caller a browser session stands for, re-read now: None once the token is revoked
    or expired (so a session never outlives its token, and a role change applies at once)."""
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and _aware(row.expires_at) <= now:
        return None
    return Principal(name=row.name, role=Role.parse(row.role), token_id=row.id)
