"""SLSA provenance v1 for the mirror step (https://slsa.dev/provenance/v1).

Subject: the checkpoint (its manifest digest). The "build" is the mirror: its external
parameters are the source and the revision asked for; its resolved dependency is the source
at the pinned commit; the builder is the modelctl registry with its version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from attestations.digests import Digest
from attestations.intoto import ResourceDescriptor, Statement, rfc3339
from attestations.manifest import Manifest

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
MIRROR_BUILD_TYPE = "https://modelctl.dev/mirror/v1"
BUILDER_ID = "https://modelctl.dev/registry"


@dataclass(frozen=True, slots=True)
class MirrorRecord:
    name: str  # the registry name, NS/NAME
    source_uri: str
    commit: str
    revisions: Sequence[str]
    manifest: Manifest
    mirrored_at: datetime
    tool_version: str


def mirror_provenance(record: MirrorRecord) -> Statement:
    digest: Digest = record.manifest.digest
    source: dict[str, str] = {}
    if len(record.commit) == 40 and all(c in "0123456789abcdef" for c in record.commit):
        source["gitCommit"] = record.commit
    else:
        source["sha256"] = digest.hex  # a local folder: its content is its only pin
    predicate = {
        "buildDefinition": {
            "buildType": MIRROR_BUILD_TYPE,
            "externalParameters": {
                "source": record.source_uri,
                "revisions": list(record.revisions),
            },
            "internalParameters": {"serialization": {"method": "files", "hash_type": "sha256"}},
            "resolvedDependencies": [
                {"uri": f"{record.source_uri}@{record.commit}", "digest": source},
                *({"name": e.path, "digest": {"sha256": e.sha256.hex}} for e in record.manifest),
            ],
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID, "version": {"modelctl": record.tool_version}},
            "metadata": {"finishedOn": rfc3339(record.mirrored_at)},
        },
    }
    subject = ResourceDescriptor(name=record.name, digest={"sha256": digest.hex})
    return Statement(subjects=(subject,), predicate_type=PREDICATE_TYPE, predicate=predicate)
