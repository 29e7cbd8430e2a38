"""Quarantine binds bytes: a manifest digest under every name, or a file's sha256.

`modelctl quarantine NS/NAME[@…]` quarantines that checkpoint's manifest digest: every
checkpoint with those bytes, under any name, now or registered later. `modelctl quarantine
sha256:<hex>` quarantines a manifest digest or, when it is a file's sha256, every checkpoint
holding that file. A file digest the registry has never seen is quarantined ahead of time (a
known-bad hash from a feed): whatever arrives holding it is quarantined on arrival.

`release` undoes exactly one of these: a name releases its manifest-digest quarantine (and says
so when a file quarantine still holds it); a bare digest releases that digest's quarantine.
The caller owns the transaction; every step is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import CompoundSelect, and_, or_, select, union
from sqlalchemy.orm import Session

from attestations.digests import SHA256_PREFIX, Digest
from attestations.errors import InvalidInputError
from registry.db.models import (
    QUARANTINE_CHECKPOINT,
    QUARANTINE_FILE,
    AuditEvent,
    Checkpoint,
    CheckpointFile,
    Model,
    Quarantine,
)
from registry.errors import InputError
from registry.refs import Ref
from registry.service import checkpoints
from registry.tlog import append as tlog
from registry.tlog.entries import EntryKind, LogEntry
from registry.views import QuarantineView

MAX_REASON = 2000


def is_bare_digest(target: str) -> bool:
    """`sha256:<hex>` with no model name: a digest, not a reference."""
    return target.startswith(SHA256_PREFIX)


def _bare_hex(target: str) -> str:
    try:
        return Digest.parse(target).hex
    except InvalidInputError as exc:
        raise InputError(f"bad digest {target!r:.120}: {exc.message}") from exc


def _ref(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.model.full_name}@sha256:{checkpoint.manifest_digest}"


def _reason(reason: str, what: str) -> str:
    text = reason.strip()
    if not text:
        raise InputError(f"a {what} needs a --reason")
    if len(text) > MAX_REASON:
        raise InputError(f"the reason is longer than {MAX_REASON} characters")
    return text


# -- what a quarantine covers ----------------------------------------------------------------


def covered(session: Session, kind: str, digest_hex: str) -> list[Checkpoint]:
    """Every checkpoint a quarantine of (`kind`, `digest_hex`) holds now, oldest first."""
    query = select(Checkpoint).join(Model, Checkpoint.model_id == Model.id)
    by_manifest = Checkpoint.manifest_digest == digest_hex
    if kind == QUARANTINE_CHECKPOINT:
        query = query.where(by_manifest)
    else:  # a file's sha256, or a digest blocked before any checkpoint had it as its identity
        holding = select(CheckpointFile.checkpoint_id).where(CheckpointFile.sha256 == digest_hex)
        query = query.where(or_(Checkpoint.id.in_(holding), by_manifest))
    return list(session.scalars(query.order_by(Checkpoint.id)))


def _paths(session: Session, digest_hex: str) -> tuple[str, ...]:
    found = session.scalars(
        select(CheckpointFile.path).where(CheckpointFile.sha256 == digest_hex).distinct()
    )
    return tuple(sorted(found))


def quarantined_checkpoint_ids() -> CompoundSelect[int]:
    """SELECT of the ids of every checkpoint an active quarantine holds (for listings)."""
    active = Quarantine.released_at.is_(None)
    by_manifest = (
        select(Checkpoint.id)
        .join(Quarantine, Quarantine.digest == Checkpoint.manifest_digest)  # any kind
        .where(active)
    )
    by_file = (
        select(CheckpointFile.checkpoint_id)
        .join(
            Quarantine,
            and_(Quarantine.kind == QUARANTINE_FILE, Quarantine.digest == CheckpointFile.sha256),
        )
        .where(active)
    )
    return union(by_manifest, by_file)


def holding(session: Session, checkpoint: Checkpoint) -> list[Quarantine]:
    """The active quarantines that hold `checkpoint` now (read now, not from a relationship)."""
    files = select(CheckpointFile.sha256).where(CheckpointFile.checkpoint_id == checkpoint.id)
    query = (
        select(Quarantine)
        .where(Quarantine.released_at.is_(None))
        .where(
            (
                (Quarantine.kind == QUARANTINE_CHECKPOINT)
                & (Quarantine.digest == checkpoint.manifest_digest)
            )
            | ((Quarantine.kind == QUARANTINE_FILE) & Quarantine.digest.in_(files))
        )
        .order_by(Quarantine.id)
    )
    return list(session.scalars(query))


def describe(row: Quarantine) -> str:
    """`checkpoint sha256:…` or `file sha256:…`: how a quarantine is named to people."""
    return f"{row.kind} sha256:{row.digest}"


def view(
    session: Session, row: Quarantine, *, still_quarantined_by: tuple[str, ...] = ()
) -> QuarantineView:
    return QuarantineView(
        id=row.id,
        kind=row.kind,
        digest=f"sha256:{row.digest}",
        reason=row.reason,
        by=row.actor,
        since=row.created_at,
        covers=tuple(_ref(c) for c in covered(session, row.kind, row.digest)),
        paths=_paths(session, row.digest) if row.kind == QUARANTINE_FILE else (),
        released_at=row.released_at,
        released_by=row.released_by,
        release_reason=row.release_reason,
        still_quarantined_by=still_quarantined_by,
    )


def active(session: Session) -> list[Quarantine]:
    query = select(Quarantine).where(Quarantine.released_at.is_(None)).order_by(Quarantine.id)
    return list(session.scalars(query))


# -- quarantine --------------------------------------------------------------------------------


def _target(session: Session, target: str) -> tuple[str, str, str]:
    """(kind, digest hex, subject for the audit log) that `target` quarantines."""
    if not is_bare_digest(target):
        checkpoint = checkpoints.resolve_ref(session, Ref.parse(target))
        return QUARANTINE_CHECKPOINT, checkpoint.manifest_digest, _ref(checkpoint)
    hex_ = _bare_hex(target)
    if covered(session, QUARANTINE_CHECKPOINT, hex_):
        return QUARANTINE_CHECKPOINT, hex_, f"sha256:{hex_}"
    return QUARANTINE_FILE, hex_, f"sha256:{hex_}"  # a file, held now or ahead of time


def quarantine(session: Session, target: str, *, reason: str, actor: str) -> Quarantine:
    """Quarantine what `target` names (see the module docstring); an active one is kept."""
    text = _reason(reason, "quarantine")
    kind, hex_, subject = _target(session, target)
    existing = session.scalars(
        select(Quarantine)
        .where(Quarantine.kind == kind, Quarantine.digest == hex_)
        .where(Quarantine.released_at.is_(None))
        .order_by(Quarantine.id)
    ).first()
    if existing is not None:
        return existing
    row = Quarantine(kind=kind, digest=hex_, reason=text, actor=actor)
    session.add(row)
    session.flush()
    tlog.append(
        session,
        LogEntry(
            kind=EntryKind.QUARANTINE,
            subject=f"sha256:{hex_}",
            actor=actor,
            time=datetime.now(UTC),
            detail=f"{kind}: {text}",
        ),
    )
    covers = [_ref(c) for c in covered(session, kind, hex_)]
    session.add(
        AuditEvent(
            actor=actor,
            action="checkpoint.quarantine",
            subject=subject,
            details={
                "quarantine": row.id,
                "kind": kind,
                "digest": f"sha256:{hex_}",
                "reason": text,
                "covers": covers,
            },
        )
    )
    session.flush()
    return row


# -- release -----------------------------------------------------------------------------------


def release(
    session: Session, target: str, *, reason: str, actor: str
) -> tuple[Quarantine, tuple[str, ...]]:
    """End the quarantine `target` names: (the row, what still holds what it covered)."""
    if is_bare_digest(target):
        hex_ = _bare_hex(target)
        rows = _active_rows(session, None, hex_)
        if not rows:
            raise InputError(f"sha256:{hex_} is not quarantined")
        subject = f"sha256:{hex_}"
    else:
        checkpoint = checkpoints.resolve_ref(session, Ref.parse(target))
        subject = _ref(checkpoint)
        rows = _active_rows(session, QUARANTINE_CHECKPOINT, checkpoint.manifest_digest)
        if not rows:
            others = holding(session, checkpoint)
            if others:
                raise InputError(
                    f"{subject} is not quarantined by its digest; it is still quarantined by "
                    f"{describe(others[0])}: release that digest to lift it"
                )
            raise InputError(f"{subject} is not quarantined")
    text = _reason(reason, "release")
    now = datetime.now(UTC)
    for row in rows:  # duplicates of one digest (made under several names before 0011)
        row.released_at = now
        row.released_by = actor
        row.release_reason = text
    session.flush()
    first = rows[0]
    tlog.append(
        session,
        LogEntry(
            kind=EntryKind.RELEASE,
            subject=f"sha256:{first.digest}",
            actor=actor,
            time=now,
            detail=f"{first.kind}: {text}",
        ),
    )
    still = _still_holding(session, first)
    session.add(
        AuditEvent(
            actor=actor,
            action="checkpoint.release",
            subject=subject,
            details={
                "quarantine": first.id,
                "kind": first.kind,
                "digest": f"sha256:{first.digest}",
                "reason": text,
                "quarantined_since": first.created_at.isoformat(),
                "still_quarantined_by": list(still),
            },
        )
    )
    session.flush()
    return first, still


def _active_rows(session: Session, kind: str | None, hex_: str) -> list[Quarantine]:
    query = select(Quarantine).where(Quarantine.digest == hex_, Quarantine.released_at.is_(None))
    if kind is not None:
        query = query.where(Quarantine.kind == kind)
    return list(session.scalars(query.order_by(Quarantine.id)))


def _still_holding(session: Session, released: Quarantine) -> tuple[str, ...]:
    """`NS/NAME@sha256:… by file sha256:…` for what `released` covered and others still hold."""
    out: list[str] = []
    for checkpoint in covered(session, released.kind, released.digest):
        for other in holding(session, checkpoint):
            out.append(f"{_ref(checkpoint)} by {describe(other)}")
    return tuple(out)
