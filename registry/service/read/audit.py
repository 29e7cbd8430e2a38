"""The audit log page and its CSV and JSON exports (filtered by `service.audit.matching`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from attestations.utc import aware
from registry.db.models import AuditEvent
from registry.errors import InputError
from registry.requests import AuditQuery
from registry.service.audit import matching
from registry.service.read.common import MAX_PAGE_SIZE, PAGE_SIZE

#: Actors that are the registry's own machinery (the workers' sweeps: re-scan, sync, the
#: pull-through proxy), not a person or a token. The page hides them unless asked.
MACHINE_ACTOR_PREFIXES = ("system:", "worker:")


def _people_only(stmt: Select[Any], query: AuditQuery, hide_machine: bool) -> Select[Any]:
    """Leave out machine events, unless they are not hidden or the query names an actor."""
    if not hide_machine or query.actor:
        return stmt
    return stmt.where(
        and_(*(~AuditEvent.actor.startswith(p, autoescape=True) for p in MACHINE_ACTOR_PREFIXES))
    )


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit event as the page shows it."""

    id: int
    at: datetime  # aware
    actor: str
    action: str
    subject: str
    details: Any


def audit_page(
    session: Session,
    query: AuditQuery,
    *,
    page: int = 1,
    per_page: int = PAGE_SIZE,
    hide_machine: bool = False,
) -> tuple[list[AuditRow], int, list[str]]:
    """One page of the events `query` selects (its `limit` is not used), newest first;
    without machine events when `hide_machine` (and the query names no actor)."""
    if page < 1 or not 1 <= per_page <= MAX_PAGE_SIZE:
        raise InputError("bad page")
    stmt = _people_only(matching(query), query, hide_machine)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = [
        AuditRow(e.id, aware(e.at), e.actor, e.action, e.subject, e.details)
        for e in session.scalars(
            stmt.order_by(AuditEvent.id.desc()).limit(per_page).offset((page - 1) * per_page)
        )
    ]
    actions = list(
        session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    )
    return rows, total, actions


AUDIT_COLUMNS = ("id", "at", "actor", "action", "subject", "details")


def _audit_record(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": aware(e.at).isoformat(),
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "details": e.details,
    }


def _csv_cell(value: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: defuse them (CWE-1236)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def audit_export(
    session: Session,
    query: AuditQuery,
    fmt: Literal["csv", "json"],
    *,
    batch: int = 1000,
    hide_machine: bool = False,
) -> Iterator[str]:
    """The whole filtered log, oldest first, streamed in batches (keyset pagination)."""
    stmt = _people_only(matching(query), query, hide_machine).order_by(AuditEvent.id)
    last = 0
    first = True
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(AUDIT_COLUMNS)
        yield buf.getvalue()
    else:
        yield "["
    while True:
        rows = list(session.scalars(stmt.where(AuditEvent.id > last).limit(batch)))
        if not rows:
            break
        last = rows[-1].id
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf)
            for e in rows:
                rec = _audit_record(e)
                writer.writerow(
                    [
                        rec["id"],
                        rec["at"],
                        _csv_cell(rec["actor"]),
                        _csv_cell(rec["action"]),
                        _csv_cell(rec["subject"]),
                        _csv_cell(json.dumps(rec["details"], sort_keys=True)),
                    ]
                )
            yield buf.getvalue()
        else:
            parts = [json.dumps(_audit_record(e), sort_keys=True) for e in rows]
            yield ("" if first else ",") + "\n" + ",\n".join(parts)
            first = False
    if fmt == "json":
        yield "\n]\n"


def detail_fields(details: Any) -> list[tuple[str, str]]:
    """An event's details as (field, text) pairs for the page: scalars as they are, lists
    of scalars joined, anything nested as compact JSON; a non-object as one `value` field."""
    if details is None or details == {}:
        return []
    items = details.items() if isinstance(details, dict) else [("value", details)]
    out: list[tuple[str, str]] = []
    for key, value in items:
        if isinstance(value, list) and all(
            isinstance(v, str | int | float | bool) or v is None for v in value
        ):
            text = ", ".join(_scalar(v) for v in value)
        elif isinstance(value, dict | list):
            text = json.dumps(value, sort_keys=True, separators=(", ", ": "))
        else:
            text = _scalar(value)
        out.append((str(key), text if len(text) <= 2000 else text[:1999] + "…"))
    return out


def _scalar(value: Any) -> str:
    """A JSON scalar as JSON writes it (true, false, null), strings as they are."""
    return value if isinstance(value, str) else json.dumps(value, default=str)
