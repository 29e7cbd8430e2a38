"""Sign a model folder, and verify a folder against its signature (all cores)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from attestations.bundle import Bundle
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.model_signature import (
    ModelSignatureError,
    VerifiedModelSignature,
    build_statement,
    compare_resources,
    verify_model_signature,
)
from attestations.serialization import (
    DEFAULT_IGNORE_PATHS,
    Serialization,
    hash_folder,
    list_files,
)
from attestations.signing import SignatureVerifier, Signer


def relative_inside(path: Path, folder: Path) -> str | None:
    """`path` relative to `folder` when it lies inside it (the signature file, typically)."""
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return None


def sign_folder(
    folder: Path,
    signer: Signer,
    *,
    signature_path: Path,
    serialization: Serialization | None = None,
    workers: int | None = None,
) -> Bundle:
    """Hash `folder` and sign a model_signing v1.0 statement over it."""
    ser = serialization or Serialization()
    inside = relative_inside(signature_path, folder)
    if inside is not None and inside not in ser.ignore_paths:
        ser = Serialization(
            method=ser.method,
            hash_type=ser.hash_type,
            allow_symlinks=ser.allow_symlinks,
            shard_size=ser.shard_size,
            ignore_paths=(*ser.ignore_paths, inside),
        )
    resources = hash_folder(folder, ser, workers=workers)
    statement = build_statement(folder.resolve().name, resources, ser)
    return signer.sign(INTOTO_PAYLOAD_TYPE, statement.to_payload())


@dataclass(frozen=True, slots=True)
class FolderVerification:
    signature: VerifiedModelSignature
    files: int
    bytes: int
    checks: tuple[str, ...]


def verify_folder(
    folder: Path,
    bundle: Bundle,
    verifier: SignatureVerifier,
    *,
    signature_path: Path | None = None,
    allow_ignore: Sequence[str] = (),
    workers: int | None = None,
) -> FolderVerification:
    """Verify `folder` against a model signature.

    1-6. `verify_model_signature`: the signature, payload type, statement, predicate, subject.
    7. Every `ignore_paths` entry is a model_signing default, the signature file itself, or
       matches an `allow_ignore` pattern: a signer cannot quietly exclude files from checking.
    8. Hash the folder with the recorded serialization, using every core.
    9. The folder holds exactly the signed files with the signed digests.
    Steps 7 to 9 raise `ModelSignatureError`, naming the paths.
    """
    verified = verify_model_signature(bundle, verifier)
    ser = verified.predicate.serialization
    own = relative_inside(signature_path, folder) if signature_path is not None else None
    accepted = set(DEFAULT_IGNORE_PATHS) | ({own} if own else set())
    refused = [
        p
        for p in ser.ignore_paths
        if p not in accepted and not any(fnmatch.fnmatchcase(p, pat) for pat in allow_ignore)
    ]
    if refused:
        raise ModelSignatureError(
            f"the signature excludes {', '.join(repr(p) for p in refused[:5])} from "
            "verification; pass --allow-ignore PATTERN to accept that"
        )
    effective = (
        ser
        if own is None or own in ser.ignore_paths
        else Serialization(
            method=ser.method,
            hash_type=ser.hash_type,
            allow_symlinks=ser.allow_symlinks,
            shard_size=ser.shard_size,
            ignore_paths=(*ser.ignore_paths, own),
        )
    )
    actual = hash_folder(folder, effective, workers=workers)
    compare_resources(verified.predicate.resources, actual)
    listed = list_files(folder, effective)
    total = sum(size for _, size in listed)
    files = len(listed)
    checks = (
        *verified.checks,
        "ignore_paths holds only defaults, the signature file or allowed patterns",
        f"re-hashed {files} files ({ser.method}, {ser.hash_type}): every digest matches, "
        "no file missing, none unsigned",
    )
    return FolderVerification(signature=verified, files=files, bytes=total, checks=checks)
