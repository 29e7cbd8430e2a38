"""Bulk actions on the checkpoints a filter selects, and saved searches (ADR 0026).

A bulk action runs in two steps. The preview (`select`) lists exactly the checkpoints a filter
selects now, each with its current state and the change the action would make. The confirm
names the refs the preview showed (`NS/NAME@sha256:…`, the digest in each) and acts only on
those that the filter *still* selects: a checkpoint that appeared between preview and confirm
is not touched (it was never shown), and one that stopped matching is skipped and reported.

Each item acted on gets one audit entry: `checkpoint.quarantine` (written by the quarantine
itself), `scan.rescan` (a queued scan job) or `checkpoint.redecide` (the outcome per
environment). A filter that selects more than `MAX_BULK` checkpoints is refused as a whole:
narrow it. Callers own the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import AuditEvent, Job, SavedSearch, Scan
from registry.errors import InputError, NotFound
from registry.service import jobs
from registry.service.live_status import LiveStatuses, Status
from registry.service.quarantines import quarantined_checkpoint_ids
from registry.service.read import models as read_models
from registry.service.read.common import MAX_PAGE_SIZE, latest_scan_ids, report_findings
from registry.views import BulkItemView, BulkOutcomeView, BulkResultView

#: The most checkpoints one bulk action may touch (one page of the list at its largest).
MAX_BULK = MAX_PAGE_SIZE
#: The list's filters a bulk action and a saved search carry (`rule` is bulk-only: a finding's
#: rule id, read from the newest scans' reports).
FILTER_KEYS = (
    "q",
    "source",
    "org",
    "env",
    "decision",
    "verdict",
    "severity",
    "license",
    "format",
    "rule",
)
SAVED_KEYS = (*FILTER_KEYS, "sort")
MAX_VALUE = 200
#: With a rule filter, the other filters may select this many pages before the rule narrows them.
RULE_PAGES = 25
MAX_SEARCHES = 100  # per owner
MAX_SEARCH_NAME = 100
QUARANTINE_CHANGE = (
    "quarantine its manifest digest (these bytes under every name: denied in every environment)"
)


class BulkAction(StrEnum):
    QUARANTINE = "quarantine"
    RESCAN = "rescan"
    DECIDE = "decide"


#: The permission (`registry.service.tokens.Action` value) each bulk action needs: the same
#: as the single action on one checkpoint.
PERMISSION = {
    BulkAction.QUARANTINE: "quarantine",
    BulkAction.RESCAN: "scan",
    BulkAction.DECIDE: "admission.check",
}


def parse_action(text: str) -> BulkAction:
    try:
        return BulkAction(text)
    except ValueError as exc:
        raise InputError(f"unknown bulk action {text!r:.40}: quarantine, rescan or decide") from exc


@dataclass(frozen=True, slots=True)
class BulkFilter:
    q: str = ""
    source: str = ""
    org: str = ""
    env: str = ""
    decision: str = ""
    verdict: str = ""
    severity: str = ""
    license: str = ""
    format: str = ""
    rule: str = ""

    @classmethod
    def from_mapping(cls, params: Mapping[str, str]) -> BulkFilter:
        values = {k: str(params.get(k, "") or "").strip() for k in FILTER_KEYS}
        for key, value in values.items():
            if len(value) > MAX_VALUE:
                raise InputError(f"the {key} filter is longer than {MAX_VALUE} characters")
        return cls(**values)

    def params(self) -> dict[str, str]:
        """The non-empty filters, as the list's query string carries them."""
        return {k: getattr(self, k) for k in FILTER_KEYS if getattr(self, k)}

    @property
    def empty(self) -> bool:
        return not self.params()

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params().items()) or "(no filter)"


@dataclass(frozen=True, slots=True)
class BulkItem:
    checkpoint_id: int
    ref: str
    namespace: str
    name: str
    digest: str
    statuses: dict[str, Status]
    verdict: str | None
    quarantined: bool
    change: str  # what the action does to it, in words
    acts: bool  # False: the action changes nothing here (already quarantined, scan queued)


@dataclass(frozen=True, slots=True)
class Preview:
    action: BulkAction
    filter: BulkFilter
    items: tuple[BulkItem, ...]

    @property
    def acting(self) -> tuple[BulkItem, ...]:
        return tuple(i for i in self.items if i.acts)


@dataclass(frozen=True, slots=True)
class Outcome:
    ref: str
    result: str  # quarantined | queued | decided | unchanged | skipped
    detail: str = ""
    job_id: int | None = None


