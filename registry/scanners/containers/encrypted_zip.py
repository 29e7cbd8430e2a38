"""Encrypted zip members: refused in model archives, `unsupported` in a plain encrypted zip.

The encryption flag is a parser differential in a model archive (CVE-2025-1945): `zipfile`
refuses a flagged member, PyTorch's miniz ignores the flag and reads the bytes as they are, so
the reader reports `zip.encrypted` (suspicious) and the member is scanned as plain bytes. That
stays so for every archive that is a model container.

A zip that holds no model container at all (documents someone encrypted, say) is another
matter: no model loader opens it (torch wants `*/data.pkl`, numpy `.npy` members, Keras
`config.json`), its encrypted bytes cannot be read without the password, and "suspicious"
would claim something nobody checked. It is `unsupported`: the scanner says it cannot look.

What counts as a model container is decided fail-closed: a member *named* like model data
(pickles, tensors, torch records, Keras files, nested archives), or a member whose readable
first bytes are a pickle or a container (an encrypted flag over plain bytes, the CVE's trick,
shows its content). Anything that looks like a model keeps the refusal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import BinaryIO

from registry.scanners.base import Severity, Verdict
from registry.scanners.containers.issues import Issue, new_issue
from registry.scanners.containers.sniff import sniff
from registry.scanners.containers.zip_reader import (
    FLAG_ENCRYPTED,
    FLAG_MASKED_HEADERS,
    FLAG_STRONG_ENCRYPTION,
    ZipArchive,
    ZipEntry,
    zip_member_head,
)

ENCRYPTED_RULE = "zip.encrypted"
ARCHIVE_RULE = "zip.encrypted-archive"
_ENCRYPTION_FLAGS = FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS

#: Member names that make an archive a model container (torch records, pickles, tensors,
#: Keras and other model files, nested archives), matched on the last path segment.
_MODEL_NAME = re.compile(
    r"(?:^|/)(?:data\.pkl|version|byteorder|config\.json|metadata\.json|model\.weights\.\w+)$"
    r"|\.(?:pkl|pickle|pt|pth|bin|ckpt|npy|npz|joblib|jbl|dill|sav|h5|hdf5|keras|safetensors|"
    r"gguf|ggml|onnx|pb|tflite|msgpack|model|nemo|mar|zip|tar|gz|bz2|xz|lzma|7z)$"
    r"|(?:^|/)data/\d+$",
    re.IGNORECASE,
)


def is_encrypted(entry: ZipEntry) -> bool:
    return bool(entry.flags & _ENCRYPTION_FLAGS)


def is_model_container(f: BinaryIO, entries: Sequence[ZipEntry]) -> bool:
    """Whether any member is named like model data or starts like a pickle or a container."""
    for entry in entries:
        if _MODEL_NAME.search(entry.name):
            return True
        if entry.name.endswith("/"):
            continue
        if sniff(zip_member_head(f, entry, 512)) is not None:
            return True
    return False


def plain_encrypted_archive(f: BinaryIO, archive: ZipArchive) -> Issue | None:
    """The `unsupported` issue for an encrypted zip that is no model container, else None."""
    encrypted = [e for e in archive.entries if is_encrypted(e)]
    if not encrypted or is_model_container(f, archive.entries):
        return None
    return new_issue(
        ARCHIVE_RULE,
        Verdict.UNSUPPORTED,
        Severity.MEDIUM,
        f"encrypted zip archive ({len(encrypted)} of {len(archive.entries)} members encrypted) "
        "holding no model file: its contents cannot be read without the password",
        encrypted=len(encrypted),
        members=len(archive.entries),
        first=encrypted[0].name[:200],
    )
