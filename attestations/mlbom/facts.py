"""The facts a bill of materials is written from, each with where it came from.

A BOM written by hand says what someone believed; this one says, field by field, whether the
value was *verified* (computed from the bytes, or taken from a signature that verified with
the registry's key), *declared* (read from the model card, which anyone can write) or
*absent* (nobody said). The writers (`cyclonedx`, `spdx`) carry that tag into the document.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from attestations.digests import Digest


class Evidence(StrEnum):
    VERIFIED = "verified"  # from the bytes, or from a signature that verified
    DECLARED = "declared"  # from the model card: a claim, not a proof
    ABSENT = "absent"  # nobody said


@dataclass(frozen=True, slots=True)
class Claim:
    """One field's values and how we know them. `values` is empty exactly when absent."""

    values: tuple[str, ...]
    evidence: Evidence
    basis: str  # what the evidence is, for people: "model card README.md", "registry signature"

    def __post_init__(self) -> None:
        if (self.evidence is Evidence.ABSENT) != (not self.values):
            raise ValueError("a claim has values exactly when it is not absent")

    @classmethod
    def absent(cls, basis: str = "not stated anywhere the registry holds") -> Claim:
        return cls((), Evidence.ABSENT, basis)

    @property
    def first(self) -> str | None:
        return self.values[0] if self.values else None


@dataclass(frozen=True, slots=True)
class FileFact:
    """A file of the checkpoint; its digest was computed from the bytes as they streamed in."""

    path: str
    size: int
    sha256: Digest


@dataclass(frozen=True, slots=True)
class ScanFact:
    scanner: str
    version: str
    ruleset_version: str
    verdict: str
    finished_at: datetime
    signed: bool  # an attestation by the registry records this scan


@dataclass(frozen=True, slots=True)
class BomFacts:
    """Everything one BOM says. Built by the registry, written by `cyclonedx` / `spdx`."""

    name: str  # the registry name, NS/NAME
    manifest_digest: Digest  # the checkpoint's identity, computed from the file list
    files: tuple[FileFact, ...]  # verified: hashed from the bytes
    source_uri: Claim
    commit: Claim
    license: Claim
    base_models: Claim
    datasets: Claim
    task: Claim
    signature: Claim  # who signed the model (the signer's key), verified or absent
    scans: tuple[ScanFact, ...]
    generated_at: datetime
    tool_version: str

    @property
    def version(self) -> str:
        """The component version: the source commit, else the manifest digest."""
        return self.commit.first or str(self.manifest_digest)

    def claims(self) -> dict[str, Claim]:
        """Every tagged field by its name in the documents' evidence lists."""
        return {
            "source": self.source_uri,
            "commit": self.commit,
            "license": self.license,
            "base_model": self.base_models,
            "datasets": self.datasets,
            "task": self.task,
            "signature": self.signature,
        }
