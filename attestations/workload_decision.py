"""Admission decisions about a Kubernetes workload, as SLSA verification summaries.

Subjects: the reviewed object itself (`k8s://NAMESPACE/KIND/NAME`, the sha256 of its canonical
JSON: the decision holds for exactly the manifest the API server sent) and each checkpoint it
runs (manifest digest). The pod's posture (what it asks of the node: host namespaces, privilege,
token, Secrets, egress label) and every containment check sit under `modelctl`, which VSA
consumers ignore. Spec: docs/formats/decision.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from attestations.decision import PREDICATE_TYPE, VERIFIER_ID
from attestations.intoto import ResourceDescriptor, Statement, rfc3339


def object_digest(obj: Mapping[str, Any]) -> str:
    """sha256 hex of the object's canonical JSON (sorted keys, no spaces)."""
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class WorkloadDecisionRecord:
    namespace: str
    kind: str
    name: str
    object_sha256: str
    environment: str
    allowed: bool
    message: str
    policy_name: str
    policy_digest: str  # "sha256:<hex>"
    models: Sequence[Mapping[str, Any]]  # {"ref", "where", "allowed", "digests", "message"}
    containment: Sequence[Mapping[str, Any]]  # {"pod", "mode", "profiles", "checks", "posture"}
    warnings: Sequence[str]
    evaluated_at: datetime
    tool_version: str

    @property
    def resource_uri(self) -> str:
        return f"k8s://{self.namespace}/{self.kind}/{self.name}"


def workload_decision_statement(record: WorkloadDecisionRecord) -> Statement:
    subjects = [
        ResourceDescriptor(name=record.resource_uri, digest={"sha256": record.object_sha256})
    ]
    seen: set[str] = set()
    for model in record.models:
        for digest in model.get("digests", ()):
            hex_digest = str(digest).removeprefix("sha256:")
            if hex_digest not in seen:
                seen.add(hex_digest)
                subjects.append(
                    ResourceDescriptor(
                        name=str(model.get("ref", "")), digest={"sha256": hex_digest}
                    )
                )
    predicate = {
        "verifier": {"id": VERIFIER_ID, "version": {"modelctl": record.tool_version}},
        "timeVerified": rfc3339(record.evaluated_at),
        "resourceUri": record.resource_uri,
        "policy": {
            "uri": f"modelctl://policies/{record.policy_name}",
            "digest": {"sha256": record.policy_digest.removeprefix("sha256:")},
        },
        "inputAttestations": [],
        "verificationResult": "PASSED" if record.allowed else "FAILED",
        "verifiedLevels": [],
        "modelctl": {
            "environment": record.environment,
            "message": record.message,
            "models": [dict(m) for m in record.models],
            "containment": [dict(c) for c in record.containment],
            "warnings": list(record.warnings),
        },
    }
    return Statement(subjects=tuple(subjects), predicate_type=PREDICATE_TYPE, predicate=predicate)
