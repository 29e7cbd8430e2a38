"""The overview page: counts, live statuses per environment, findings by severity, recent
denials, exceptions about to expire, stale and unscanned checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attestations.utc import aware
from registry.db.models import Checkpoint, CheckpointFile, Model, Scan, WaiverRow
from registry.service.live_status import STATUSES, LiveStatus, LiveStatuses
from registry.service.read.common import SEVERITIES, latest_scan_ids, report_findings


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
        for finding in report_findings(report):
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
            expires_at=aware(w.expires_at),
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
            at=aware(created),
        )
        for cid, env, st in denied
        if cid in names
        for ns, name, digest, created in [names[cid]]
    )
