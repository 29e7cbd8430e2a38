"""What an exception granted through the registry may waive, and for how long. Pure.

A waiver names check ids; one that names an id no bound policy ever produces waives nothing
while looking like it does (`license` for `licenses`), so it is refused with the valid ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from policies.model import UNWAIVABLE_PREFIXES, ModelPolicy, PolicySet


def check_ids(policy: ModelPolicy) -> frozenset[str]:
    """Every check id `evaluate` can produce under `policy` (waivable or not)."""
    ids = {"quarantine", "digest", "malicious"}
    if policy.sources is not None:
        ids.add("sources")
    if policy.revisions is not None:
        if policy.revisions.require_pinned:
            ids.add("revisions.pinned")
        if policy.revisions.pins:
            ids.add("revisions.pins")
    if policy.licenses is not None:
        ids.add("licenses")
    if policy.formats is not None:
        ids.add("formats.pickle-based")
        if policy.formats.allow is not None:
            ids.add("formats.allowed")
    ids.update(a.check_id for a in policy.attestations)
    ids.update(s.check_id for s in policy.scans)
    ids.update(r.check_id for r in policy.rules)
    if policy.verdicts is not None:
        ids.update(f"verdicts.{v}" for v in policy.verdicts.deny)
    if policy.containment is not None:
        ids.add("containment")
    return frozenset(ids)


def unwaivable(check_id: str) -> bool:
    """Signatures, digests and quarantine are never waived."""
    return check_id.split(".", 1)[0] in UNWAIVABLE_PREFIXES


def waivable_check_ids(policy: ModelPolicy) -> frozenset[str]:
    return frozenset(c for c in check_ids(policy) if not unwaivable(c))


def bound_policies(
    policies: PolicySet, environments: Iterable[str] | None
) -> list[tuple[str, ModelPolicy]]:
    """(environment, policy) for `environments`, or for every bound environment when None.

    Raises ValueError naming the bound environments when one of `environments` has no policy.
    """
    bound: dict[str, ModelPolicy] = {}
    for binding in policies.bindings:
        for env, _ in binding.environments:
            found = policies.for_environment(env)
            if found is not None and env not in bound:
                bound[env] = found[0]
    if environments is None:
        return sorted(bound.items())
    wanted = sorted(set(environments))
    unknown = [e for e in wanted if e not in bound]
    if unknown:
        raise ValueError(
            f"no policy is bound to environment {unknown[0]!r} "
            f"(bound: {', '.join(sorted(bound)) or 'none'})"
        )
    return [(e, bound[e]) for e in wanted]


def waiver_problem(
    policies: PolicySet,
    *,
    waive: Iterable[str],
    environments: Iterable[str] | None,
    expires_at: datetime,
    now: datetime,
) -> str | None:
    """Why a waiver of `waive` in `environments` until `expires_at` is refused; None if fine.

    The ids must be ones some policy bound there produces, and waivable; the expiry must lie
    within the shortest `waivers.maxExpiry` of those policies (the waiver applies in each).
    """
    ids = sorted(set(waive))
    if not ids:
        return "an exception must name the checks it waives (--waive CHECK_ID)"
    barred = [c for c in ids if unwaivable(c)]
    if barred:
        return (
            f"{', '.join(barred)} can never be waived: signatures, digests and quarantine "
            "are never waived"
        )
    try:
        bound = bound_policies(policies, environments)
    except ValueError as exc:
        return str(exc)
    if not bound:
        return "no policy is bound to any environment: there is nothing to waive"
    return _unknown_ids(ids, bound) or _too_long(bound, expires_at, now)


def _unknown_ids(ids: list[str], bound: list[tuple[str, ModelPolicy]]) -> str | None:
    valid = sorted(frozenset().union(*(waivable_check_ids(p) for _, p in bound)))
    unknown = [c for c in ids if c not in valid]
    if not unknown:
        return None
    where = ", ".join(e for e, _ in bound)
    return (
        f"unknown check id {', '.join(repr(c) for c in unknown)}: the policies bound to "
        f"{where} can waive only {', '.join(valid) or 'nothing'}"
    )


def _too_long(
    bound: list[tuple[str, ModelPolicy]], expires_at: datetime, now: datetime
) -> str | None:
    longest = min(p.waiver_max_expiry for _, p in bound)
    if expires_at <= now + longest:
        return None
    return (
        f"the expiry {expires_at.isoformat()} is more than {_days(longest)} away: "
        f"the policy allows waivers of at most {_days(longest)} (waivers.maxExpiry)"
    )


def _days(span: timedelta) -> str:
    if span % timedelta(days=1) == timedelta(0):
        return f"{span.days} days"
    return f"{span.total_seconds() / 3600:g} hours"
