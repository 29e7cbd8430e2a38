"""Garbage collection of blobs that no checkpoint references: mark, grace, sweep.

A blob is deleted only when all of these hold (each run of `modelctl gc` moves blobs one step):
1. **Old enough.** Its bytes were published more than the grace period ago. A mirror uploads
   every blob before it records the checkpoint that references them, so the blobs of a mirror
   in flight are young and never even marked.
2. **Marked.** A run found it unreferenced and wrote a mark (`gc_marks`) with the time.
3. **Marked long enough.** A later run finds the mark older than the grace period and the blob
   still unreferenced. Recording a checkpoint that uses the blob (a mirror that found the bytes
   already stored) deletes the mark in the same transaction, so reuse restarts the clock.
4. **Still unreferenced at the sweep.** The mark and the `blobs` row are deleted in one
   transaction that re-checks the references (and the foreign key from `checkpoint_files`
   refuses the row's deletion if a reference appeared); the bytes go only after it commits.

Leftover uploads (temp files, temporary objects, unfinished multipart uploads) older than the
grace period are removed too; partials kept for resuming a mirror get at least a week.

Functions here take a session and own no transaction: `EmbeddedRegistry.gc` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from registry.blobs.base import BlobEntry, LeftoverUpload
from registry.db.models import Blob, CheckpointFile, GcMark

#: Kept partials wait at least this long for a mirror to resume them (as the local store does).
RESUMABLE_KEEP = timedelta(days=7)


@dataclass
class GcPlan:
    """What one run finds, before it changes anything."""

    stored: int = 0
    referenced: int = 0
    young: list[BlobEntry] = field(default_factory=list)  # unreferenced, inside the grace
    to_mark: list[BlobEntry] = field(default_factory=list)  # unreferenced, not yet marked
    waiting: list[BlobEntry] = field(default_factory=list)  # marked, the grace not yet over
    due: list[BlobEntry] = field(default_factory=list)  # marked long enough: to delete
    stale_marks: list[str] = field(default_factory=list)  # referenced again, or gone


def referenced_digests(session: Session) -> set[str]:
    return set(session.scalars(select(CheckpointFile.sha256).distinct()))


def marks(session: Session) -> dict[str, datetime]:
    return {m.sha256: m.marked_at for m in session.scalars(select(GcMark))}


def plan(
    stored: Iterable[BlobEntry],
    referenced: set[str],
    marked: dict[str, datetime],
    *,
    now: datetime,
    grace: timedelta,
) -> GcPlan:
    """Sort every stored blob into its step (pure: the tests drive it with made-up clocks)."""
    result = GcPlan(referenced=len(referenced))
    cutoff = now - grace
    seen: set[str] = set()
    for entry in stored:
        result.stored += 1
        sha = entry.digest.hex
        seen.add(sha)
        if sha in referenced:
            continue
        if entry.modified > cutoff:
            result.young.append(entry)
        elif sha not in marked:
            result.to_mark.append(entry)
        elif _aware(marked[sha]) <= cutoff:
            result.due.append(entry)
        else:
            result.waiting.append(entry)
    result.stale_marks = sorted(sha for sha in marked if sha in referenced or sha not in seen)
    return result


def write_marks(session: Session, found: GcPlan, now: datetime) -> None:
    """Mark what was found unreferenced; drop the marks of blobs referenced again or gone."""
    if found.stale_marks:
        session.execute(delete(GcMark).where(GcMark.sha256.in_(found.stale_marks)))
    session.add_all(GcMark(sha256=e.digest.hex, size=e.size, marked_at=now) for e in found.to_mark)
    session.flush()


def release(session: Session, sha256: str, *, cutoff: datetime) -> bool:
    """Step 4 for one blob: True when its mark and row are gone and its bytes may go.

    Locks the mark (PostgreSQL), re-checks it is old enough and that no checkpoint file names
    the blob, then deletes the mark and the `blobs` row. The caller commits before it deletes
    the bytes; a foreign-key failure at the commit means a reference appeared: keep the blob.
    """
    mark = session.get(GcMark, sha256, with_for_update=True)
    if mark is None or _aware(mark.marked_at) > cutoff:
        return False
    session.delete(mark)
    if session.scalar(select(exists().where(CheckpointFile.sha256 == sha256))):
        return False
    session.execute(delete(Blob).where(Blob.sha256 == sha256))
    session.flush()
    return True


def forget_marks(session: Session, digests: Iterable[str]) -> None:
    """A checkpoint now references these blobs: their marks (if any) no longer hold."""
    wanted = list(digests)
    if wanted:
        session.execute(delete(GcMark).where(GcMark.sha256.in_(wanted)))


def stale_uploads(
    leftovers: Iterable[LeftoverUpload], *, now: datetime, grace: timedelta
) -> list[LeftoverUpload]:
    """Leftover uploads old enough to remove: older than the grace (a week for partials)."""
    return [
        u
        for u in leftovers
        if _aware(u.started) <= now - (max(grace, RESUMABLE_KEEP) if u.resumable else grace)
    ]


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for aware columns; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
