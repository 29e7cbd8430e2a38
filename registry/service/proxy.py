"""Pull-through from the hubs: `/hf/{env}` asks for a model the registry has not mirrored.

With `MODELCTL_PROXY_SOURCES` (globs such as `hf://Qwen/*`, `ms://iic/*`), a request for a
name that matches and that the registry does not hold (or a revision of it the registry does
not hold) queues a mirror-and-scan job and is answered `503` with `Retry-After` until the job
is done; after that the ordinary gate decides, so the model is served only if admitted. The
upstream commit is pinned when the mirror starts (the first request's job), and every request
while the job runs gets the same answer, so no client sees a half-scanned checkpoint.

A failed pull-through is remembered for `FAILURE_COOLDOWN`: clients asking again in the
meantime get the failure, not a new upstream fetch each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase

from sqlalchemy import select
from sqlalchemy.orm import Session

from attestations.utc import aware, utc_now
from registry.db.models import AuditEvent, Job
from registry.errors import RegistryError, UpstreamError
from registry.service import jobs

PROXY_ACTOR = "system:proxy"
#: What `Retry-After` says while the mirror runs (clients poll; the job usually takes longer).
RETRY_AFTER_SECONDS = 10
FAILURE_COOLDOWN = timedelta(minutes=5)
_PENDING = ("queued", "running")


class MirrorPending(RegistryError):
    """The model is being mirrored and scanned for this request: ask again later (HTTP 503)."""

    def __init__(self, message: str, *, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ProxySource:
    """The hub source a registry name is pulled through from."""

    uri: str  # hf://ORG/NAME or ms://ORG/NAME (no revision)

    def at(self, revision: str) -> str:
        return self.uri if revision == "main" else f"{self.uri}@{revision}"


def source_for(name: str, globs: Sequence[str]) -> ProxySource | None:
    """The first glob that matches the registry name `name` (ORG/NAME), as a source."""
    for glob in globs:
        kind, _, pattern = glob.partition("://")
        if fnmatchcase(name, pattern):
            return ProxySource(f"{kind}://{name}")
    return None


def mirror_jobs(session: Session, source: ProxySource, states: Sequence[str]) -> list[Job]:
    """Mirror jobs of `source` (at any revision) in one of `states`, newest first."""
    rows = session.scalars(
        select(Job)
        .where(Job.kind == jobs.JobKind.MIRROR.value, Job.state.in_(states))
        .order_by(Job.id.desc())
    )
    prefix = source.uri + "@"
    return [
        r
        for r in rows
        if isinstance(src := r.params.get("source"), str)
        and (src == source.uri or src.startswith(prefix))
    ]


def check_pending(session: Session, source: ProxySource) -> None:
    """Raise `MirrorPending` while a mirror of `source` is queued or running."""
    pending = mirror_jobs(session, source, _PENDING)
    if pending:
        raise MirrorPending(
            f"{source.uri} is being mirrored and scanned (job {pending[0].id}); retry shortly"
        )


def request_mirror(
    session: Session, source: ProxySource, revision: str, *, name: str
) -> MirrorPending:
    """Queue the mirror-and-scan of `source` at `revision`; the `MirrorPending` to raise once
    the caller's transaction has committed the job. Raises `MirrorPending` when a mirror of it
    is already under way, and the failure when the same pull-through failed within
    `FAILURE_COOLDOWN`."""
    check_pending(session, source)
    wanted = source.at(revision)
    since = utc_now() - FAILURE_COOLDOWN
    for failed in mirror_jobs(session, source, ("failed",)):
        if failed.params.get("source") != wanted or failed.actor != PROXY_ACTOR:
            continue
        finished = failed.finished_at
        if finished is not None and aware(finished) >= since:
            reason = str((failed.error or {}).get("message") or "the mirror failed")
            raise UpstreamError(f"pull-through of {wanted} failed (job {failed.id}): {reason}")
    job = jobs.enqueue(
        session,
        jobs.JobKind.MIRROR,
        {"source": wanted, "name": name, "attest": True},
        actor=PROXY_ACTOR,
    )
    session.add(
        AuditEvent(
            actor=PROXY_ACTOR,
            action="mirror.proxy",
            subject=wanted,
            details={"job": job.id, "name": name, "revision": revision},
        )
    )
    session.flush()
    return MirrorPending(f"{wanted} is not mirrored yet: mirroring and scanning it (job {job.id})")
