"""ML-BOMs of a checkpoint: gather what the registry can prove, write it, sign it.

Facts (see attestations/mlbom/facts.py for the three tags):
1. files and manifest digest: verified (hashed from the bytes at ingest; the stored file list
   is re-checked against the manifest digest here).
2. source and commit: verified when a mirror provenance statement that verifies with the
   registry's key names this manifest digest and this commit; otherwise declared (recorded at
   mirror time, unsigned).
3. signature: verified when a model signature verifies with the registry's key; else absent.
4. license, base model, datasets, task: declared from the model card (README.md), else absent.
5. scans: the newest run of each scanner, with whether an attestation records it.

Issuing signs the document as an in-toto statement (predicate = the BOM) with the registry key
and stores it as an attestation of the checkpoint, like every other registry statement.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from attestations.bundle import Bundle
from attestations.digests import Digest
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.errors import AttestationError
from attestations.intoto import ResourceDescriptor, Statement
from attestations.keys import KeySigner, PublicKeyVerifier, load_public_key
from attestations.mlbom import cyclonedx, spdx
from attestations.mlbom.facts import BomFacts, Claim, Evidence, FileFact, ScanFact
from attestations.mlbom.modelcard import MAX_CARD_BYTES, CardFields, read_card
from attestations.provenance import PREDICATE_TYPE as PROVENANCE_TYPE
from registry.blobs.base import BlobReader
from registry.db.models import AuditEvent, Checkpoint
from registry.errors import InputError, IntegrityFailure
from registry.service import findings
from registry.service.attest import store_attestation
from registry.service.checkpoints import attestation_view, manifest_of
from registry.service.pull import signed_checkpoint
from registry.views import BomResult

CARD_BASIS = "declared in the model card (README.md front matter)"


@dataclass(frozen=True, slots=True)
class BomFormat:
    name: str
    media_type: str
    predicate_type: str
    write: Callable[[BomFacts], bytes]


FORMATS: dict[str, BomFormat] = {
    "cyclonedx": BomFormat(
        "cyclonedx", cyclonedx.MEDIA_TYPE, cyclonedx.PREDICATE_TYPE, cyclonedx.write_cyclonedx
    ),
    "spdx": BomFormat("spdx", spdx.MEDIA_TYPE, spdx.PREDICATE_TYPE, spdx.write_spdx),
}


def bom_format(name: str) -> BomFormat:
    found = FORMATS.get(name)
    if found is None:
        raise InputError(f"--format {name!r}: expected one of {', '.join(FORMATS)}")
    return found


def bom_facts(
    checkpoint: Checkpoint,
    *,
    blobs: BlobReader,
    registry_public_key: bytes | None,
    tool_version: str,
    now: datetime,
) -> BomFacts:
    manifest = manifest_of(checkpoint)  # (1) raises IntegrityFailure if the list was altered
    card = _card(checkpoint, blobs)
    source, commit = _source_claims(checkpoint, registry_public_key)
    return BomFacts(
        name=checkpoint.model.full_name,
        manifest_digest=manifest.digest,
        files=tuple(FileFact(e.path, e.size, e.sha256) for e in manifest),
        source_uri=source,
        commit=commit,
        license=_declared(card.license),
        base_models=_declared(card.base_models),
        datasets=_declared(card.datasets),
        task=_declared(card.task),
        signature=_signature_claim(checkpoint, registry_public_key),
        scans=tuple(
            ScanFact(
                scanner=s.scanner_id,
                version=s.scanner_version,
                ruleset_version=s.ruleset_version,
                verdict=s.verdict,
                finished_at=s.finished_at,
                signed=s.attestation_id is not None,
            )
            for s in findings.latest_scans(checkpoint)
        ),
        generated_at=now,
        tool_version=tool_version,
    )


def issue_bom(
    session: Session,
    checkpoint: Checkpoint,
    fmt: BomFormat,
    facts: BomFacts,
    *,
    signer: KeySigner | None,
    actor: str,
) -> BomResult:
    """Write the BOM; with a signer, sign it as an attestation and record who asked."""
    document = fmt.write(facts)
    if signer is None:
        return BomResult(format=fmt.name, media_type=fmt.media_type, document=document.decode())
    statement = Statement(
        subjects=(
            ResourceDescriptor(name=facts.name, digest={"sha256": facts.manifest_digest.hex}),
        ),
        predicate_type=fmt.predicate_type,
        predicate=json.loads(document),
    )
    bundle = signer.sign(INTOTO_PAYLOAD_TYPE, statement.to_payload())
    row = store_attestation(session, checkpoint, statement, bundle, f"key sha256:{signer.hint}")
    session.add(
        AuditEvent(
            actor=actor,
            action="checkpoint.bom",
            subject=f"{facts.name}@{facts.manifest_digest}",
            details={"format": fmt.name, "predicate": fmt.predicate_type},
        )
    )
    session.flush()
    return BomResult(
        format=fmt.name,
        media_type=fmt.media_type,
        document=document.decode(),
        attestation=attestation_view(row),
    )


def _declared(values: tuple[str, ...]) -> Claim:
    return Claim(values, Evidence.DECLARED, CARD_BASIS) if values else Claim.absent()


def _card(checkpoint: Checkpoint, blobs: BlobReader) -> CardFields:
    card = next((f for f in checkpoint.files if f.path.lower() == "readme.md"), None)
    if card is None:
        return CardFields()
    with blobs.open(Digest(card.sha256)) as f:
        return read_card(f.read(MAX_CARD_BYTES))


def _verifier(registry_public_key: bytes | None) -> PublicKeyVerifier | None:
    return (
        None
        if registry_public_key is None
        else PublicKeyVerifier([load_public_key(registry_public_key)])
    )


def _signature_claim(checkpoint: Checkpoint, registry_public_key: bytes | None) -> Claim:
    try:
        signed = signed_checkpoint(checkpoint, registry_public_key)
    except IntegrityFailure:
        return Claim.absent("no model signature verifies with the registry's key")
    hint = Bundle.from_bytes(signed.bundle).material.key_hint or "unknown"
    return Claim(
        (f"key sha256:{hint}",),
        Evidence.VERIFIED,
        "model_signing v1.0 signature verified with the registry's key",
    )


def _source_claims(
    checkpoint: Checkpoint, registry_public_key: bytes | None
) -> tuple[Claim, Claim]:
    """(2) The source and commit: verified by a signed mirror provenance, else declared."""
    uri, commit = checkpoint.source_uri, checkpoint.source_commit
    verifier = _verifier(registry_public_key)
    rows = sorted(
        (a for a in checkpoint.evidence_attestations if a.predicate_type == PROVENANCE_TYPE),
        key=lambda a: a.id,
        reverse=True,
    )
    for row in rows if verifier is not None else []:
        assert verifier is not None
        try:
            envelope = verifier.verify(Bundle.from_bytes(bytes(row.bundle)))
            statement = Statement.from_payload(envelope.payload)
        except AttestationError:
            continue  # never trusted
        if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
            continue
        if statement.predicate_type != PROVENANCE_TYPE:
            continue
        if statement.subjects[0].digest.get("sha256") != checkpoint.manifest_digest:
            continue
        build = statement.predicate.get("buildDefinition", {})
        deps = build.get("resolvedDependencies", []) if isinstance(build, dict) else []
        first = deps[0] if isinstance(deps, list) and deps else {}
        if isinstance(first, dict) and first.get("uri") == f"{uri}@{commit}":
            basis = "mirror provenance (SLSA v1) signed by the registry"
            return Claim((uri,), Evidence.VERIFIED, basis), Claim(
                (commit,), Evidence.VERIFIED, basis
            )
    basis = "recorded when mirrored; no signed mirror provenance verifies"
    return Claim((uri,), Evidence.DECLARED, basis), Claim((commit,), Evidence.DECLARED, basis)
