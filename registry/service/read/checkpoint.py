"""One checkpoint's page: the checkpoint with what its tabs show, its findings and per-file
verdicts, the other checkpoints of its model; and every checkpoint, for the policy dry run.

`get_checkpoint` and `all_checkpoints` return ORM rows on purpose: the checkpoint page's tabs
walk its relationships (files, scans, attestations, revisions, quarantines) and the dry run
hands each row to `decide.compare_now`, which gathers facts from it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from attestations.utc import aware
from registry.db.models import Checkpoint, Model, Scan
from registry.errors import NotFound
from registry.service.findings import raw_finding_id
from registry.service.read.common import SEVERITIES, report_findings


def get_checkpoint(session: Session, namespace: str, name: str, digest_hex: str) -> Checkpoint:
    """One checkpoint with everything its page shows, loaded in a handful of queries."""
    row = session.scalars(
        select(Checkpoint)
        .join(Model, Model.id == Checkpoint.model_id)
        .where(Model.namespace == namespace, Model.name == name)
        .where(Checkpoint.manifest_digest == digest_hex)
        .options(
            selectinload(Checkpoint.files),
            selectinload(Checkpoint.scans),
            selectinload(Checkpoint.attestations),
            selectinload(Checkpoint.revisions),
            selectinload(Checkpoint.quarantines),
            selectinload(Checkpoint.file_quarantines),
        )
    ).first()
    if row is None:
        raise NotFound(f"no checkpoint {namespace}/{name}@sha256:{digest_hex}")
    return row


def all_checkpoints(session: Session, *, limit: int) -> list[Checkpoint]:
    """Every checkpoint (up to `limit`) with what a decision reads, loaded in a few queries."""
    return list(
        session.scalars(
            select(Checkpoint)
            .order_by(Checkpoint.id)
            .limit(limit)
            .options(
                selectinload(Checkpoint.model),
                selectinload(Checkpoint.files),
                selectinload(Checkpoint.scans),
                selectinload(Checkpoint.evidence_attestations),
                selectinload(Checkpoint.revisions),
                selectinload(Checkpoint.quarantines),
                selectinload(Checkpoint.file_quarantines),
            )
        )
    )


def other_checkpoints(session: Session, model_id: int) -> list[tuple[int, str, datetime]]:
    return [
        (cid, digest, aware(at))
        for cid, digest, at in session.execute(
            select(Checkpoint.id, Checkpoint.manifest_digest, Checkpoint.created_at)
            .where(Checkpoint.model_id == model_id)
            .order_by(Checkpoint.id.desc())
            .limit(200)
        )
    ]


def checkpoint_findings(checkpoint: Checkpoint) -> list[dict[str, Any]]:
    """Findings of the newest scan of each scanner on one checkpoint, each with its stable
    `id` (registry/service/findings.py) and its file's `sha256`."""
    latest: dict[str, Scan] = {}
    for row in checkpoint.scans:
        if row.scanner_id not in latest or row.id > latest[row.scanner_id].id:
            latest[row.scanner_id] = row
    out = [
        {**f, "id": raw_finding_id(s.scanner_id, f["sha256"], f)}
        for s in latest.values()
        for f in report_findings(s.report)
    ]
    out.sort(key=lambda f: (-SEVERITIES.index(f.get("severity", "info")), f["path"]))
    return out


def file_verdicts(checkpoint: Checkpoint) -> dict[str, dict[str, str]]:
    """path -> scanner -> verdict, from the newest scan of each scanner."""
    latest: dict[str, Scan] = {}
    for row in checkpoint.scans:
        if row.scanner_id not in latest or row.id > latest[row.scanner_id].id:
            latest[row.scanner_id] = row
    out: dict[str, dict[str, str]] = {}
    for scanner, scan in sorted(latest.items()):
        report = scan.report if isinstance(scan.report, dict) else {}
        for entry in report.get("files", []):
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                out.setdefault(entry["path"], {})[scanner] = str(entry.get("verdict", ""))
    return out