@dataclass(frozen=True, slots=True)
class BulkResult:
    action: BulkAction
    dry_run: bool
    outcomes: tuple[Outcome, ...] = field(default=())
    #: Bound refs the filter no longer selects (left alone).
    gone: tuple[str, ...] = field(default=())
    #: Checkpoints the filter selects now that the preview did not show (left alone).
    unseen: tuple[str, ...] = field(default=())


# -- selecting ---------------------------------------------------------------------------------


def _rule_ids(session: Session, rule: str) -> set[int]:
    """Checkpoints whose newest scan by some scanner has a finding of `rule`."""
    rows = session.execute(
        select(Scan.checkpoint_id, Scan.report)
        .where(Scan.id.in_(latest_scan_ids()))
        .where(Scan.verdict != "clean")
    )
    return {
        cid for cid, report in rows if any(f.get("rule") == rule for f in report_findings(report))
    }


def _pending_scan_refs(session: Session, refs: Sequence[str]) -> set[str]:
    """Those of `refs` with a queued or running scan job (the ref read in SQL, not in Python)."""
    if not refs:
        return set()
    ref = Job.params["ref"].as_string()
    found = session.scalars(
        select(ref).where(
            Job.kind == jobs.JobKind.SCAN.value,
            Job.state.in_(("queued", "running")),
            ref.in_(list(refs)),
        )
    )
    return set(found)


def select_checkpoints(
    session: Session,
    action: BulkAction,
    flt: BulkFilter,
    environments: Sequence[str],
    *,
    now: datetime,
    live: LiveStatuses,
) -> Preview:
    """Every checkpoint `flt` selects now, with its state and what `action` would change.

    Refused when the filter is empty (a bulk action on everything is never one click) or
    selects more than `MAX_BULK`."""
    if flt.empty:
        raise InputError("a bulk action needs at least one filter")
    query = read_models.ModelQuery(
        q=flt.q,
        source=flt.source,
        org=flt.org,
        env=flt.env,
        decision=flt.decision,
        verdict=flt.verdict,
        severity=flt.severity,
        license=flt.license,
        format=flt.format,
        sort="name",
        per_page=MAX_PAGE_SIZE,
    )
    first = read_models.search_checkpoints(session, query, environments, now=now, live=live)
    ceiling = MAX_BULK * (RULE_PAGES if flt.rule else 1)
    if first.total > ceiling:
        raise _too_many(first.total)
    rows = list(first.rows)
    for number in range(2, first.pages + 1):
        more = replace(query, page=number)
        rows.extend(
            read_models.search_checkpoints(session, more, environments, now=now, live=live).rows
        )
    if flt.rule:
        keep = _rule_ids(session, flt.rule)
        rows = [r for r in rows if r.id in keep]
    if len(rows) > MAX_BULK:
        raise _too_many(len(rows))
    held = set(session.scalars(quarantined_checkpoint_ids()))
    pending = (
        _pending_scan_refs(session, [r.ref for r in rows]) if action is BulkAction.RESCAN else set()
    )
    items = []
    for r in rows:
        quarantined = r.id in held
        change, acts = _change(action, r.ref, quarantined, pending)
        items.append(
            BulkItem(
                checkpoint_id=r.id,
                ref=r.ref,
                namespace=r.namespace,
                name=r.name,
                digest=r.digest,
                statuses=r.statuses,
                verdict=r.verdict,
                quarantined=quarantined,
                change=change,
                acts=acts,
            )
        )
    return Preview(action=action, filter=flt, items=tuple(items))


def _too_many(total: int) -> InputError:
    return InputError(
        f"the filter selects {total} checkpoints; a bulk action takes at most {MAX_BULK}: narrow it"
    )


def _change(action: BulkAction, ref: str, quarantined: bool, pending: set[str]) -> tuple[str, bool]:
    if action is BulkAction.QUARANTINE:
        if quarantined:
            return "already quarantined: no change", False
        return QUARANTINE_CHANGE, True
    if action is BulkAction.RESCAN:
        if ref in pending:
            return "a scan is already queued: no change", False
        return "queue a scan with the default scanners", True
    return "decide again in every environment; record what changed", True


def bind(preview: Preview, bound: Iterable[str]) -> tuple[list[BulkItem], list[str], list[str]]:
    """(items to act on, bound refs no longer selected, selected refs the preview never showed)."""
    wanted = list(dict.fromkeys(bound))
    selected = {i.ref: i for i in preview.items}
    acting = [selected[r] for r in wanted if r in selected and selected[r].acts]
    gone = [r for r in wanted if r not in selected]
    unseen = [r for r in selected if r not in set(wanted)]
    return acting, gone, unseen


