"""What an auditor's report says, gathered through the `Registry` interface (the same against a
home or a server): every checkpoint the environment admits now, with its evidence (who signed
what, which scanner and version found what and when, which exceptions and who approved them,
the decisions recorded), the policies seen in recorded decisions, quarantines and releases.
`registry.report.html` renders it; `modelctl report` and the web UI's `/ui/report` both use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from registry.errors import InputError
from registry.interface import Registry
from registry.requests import AuditQuery
from registry.views import CheckpointView, ExceptionView

MAX_AUDIT_EVENTS = 1000  # the audit query's own cap, per action


@dataclass
class AdmittedCheckpoint:
    view: CheckpointView
    status: dict[str, Any]
    exceptions: list[ExceptionView]
    decisions: list[dict[str, Any]]


@dataclass
class ReportData:
    environment: str
    since: datetime | None
    generated_at: datetime
    admitted: list[AdmittedCheckpoint] = field(default_factory=list)
    not_admitted: list[tuple[str, str]] = field(default_factory=list)  # (ref, status)
    policies: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # -> times seen
    policy_in_force: set[str] = field(default_factory=set)
    quarantine_events: list[dict[str, Any]] = field(default_factory=list)
    events_cut: bool = False  # an action had more events than one query returns


def _after(value: str | datetime | None, since: datetime | None) -> bool:
    if since is None or value is None:
        return True
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return when.astimezone(UTC) >= since


def gather(registry: Registry, environment: str, since: datetime | None) -> ReportData:
    data = ReportData(environment=environment, since=since, generated_at=datetime.now(UTC))
    for model in registry.models():
        for checkpoint in model.checkpoints:
            ref = f"{model.name}@{checkpoint.digest}"
            status = dict(checkpoint.environments.get(environment) or {})
            if not status.get("allowed"):
                data.not_admitted.append((ref, str(status.get("status", "not evaluated"))))
                continue
            data.policy_in_force.add(str(status.get("policy", "")))
            view = registry.inspect(ref)
            decisions = [
                d
                for d in view.decisions
                if d.get("environment") == environment and _after(d.get("evaluated_at"), since)
            ]
            for d in decisions:
                policy = d.get("policy") or {}
                key = (str(policy.get("name", "")), str(policy.get("digest", "")))
                data.policies.setdefault(key, []).append(str(d.get("evaluated_at", "")))
            exceptions = [
                e
                for e in registry.exception_list(ref)
                if e.environments is None or environment in e.environments
            ]
            data.admitted.append(AdmittedCheckpoint(view, status, exceptions, decisions))
    events = [
        e
        for action in ("checkpoint.quarantine", "checkpoint.release")
        for e in registry.audit_log(AuditQuery(action=action, since=since, limit=MAX_AUDIT_EVENTS))
    ]
    data.quarantine_events = [e.to_json() for e in sorted(events, key=lambda e: e.at)]
    data.events_cut = len(events) >= MAX_AUDIT_EVENTS
    return data


def parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"--since {text!r}: expected a date or time (YYYY-MM-DD[THH:MM])") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
