"""Human titles for check ids: the one table the UI reads ("Scanned by pickle" for
`scans.pickle`). Ids stay the contract (exports, JSON, exceptions name them); a title is
for people, shown with the raw id on hover.

`check_title` knows every id `policies.evaluate` and `policies.pod_checks` emit: the fixed
ids in `TITLES` and the families in `FAMILIES` (`attestations.<predicateType>`,
`scans.<scanner>`, `verdicts.<verdict>`, `rules.<id>`). An id it does not know gets None
from `known_title` (tests/test_check_titles.py holds the table complete) and itself from
`check_title`, so nothing is ever hidden behind a missing title.
"""

from __future__ import annotations

from collections.abc import Callable

#: Fixed check ids -> title.
TITLES: dict[str, str] = {
    "quarantine": "Not quarantined",
    "digest": "Checkpoint digest well-formed",
    "malicious": "No malicious verdict",
    "sources": "Source allowed",
    "revisions.pinned": "Revision pinned to a commit",
    "revisions.pins": "Commit is one of the pinned commits",
    "licenses": "License allowed",
    "formats.pickle-based": "Pickle-based files",
    "formats.allowed": "File formats allowed",
    "containment": "Containment profile for the pod",
    # pod checks (workload admission)
    "pod.host-namespaces": "No host namespaces",
    "pod.host-path": "No hostPath volumes",
    "pod.privileged": "No privileged containers",
    "pod.privilege-escalation": "No privilege escalation",
    "pod.capabilities": "Capabilities dropped",
    "pod.run-as-non-root": "Runs as non-root",
    "pod.read-only-root-filesystem": "Read-only root filesystem",
    "pod.service-account-token": "No service account token",
    "pod.secrets": "Secrets within the allowlist",
    "pod.model-mounts": "Model mounted read-only",
    "pod.resource-limits": "Resource limits set",
    "pod.egress-label": "Egress label allowed",
}

#: Predicate types people know by a name.
PREDICATES: dict[str, str] = {
    "https://model_signing/signature/v1.0": "model signature",
    "https://model_signing/Digests/v0.1": "model signature (v0.1)",
    "https://slsa.dev/provenance/v1": "SLSA provenance",
    "https://slsa.dev/verification_summary/v1": "verification summary",
    "https://modelctl.dev/attestations/airgap-bundle/v1": "air-gap bundle",
}

#: Check-id families (`<prefix>.<rest>`) -> a title made from the rest.
FAMILIES: dict[str, Callable[[str], str]] = {
    "attestations": lambda rest: f"Signed {PREDICATES.get(rest, rest)} attestation",
    "scans": lambda rest: f"Scanned by {rest}",
    "verdicts": lambda rest: f"No {rest} verdict from any scanner",
    "rules": lambda rest: f"Rule {rest}",
}


def known_title(check_id: str) -> str | None:
    """The title of `check_id`, or None when the table does not know it."""
    if check_id in TITLES:
        return TITLES[check_id]
    prefix, dot, rest = check_id.partition(".")
    if dot and rest and prefix in FAMILIES:
        return FAMILIES[prefix](rest)
    return None


def check_title(check_id: str) -> str:
    """The title of `check_id`; the id itself when the table does not know it."""
    return known_title(check_id) or check_id
