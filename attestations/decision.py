"""Admission decisions as SLSA verification summaries (`https://slsa.dev/verification_summary/v1`).

Subject: the checkpoint (manifest digest). The verifier is the registry; the policy is named by
URI and pinned by digest; `inputAttestations` are the verified attestations the decision used.
modelctl's own detail (environment, mode, every check) sits under `modelctl`, which VSA
consumers ignore. Spec: docs/formats/decision.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from attestations.digests import Digest
from attestations.intoto import ResourceDescriptor, Statement, rfc3339

PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
VERIFIER_ID = "https://modelctl.dev/registry"


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    name: str
    manifest_digest: Digest
    environment: str
    allowed: bool
    mode: str
    policy_name: str
    policy_digest: str  # "sha256:<hex>"
    checks: Sequence[Mapping[str, Any]]
    evaluated_at: datetime
    expires_at: datetime | None
    input_attestations: Sequence[str]  # sha256 hex of each input bundle
    tool_version: str


def decision_statement(record: DecisionRecord) -> Statement:
    policy_hex = record.policy_digest.removeprefix("sha256:")
    predicate = {
        "verifier": {"id": VERIFIER_ID, "version": {"modelctl": record.tool_version}},
        "timeVerified": rfc3339(record.evaluated_at),
        "resourceUri": f"modelctl://{record.name}@{record.manifest_digest}",
        "policy": {
            "uri": f"modelctl://policies/{record.policy_name}",
            "digest": {"sha256": policy_hex},
        },
        "inputAttestations": [{"digest": {"sha256": d}} for d in record.input_attestations],
        "verificationResult": "PASSED" if record.allowed else "FAILED",
        "verifiedLevels": [],
        "modelctl": {
            "environment": record.environment,
            "mode": record.mode,
            "expiresAt": rfc3339(record.expires_at) if record.expires_at else None,
            "checks": [dict(c) for c in record.checks],
        },
    }
    subject = ResourceDescriptor(name=record.name, digest={"sha256": record.manifest_digest.hex})
    return Statement(subjects=(subject,), predicate_type=PREDICATE_TYPE, predicate=predicate)
