"""The model search page: filters, sorts and pages of checkpoints with their live badges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from attestations.utc import aware
from attestations.verdicts import Verdict
from registry.db.models import Checkpoint, CheckpointFile, Model, Scan
from registry.errors import InputError
from registry.service.checkpoints import UNKNOWN_LICENSE
from registry.service.live_status import STATUSES, LiveStatuses, Status
from registry.service.read.common import (
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    SEVERITIES,
    UNKNOWN_VERDICT_RANK,
    VERDICT_RANK,
    latest_scan_ids,
    like_pattern,
)
from registry.service.storage import storage_by_model, storage_per_model

SORTS = {
    "name": (Model.namespace, Model.name, Checkpoint.id),
    "newest": (Checkpoint.created_at.desc(), Checkpoint.id.desc()),
    "oldest": (Checkpoint.created_at, Checkpoint.id),
    "size": (Checkpoint.total_size.desc(), Checkpoint.id),
    "files": (Checkpoint.file_count.desc(), Checkpoint.id),
    # The model's storage (service/storage), biggest first; `_sorted` joins it in.
    "storage": (Model.namespace, Model.name, Checkpoint.id),
}
SOURCE_KINDS = {"hf": "hf://%", "ms": "ms://%", "local": "file:%"}
#: Live statuses to filter on (as the badges show them: "warn" is allowed with warnings).
DECISION_FILTERS = STATUSES
#: The verdict filter's choices, in the order the page lists them.
VERDICT_FILTERS = tuple(
    v.value
    for v in (
        Verdict.CLEAN,
        Verdict.SUSPICIOUS,
        Verdict.MALICIOUS,
        Verdict.MALFORMED,
        Verdict.ERROR,
        Verdict.UNSUPPORTED,
    )
)
#: The license filter's value for checkpoints recorded before migration 0009 whose card has
#: not been read yet (they get their license when next decided).
NOT_RECORDED = "(not recorded)"


@dataclass(frozen=True, slots=True)
class ModelQuery:
    q: str = ""
    source: str = ""  # hf | ms | local
    org: str = ""
    env: str = ""
    decision: str = ""  # with env: a live status (DECISION_FILTERS)
    verdict: str = ""  # worst newest-scan verdict
    format: str = ""  # a file extension present in the checkpoint, e.g. safetensors
    license: str = ""  # the model card's license, "unknown" (none), or NOT_RECORDED
    severity: str = ""  # an open finding at or above this, in a newest scan per scanner
    sort: str = "newest"
    page: int = 1
    per_page: int = PAGE_SIZE

    def check(self, environments: Sequence[str]) -> None:
        if self.sort not in SORTS:
            raise InputError(f"unknown sort {self.sort!r}")
        if self.source and self.source not in SOURCE_KINDS:
            raise InputError(f"unknown source kind {self.source!r}")
        if self.decision and self.decision not in DECISION_FILTERS:
            raise InputError(f"unknown decision {self.decision!r}")
        if self.decision and self.env not in environments:
            raise InputError("a decision filter needs a bound environment")
        if self.verdict and self.verdict not in VERDICT_FILTERS:
            raise InputError(f"unknown verdict {self.verdict!r}")
        if self.format and not self.format.replace("-", "").replace("_", "").isalnum():
            raise InputError(f"bad format {self.format!r:.40}")
        if self.severity and self.severity not in SEVERITIES:
            raise InputError(f"unknown severity {self.severity!r}")
        if len(self.license) > 100:
            raise InputError("bad license")
        if self.page < 1 or not 1 <= self.per_page <= MAX_PAGE_SIZE:
            raise InputError("bad page")


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    id: int
    namespace: str
    name: str
    digest: str
    source_uri: str
    commit: str
    created_at: datetime
    file_count: int
    total_size: int
    model_storage: int  # the model's storage (service/storage), not this checkpoint's alone
    statuses: dict[str, Status]  # live: the policy in force evaluated now
    verdict: str | None  # worst newest-scan verdict; None: never scanned
    license: str | None  # the model card's; "unknown": none; None: not recorded yet
    reasons: dict[str, tuple[str, ...]] = field(default_factory=dict)  # env -> failed checks

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}@sha256:{self.digest}"


@dataclass(frozen=True, slots=True)
class Page:
    rows: tuple[CheckpointRow, ...]
    total: int
    page: int
    per_page: int
    orgs: tuple[str, ...] = field(default=())
    licenses: tuple[str, ...] = field(default=())  # those recorded, for the filter

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _verdict_rank_expr() -> Any:
    return case(
        *((Scan.verdict == v, r) for v, r in VERDICT_RANK.items()),
        else_=UNKNOWN_VERDICT_RANK,
    )


def search_checkpoints(
    session: Session,
    query: ModelQuery,
    environments: Sequence[str],
    *,
    now: datetime,
    live: LiveStatuses,
) -> Page:
    query.check(environments)
    stmt = select(Checkpoint.id).join(Model, Model.id == Checkpoint.model_id)
    if query.q:
        pattern = like_pattern(query.q.strip().lower())
        full = func.lower(Model.namespace + "/" + Model.name)
        stmt = stmt.where(
            or_(
                full.like(pattern, escape="\\"),
                func.lower(Checkpoint.manifest_digest).like(pattern, escape="\\"),
                func.lower(Checkpoint.source_uri).like(pattern, escape="\\"),
            )
        )
    if query.source:
        stmt = stmt.where(Checkpoint.source_uri.like(SOURCE_KINDS[query.source]))
    if query.org:
        stmt = stmt.where(Model.namespace == query.org)
    if query.format:
        stmt = stmt.where(
            select(CheckpointFile.id)
            .where(CheckpointFile.checkpoint_id == Checkpoint.id)
            .where(CheckpointFile.path.like(f"%.{query.format}"))
            .exists()
        )
    if query.verdict:
        newest_scans = select(func.max(Scan.id).label("sid")).group_by(
            Scan.checkpoint_id, Scan.scanner_id
        )
        worst = (
            select(
                Scan.checkpoint_id.label("cid"),
                func.max(_verdict_rank_expr()).label("rank"),
            )
            .where(Scan.id.in_(newest_scans))
            .group_by(Scan.checkpoint_id)
            .subquery()
        )
        stmt = stmt.join(worst, worst.c.cid == Checkpoint.id).where(
            worst.c.rank == VERDICT_RANK[query.verdict]
        )
    stmt = _license_and_severity(stmt, query)
    first = (query.page - 1) * query.per_page
    if query.decision:
        # The live status filters: the SQL filters first, then the status of each match.
        matched = _with_live_status(session, _sorted(stmt, query.sort), query, live, now)
        total = len(matched)
        ids = matched[first : first + query.per_page]
    else:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        ids = list(session.scalars(_sorted(stmt, query.sort).limit(query.per_page).offset(first)))
    rows = checkpoint_rows(session, ids, environments, now=now, live=live)
    orgs = tuple(session.scalars(select(Model.namespace).distinct().order_by(Model.namespace)))
    recorded = set(session.scalars(select(Checkpoint.license).distinct()))
    licenses = (
        *sorted({UNKNOWN_LICENSE, *(x for x in recorded if x is not None)}),
        *((NOT_RECORDED,) if None in recorded else ()),
    )
    return Page(
        rows=rows,
        total=total,
        page=query.page,
        per_page=query.per_page,
        orgs=orgs,
        licenses=licenses,
    )


def _sorted(stmt: Select[int], sort: str) -> Select[int]:
    if sort == "storage":
        usage = storage_per_model()
        stmt = stmt.outerjoin(usage, usage.c.model_id == Checkpoint.model_id).order_by(
            func.coalesce(usage.c.storage_bytes, 0).desc()
        )
    return stmt.order_by(*SORTS[sort])


def _with_live_status(
    session: Session, ordered: Select[int], query: ModelQuery, live: LiveStatuses, now: datetime
) -> list[int]:
    ids = list(session.scalars(ordered))
    statuses = live.statuses(session, ids, [query.env], now=now)
    return [cid for cid in ids if statuses[(cid, query.env)].status == query.decision]


def _license_and_severity(stmt: Select[int], query: ModelQuery) -> Select[int]:
    """The license filter on the recorded column; the severity filter on `scans.max_severity`
    of each checkpoint's newest scan per scanner (no report JSON is read)."""
    if query.license == NOT_RECORDED:
        stmt = stmt.where(Checkpoint.license.is_(None))
    elif query.license:
        stmt = stmt.where(Checkpoint.license == query.license)
    if query.severity:
        at_or_above = list(SEVERITIES[SEVERITIES.index(query.severity) :])
        flagged = (
            select(Scan.checkpoint_id)
            .where(Scan.id.in_(latest_scan_ids()))
            .where(Scan.max_severity.in_(at_or_above))
        )
        stmt = stmt.where(Checkpoint.id.in_(flagged))
    return stmt


