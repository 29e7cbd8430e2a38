"""Members of a `.keras` archive that Keras never reads.

Keras 3's `saving_lib` reads ``config.json``, ``metadata.json``, one weights file
(``model.weights.h5`` or ``model.weights.npz``) and the ``assets/`` folder (vocabularies and
other files layers load), and extracts the archive to a temporary folder to do so. Anything
else rides along unread: a script, an executable or a pickle there is a payload waiting for
something other than Keras to run it (an `unzip` and a `python`, a second loader), so it is a
finding. Executables are recognised by extension in any case (``RUN.PY``) and by their first
bytes (ELF, PE, Mach-O, a ``#!`` line, a protocol 2+ pickle), whatever they are named. (Older
pickle protocols have no magic: a text asset could look like one, so they go by name only.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from registry.scanners.base import Finding, Severity, Verdict
from registry.scanners.containers.zip_reader import ZipEntry, zip_member_head

#: The members `saving_lib` reads by name; `assets/...` is read by the layers that own assets.
KERAS_READ_MEMBERS = frozenset(
    {"config.json", "metadata.json", "model.weights.h5", "model.weights.npz"}
)
ASSETS_PREFIX = "assets/"
MAX_LISTED = 20

_EXECUTABLE_NAME = re.compile(
    r"\.(?:py[cowz]?|pyd|ipynb|sh|bash|zsh|ksh|csh|fish|bat|cmd|ps1|psm1|vbs|vbe|wsf|js|mjs|"
    r"jar|class|exe|dll|com|scr|msi|cpl|so(?:\.\d+)*|dylib|elf|bin\.exe|app|run|rb|pl|php|lua|"
    r"whl|egg|lnk|pkl|pickle|joblib|dill|pt|pth|ckpt)$",
    re.IGNORECASE,
)
_EXECUTABLE_MAGIC = (
    b"\x7fELF",
    b"MZ",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"#!",
)


@dataclass(frozen=True, slots=True)
class UnreadMember:
    name: str
    executable: bool
    why: str


def is_read_by_keras(name: str) -> bool:
    return name in KERAS_READ_MEMBERS or name.startswith(ASSETS_PREFIX)


def executable_reason(name: str, head: bytes) -> str | None:
    """Why a member is a script or executable (its extension or first bytes), or None."""
    leaf = name.rsplit("/", 1)[-1]
    if _EXECUTABLE_NAME.search(leaf):
        return f"its name ends in {leaf[leaf.rfind('.') :]!r}"
    for magic in _EXECUTABLE_MAGIC:
        if head.startswith(magic):
            return f"its first bytes are {magic!r}"
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        return "it is a pickle"
    return None


def judge_member(name: str, head: bytes) -> UnreadMember | None:
    """A finding-worthy member: any script or executable, or a file Keras never reads."""
    if name.endswith("/"):
        return None  # a folder entry holds no bytes
    reason = executable_reason(name, head)
    if reason is not None:
        return UnreadMember(name, executable=True, why=reason)
    if not is_read_by_keras(name):
        return UnreadMember(name, executable=False, why="Keras never reads it")
    return None


def member_findings(
    fh: BinaryIO, entries: Sequence[ZipEntry], scanner_id: str
) -> list[tuple[Verdict, Finding]]:
    """Scripts and executables anywhere in the archive (suspicious, high) and members Keras
    never reads (suspicious, low); the first `MAX_LISTED` by name, the rest counted."""
    results: list[tuple[Verdict, Finding]] = []
    flagged = 0
    for entry in entries:
        if entry.name.endswith("/"):
            continue
        member = judge_member(entry.name, zip_member_head(fh, entry, 64))
        if member is None:
            continue
        flagged += 1
        if flagged <= MAX_LISTED:
            results.append((Verdict.SUSPICIOUS, _finding(member, scanner_id)))
    if flagged > MAX_LISTED:
        summary = Finding(
            scanner=scanner_id,
            rule="keras.zip.unread-member",
            severity=Severity.LOW,
            message=f"{flagged - MAX_LISTED} further members Keras never reads",
            evidence={"count": flagged},
        )
        results.append((Verdict.SUSPICIOUS, summary))
    return results


def _finding(member: UnreadMember, scanner_id: str) -> Finding:
    if member.executable:
        return Finding(
            scanner=scanner_id,
            rule="keras.zip.executable-member",
            severity=Severity.HIGH,
            message=f"archive member {member.name[:120]!r} is a script or executable "
            f"({member.why}); Keras never runs it, something else is meant to",
            evidence={"member": member.name[:200], "why": member.why},
            member=member.name,
        )
    return Finding(
        scanner=scanner_id,
        rule="keras.zip.unread-member",
        severity=Severity.LOW,
        message=f"archive member {member.name[:120]!r} is not one Keras reads (config.json, "
        "metadata.json, model.weights.*, assets/)",
        evidence={"member": member.name[:200]},
        member=member.name,
    )
