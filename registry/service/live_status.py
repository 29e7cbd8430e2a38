"""Live status: what every list, badge, count and `models` column shows.

A checkpoint's status in an environment is the decision the registry would enforce now: the
bound policy evaluated by the same `Gatekeeper` as pull, `/hf` and the webhook, on facts
gathered now (attestations verified, exceptions, quarantine). Recorded decisions are history;
they are never read to say what a checkpoint's status is.

Deciding costs about a millisecond a checkpoint, so statuses are kept in memory per process
(`StatusBoard`) and thrown away when something they rest on may have changed:

- **the policy or the registry key**: the board belongs to one context (the digest of the
  bound policy document and the registry's public key); another context empties it;
- **the state in the database**: every state change writes an event to the append-only audit
  log (DESIGN §7), whoever made it and in whichever process. Before each use the board reads
  the events newer than the last one it saw (one indexed query, usually empty) and forgets the
  statuses they may affect: those of one manifest digest for the few actions known to touch
  only the checkpoint they name (`SCOPED_ACTIONS`), nothing for actions known to change no
  fact (`NO_EFFECT_ACTIONS`), everything for any other action, including actions added later.
  So new kinds of state need no hook here, as long as they write an audit event;
- **time**: a status is kept until its decision's `expires_at` (a scan going stale, a waiver
  or a key expiring) and at most `max_age` (30 minutes: a backstop for a change made outside
  the log, e.g. by hand in the database).

Several servers share one database: each has its own board and each reads the same log, so a
change made through one server shows on every server at its next request. On PostgreSQL, ids
are handed out before commit, so an event can become visible after a higher one: ids skipped
over are remembered for `gap_ttl` and looked up again until they appear.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from policies import CheckStatus, Decision
from registry.db.models import AuditEvent, Checkpoint
from registry.errors import Denied
from registry.service.gate import Gatekeeper

Status = Literal["allowed", "warn", "denied", "quarantined"]
STATUSES: tuple[Status, ...] = ("allowed", "warn", "denied", "quarantined")

#: Actions that change no fact a decision reads (decisions are outputs; pulls and tokens
#: are not facts about a checkpoint; a pending or rejected request waives nothing).
NO_EFFECT_ACTIONS = frozenset(
    {
        "checkpoint.decide",
        "checkpoint.pull",
        "token.create",
        "token.revoke",
        "exception.request",
        "exception.reject",
        # Queuing work changes no fact; the work itself writes scoped events when it lands.
        "job.mirror",
        "job.scan",
        "scan.rescan",
        "mirror.proxy",
        "mirror.sync",
    }
)
#: Actions whose effect is confined to the checkpoints with the manifest digest their subject
#: (`NS/NAME@sha256:<hex>`) names, under every name. The same action with any other subject
#: (a bare file digest, an exception id), and every other action, forgets every status.
SCOPED_ACTIONS = frozenset(
    {
        "checkpoint.mirror",
        "checkpoint.scan",
        "checkpoint.attest",
        "attestation.upload",
        "checkpoint.quarantine",
        "checkpoint.release",
        "exception.add",
        "exception.approve",
    }
)
_SUBJECT_DIGEST = re.compile(r"@sha256:([0-9a-f]{64})$")
#: More new events than this in one read: forget everything rather than read them all.
_MAX_EVENTS_PER_SYNC = 2000
_MAX_GAPS = 10_000
_BATCH = 200


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """The decision in force now for one checkpoint in one environment, as lists show it."""

    status: Status
    allowed: bool
    mode: str
    policy: str
    failed: tuple[str, ...]  # ids of the checks that failed (or warned, in warn/audit mode)
    reasons: tuple[str, ...]  # `check-id: message` for each of them
    expires_at: datetime | None

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "allowed": self.allowed,
            "mode": self.mode,
            "policy": self.policy,
            "reasons": list(self.reasons),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def status_of(decision: Decision) -> Status:
    quarantine = decision.check("quarantine")
    if quarantine is not None and quarantine.status is CheckStatus.FAIL:
        return "quarantined"
    if not decision.allowed:
        return "denied"
    if any(c.status in (CheckStatus.FAIL, CheckStatus.WARN) for c in decision.checks):
        return "warn"
    return "allowed"


def live_status(decision: Decision) -> LiveStatus:
    bad = [c for c in decision.checks if c.status in (CheckStatus.FAIL, CheckStatus.WARN)]
    return LiveStatus(
        status=status_of(decision),
        allowed=decision.allowed,
        mode=str(decision.mode.value),
        policy=decision.policy_name,
        failed=tuple(c.id for c in bad),
        reasons=tuple(f"{c.id}: {c.message}" for c in bad),
        expires_at=decision.expires_at,
    )


def unbound_status(exc: Denied) -> LiveStatus:
    return LiveStatus("denied", False, "enforce", "", ("binding",), tuple(exc.reasons), None)


def context_key(policy_text: str, registry_public_key: bytes | None) -> str:
    """What every status of a board rests on besides the database: the bound policy document
    (bindings and modes included) and the key attestations are verified with."""
    h = hashlib.sha256(policy_text.encode())
    h.update(b"\0" + (registry_public_key or b""))
    return h.hexdigest()


@dataclass(slots=True)
class _Entry:
    status: LiveStatus
    digest: str
    generation: int
    until: float  # time.time() after which the entry is not used


class StatusBoard:
    """Live statuses of one process, valid until the audit log or the clock says otherwise."""

    def __init__(
        self,
        *,
        max_age: timedelta = timedelta(minutes=30),
        gap_ttl: timedelta = timedelta(minutes=10),
        max_entries: int = 500_000,
    ) -> None:
        self.max_age = max_age
        self.gap_ttl = gap_ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._context: str | None = None
        self._entries: dict[tuple[int, str], _Entry] = {}
        self._cursor: int | None = None  # the newest audit event id read
        self._gaps: dict[int, float] = {}  # ids skipped over -> when first missed
        self._generation = 0
        self._forgot_all_at = 0
        self._forgot_digest_at: dict[str, int] = {}
        self.computed = 0  # statuses evaluated (for tests and benches)

    # -- invalidation ------------------------------------------------------------------------

    def sync(self, session: Session, context: str) -> int:
        """Read the audit events since the last call and forget what they may change; the
        generation to stamp statuses computed from now on."""
        with self._lock:
            if context != self._context:
                self._context = context
                self._forget_all()
            cursor, gaps = self._cursor, list(self._gaps)
        if cursor is None:
            newest = session.scalar(select(func.max(AuditEvent.id))) or 0
            # Look back a little: on PostgreSQL a lower id may still be committing.
            cursor = max(0, newest - 200)
        rows = list(
            session.execute(
                select(AuditEvent.id, AuditEvent.action, AuditEvent.subject)
                .where(AuditEvent.id > cursor)
                .order_by(AuditEvent.id)
                .limit(_MAX_EVENTS_PER_SYNC)
            )
        )
        late = (
            list(
                session.execute(
                    select(AuditEvent.id, AuditEvent.action, AuditEvent.subject).where(
                        AuditEvent.id.in_(gaps)
                    )
                )
            )
            if gaps
            else []
        )
        with self._lock:
            return self._apply(cursor, rows, late)

    def _apply(
        self,
        cursor: int,
        rows: Sequence[tuple[int, str, str]],
        late: Sequence[tuple[int, str, str]],
    ) -> int:
        now = time.monotonic()
        for event_id, _, _ in late:
            self._gaps.pop(event_id, None)
        seen = {event_id for event_id, _, _ in rows}
        newest = rows[-1][0] if rows else cursor
        for missing in range(max(cursor, self._cursor or 0) + 1, newest):
            if missing not in seen:
                self._gaps.setdefault(missing, now)
        expired = [g for g, at in self._gaps.items() if now - at > self.gap_ttl.total_seconds()]
        for g in expired:
            del self._gaps[g]
        while len(self._gaps) > _MAX_GAPS:
            del self._gaps[min(self._gaps)]
        events = [*rows, *late]
        if events:
            self._generation += 1
            if len(rows) >= _MAX_EVENTS_PER_SYNC:
                self._forget_all()
            for _, action, subject in events:
                self._forget_for(action, subject)
        self._cursor = max(newest, self._cursor or 0)
        return self._generation

    def _forget_for(self, action: str, subject: str) -> None:
        if action in NO_EFFECT_ACTIONS:
            return
        match = _SUBJECT_DIGEST.search(subject) if action in SCOPED_ACTIONS else None
        if match is None:
            self._forget_all()
        else:
            self._forgot_digest_at[match.group(1)] = self._generation

    def _forget_all(self) -> None:
        self._generation += 1
        self._forgot_all_at = self._generation
        self._forgot_digest_at.clear()
        self._entries.clear()

    # -- lookups -------------------------------------------------------------------------------

    def cached(
        self, ids: Iterable[int], environments: Sequence[str], now: datetime
    ) -> tuple[dict[tuple[int, str], LiveStatus], list[int]]:
        """The statuses still valid, and the checkpoint ids with one missing."""
        found: dict[tuple[int, str], LiveStatus] = {}
        missing: list[int] = []
        wall = now.timestamp()
        with self._lock:
            for cid in ids:
                complete = True
                for env in environments:
                    entry = self._entries.get((cid, env))
                    if entry is None or not self._valid(entry, wall):
                        complete = False
                        break
                    found[(cid, env)] = entry.status
                if not complete:
                    missing.append(cid)
        return found, missing

    def _valid(self, entry: _Entry, wall: float) -> bool:
        floor = max(self._forgot_all_at, self._forgot_digest_at.get(entry.digest, 0))
        return entry.generation >= floor and wall < entry.until

    def store(
        self,
        statuses: Mapping[tuple[int, str], LiveStatus],
        digests: Mapping[int, str],
        generation: int,
        now: datetime,
    ) -> None:
        cap = now.timestamp() + self.max_age.total_seconds()
        with self._lock:
            if len(self._entries) + len(statuses) > self.max_entries:
                self._entries.clear()  # rare: more checkpoints than the cap; start over
            for (cid, env), status in statuses.items():
                until = cap
                if status.expires_at is not None:
                    until = min(until, status.expires_at.timestamp())
                self._entries[(cid, env)] = _Entry(status, digests[cid], generation, until)


@dataclass(frozen=True, slots=True)
class LiveStatuses:
    """A board bound to the policy, key and blob store in force: what the read queries
    (`registry.service.read`) call."""

    board: StatusBoard
    gate: Gatekeeper
    context: str

    def statuses(
        self,
        session: Session,
        ids: Sequence[int],
        environments: Sequence[str],
        *,
        now: datetime | None = None,
    ) -> dict[tuple[int, str], LiveStatus]:
        """The live status of each checkpoint in `ids` in each environment."""
        now = now or datetime.now(UTC)
        generation = self.board.sync(session, self.context)
        found, missing = self.board.cached(ids, environments, now)
        for start in range(0, len(missing), _BATCH):
            computed, digests = self._compute(
                session, missing[start : start + _BATCH], environments, now
            )
            self.board.store(computed, digests, generation, now)
            found.update(computed)
        return found

    def _compute(
        self, session: Session, ids: Sequence[int], environments: Sequence[str], now: datetime
    ) -> tuple[dict[tuple[int, str], LiveStatus], dict[int, str]]:
        checkpoints = session.scalars(
            select(Checkpoint)
            .where(Checkpoint.id.in_(ids))
            .options(
                selectinload(Checkpoint.model),
                selectinload(Checkpoint.files),
                selectinload(Checkpoint.scans),
                selectinload(Checkpoint.evidence_attestations),
                selectinload(Checkpoint.revisions),
                selectinload(Checkpoint.quarantines),
            )
        )
        out: dict[tuple[int, str], LiveStatus] = {}
        digests: dict[int, str] = {}
        for checkpoint in checkpoints:
            digests[checkpoint.id] = checkpoint.manifest_digest
            facts, granted = self.gate.inputs(session, checkpoint, now)
            for env in environments:
                try:
                    decision = self.gate.evaluate(facts, granted, env, now)
                except Denied as exc:  # no policy bound: denied (fail closed)
                    out[(checkpoint.id, env)] = unbound_status(exc)
                else:
                    out[(checkpoint.id, env)] = live_status(decision)
            self.board.computed += len(environments)
        return out, digests

    def all_ids(self, session: Session) -> list[int]:
        return list(session.scalars(select(Checkpoint.id).order_by(Checkpoint.id)))
