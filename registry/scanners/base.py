"""The scanner port: verdicts, findings, bounds, and what a scanner must implement.

A scanner decides which files it applies to by *sniffing content* (the first bytes), never
by file name alone, and returns one verdict per file with findings that explain it.
`malformed`, `unsupported` and `error` are never clean: the admission policy decides what to
do with them. `Verdict`, `Severity` and `worst` are the shared vocabulary of
`attestations.verdicts`, re-exported here as part of the scanner port.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from attestations.verdicts import Severity, Verdict, worst

__all__ = [
    "SNIFF_BYTES",
    "FileVerdict",
    "Finding",
    "FolderScanner",
    "JSONValue",
    "ModelFolder",
    "ScanLimits",
    "ScanTarget",
    "Scanner",
    "Severity",
    "Verdict",
    "worst",
]

JSONValue = str | int | float | bool | None | Sequence["JSONValue"] | Mapping[str, "JSONValue"]

#: How many leading bytes a scanner sees to decide whether it applies.
SNIFF_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Finding:
    scanner: str
    rule: str  # stable id, e.g. "pickle.global.not-allowed"
    severity: Severity
    message: str  # one line a person understands
    evidence: Mapping[str, JSONValue] = field(default_factory=dict)
    offset: int | None = None  # byte offset in the file (or in `member`)
    member: str | None = None  # archive member the finding is about
    reference: str | None = None  # CVE / GHSA / advisory id

    def to_json(self) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {
            "scanner": self.scanner,
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "evidence": dict(self.evidence),
        }
        if self.offset is not None:
            out["offset"] = self.offset
        if self.member is not None:
            out["member"] = self.member
        if self.reference is not None:
            out["reference"] = self.reference
        return out


@dataclass(frozen=True, slots=True)
class FileVerdict:
    """One scanner's verdict on one file."""

    verdict: Verdict
    findings: tuple[Finding, ...] = ()


class FindingList:
    """The findings a scanner gathers one by one as it walks a file, each with the verdict it
    implies; the file's verdict is the worst of them (clean when there are none)."""

    def __init__(self, scanner: str) -> None:
        self.scanner = scanner
        self.items: list[tuple[Verdict, Finding]] = []

    def add(
        self,
        verdict: Verdict,
        rule: str,
        severity: Severity,
        message: str,
        evidence: Mapping[str, JSONValue] | None = None,
        *,
        member: str | None = None,
        reference: str | None = None,
    ) -> None:
        finding = Finding(
            self.scanner,
            rule,
            severity,
            message[:300],
            evidence or {},
            member=member,
            reference=reference,
        )
        self.items.append((verdict, finding))

    def verdict(self) -> FileVerdict:
        return FileVerdict(worst([v for v, _ in self.items]), tuple(f for _, f in self.items))


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Every bound on scanned input lives here. Hitting one is `malformed` or `error`."""

    max_pickle_bytes: int = 512 * 1024**2
    max_opcodes: int = 50_000_000
    max_stack_depth: int = 100_000
    max_memo_entries: int = 10_000_000
    max_nesting: int = 32  # pickles inside pickles, archives inside archives
    max_archive_members: int = 100_000
    max_decompressed_bytes: int = 4 * 1024**3
    max_compression_ratio: int = 200
    max_header_bytes: int = 100 * 1024**2  # safetensors / GGUF metadata
    max_string_bytes: int = 16 * 1024**2
    max_items: int = 10_000_000  # tensors, KV pairs, layers
    seconds_per_file: float = 120.0


class ScanTarget(Protocol):
    """A file to scan: its path in the model folder and a way to read its bytes."""

    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    def head(self) -> bytes:
        """The first `SNIFF_BYTES` bytes (fewer for a short file)."""
        ...

    def open(self) -> BinaryIO:
        """A fresh, seekable binary stream over the whole file."""
        ...


class Scanner(Protocol):
    """Scans single files."""

    id: str
    version: str
    ruleset_version: str

    def applies_to(self, target: ScanTarget) -> bool:
        """Decided from content (`target.head()`); the name may only add, never excuse."""
        ...

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict: ...


class ModelFolder(Protocol):
    """The whole model, for scanners that judge the folder rather than one file."""

    @property
    def files(self) -> Sequence[ScanTarget]: ...


class FolderScanner(Protocol):
    """Scans a whole model folder; reports on files and on `.` (the folder)."""

    id: str
    version: str
    ruleset_version: str

    def scan_folder(self, folder: ModelFolder, limits: ScanLimits) -> Mapping[str, FileVerdict]: ...
