"""An SPDX 3.0.1 document with the AI profile, written with the SPDX project's own bindings
(`spdx-python-model`, generated from the SPDX 3.0.1 RDF and SHACL model).

spdx-tools (0.8) writes SPDX 3 only as a prototype of a pre-release draft without the final
AI profile, so it is not used here. The model is an `ai_AIPackage` (version = commit, download
location = the hub page, declared license, task as `ai_informationAboutApplication`); each file
is a `software_File` with its SHA-256, `contains` related; a declared base model is an
`ai_AIPackage` related by `ancestorOf`; declared datasets are `dataset_DatasetPackage`s the
model is `trainedOn`. How each field is known (verified / declared / absent) is an
`Annotation` on the element it describes, its statement `modelctl:evidence <field>=<tag> (<basis>)`.
The bindings check types, required properties and cardinalities as the document is written.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence

from spdx_python_model import v3_0_1 as spdx

from attestations.mlbom.facts import BomFacts, Claim, Evidence
from attestations.mlbom.licenses import spdx_expression
from attestations.mlbom.sources import web_url

SPEC_VERSION = "3.0.1"
MEDIA_TYPE = "application/spdx+json"
#: The in-toto predicate type a signed SPDX document carries (the in-toto predicate registry's).
PREDICATE_TYPE = "https://spdx.dev/Document"


def write_spdx(facts: BomFacts) -> bytes:
    """The SPDX 3.0.1 JSON-LD document as UTF-8 bytes."""
    base = f"urn:modelctl:bom:{facts.manifest_digest.hex}:{uuid.uuid4().hex}"
    objects = spdx.SHACLObjectSet()
    tool = objects.add(spdx.Tool(_id=f"{base}#tool", name=f"modelctl {facts.tool_version}"))
    creation = spdx.CreationInfo(
        specVersion=SPEC_VERSION,
        created=facts.generated_at,
        createdBy=[f"{base}#registry"],
        createdUsing=[tool],
    )
    tool.creationInfo = creation
    registry = objects.add(
        spdx.Organization(_id=f"{base}#registry", name="modelctl registry", creationInfo=creation)
    )
    creation.createdBy = [registry]
    ids = _Ids(base)
    model = objects.add(
        spdx.ai_AIPackage(
            _id=ids.next("model"),
            creationInfo=creation,
            name=facts.name,
            software_packageVersion=facts.version,
            software_primaryPurpose=spdx.software_SoftwarePurpose.model,
            software_sourceInfo=_source_info(facts),
        )
    )
    download = web_url(facts.source_uri.first)
    if download is not None:
        model.software_downloadLocation = download
    if facts.task.first is not None:
        model.ai_informationAboutApplication = facts.task.first
    files = [
        objects.add(
            spdx.software_File(
                _id=ids.next("file"),
                creationInfo=creation,
                name=f.path,
                software_primaryPurpose=spdx.software_SoftwarePurpose.file,
                verifiedUsing=[
                    spdx.Hash(algorithm=spdx.HashAlgorithm.sha256, hashValue=f.sha256.hex)
                ],
            )
        )
        for f in facts.files
    ]
    related: list[spdx.Element] = [model, *files]
    if files:
        related.append(
            objects.add(_relate(ids, creation, model, spdx.RelationshipType.contains, files))
        )
    for value in facts.license.values:
        license_element = objects.add(
            spdx.simplelicensing_LicenseExpression(
                _id=ids.next("license"),
                creationInfo=creation,
                simplelicensing_licenseExpression=_license_ref(value),
            )
        )
        related += [
            license_element,
            objects.add(
                _relate(
                    ids,
                    creation,
                    model,
                    spdx.RelationshipType.hasDeclaredLicense,
                    [license_element],
                )
            ),
        ]
    for base_name in facts.base_models.values:
        ancestor = objects.add(
            spdx.ai_AIPackage(_id=ids.next("base-model"), creationInfo=creation, name=base_name)
        )
        related += [
            ancestor,
            objects.add(
                _relate(ids, creation, ancestor, spdx.RelationshipType.ancestorOf, [model])
            ),
        ]
    for dataset_name in facts.datasets.values:
        dataset = objects.add(
            spdx.dataset_DatasetPackage(
                _id=ids.next("dataset"),
                creationInfo=creation,
                name=dataset_name,
                dataset_datasetType=[spdx.dataset_DatasetType.other],
            )
        )
        related += [
            dataset,
            objects.add(_relate(ids, creation, model, spdx.RelationshipType.trainedOn, [dataset])),
        ]
    annotations = [
        objects.add(_annotate(ids, creation, model, field, claim))
        for field, claim in facts.claims().items()
    ]
    annotations.append(
        objects.add(
            _annotate(
                ids,
                creation,
                model,
                "files",
                Claim(
                    (str(facts.manifest_digest),), Evidence.VERIFIED, "sha256 of every file's bytes"
                ),
            )
        )
    )
    for scan in facts.scans:
        annotations.append(
            objects.add(
                spdx.Annotation(
                    _id=ids.next("scan"),
                    creationInfo=creation,
                    annotationType=spdx.AnnotationType.review,
                    subject=model,
                    statement=(
                        f"modelctl:scan {scan.scanner} {scan.version} rules "
                        f"{scan.ruleset_version}: {scan.verdict} at "
                        f"{scan.finished_at.isoformat()} "
                        f"({'signed by the registry' if scan.signed else 'unsigned'})"
                    ),
                )
            )
        )
    document = objects.add(
        spdx.SpdxDocument(
            _id=f"{base}#document",
            creationInfo=creation,
            name=f"ML-BOM of {facts.name}@{facts.manifest_digest}",
            profileConformance=[
                spdx.ProfileIdentifierType.core,
                spdx.ProfileIdentifierType.software,
                spdx.ProfileIdentifierType.ai,
                spdx.ProfileIdentifierType.dataset,
                spdx.ProfileIdentifierType.simpleLicensing,
            ],
            rootElement=[model],
            element=[tool, registry, *related, *annotations],
        )
    )
    del document  # held by the object set
    out = io.BytesIO()
    spdx.JSONLDSerializer(indent=2, sort_keys=True).write(objects, out)
    return out.getvalue()


class _Ids:
    """Element ids under the document's base: `<base>#<kind>-<n>`."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.count = 0

    def next(self, kind: str) -> str:
        self.count += 1
        return f"{self.base}#{kind}-{self.count}"


