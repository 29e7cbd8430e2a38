"""Re-scan when the rules change: find checkpoints whose newest scan by a scanner predates the
scanner the registry runs now, and queue one scan job per checkpoint.

A scan records its scanner's version and rule-set version. When a release changes either, the
verdicts on record were reached by rules the registry no longer runs, and a checkpoint that was
clean may not be (a new bypass class) or may be cleared (a false positive removed). Only scans
*older* than the running scanner are stale: in a rolling upgrade, an old server must not undo
the work of a new one by re-scanning with its older rules.

A scanner added to the set (a new file format, say) has no scan on record for checkpoints that
were scanned before it existed, and the shipped policies require its scan: a checkpoint that
holds scans by other scanners of the set but none by a default one is stale too (recorded
version `NEVER`). A checkpoint with no scan by any of them was never scanned on purpose
(`--no-scan`) and is left alone.

Queuing is idempotent: a checkpoint that already has a queued or running scan job covering the
stale scanners gets no second one, so every server may run the sweep at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.db.models import AuditEvent, Checkpoint, Job, Scan
from registry.service import jobs
from registry.views import StaleCheckpoint, StaleScan

#: The actor that queues the jobs of the sweep (the audit log names it).
RESCAN_ACTOR = "system:rescan"
#: The recorded version of a scanner that never scanned the checkpoint.
NEVER = "none"
_VERSION_PART = re.compile(r"(\d+)|([^\d.\-+]+)")


@dataclass(frozen=True, slots=True)
class RuleVersion:
    """What a scan was judged by: the scanner's version and its rule set's version."""

    scanner: str
    ruleset: str

    def __str__(self) -> str:
        return f"{self.scanner} (rules {self.ruleset})"


def _version_key(text: str) -> tuple[tuple[int, int | str], ...]:
    # "0.10.0" > "0.9.1" numerically; a date-shaped rule set ("2026-12-04") compares the same
    # way part by part. Text parts sort after numbers so "1.0.0rc1" stays comparable.
    return tuple(
        (0, int(num)) if num else (1, word) for num, word in _VERSION_PART.findall(text.lower())
    )


def is_older(recorded: RuleVersion, current: RuleVersion) -> bool:
    """True when `recorded` predates `current` (never for a newer or unparseable-equal one)."""
    rec = (_version_key(recorded.scanner), _version_key(recorded.ruleset))
    cur = (_version_key(current.scanner), _version_key(current.ruleset))
    return rec < cur


def _newest_scans(session: Session, scanner_ids: Sequence[str]) -> list[Scan]:
    newest = (
        select(func.max(Scan.id))
        .where(Scan.scanner_id.in_(scanner_ids))
        .group_by(Scan.checkpoint_id, Scan.scanner_id)
    )
    return list(
        session.scalars(select(Scan).where(Scan.id.in_(newest)).order_by(Scan.checkpoint_id))
    )


def _ref(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.model.full_name}@sha256:{checkpoint.manifest_digest}"


def _pending_scans(session: Session) -> dict[str, set[str]]:
    """For each ref with a queued or running scan job: the scanners it will run ("*" = the
    default set, which every stale default scanner is part of)."""
    pending: dict[str, set[str]] = {}
    rows = session.scalars(
        select(Job).where(Job.kind == jobs.JobKind.SCAN.value, Job.state.in_(("queued", "running")))
    )
    for row in rows:
        ref = row.params.get("ref")
        if not isinstance(ref, str):
            continue
        named = row.params.get("scanners") or ()
        pending.setdefault(ref, set()).update(named if named else ("*",))
    return pending


def find_stale(
    session: Session,
    current: Mapping[str, RuleVersion],
    *,
    required: frozenset[str] = frozenset(),
) -> list[StaleCheckpoint]:
    """Checkpoints whose newest scan by one of `current`'s scanners is older than it, or that
    were scanned by some of them but never by one in `required` (the default set: an opt-in
    scanner is never run because it is missing), in checkpoint order (oldest first)."""
    by_checkpoint: dict[int, list[StaleScan]] = {}
    refs: dict[int, str] = {}
    scanned: dict[int, set[str]] = {}
    newest = _newest_scans(session, sorted(current))
    for scan in newest:
        scanned.setdefault(scan.checkpoint_id, set()).add(scan.scanner_id)
        refs[scan.checkpoint_id] = _ref(scan.checkpoint)
    for checkpoint_id, ids in scanned.items():
        for scanner_id in sorted((set(current) & required) - ids):
            now = current[scanner_id]
            by_checkpoint.setdefault(checkpoint_id, []).append(
                StaleScan(
                    scanner=scanner_id,
                    recorded_version=NEVER,
                    recorded_ruleset=NEVER,
                    current_version=now.scanner,
                    current_ruleset=now.ruleset,
                )
            )
    for scan in newest:
        now = current[scan.scanner_id]
        recorded = RuleVersion(scan.scanner_version, scan.ruleset_version)
        if not is_older(recorded, now):
            continue
        by_checkpoint.setdefault(scan.checkpoint_id, []).append(
            StaleScan(
                scanner=scan.scanner_id,
                recorded_version=recorded.scanner,
                recorded_ruleset=recorded.ruleset,
                current_version=now.scanner,
                current_ruleset=now.ruleset,
            )
        )
    return [
        StaleCheckpoint(ref=refs[cid], stale=tuple(sorted(stale, key=lambda s: s.scanner)))
        for cid, stale in sorted(by_checkpoint.items())
    ]


def _covered(scanners: Iterable[str], pending: set[str], defaults: frozenset[str]) -> bool:
    return all(s in pending or ("*" in pending and s in defaults) for s in scanners)


def queue(
    session: Session,
    stale: Sequence[StaleCheckpoint],
    *,
    defaults: frozenset[str],
    actor: str = RESCAN_ACTOR,
) -> list[StaleCheckpoint]:
    """Queue one scan job per stale checkpoint that no pending job covers; the audit log
    records why (which scanner moved from which version to which)."""
    pending = _pending_scans(session)
    out: list[StaleCheckpoint] = []
    for item in stale:
        scanners = tuple(s.scanner for s in item.stale)
        if _covered(scanners, pending.get(item.ref, set()), defaults):
            out.append(item.model_copy(update={"already_queued": True}))
            continue
        job = jobs.enqueue(
            session, jobs.JobKind.SCAN, {"ref": item.ref, "scanners": list(scanners)}, actor=actor
        )
        session.add(
            AuditEvent(
                actor=actor,
                action="scan.rescan",
                subject=item.ref,
                details={
                    "job": job.id,
                    "changes": [s.model_dump(mode="json") for s in item.stale],
                },
            )
        )
        pending.setdefault(item.ref, set()).update(scanners)
        out.append(item.model_copy(update={"job_id": job.id}))
    session.flush()
    return out
