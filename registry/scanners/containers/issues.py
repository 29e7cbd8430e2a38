"""What the container readers report: an `Issue` (not clean, reading goes on) or a
`ContainerError` (reading stops); the scanner turns either into a `Finding`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from registry.scanners.base import JSONValue, Severity, Verdict


@dataclass(frozen=True, slots=True)
class Issue:
    """Something about a container that is not clean; the scanner turns it into a `Finding`."""

    rule: str
    verdict: Verdict
    severity: Severity
    message: str
    offset: int | None = None
    member: str | None = None
    evidence: Mapping[str, JSONValue] = field(default_factory=dict)


class ContainerError(Exception):
    """The container cannot be read (further); `issue` says why."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue


def malformed(rule: str, message: str, **kw: object) -> ContainerError:
    return ContainerError(new_issue(rule, Verdict.MALFORMED, Severity.HIGH, message, **kw))


def suspicious(rule: str, message: str, **kw: object) -> Issue:
    return new_issue(rule, Verdict.SUSPICIOUS, Severity.HIGH, message, **kw)


def new_issue(rule: str, verdict: Verdict, severity: Severity, message: str, **kw: object) -> Issue:
    offset = kw.pop("offset", None)
    member = kw.pop("member", None)
    evidence: dict[str, JSONValue] = {}
    for key, value in kw.items():
        if isinstance(value, str | int | float | bool) or value is None:
            evidence[key] = value
        else:
            evidence[key] = repr(value)
    return Issue(
        rule=rule,
        verdict=verdict,
        severity=severity,
        message=message,
        offset=offset if isinstance(offset, int) else None,
        member=member if isinstance(member, str) else None,
        evidence=evidence,
    )