def parse_refs(text: str) -> list[str]:
    refs = text.split()
    if not refs:
        raise InputError("the confirmation names no checkpoint: preview again")
    if len(refs) > MAX_BULK:
        raise InputError(f"at most {MAX_BULK} checkpoints per bulk action")
    for ref in refs:
        if "@sha256:" not in ref or len(ref) > 500:
            raise InputError(f"bad checkpoint reference {ref!r:.80}")
    return refs


def preview_view(preview: Preview) -> BulkResultView:
    return BulkResultView(
        action=preview.action.value,
        dry_run=True,
        filter=preview.filter.params(),
        items=tuple(
            BulkItemView(
                ref=i.ref,
                statuses=dict(i.statuses),
                verdict=i.verdict,
                quarantined=i.quarantined,
                change=i.change,
                acts=i.acts,
            )
            for i in preview.items
        ),
    )


def result_view(result: BulkResult, flt: BulkFilter) -> BulkResultView:
    return BulkResultView(
        action=result.action.value,
        dry_run=False,
        filter=flt.params(),
        outcomes=tuple(
            BulkOutcomeView(ref=o.ref, result=o.result, detail=o.detail, job_id=o.job_id)
            for o in result.outcomes
        ),
        gone=result.gone,
        unseen=result.unseen,
    )


# -- acting (one audit entry per item) ----------------------------------------------------------


def queue_scan(session: Session, ref: str, *, actor: str, filter_text: str) -> int:
    job = jobs.enqueue(session, jobs.JobKind.SCAN, {"ref": ref}, actor=actor)
    session.add(
        AuditEvent(
            actor=actor,
            action="scan.rescan",
            subject=ref,
            details={"job": job.id, "bulk": True, "filter": filter_text},
        )
    )
    session.flush()
    return job.id


def record_redecide(
    session: Session, ref: str, outcomes: Mapping[str, bool], *, actor: str, filter_text: str
) -> None:
    session.add(
        AuditEvent(
            actor=actor,
            action="checkpoint.redecide",
            subject=ref,
            details={
                "bulk": True,
                "filter": filter_text,
                "allowed": {env: bool(ok) for env, ok in outcomes.items()},
            },
        )
    )
    session.flush()


# -- saved searches ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavedSearchView:
    id: int
    name: str
    query: str  # the query string of /ui/models (and of the bulk preview)
    created_at: datetime


def normalise_query(text: str) -> str:
    """The saved part of a list query string: the known filters and the sort, nothing else."""
    pairs = parse_qsl(text.lstrip("?"), keep_blank_values=False, max_num_fields=50)
    kept = {k: v.strip() for k, v in pairs if k in SAVED_KEYS and v.strip()}
    for key, value in kept.items():
        if len(value) > MAX_VALUE:
            raise InputError(f"the {key} filter is longer than {MAX_VALUE} characters")
    if not kept:
        raise InputError("nothing to save: choose at least one filter")
    return urlencode(sorted(kept.items()))


def save_search(session: Session, *, owner: str, name: str, query: str) -> SavedSearchView:
    """Save (or replace) `owner`'s search called `name`."""
    label = " ".join(name.split())
    if not label:
        raise InputError("a saved search needs a name")
    if len(label) > MAX_SEARCH_NAME:
        raise InputError(f"the name is longer than {MAX_SEARCH_NAME} characters")
    normal = normalise_query(query)
    row = session.scalars(
        select(SavedSearch).where(SavedSearch.owner == owner, SavedSearch.name == label)
    ).first()
    if row is None:
        count = len(list(session.scalars(select(SavedSearch.id).where(SavedSearch.owner == owner))))
        if count >= MAX_SEARCHES:
            raise InputError(f"at most {MAX_SEARCHES} saved searches each: delete one first")
        row = SavedSearch(owner=owner, name=label, query=normal)
        session.add(row)
    else:
        row.query = normal
    session.flush()
    return _view(row)


def saved_searches(session: Session, owner: str) -> list[SavedSearchView]:
    rows = session.scalars(
        select(SavedSearch).where(SavedSearch.owner == owner).order_by(SavedSearch.name)
    )
    return [_view(r) for r in rows]


def delete_search(session: Session, *, owner: str, search_id: int) -> str:
    """Delete one of `owner`'s searches (another's is not found: never deleted, never named)."""
    row = session.get(SavedSearch, search_id)
    if row is None or row.owner != owner:
        raise NotFound(f"no saved search {search_id} of yours")
    name = row.name
    session.delete(row)
    session.flush()
    return name


def _view(row: SavedSearch) -> SavedSearchView:
    return SavedSearchView(id=row.id, name=row.name, query=row.query, created_at=row.created_at)
