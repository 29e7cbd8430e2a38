"""The diff of two checkpoints of one model: files, findings and live statuses.

`Diff.old` and `Diff.new` are the two ORM checkpoints (the page links to and names both)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from registry.db.models import Checkpoint
from registry.errors import InputError
from registry.service.live_status import LiveStatuses, Status
from registry.service.read.checkpoint import checkpoint_findings


@dataclass(frozen=True, slots=True)
class FileChange:
    path: str
    old: tuple[int, str] | None  # size, sha256
    new: tuple[int, str] | None


@dataclass(frozen=True, slots=True)
class Diff:
    old: Checkpoint
    new: Checkpoint
    added: tuple[FileChange, ...]
    removed: tuple[FileChange, ...]
    changed: tuple[FileChange, ...]
    unchanged: int
    findings_added: tuple[dict[str, Any], ...]
    findings_removed: tuple[dict[str, Any], ...]
    decisions: tuple[tuple[str, Status, Status], ...]  # env, old, new


def diff(
    session: Session,
    old: Checkpoint,
    new: Checkpoint,
    environments: Sequence[str],
    now: datetime,
    *,
    live: LiveStatuses,
) -> Diff:
    if old.model_id != new.model_id:
        raise InputError("a diff compares two checkpoints of one model")
    a = {f.path: (f.size, f.sha256) for f in old.files}
    b = {f.path: (f.size, f.sha256) for f in new.files}
    added = tuple(FileChange(p, None, b[p]) for p in sorted(b.keys() - a.keys()))
    removed = tuple(FileChange(p, a[p], None) for p in sorted(a.keys() - b.keys()))
    changed = tuple(FileChange(p, a[p], b[p]) for p in sorted(a.keys() & b.keys()) if a[p] != b[p])

    def key(f: dict[str, Any]) -> tuple[str, str, str, str]:
        return (str(f.get("scanner")), str(f.get("rule")), str(f["path"]), str(f.get("message")))

    fa = {key(f): f for f in checkpoint_findings(old)}
    fb = {key(f): f for f in checkpoint_findings(new)}
    statuses = live.statuses(session, [old.id, new.id], environments, now=now)
    decisions = tuple(
        (env, statuses[(old.id, env)].status, statuses[(new.id, env)].status)
        for env in environments
    )
    return Diff(
        old=old,
        new=new,
        added=added,
        removed=removed,
        changed=changed,
        unchanged=len(a.keys() & b.keys()) - len(changed),
        findings_added=tuple(fb[k] for k in sorted(fb.keys() - fa.keys())),
        findings_removed=tuple(fa[k] for k in sorted(fa.keys() - fb.keys())),
        decisions=decisions,
    )
