"""Appending to the log inside the caller's database transaction.

Fail closed: an event the registry issues (a signed attestation, a quarantine, a release, an
approved exception) is only done when it is in the log. `append` raises when it cannot log,
and the caller's unit of work rolls the event back. The other way round is possible: the log
gains an entry and then the transaction rolls back; the log then says a little more than the
database, never less (an entry is a claim the registry made, not proof that it still holds).
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from attestations.utc import utc_now
from registry.db.models import TransparencyLogHead
from registry.errors import IntegrityFailure, StorageError
from registry.tlog.entries import LogEntry
from registry.tlog.files import LogWriter

#: Where `EmbeddedRegistry` puts its `LogWriter` in every session's `info`.
SESSION_KEY = "modelctl.transparency_log"


def append(session: Session, entry: LogEntry) -> int:
    """Append `entry`; returns its index in the log.

    1. Take the log's lock row (an UPDATE: a row lock on PostgreSQL, the write lock on
       SQLite), so servers sharing the database append one at a time until commit.
    2. Append to the files and sign the new checkpoint.
    3. Refuse files that are behind what the database saw (restored or truncated log).

    A log that cannot be appended to (tampered, missing, unwritable) is a StorageError: the act
    fails with exit 2 / HTTP 503, and is rolled back by the caller's unit of work.
    """
    writer = session.info.get(SESSION_KEY)
    if not isinstance(writer, LogWriter):
        raise StorageError("this registry session has no transparency log to append to")
    now = utc_now()
    locked = session.execute(
        update(TransparencyLogHead).where(TransparencyLogHead.id == 1).values(updated_at=now)
    )
    if locked.rowcount == 0:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
        session.add(TransparencyLogHead(id=1, size=0, updated_at=now))
        session.flush()
    head = session.get(TransparencyLogHead, 1)
    assert head is not None
    try:
        index, checkpoint = writer.append([entry.to_bytes()])
    except IntegrityFailure as exc:  # our own log is broken: the server's fault, not the caller's
        raise StorageError(f"cannot append to the transparency log: {exc}") from exc
    if index < head.size:
        raise StorageError(
            f"transparency log files hold {index} entries, the database saw {head.size}: "
            "restore the log folder or investigate before the registry acts again"
        )
    head.size = checkpoint.size
    session.flush()
    return index


__all__ = ["SESSION_KEY", "append"]
