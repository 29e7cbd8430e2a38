"""Decisions made now (for a page, a dry run, or after an action), attestations verified now,
and the evidence bundle. Callers own the transaction; only `record_all` writes.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from attestations.bundle import Bundle
from attestations.errors import AttestationError
from attestations.intoto import Statement
from attestations.keys import PublicKeyVerifier, key_hint, load_public_key
from attestations.utc import aware
from policies import CheckResult, Decision, PolicySet
from registry.blobs.base import BlobReader
from registry.db.models import Checkpoint
from registry.service.checkpoints import manifest_of
from registry.service.gate import Gatekeeper


@dataclass(frozen=True, slots=True)
class EnvDecision:
    environment: str
    decision: Decision | None  # None: no policy bound (fail closed)
    mode: str


def _jsonable(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def check_rows(decision: Decision) -> tuple[dict[str, Any], ...]:
    return check_result_rows(decision.checks)


def check_result_rows(checks: Sequence[CheckResult]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "id": c.id,
            "status": str(c.status.value),
            "message": c.message,
            "evidence": {k: _jsonable(v) for k, v in c.evidence.items()},
        }
        for c in checks
    )


def decide_now(
    session: Session,
    checkpoint: Checkpoint,
    policy_set: PolicySet,
    environments: Sequence[str],
    *,
    blobs: BlobReader,
    registry_public_key: bytes | None,
    now: datetime | None = None,
) -> list[EnvDecision]:
    """The decision in each environment as of now, with registry exceptions; records nothing."""
    now = now or datetime.now(UTC)
    gate = Gatekeeper(policies=policy_set, blobs=blobs, registry_public_key=registry_public_key)
    facts, granted = gate.inputs(session, checkpoint, now)
    out = []
    for env in environments:
        bound = policy_set.for_environment(env)
        if bound is None:
            out.append(EnvDecision(env, None, "enforce"))
            continue
        decision = gate.evaluate(facts, granted, env, now)
        out.append(EnvDecision(env, decision, str(bound[1].value)))
    return out


def compare_now(
    session: Session,
    checkpoint: Checkpoint,
    current: PolicySet,
    candidate: PolicySet,
    environments: Sequence[str],
    *,
    blobs: BlobReader,
    registry_public_key: bytes | None,
    now: datetime,
) -> tuple[list[EnvDecision], list[EnvDecision]]:
    """The decision under the policy in force and under a candidate, both now, on the same
    facts (gathered once): what a dry run compares. Records nothing."""
    gate = Gatekeeper(policies=current, blobs=blobs, registry_public_key=registry_public_key)
    facts, granted = gate.inputs(session, checkpoint, now)

    def under(policy_set: PolicySet) -> list[EnvDecision]:
        other = Gatekeeper(
            policies=policy_set, blobs=blobs, registry_public_key=registry_public_key
        )
        out = []
        for env in environments:
            bound = policy_set.for_environment(env)
            if bound is None:  # unbound: denied (fail closed)
                out.append(EnvDecision(env, None, "enforce"))
            else:
                decision = other.evaluate(facts, granted, env, now)
                out.append(EnvDecision(env, decision, str(bound[1].value)))
        return out

    return under(current), under(candidate)


@dataclass(frozen=True, slots=True)
class AttestationCheck:
    id: int
    predicate_type: str
    signer: str
    created_at: datetime
    bundle_sha256: str
    verified: bool
    detail: str  # what was checked, or why it failed


def verify_now(checkpoint: Checkpoint, registry_public_key: bytes | None) -> list[AttestationCheck]:
    """Each stored attestation verified now with the registry key: signature, payload type,
    predicate type as recorded, and a subject naming this checkpoint's manifest digest."""
    verifier = (
        PublicKeyVerifier([load_public_key(registry_public_key)]) if registry_public_key else None
    )
    out = []
    for row in checkpoint.attestations:
        verified = False
        if verifier is None:
            detail = "no registry public key configured: cannot verify"
        else:
            try:
                envelope = verifier.verify(Bundle.from_bytes(row.bundle))
                statement = Statement.from_payload(envelope.payload)
            except AttestationError as exc:
                detail = f"does not verify: {exc.message}"
            else:
                subjects = {s.digest.get("sha256") for s in statement.subjects}
                if statement.predicate_type != row.predicate_type:
                    detail = f"predicate type is {statement.predicate_type}, not as recorded"
                elif checkpoint.manifest_digest not in subjects:
                    detail = "the subject is not this checkpoint's manifest digest"
                else:
                    verified = True
                    detail = "signature, payload type, predicate and subject digest verified"
        out.append(
            AttestationCheck(
                id=row.id,
                predicate_type=row.predicate_type,
                signer=row.signer,
                created_at=aware(row.created_at),
                bundle_sha256=row.bundle_sha256,
                verified=verified,
                detail=detail,
            )
        )
    return out


def environments(policy_set: PolicySet) -> list[str]:
    """The environments the binding names, in its order."""
    out: list[str] = []
    for binding in policy_set.bindings:
        out.extend(name for name, _ in binding.environments if name not in out)
    return out


def registry_key_hint(registry_public_key: bytes | None) -> str | None:
    if registry_public_key is None:
        return None
    return f"sha256:{key_hint(load_public_key(registry_public_key))}"


def evidence_bundle(checkpoint: Checkpoint, registry_public_key: bytes | None) -> bytes:
    """One zip: the manifest, every attestation bundle verbatim, the registry public key.

    Bundles are stored byte for byte as signed (`attestations/<id>.sigstore.json`), so an
    auditor verifies them offline with `modelctl verify` or any Sigstore-bundle verifier.
    """
    ref = f"{checkpoint.model.full_name}@sha256:{checkpoint.manifest_digest}"
    manifest = {
        "ref": ref,
        "name": checkpoint.model.full_name,
        "digest": f"sha256:{checkpoint.manifest_digest}",
        "source": {"uri": checkpoint.source_uri, "commit": checkpoint.source_commit},
        "files": [
            {"path": e.path, "size": e.size, "sha256": e.sha256.hex}
            for e in manifest_of(checkpoint)
        ],
        "attestations": [
            {
                "file": f"attestations/{a.id}.sigstore.json",
                "predicate_type": a.predicate_type,
                "signer": a.signer,
                "bundle_sha256": a.bundle_sha256,
            }
            for a in checkpoint.attestations
        ],
    }
    buf = io.BytesIO()
    fixed = (1980, 1, 1, 0, 0, 0)  # the same evidence gives the same bytes
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            zipfile.ZipInfo("manifest.json", fixed),
            json.dumps(manifest, indent=2, sort_keys=True) + "\n",
        )
        for a in checkpoint.attestations:
            zf.writestr(zipfile.ZipInfo(f"attestations/{a.id}.sigstore.json", fixed), a.bundle)
        if registry_public_key is not None:
            zf.writestr(zipfile.ZipInfo("registry.pub", fixed), registry_public_key)
    return buf.getvalue()