def _relate(
    ids: _Ids,
    creation: spdx.CreationInfo,
    source: spdx.Element,
    kind: str,
    targets: Sequence[spdx.Element],
) -> spdx.Relationship:
    return spdx.Relationship(
        _id=ids.next("relationship"),
        creationInfo=creation,
        from_=source,
        relationshipType=kind,
        to=list(targets),
    )


def _annotate(
    ids: _Ids, creation: spdx.CreationInfo, subject: spdx.Element, field: str, claim: Claim
) -> spdx.Annotation:
    values = f": {', '.join(claim.values)}" if claim.values else ""
    return spdx.Annotation(
        _id=ids.next("evidence"),
        creationInfo=creation,
        annotationType=spdx.AnnotationType.other,
        subject=subject,
        statement=f"modelctl:evidence {field}={claim.evidence.value} ({claim.basis}){values}",
    )


def _source_info(facts: BomFacts) -> str:
    source, commit = facts.source_uri, facts.commit
    return (
        f"source {source.first or 'absent'} ({source.evidence.value}), "
        f"commit {commit.first or 'absent'} ({commit.evidence.value})"
    )


def _license_ref(value: str) -> str:
    """A model card license as an SPDX license expression: the canonical expression when it is
    one (`apache-2.0` is `Apache-2.0`), else `LicenseRef-<the card's value>`."""
    expression = spdx_expression(value)
    if expression is not None:
        return expression
    cleaned = "".join(c if c.isalnum() or c in ".-" else "-" for c in value)
    return f"LicenseRef-{cleaned}" if cleaned else "NOASSERTION"