def checkpoint_rows(
    session: Session,
    ids: Sequence[int],
    environments: Sequence[str],
    *,
    now: datetime,
    live: LiveStatuses,
) -> tuple[CheckpointRow, ...]:
    """Rows with their live badges, in the order of `ids`."""
    if not ids:
        return ()
    base = {
        c.id: (c, ns, name)
        for c, ns, name in session.execute(
            select(Checkpoint, Model.namespace, Model.name)
            .join(Model, Model.id == Checkpoint.model_id)
            .where(Checkpoint.id.in_(ids))
        )
    }
    statuses = live.statuses(session, ids, environments, now=now)
    storage = storage_by_model(session, {c.model_id for c, _, _ in base.values()})
    worst: dict[int, str] = {}
    for cid, verdict in session.execute(
        select(Scan.checkpoint_id, Scan.verdict).where(
            Scan.id.in_(latest_scan_ids().where(Scan.checkpoint_id.in_(ids)))
        )
    ):
        if cid not in worst or VERDICT_RANK.get(verdict, UNKNOWN_VERDICT_RANK) > VERDICT_RANK.get(
            worst[cid], UNKNOWN_VERDICT_RANK
        ):
            worst[cid] = verdict
    out = []
    for cid in ids:
        c, ns, name = base[cid]
        out.append(
            CheckpointRow(
                id=c.id,
                namespace=ns,
                name=name,
                digest=c.manifest_digest,
                source_uri=c.source_uri,
                commit=c.source_commit,
                created_at=aware(c.created_at),
                file_count=c.file_count,
                total_size=c.total_size,
                model_storage=storage.get(c.model_id, 0),
                statuses={env: statuses[(cid, env)].status for env in environments},
                reasons={env: statuses[(cid, env)].reasons for env in environments},
                verdict=worst.get(cid),
                license=c.license,
            )
        )
    return tuple(out)
