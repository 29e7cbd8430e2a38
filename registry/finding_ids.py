"""The shape of a finding id (`fnd-` + 24 hex digits), checked on both sides of the wire.

Apart from `registry/service/findings.py` (which derives the ids and keeps the triage) so the
remote client rejects a malformed id with the same `InputError` as the embedded registry,
before any request, without importing the database layer.
"""

from __future__ import annotations

import re

from registry.errors import InputError

ID_PREFIX = "fnd-"
_ID = re.compile(r"fnd-[0-9a-f]{24}")


def check_finding_id(text: str) -> str:
    value = text.strip().lower()
    if not _ID.fullmatch(value):
        raise InputError(
            f"{text[:80]!r} is not a finding id (fnd- and 24 hex digits; "
            "see modelctl finding list REF)"
        )
    return value
