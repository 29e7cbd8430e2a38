"""What the caller knows about a checkpoint, typed, as evaluation's only input.

Attestations arrive *as verified by the caller*: the policy never sees signatures or keys, only
who verified which predicate over which subject digest. The caller reports `signer` as the
policy signer name it verified against (`registry` for the registry's own key, a key signer's
name or key hint) or, for keyless and certificate signers, the identity with `identity`/`issuer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class FileFact:
    path: str
    size: int
    sha256: str
    format: str


@dataclass(frozen=True, slots=True)
class AttestationFact:
    predicate_type: str
    signer: str
    subject_digest: str
    verified_at: datetime
    identity: str | None = None
    issuer: str | None = None
    #: Certificate signatures: the signing certificate is itself a CA (BasicConstraints
    #: CA:TRUE). Verified as model_signing does; a certificate signer counts it only with
    #: `allowCaLeaf: true`.
    leaf_is_ca: bool = False


@dataclass(frozen=True, slots=True)
class FindingFact:
    """One finding of a scan, with its stable id (scanner, rule, file sha256, location)."""

    id: str
    rule: str
    severity: str
    message: str


@dataclass(frozen=True, slots=True)
class ScannedFileFact:
    """A file (or `.`, the folder) that a scan did not find clean, and why."""

    path: str
    sha256: str
    verdict: str
    findings: tuple[FindingFact, ...] = ()


@dataclass(frozen=True, slots=True)
class ScanFact:
    scanner: str
    version: str
    verdict: str
    finished_at: datetime
    max_severity: str | None = None
    #: The files this run did not find clean (clean files are left out).
    files: tuple[ScannedFileFact, ...] = ()
    #: The base this run compared the model with (the backdoor scanner's differential mode);
    #: None: not a differential scan.
    differential_base: str | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    name: str
    digest: str
    source_uri: str
    commit: str
    files: tuple[FileFact, ...]
    license: str | None
    attestations: tuple[AttestationFact, ...]
    scans: tuple[ScanFact, ...]
    quarantined: bool = False
    revisions: tuple[str, ...] = ()
    #: The model card's `base_model:` (the checkpoint is a fine-tune of it); None: none.
    base_model: str | None = None
    #: Finding id -> expiry of its approved "false positive" triage (two people).
    triaged: Mapping[str, datetime] = field(default_factory=lambda: MappingProxyType({}))
