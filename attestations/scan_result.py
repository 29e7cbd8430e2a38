"""Scan results as an in-toto predicate (`https://modelctl.dev/attestations/scan/v1`).

One statement per scanner run over a checkpoint. Subject: the checkpoint (manifest digest).
Spec: docs/formats/scan.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from attestations.digests import Digest
from attestations.intoto import ResourceDescriptor, Statement, rfc3339

PREDICATE_TYPE = "https://modelctl.dev/attestations/scan/v1"


@dataclass(frozen=True, slots=True)
class ScannedFile:
    path: str
    sha256: str
    verdict: str
    findings: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class ScanRun:
    scanner_id: str
    scanner_version: str
    ruleset_version: str
    verdict: str
    files: Sequence[ScannedFile]
    started: datetime
    finished: datetime
    limits: Mapping[str, Any]


def scan_statement(name: str, manifest_digest: Digest, run: ScanRun) -> Statement:
    predicate = {
        "scanner": {
            "id": run.scanner_id,
            "version": run.scanner_version,
            "rulesetVersion": run.ruleset_version,
        },
        "verdict": run.verdict,
        "files": [
            {
                "path": f.path,
                "digest": {"sha256": f.sha256},
                "verdict": f.verdict,
                "findings": list(f.findings),
            }
            for f in run.files
        ],
        "limits": dict(run.limits),
        "startedOn": rfc3339(run.started),
        "finishedOn": rfc3339(run.finished),
    }
    subject = ResourceDescriptor(name=name, digest={"sha256": manifest_digest.hex})
    return Statement(subjects=(subject,), predicate_type=PREDICATE_TYPE, predicate=predicate)
