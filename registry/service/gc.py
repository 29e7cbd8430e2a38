"""Garbage collection of blobs that no checkpoint references: mark, grace, sweep.

A blob is deleted only when all of these hold (each run of `modelctl gc` moves blobs one step):
1. **Old enough.** Its bytes were published more than the grace period ago. A mirror uploads
   every blob before it records the checkpoint that references them, so the blobs of a mirror
   in flight are young and never even marked.
2. **Marked.** A run found it unreferenced and wrote a mark (`gc_marks`) with the time.
3. **Marked long enough.** A later run finds the mark older than the grace period and the blob
   still unreferenced. Recording a checkpoint that uses the blob (a mirror that found the bytes
   already stored) deletes the mark in the same transaction, so reuse restarts the clock.
4. **Still unreferenced at the sweep.** One transaction re-checks the references, deletes the
   `blobs` row (the foreign key from `checkpoint_files` refuses if a reference appeared) and
   turns the mark into a tombstone (`swept_at`); the bytes go only after it commits.
5. **Tombstone.** A mirror that found the bytes already stored (before they went) and records
   its checkpoint after the sweep finds the tombstone and refuses to record (`StorageError`,
   "mirror again"): never a checkpoint whose bytes are gone. A mirror that uploads the bytes
   afresh clears it. Tombstones older than the grace are dropped.

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
from registry.errors import StorageError

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
    expired_tombstones: list[str] = field(default_factory=list)  # swept more than a grace ago


def referenced_digests(session: Session) -> set[str]:
    return set(session.scalars(select(CheckpointFile.sha256).distinct()))


def marks(session: Session) -> dict[str, datetime]:
    """Marks not yet swept: sha256 -> when marked."""
    rows = session.scalars(select(GcMark).where(GcMark.swept_at.is_(None)))
    return {m.sha256: m.marked_at for m in rows}


def tombstones(session: Session) -> dict[str, datetime]:
    """Swept blobs: sha256 -> when swept."""
    rows = session.scalars(select(GcMark).where(GcMark.swept_at.is_not(None)))
    return {m.sha256: m.swept_at for m in rows if m.swept_at is not None}


def plan(
    stored: Iterable[BlobEntry],
    referenced: set[str],
    marked: dict[str, datetime],
    *,
    now: datetime,
    grace: timedelta,
    swept: dict[str, datetime] | None = None,
) -> GcPlan:
    """Sort every stored blob into its step (pure: the tests drive it with made-up clocks)."""
    result = GcPlan(referenced=len(referenced))
    cutoff = now - grace
    swept = swept or {}
    result.expired_tombstones = sorted(s for s, at in swept.items() if _aware(at) <= cutoff)
    seen: set[str] = set()
    for entry in stored:
        result.stored += 1
        sha = entry.digest.hex
        seen.add(sha)
        if sha in referenced:
            continue
        if entry.modified > cutoff:
            result.young.append(entry)
        elif sha in swept:
            result.due.append(entry)  # swept, but deleting the bytes failed: again
        elif sha not in marked:
            result.to_mark.append(entry)
        elif _aware(marked[sha]) <= cutoff:
            result.due.append(entry)
        else:
            result.waiting.append(entry)
    result.stale_marks = sorted(sha for sha in marked if sha in referenced or sha not in seen)
    return result


def write_marks(session: Session, found: GcPlan, now: datetime) -> None:
    """Mark what was found unreferenced; drop the marks of blobs referenced again or gone, and
    tombstones older than the grace."""
    if found.stale_marks:
        session.execute(
            delete(GcMark).where(GcMark.sha256.in_(found.stale_marks), GcMark.swept_at.is_(None))
        )
    if found.expired_tombstones:
        session.execute(delete(GcMark).where(GcMark.sha256.in_(found.expired_tombstones)))
    session.add_all(GcMark(sha256=e.digest.hex, size=e.size, marked_at=now) for e in found.to_mark)
    session.flush()


def release(session: Session, sha256: str, *, cutoff: datetime, now: datetime) -> bool:
    """Step 4 for one blob: True when its row is gone, its mark a tombstone, and its bytes may go.

    Locks the mark (PostgreSQL), re-checks it is old enough and that no checkpoint file names
    the blob, then deletes the `blobs` row and sets `swept_at`. The caller commits before it
    deletes the bytes; a foreign-key failure at the commit means a reference appeared: keep it.
    """
    mark = session.get(GcMark, sha256, with_for_update=True)
    if mark is None:
        return False
    if mark.swept_at is None and _aware(mark.marked_at) > cutoff:
        return False
    if session.scalar(select(exists().where(CheckpointFile.sha256 == sha256))):
        session.delete(mark)
        return False
    session.execute(delete(Blob).where(Blob.sha256 == sha256))
    mark.swept_at = mark.swept_at or now
    session.flush()
    return True


def take_blobs(session: Session, reused: Iterable[str], uploaded: Iterable[str]) -> None:
    """A checkpoint is being recorded with these blobs: their marks no longer hold.

    `reused` blobs were found already stored; if one has been swept since (a tombstone), its
    bytes may be gone: refuse, and the mirror, run again, uploads them afresh. `uploaded`
    blobs were written by this mirror: a tombstone of theirs is over.
    """
    reused, uploaded = list(reused), list(uploaded)
    if reused:
        gone = session.scalars(
            select(GcMark.sha256).where(GcMark.sha256.in_(reused), GcMark.swept_at.is_not(None))
        ).first()
        if gone is not None:
            raise StorageError(
                f"blob sha256:{gone} was garbage-collected while this mirror ran; mirror again"
            )
    if reused or uploaded:
        session.execute(delete(GcMark).where(GcMark.sha256.in_(reused + uploaded)))


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
