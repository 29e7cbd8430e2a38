"""What one log entry says: an event the registry issued, as canonical JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class EntryKind(StrEnum):
    ATTESTATION = (
        "attestation"  # a bundle the registry signed (signature, scan, provenance, BOM, VSA)
    )
    #: A decision recorded without the registry key (signed ones are VSA attestations).
    DECISION = "decision"
    QUARANTINE = "quarantine"
    RELEASE = "release"
    EXCEPTION = "exception"  # an exception approved (a waiver row granted)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """`subject` names what the event is about (a manifest or blob digest); `digest` is the
    sha256 of the document the registry issued, when there is one (a signed bundle)."""

    kind: EntryKind
    subject: str
    actor: str
    time: datetime
    digest: str | None = None
    detail: str | None = None

    def to_bytes(self) -> bytes:
        """Sorted keys, no spaces: the same event always hashes the same."""
        fields: dict[str, str] = {
            "kind": self.kind.value,
            "subject": self.subject,
            "actor": self.actor,
            "time": self.time.isoformat(),
        }
        if self.digest is not None:
            fields["digest"] = self.digest
        if self.detail is not None:
            fields["detail"] = self.detail[:1000]  # entries are at most 64 KiB
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


__all__ = ["EntryKind", "LogEntry"]
