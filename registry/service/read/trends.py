"""The trends page: weekly counts aggregated in SQL (SQLite and PostgreSQL alike).

Weeks start on Monday 00:00 UTC. A row's week is computed in the database from its time (epoch
seconds through `julianday` on SQLite, `extract(epoch)` on PostgreSQL), so each series is one
GROUP BY whatever the number of checkpoints; Python only lays the groups out on the weeks.

- *findings*: scans finished in a week that found something, by the scan's worst severity
  (`scans.max_severity`; a scan is one scanner's look at one checkpoint);
- *decisions*: recorded admission decisions per environment and week, allowed or denied;
- *time to quarantine*: for each checkpoint whose scan first reported a critical finding, the
  time until the first quarantine holding it (by manifest digest or by one of its files)
  that came after; the mean per week of the quarantine, and how many critical checkpoints
  no quarantine followed;
- *exceptions*: granted per week, and (not revoked) expiring per week, including the weeks
  ahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, cast, func, select, union_all
from sqlalchemy.orm import Session

from registry.db.models import (
    QUARANTINE_FILE,
    Checkpoint,
    CheckpointFile,
    Decision,
    Quarantine,
    Scan,
    WaiverRow,
)
from registry.errors import InputError
from registry.service.read.common import SEVERITIES

WEEK_SECONDS = 7 * 86400
#: 1970-01-05, the first Monday of the epoch, in epoch seconds.
FIRST_MONDAY = 4 * 86400
MAX_WEEKS = 104
DEFAULT_WEEKS = 12
#: How many weeks ahead the exceptions chart shows expiries.
AHEAD_WEEKS = 4
CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Trends:
    weeks: tuple[date, ...]  # each week's Monday, oldest first
    #: severity -> scans with that worst severity, per week
    findings: dict[str, tuple[int, ...]]
    #: environment -> (allowed, denied) recorded decisions per week
    decisions: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    #: mean hours from a critical finding to the quarantine, per week of the quarantine
    quarantine_hours: tuple[float | None, ...]
    quarantined_critical: tuple[int, ...]  # per week: how many means are made of
    mean_hours: float | None  # over the whole window
    unquarantined_critical: int  # critical checkpoints no quarantine followed (ever)
    ahead: tuple[date, ...]  # `weeks` and the weeks ahead, for the exceptions chart
    exceptions_granted: tuple[int, ...]  # per week of `ahead`
    exceptions_expiring: tuple[int, ...]  # per week of `ahead`, not revoked


def week_start(moment: datetime) -> date:
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def _epoch(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def _week(session: Session, column: Any) -> Any:
    """The week number (Mondays since 1970-01-05) of `column`, in SQL."""
    weeks = (_epoch(session, column) - FIRST_MONDAY) / WEEK_SECONDS
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(weeks), Integer)
    return cast(weeks, Integer)  # SQLite truncates; every time here is after 1970


def _week_number(day: date) -> int:
    return (day - date(1970, 1, 5)).days // 7


def _since(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def trends(
    session: Session, environments: Sequence[str], *, now: datetime, weeks: int = DEFAULT_WEEKS
) -> Trends:
    if not 1 <= weeks <= MAX_WEEKS:
        raise InputError(f"weeks must be between 1 and {MAX_WEEKS}")
    last = week_start(now)
    days = tuple(last - timedelta(weeks=weeks - 1 - i) for i in range(weeks))
    ahead = days + tuple(last + timedelta(weeks=i + 1) for i in range(AHEAD_WEEKS))
    first_no = _week_number(days[0])
    since = _since(days[0])
    until = _since(ahead[-1] + timedelta(weeks=1))

    def lay_out(counts: dict[int, float], span: Sequence[date] = days) -> list[float]:
        return [counts.get(first_no + i, 0) for i in range(len(span))]

    # Findings by the scan's worst severity.
    week = _week(session, Scan.finished_at).label("week")
    by_severity: dict[str, dict[int, float]] = {s: {} for s in SEVERITIES}
    for wk, severity, count in session.execute(
        select(week, Scan.max_severity, func.count())
        .where(Scan.finished_at >= since, Scan.max_severity.is_not(None))
        .group_by(week, Scan.max_severity)
    ):
        if severity in by_severity:
            by_severity[severity][int(wk)] = count
    findings = {s: tuple(int(v) for v in lay_out(by_severity[s])) for s in SEVERITIES}

    # Recorded decisions per environment, allowed or denied.
    week = _week(session, Decision.evaluated_at).label("week")
    by_env: dict[tuple[str, bool], dict[int, float]] = {}
    for wk, env, allowed, count in session.execute(
        select(week, Decision.environment, Decision.allowed, func.count())
        .where(Decision.evaluated_at >= since, Decision.environment.in_(list(environments)))
        .group_by(week, Decision.environment, Decision.allowed)
    ):
        by_env.setdefault((env, bool(allowed)), {})[int(wk)] = count
    decisions = {
        env: (
            tuple(int(v) for v in lay_out(by_env.get((env, True), {}))),
            tuple(int(v) for v in lay_out(by_env.get((env, False), {}))),
        )
        for env in environments
    }

    hours, counts, mean, unquarantined = _time_to_quarantine(session, since, first_no, days)

    # Exceptions granted, and expiring (not revoked), on the weeks ahead too.
    granted_week = _week(session, WaiverRow.created_at).label("week")
    granted: dict[int, float] = dict(
        session.execute(
            select(granted_week, func.count())
            .where(WaiverRow.created_at >= since, WaiverRow.created_at < until)
            .group_by(granted_week)
        ).all()
    )
    expiry_week = _week(session, WaiverRow.expires_at).label("week")
    expiring: dict[int, float] = dict(
        session.execute(
            select(expiry_week, func.count())
            .where(WaiverRow.expires_at >= since, WaiverRow.expires_at < until)
            .where(WaiverRow.revoked_at.is_(None))
            .group_by(expiry_week)
        ).all()
    )
    return Trends(
        weeks=days,
        findings=findings,
        decisions=decisions,
        quarantine_hours=hours,
        quarantined_critical=counts,
        mean_hours=mean,
        unquarantined_critical=unquarantined,
        ahead=ahead,
        exceptions_granted=tuple(
            int(v) for v in lay_out({int(k): v for k, v in granted.items()}, ahead)
        ),
        exceptions_expiring=tuple(
            int(v) for v in lay_out({int(k): v for k, v in expiring.items()}, ahead)
        ),
    )


def _time_to_quarantine(
    session: Session, since: datetime, first_no: int, days: Sequence[date]
) -> tuple[tuple[float | None, ...], tuple[int, ...], float | None, int]:
    critical = (
        select(
            Scan.checkpoint_id.label("cid"),
            func.min(Scan.finished_at).label("found"),
        )
        .where(Scan.max_severity == CRITICAL)
        .group_by(Scan.checkpoint_id)
        .subquery()
    )
    # Driven from the (few) critical checkpoints, not from every quarantine and file.
    by_manifest = (
        select(critical.c.cid.label("cid"), Quarantine.created_at.label("at"))
        .join(Checkpoint, Checkpoint.id == critical.c.cid)
        .join(Quarantine, Quarantine.digest == Checkpoint.manifest_digest)
    )
    by_file = (
        select(critical.c.cid.label("cid"), Quarantine.created_at.label("at"))
        .join(CheckpointFile, CheckpointFile.checkpoint_id == critical.c.cid)
        .join(
            Quarantine,
            and_(Quarantine.kind == QUARANTINE_FILE, Quarantine.digest == CheckpointFile.sha256),
        )
    )
    held = union_all(by_manifest, by_file).subquery()
    first_held = (
        select(
            critical.c.cid,
            critical.c.found,
            func.min(held.c.at).label("held"),
        )
        .join(held, and_(held.c.cid == critical.c.cid, held.c.at >= critical.c.found))
        .group_by(critical.c.cid, critical.c.found)
        .subquery()
    )
    delay = _epoch(session, first_held.c.held) - _epoch(session, first_held.c.found)
    week = _week(session, first_held.c.held).label("week")
    per_week: dict[int, tuple[float, int]] = {}
    for wk, seconds, count in session.execute(
        select(week, func.avg(delay), func.count()).where(first_held.c.held >= since).group_by(week)
    ):
        per_week[int(wk)] = (float(seconds), int(count))
    hours = tuple(
        (per_week[first_no + i][0] / 3600 if first_no + i in per_week else None)
        for i in range(len(days))
    )
    counts = tuple(per_week.get(first_no + i, (0.0, 0))[1] for i in range(len(days)))
    total = sum(counts)
    mean = sum(per_week[k][0] * per_week[k][1] for k in per_week) / total / 3600 if total else None
    all_critical = session.scalar(select(func.count()).select_from(critical)) or 0
    ever_held = session.scalar(select(func.count()).select_from(first_held)) or 0
    return hours, counts, mean, int(all_critical) - int(ever_held)
