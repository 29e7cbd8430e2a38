"""Scheduled upstream sync: mirror (and scan) the new commits of watched hub models.

A model is watched when it was mirrored from a hub source that matches
`MODELCTL_PROXY_SOURCES` (the models pull-through brings in), or when `modelctl sync SOURCE`
names it. For each, the caller resolves the upstream `main` to a commit; a commit no checkpoint
of that source holds, and no queued or running mirror covers, gets one mirror-and-scan job.
The new checkpoint then meets the policy like any other: a new commit is never served until
it is scanned and admitted.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import AuditEvent, Checkpoint
from registry.service import jobs
from registry.service.proxy import ProxySource, mirror_jobs, source_for

SYNC_ACTOR = "system:sync"


def watched(session: Session, globs: Sequence[str]) -> dict[str, str]:
    """Hub source URI -> the registry name its newest checkpoint has, for every hub source
    matching `globs` that the registry has mirrored."""
    found: dict[str, str] = {}
    rows = session.scalars(select(Checkpoint).order_by(Checkpoint.id.desc()))
    for checkpoint in rows:
        uri = checkpoint.source_uri
        kind, sep, repo = uri.partition("://")
        if not sep or kind not in ("hf", "ms") or uri in found:
            continue
        if source_for(repo, [g for g in globs if g.startswith(kind + "://")]) is not None:
            found[uri] = checkpoint.model.full_name
    return found


def name_for(session: Session, uri: str) -> str | None:
    """The registry name of the newest checkpoint mirrored from `uri`, if any."""
    checkpoint = session.scalars(
        select(Checkpoint).where(Checkpoint.source_uri == uri).order_by(Checkpoint.id.desc())
    ).first()
    return checkpoint.model.full_name if checkpoint is not None else None


def holds(session: Session, uri: str, commit: str) -> bool:
    return (
        session.scalars(
            select(Checkpoint.id).where(
                Checkpoint.source_uri == uri, Checkpoint.source_commit == commit
            )
        ).first()
        is not None
    )


def pending(session: Session, uri: str) -> bool:
    """Whether a mirror of `uri` (any revision) is queued or running."""
    return bool(mirror_jobs(session, ProxySource(uri), ("queued", "running")))


def queue(session: Session, uri: str, commit: str, name: str) -> int:
    """One mirror-and-scan job of `uri` at `commit` under `name`; its id."""
    job = jobs.enqueue(
        session,
        jobs.JobKind.MIRROR,
        {"source": f"{uri}@{commit}", "name": name, "attest": True},
        actor=SYNC_ACTOR,
    )
    session.add(
        AuditEvent(
            actor=SYNC_ACTOR,
            action="mirror.sync",
            subject=f"{uri}@{commit}",
            details={"job": job.id, "name": name},
        )
    )
    session.flush()
    return job.id
