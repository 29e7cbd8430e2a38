"""Background jobs (mirror, scan): a queue in the database that any number of workers share.

A job is `queued`, then `running` (claimed by one worker, which heartbeats), then `succeeded`
(with a result) or `failed` (with an error: message, kind, reasons). Claiming is one
conditional UPDATE (`... WHERE id = ? AND state = 'queued'` or a stale lease), safe on SQLite
and PostgreSQL alike; on PostgreSQL the candidate is first picked with `FOR UPDATE SKIP
LOCKED`, so workers do not queue up behind each other's row locks. A running job whose
heartbeat is older than the lease is re-queued by the next claim (its worker died); after
`MAX_ATTEMPTS` claims it fails for good. The caller owns every transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from attestations.utc import utc_now
from registry.db.models import AuditEvent, Job
from registry.errors import InputError, NotFound
from registry.views import Timestamp, WireModel


class JobKind(StrEnum):
    """What a job does; the value is the `kind` column and the `/v1/jobs` field."""

    MIRROR = "mirror"
    SCAN = "scan"


class MirrorJob(WireModel):
    """The parameters of a mirror job (`POST /v1/mirrors`), as stored in the job row."""

    source: str
    name: str | None = None
    revision: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    scan: bool = True
    #: Have the registry sign the checkpoint after a scan with nothing blocking (pull-through
    #: and sync: what `/hf` serves must carry the registry's model signature).
    attest: bool = False


class ScanJob(WireModel):
    """The parameters of a scan job (`POST /v1/scans`), as stored in the job row."""

    ref: str
    scanners: tuple[str, ...] = ()
    backdoor: dict[str, Any] | None = None  # BackdoorSettings fields, when asked for


JobPayload = MirrorJob | ScanJob
PAYLOADS: dict[JobKind, type[MirrorJob] | type[ScanJob]] = {
    JobKind.MIRROR: MirrorJob,
    JobKind.SCAN: ScanJob,
}
LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 3


class JobView(WireModel):
    """A job as `/v1/jobs/{id}` returns it: the result is the mirror or scan document."""

    id: int
    kind: JobKind
    state: str
    actor: str
    params: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None

    @property
    def done(self) -> bool:
        return self.state in {"succeeded", "failed"}

    def payload(self) -> JobPayload:
        """The parameters, typed by the job's kind."""
        return PAYLOADS[self.kind].model_validate(self.params)


def view(row: Job) -> JobView:
    return JobView(
        id=row.id,
        kind=JobKind(row.kind),
        state=row.state,
        actor=row.actor,
        params=dict(row.params),
        progress=dict(row.progress or {}),
        result=row.result,
        error=row.error,
        attempts=row.attempts,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def enqueue(
    session: Session,
    kind: JobKind | str,
    params: JobPayload | dict[str, Any],
    *,
    actor: str,
) -> JobView:
    if kind not in set(JobKind):
        raise InputError(f"unknown job kind {kind!r}")
    typed_kind = JobKind(kind)
    try:
        payload = PAYLOADS[typed_kind].model_validate(params)
    except ValidationError as exc:
        raise InputError(f"the {typed_kind} job's parameters do not fit: {exc}") from exc
    # Only what was given is stored: the row's params stay as the caller wrote them.
    stored = payload.model_dump(mode="json", exclude_unset=True)
    row = Job(
        kind=typed_kind.value, params=stored, state="queued", actor=actor, attempts=0, progress={}
    )
    session.add(row)
    session.flush()
    session.add(
        AuditEvent(
            actor=actor,
            action=f"job.{typed_kind.value}",
            subject=f"job:{row.id}",
            details={"params": stored},
        )
    )
    session.flush()
    return view(row)


def get(session: Session, job_id: int) -> JobView:
    row = session.get(Job, job_id)
    if row is None:
        raise NotFound(f"no job {job_id}")
    return view(row)


def _claimable(now: datetime, lease: timedelta = LEASE) -> Any:
    return or_(
        Job.state == "queued",
        and_(Job.state == "running", Job.heartbeat_at < now - lease),
    )


def claim(
    session: Session, worker: str, *, now: datetime | None = None, lease: timedelta = LEASE
) -> JobView | None:
    """Take the oldest claimable job for `worker`, or None. Commit right after. A running job
    whose heartbeat is older than `lease` is claimable (its worker died)."""
    now = now or utc_now()
    candidate = select(Job.id, Job.attempts).where(_claimable(now, lease)).order_by(Job.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    picked = session.execute(candidate).first()
    if picked is None:
        return None
    job_id, attempts = picked
    if attempts >= MAX_ATTEMPTS:  # its workers kept dying: give up on it
        session.execute(
            update(Job)
            .where(Job.id == job_id, _claimable(now, lease))
            .values(
                state="failed",
                finished_at=now,
                error={
                    "message": f"job {job_id} was abandoned by {attempts} workers",
                    "kind": "storage_error",
                    "reasons": [],
                },
            )
        )
        return None
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, _claimable(now, lease))
        .values(
            state="running",
            worker=worker,
            attempts=Job.attempts + 1,
            started_at=now,
            heartbeat_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) != 1:  # another worker won the race
        return None
    row = session.get(Job, job_id, populate_existing=True)
    assert row is not None
    return view(row)


def heartbeat(
    session: Session, job_id: int, worker: str, progress: dict[str, Any] | None = None
) -> bool:
    """Extend the lease (and record progress). False when the job is no longer ours."""
    values: dict[str, Any] = {"heartbeat_at": utc_now()}
    if progress is not None:
        values["progress"] = progress
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.state == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return getattr(done, "rowcount", 0) == 1


def finish(
    session: Session,
    job_id: int,
    worker: str,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    progress: dict[str, Any] | None = None,
) -> bool:
    values: dict[str, Any] = {
        "state": "failed" if error is not None else "succeeded",
        "finished_at": utc_now(),
        "result": result,
        "error": error,
    }
    if progress is not None:
        values["progress"] = progress
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.state == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return getattr(done, "rowcount", 0) == 1
