"""What callers ask of the registry: the request types of `registry.interface.Registry`.

Plain frozen data below the service, beside `registry/views.py` (what it returns), so the
service, the embedded registry and the HTTP client all read them without importing the
interface layer above the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class MirrorRequest:
    source: str  # hf://org/name[@rev], ms://org/name[@rev] or a local folder
    name: str | None = None  # NS/NAME; defaults to the source's org/name
    revision: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    scan: bool = True  # run every scanner on what was stored


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters on the audit log; all optional, combined with AND. Newest first."""

    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in "." (e.g. "token.")
    subject: str | None = None  # substring
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
