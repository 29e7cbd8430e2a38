"""A CycloneDX 1.6 ML-BOM of one checkpoint, written with `cyclonedx-python-lib`.

The model is `metadata.component` (type `machine-learning-model`); each file is a nested
component of type `file` with its SHA-256; the source and commit are the version, the purl and
an external reference; a declared base model is a pedigree ancestor. Every tagged field says
how it is known in a `modelctl:evidence:<field>` property (verified / declared / absent) with
`modelctl:basis:<field>` saying from what.

cyclonedx-python-lib (11.x) does not model the 1.6 `modelCard` yet, so the model card section
(task, datasets, and the evidence properties again) is added to the serialised JSON; the
result is validated against the library's bundled 1.6 schema in the tests.
"""

from __future__ import annotations

import json
from typing import Any

from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType, Pedigree
from cyclonedx.model.license import DisjunctiveLicense
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from attestations.mlbom.facts import BomFacts, Claim, Evidence
from attestations.mlbom.licenses import spdx_expression
from attestations.mlbom.sources import hub_parts, web_url

SPEC_VERSION = "1.6"
MEDIA_TYPE = "application/vnd.cyclonedx+json"
#: The in-toto predicate type a signed CycloneDX BOM carries (the in-toto predicate registry's).
PREDICATE_TYPE = "https://cyclonedx.org/bom"
MODEL_REF = "model"


def write_cyclonedx(facts: BomFacts) -> bytes:
    """The ML-BOM as UTF-8 JSON bytes (sorted keys, so equal facts give equal documents
    up to the serial number and timestamp)."""
    bom = Bom()
    bom.metadata.timestamp = facts.generated_at
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="modelctl", version=facts.tool_version)
    )
    bom.metadata.component = _model_component(facts)
    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    document["metadata"]["component"]["modelCard"] = _model_card(facts)
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False).encode("utf-8")


def _model_component(facts: BomFacts) -> Component:
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=facts.name,
        version=facts.version,
        bom_ref=MODEL_REF,
        properties=_evidence_properties(facts),
    )
    org_name = hub_parts(facts.source_uri.first)
    if org_name is not None and facts.commit.first is not None:
        kind, org, name = org_name
        purl_type = "huggingface" if kind == "hf" else "generic"
        model.purl = PackageURL(
            type=purl_type, namespace=org, name=name, version=facts.commit.first
        )
    url = web_url(facts.source_uri.first)
    if url is not None:
        model.external_references.add(
            ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(url))
        )
        model.external_references.add(
            ExternalReference(type=ExternalReferenceType.MODEL_CARD, url=XsUri(url))
        )
    for value in facts.license.values:
        model.licenses.add(_license(value))
    if facts.base_models.values:
        model.pedigree = Pedigree(
            ancestors=[
                Component(
                    type=ComponentType.MACHINE_LEARNING_MODEL,
                    name=base,
                    bom_ref=f"base-model-{i}",
                    properties=_claim_properties("base_model", facts.base_models),
                )
                for i, base in enumerate(facts.base_models.values)
            ]
        )
    for i, file in enumerate(facts.files):
        model.components.add(
            Component(
                type=ComponentType.FILE,
                name=file.path,
                bom_ref=f"file-{i}",
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=file.sha256.hex)],
                properties=[
                    Property(name="modelctl:size", value=str(file.size)),
                    Property(name="modelctl:evidence:sha256", value=Evidence.VERIFIED.value),
                ],
            )
        )
    return model


def _license(value: str) -> DisjunctiveLicense:
    """A model card's license: its SPDX id when it is one (`apache-2.0` is `Apache-2.0`),
    else a named license as the card wrote it (`other`, `llama3`): a BOM must not turn a
    claim into a different one."""
    expression = spdx_expression(value)
    if expression is not None and " " not in expression:
        return DisjunctiveLicense(id=expression)
    return DisjunctiveLicense(name=value)


def _evidence_properties(facts: BomFacts) -> list[Property]:
    props = [
        Property(name="modelctl:manifest-digest", value=str(facts.manifest_digest)),
        Property(name="modelctl:evidence:manifest-digest", value=Evidence.VERIFIED.value),
        Property(name="modelctl:evidence:files", value=Evidence.VERIFIED.value),
    ]
    for field, claim in facts.claims().items():
        props.extend(_claim_properties(field, claim))
    for scan in facts.scans:
        props.append(
            Property(
                name=f"modelctl:scan:{scan.scanner}",
                value=(
                    f"{scan.verdict} (scanner {scan.version}, rules {scan.ruleset_version}, "
                    f"at {scan.finished_at.isoformat()}, "
                    f"{'signed by the registry' if scan.signed else 'unsigned'})"
                ),
            )
        )
    return props


def _claim_properties(field: str, claim: Claim) -> list[Property]:
    props = [
        Property(name=f"modelctl:evidence:{field}", value=claim.evidence.value),
        Property(name=f"modelctl:basis:{field}", value=claim.basis),
    ]
    props.extend(Property(name=f"modelctl:{field}", value=v) for v in claim.values)
    return props


def _model_card(facts: BomFacts) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    if facts.task.first is not None:
        parameters["task"] = facts.task.first
    if facts.datasets.values:
        parameters["datasets"] = [{"type": "dataset", "name": d} for d in facts.datasets.values]
    card: dict[str, Any] = {
        "bom-ref": "model-card",
        "properties": [
            {"name": f"modelctl:evidence:{field}", "value": claim.evidence.value}
            for field, claim in (("task", facts.task), ("datasets", facts.datasets))
        ],
    }
    if parameters:
        card["modelParameters"] = parameters
    return card
