"""The pod's side of admission: the containment profiles its models' decisions require, run on
the pod, then workload exceptions, then the mode. Pure; the webhook and `check-pod` both call it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from policies.containment import ContainmentException, ContainmentRequirement
from policies.evaluate import CheckResult, CheckStatus
from policies.model import Mode
from policies.pod_checks import PodReport, check_pod

_STRICTNESS = (Mode.AUDIT, Mode.WARN, Mode.ENFORCE)


@dataclass(frozen=True, slots=True)
class Workload:
    """Who the pod belongs to, for exception scopes: namespace, kind and name as applied."""

    namespace: str
    kind: str
    name: str
    environment: str


@dataclass(frozen=True, slots=True)
class ContainmentVerdict:
    allowed: bool
    mode: Mode | None  # None: no model asked for containment
    reports: tuple[PodReport, ...]
    #: `profile: check-id: message` for each failing check that denies (enforce) ...
    failures: tuple[str, ...] = ()
    #: ... that only warns (warn mode) ...
    warnings: tuple[str, ...] = ()
    #: ... or that is only recorded (audit mode).
    audited: tuple[str, ...] = ()
    exceptions_applied: tuple[str, ...] = ()
    expires_at: datetime | None = None
    posture: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def contain(
    pod: Mapping[str, Any],
    requirements: Sequence[ContainmentRequirement],
    *,
    workload: Workload,
    exceptions: Sequence[ContainmentException],
    now: datetime,
) -> ContainmentVerdict:
    """Each distinct profile the requirements name, run on `pod`; failures waived by an active
    exception whose scope covers `workload`; the strictest mode among the requirements decides
    what a failure does. Raises `WorkloadShapeError` for a malformed pod."""
    if not requirements:
        return ContainmentVerdict(True, None, ())
    mode = max((r.mode for r in requirements), key=_STRICTNESS.index)
    seen: set[str] = set()
    reports: list[PodReport] = []
    lines: list[str] = []
    applied: list[str] = []
    expiries: list[datetime] = []
    for req in requirements:
        if req.profile.digest in seen:
            continue
        seen.add(req.profile.digest)
        report = check_pod(req.profile, pod)
        checks = []
        for ran in report.checks:
            check = ran
            exc = _exception_for(ran, exceptions, workload, now)
            if exc is not None:
                check = CheckResult(
                    check.id,
                    CheckStatus.WAIVED,
                    f"{check.message} — waived by {exc.id} until {exc.expires.isoformat()} "
                    f"({exc.reason}; requested by {exc.requested_by}, approved by {exc.approver})",
                    MappingProxyType({**check.evidence, "exception": exc.id}),
                )
                expiries.append(exc.expires)
                if exc.id not in applied:
                    applied.append(exc.id)
            elif check.status is CheckStatus.FAIL:
                lines.append(f"profile {req.profile.label}: {check.id}: {check.message}")
            checks.append(check)
        reports.append(PodReport(report.profile, tuple(checks), report.posture))
    posture = reports[0].posture if reports else MappingProxyType({})
    common: dict[str, Any] = {
        "mode": mode,
        "reports": tuple(reports),
        "exceptions_applied": tuple(applied),
        "expires_at": min(expiries, default=None),
        "posture": posture,
    }
    if mode is Mode.ENFORCE:
        return ContainmentVerdict(allowed=not lines, failures=tuple(lines), **common)
    if mode is Mode.WARN:
        return ContainmentVerdict(allowed=True, warnings=tuple(lines), **common)
    return ContainmentVerdict(allowed=True, audited=tuple(lines), **common)


def _exception_for(
    check: CheckResult,
    exceptions: Sequence[ContainmentException],
    workload: Workload,
    now: datetime,
) -> ContainmentException | None:
    if check.status is not CheckStatus.FAIL:
        return None
    for exc in exceptions:
        if (
            check.id in exc.waive
            and now < exc.expires
            and (exc.environments is None or workload.environment in exc.environments)
            and exc.scope.covers(workload.namespace, workload.kind, workload.name)
        ):
            return exc
    return None
