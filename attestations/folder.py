"""Sign a model folder, and verify a folder against its signature (all cores)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from attestations.bundle import Bundle
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.errors import InvalidInputError
from attestations.model_signature import (
    ModelSignatureError,
    VerifiedModelSignature,
    build_statement,
    compare_resources,
    verify_model_signature,
)
from attestations.serialization import (
    DEFAULT_IGNORE_PATHS,
    SINGLE_FILE_NAME,
    Resource,
    Serialization,
    hash_folder,
    list_files,
    validate_ignore_path,
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
    ignore_paths: Sequence[str] = (),
    workers: int | None = None,
) -> Bundle:
    """Hash `folder` (or a single model file) and sign a model_signing v1.0 statement over it.

    `ignore_paths` (exact paths relative to the model root) are left out and recorded in the
    statement, as is the signature file when it lies inside the folder. An empty model, one
    with no file left to sign, is refused (OMS 6.1).
    """
    ser = serialization or Serialization()
    inside = relative_inside(signature_path, folder)
    extra = [validate_ignore_path(p) for p in ignore_paths]
    if inside is not None:
        extra.append(inside)
    ser = _with_ignored(ser, extra)
    resources = hash_folder(folder, ser, workers=workers)
    if not resources:
        raise InvalidInputError(f"nothing to sign: {folder} holds no file (after ignore paths)")
    statement = build_statement(folder.resolve().name, resources, ser)
    return signer.sign(INTOTO_PAYLOAD_TYPE, statement.to_payload())


def _with_ignored(ser: Serialization, paths: Sequence[str]) -> Serialization:
    added = tuple(p for p in dict.fromkeys(paths) if p not in ser.ignore_paths)
    if not added:
        return ser
    return Serialization(
        method=ser.method,
        hash_type=ser.hash_type,
        allow_symlinks=ser.allow_symlinks,
        shard_size=ser.shard_size,
        ignore_paths=(*ser.ignore_paths, *added),
    )


def _as_named(resources: Sequence[Resource], model: Path) -> Sequence[Resource]:
    """model_signing's `.` for a single-file model, as the file's own name (what we hash).

    Only when `model` is a file: against a folder, `.` stays a name no file has (missing).
    """
    if model.is_dir() or not any(r.path == SINGLE_FILE_NAME for r in resources):
        return resources
    return [
        Resource(model.name, r.start, r.end, r.digest) if r.path == SINGLE_FILE_NAME else r
        for r in resources
    ]


@dataclass(frozen=True, slots=True)
class FolderVerification:
    signature: VerifiedModelSignature
    files: int
    bytes: int
    checks: tuple[str, ...]
    #: Paths the verifier chose to leave out (`--ignore-paths`), beyond what was signed.
    verifier_ignored: tuple[str, ...] = ()
    #: Files present but never signed, accepted because the caller asked (`allow_unsigned`).
    unsigned: tuple[str, ...] = ()


def verify_folder(
    folder: Path,
    bundle: Bundle,
    verifier: SignatureVerifier,
    *,
    signature_path: Path | None = None,
    allow_ignore: Sequence[str] = (),
    ignore_paths: Sequence[str] = (),
    allow_unsigned: bool = False,
    workers: int | None = None,
) -> FolderVerification:
    """Verify `folder` against a model signature.

    1-6. `verify_model_signature`: the signature, payload type, statement, predicate, subject.
    7. Every `ignore_paths` entry is a model_signing default, the signature file itself, or
       matches an `allow_ignore` pattern: a signer cannot quietly exclude files from checking.
    8. Hash the folder with the recorded serialization, using every core.
    9. The folder holds exactly the signed files with the signed digests.
    Steps 7 to 9 raise `ModelSignatureError`, naming the paths.

    `ignore_paths` are the verifier's own exclusions (model_signing's `--ignore_paths`), for
    statements that record none (model_signing <= 1.0.1 did not): exact paths relative to the
    model root, left out of the re-hash and reported in the result. A signed file among them
    shows as missing, so they can only excuse unsigned local files.
    """
    verifier_ignored = tuple(dict.fromkeys(validate_ignore_path(p) for p in ignore_paths))
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
    effective = _with_ignored(ser, ([own] if own else []) + list(verifier_ignored))
    actual = hash_folder(folder, effective, workers=workers)
    unsigned = compare_resources(
        _as_named(verified.predicate.resources, folder), actual, allow_unsigned=allow_unsigned
    )
    listed = [(rel, size) for rel, size in list_files(folder, effective) if rel not in unsigned]
    total = sum(size for _, size in listed)
    files = len(listed)
    checks = (
        *verified.checks,
        "ignore_paths holds only defaults, the signature file or allowed patterns",
        *(
            [f"left out by the verifier (--ignore-paths): {', '.join(verifier_ignored)}"]
            if verifier_ignored
            else []
        ),
        f"re-hashed {files} files ({ser.method}, {ser.hash_type}): every digest matches, "
        + (
            f"no file missing; {len(unsigned)} unsigned files accepted (--ignore-unsigned-files)"
            if allow_unsigned
            else "no file missing, none unsigned"
        ),
    )
    return FolderVerification(
        signature=verified,
        files=files,
        bytes=total,
        checks=checks,
        verifier_ignored=verifier_ignored,
        unsigned=unsigned,
    )
