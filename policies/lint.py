"""`lint`: load errors plus warnings about policies that load but are probably wrong."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from policies import cel_engine
from policies.containment import profile_check_ids
from policies.errors import PolicyError
from policies.loader import load_policies
from policies.model import Mode, ModelPolicy
from policies.waivers import check_ids

#: A `waivers.maxExpiry` above this is probably a mistake (a year).
_LONG_WAIVERS = timedelta(days=365)


class LintLevel(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class LintMessage:
    level: LintLevel
    filename: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}"
        return f"{where}: {self.level}: {self.path + ': ' if self.path else ''}{self.message}"


def lint(
    text: str, filename: str = "<policy>", *, now: datetime | None = None
) -> list[LintMessage]:
    """Errors (the file does not load) and warnings; an empty list means clean."""
    now = now or datetime.now(UTC)
    try:
        loaded = load_policies(text, filename)
    except PolicyError as exc:
        return [LintMessage(LintLevel.ERROR, exc.filename, exc.line, exc.path, exc.reason)]
    out: list[LintMessage] = []

    def warn(line: int, path: str, message: str) -> None:
        out.append(LintMessage(LintLevel.WARNING, filename, line, path, message))

    for p in loaded.policies:
        _lint_policy(p, now, warn)
    for b in loaded.bindings:
        for env, bound in b.environments:
            if env == "prod" and bound.mode is not Mode.ENFORCE:
                warn(
                    b.line, f"binding {b.name}: {env}", f"prod in {bound.mode} mode admits failures"
                )
    return out


def _lint_policy(p: ModelPolicy, now: datetime, warn: Callable[[int, str, str], None]) -> None:
    where = f"policy {p.name}"
    if not (
        p.attestations or p.scans or p.rules or p.sources or p.revisions or p.licenses or p.formats
    ):
        warn(p.line, where, "requires nothing: every checkpoint that is not quarantined passes")
    elif not p.attestations:
        warn(p.line, where, "requires no signed attestation")
    for s in p.signers:
        if s.not_after is not None and s.not_after <= now:
            warn(p.line, f"{where}: signers.{s.name}", f"expired at {s.not_after.isoformat()}")
    for scan in p.scans:
        if scan.max_age is None:
            warn(p.line, f"{where}: scans.{scan.scanner}", "no maxAge: a scan never goes stale")
    if p.licenses is not None and p.licenses.allow_unknown:
        warn(p.line, f"{where}: licenses", "allowUnknown admits unlicensed models")
    for rule in p.rules:
        constant = cel_engine.constant_value(rule.compiled)
        if constant is False:
            warn(p.line, f"{where}: rules.{rule.id}", "can never be true")
        elif constant is True:
            warn(p.line, f"{where}: rules.{rule.id}", "is always true and checks nothing")
    if p.waiver_max_expiry > _LONG_WAIVERS:
        warn(
            p.line,
            f"{where}: waivers.maxExpiry",
            f"waivers may run {p.waiver_max_expiry.days} days: exceptions outlive their reasons",
        )
    _lint_exceptions(p, now, warn, where)
    _lint_containment(p, now, warn, where)


def _lint_containment(
    p: ModelPolicy, now: datetime, warn: Callable[[int, str, str], None], where: str
) -> None:
    """Containment exceptions that expired, run past `waivers.maxExpiry`, or waive a check no
    profile of this policy runs; selectors that are constant."""
    c = p.containment
    if c is None:
        return
    profiles = [c.default, *(s.profile for s in c.select)]
    checked = {check for prof in profiles for check in profile_check_ids(prof)}
    for e in c.exceptions:
        at = f"{where}: containment.exceptions.{e.id}"
        if e.expires <= now:
            warn(e.line, at, f"expired at {e.expires.isoformat()}; remove it")
        elif e.expires > now + p.waiver_max_expiry:
            warn(e.line, at, f"runs past waivers.maxExpiry ({p.waiver_max_expiry.days} days)")
        for check in sorted(e.waive - checked):
            warn(e.line, at, f"waives {check!r}, which no profile of this policy checks")
    for sel in c.select:
        constant = cel_engine.constant_value(sel.compiled, selector=True)
        if constant is not None:
            warn(p.line, f"{where}: containment.select.{sel.id}", f"is always {constant}")


def _lint_exceptions(
    p: ModelPolicy, now: datetime, warn: Callable[[int, str, str], None], where: str
) -> None:
    known = check_ids(p)
    for e in p.exceptions:
        if e.expires <= now:
            warn(
                e.line,
                f"{where}: exceptions.{e.id}",
                f"expired at {e.expires.isoformat()}; remove it",
            )
        for check in sorted(e.waive - known):
            warn(
                e.line,
                f"{where}: exceptions.{e.id}",
                f"waives {check!r}, which this policy never checks",
            )
