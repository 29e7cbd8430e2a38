"""Offline verification of a log folder: `modelctl log verify`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attestations.errors import AttestationError
from attestations.tlog import (
    Checkpoint,
    NoteVerifier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    open_checkpoint,
    tiles,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)
from registry.errors import InputError, IntegrityFailure, NotFound
from registry.tlog.files import CHECKPOINT, LogFolder


@dataclass(frozen=True, slots=True)
class InclusionResult:
    index: int
    entry: bytes
    leaf_hash: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class LogVerification:
    checkpoint: Checkpoint
    key_name: str
    key_id: str
    tiles_checked: int
    inclusion: InclusionResult | None
    #: The older checkpoint this one was proven to extend (`since`), if one was given.
    extends: Checkpoint | None = None


@dataclass(frozen=True, slots=True)
class VerifiedTree:
    """A log folder checked end to end against its signed checkpoint: the checkpoint note as
    read (`note`), its entries and their leaf hashes. Proofs can be cut from it without
    reading the folder again, for as long as the checkpoint is the same note."""

    note: bytes
    checkpoint: Checkpoint
    entries: list[bytes]
    hashes: list[bytes]
    tiles_checked: int


def verify_tree(root: Path, verifier: NoteVerifier) -> VerifiedTree:
    """Steps 1 to 4 of `verify_log`; raises IntegrityFailure at the first thing that is off."""
    folder = LogFolder(root)
    if not folder.has_checkpoint():
        raise InputError(f"no transparency log checkpoint in {root}")
    note = folder.read(CHECKPOINT)
    try:
        checkpoint = open_checkpoint(note, verifier)
    except AttestationError as exc:
        raise IntegrityFailure(f"transparency log checkpoint: {exc.message}") from exc
    entries = folder.entries(checkpoint.size)
    hashes = [leaf_hash(e) for e in entries]
    expected = tiles(hashes)
    for path, data in expected.items():
        if folder.read(path) != data:
            raise IntegrityFailure(f"transparency log tile {path} does not match its entries")
    if tree_hash(hashes) != checkpoint.root_hash:
        raise IntegrityFailure("transparency log entries do not hash to the checkpoint's root")
    return VerifiedTree(note, checkpoint, entries, hashes, len(expected))


def prove_inclusion(tree: VerifiedTree, entry: int) -> InclusionResult:
    """Step 5: entry `entry`'s inclusion proof, verified against the checkpoint's root."""
    size = tree.checkpoint.size
    if not 0 <= entry < size:
        raise NotFound(f"entry {entry} is not in a log of {size}")
    proof = inclusion_proof(tree.hashes, entry)
    try:
        verify_inclusion(tree.hashes[entry], entry, size, proof, tree.checkpoint.root_hash)
    except AttestationError as exc:  # pragma: no cover - verify_tree already bound the root
        raise IntegrityFailure(exc.message) from exc
    return InclusionResult(entry, tree.entries[entry], tree.hashes[entry], tuple(proof))


def verify_log(
    root: Path,
    verifier: NoteVerifier,
    entry: int | None = None,
    since: bytes | None = None,
) -> LogVerification:
    """Check a log folder end to end; raises IntegrityFailure at the first thing that is off.

    1. The checkpoint's signature, with the given verifier key (signed-note).
    2. Every entry bundle the size needs: leaf-hash the entries.
    3. Every tile the size needs, byte for byte equal to the tiles recomputed from step 2.
    4. The tree hash of the entries equals the checkpoint's root.
    5. With `entry`: an inclusion proof of that entry, verified against the checkpoint root.
    6. With `since` (an older signed checkpoint note, e.g. one a witness or auditor kept): its
       signature, then a consistency proof from it to this checkpoint: the log was only
       appended to since (IntegrityFailure when history was rewritten).
    """
    tree = verify_tree(root, verifier)
    checkpoint, hashes = tree.checkpoint, tree.hashes
    inclusion = prove_inclusion(tree, entry) if entry is not None else None
    extends = _check_extends(since, verifier, checkpoint, hashes) if since is not None else None
    return LogVerification(
        extends=extends,
        checkpoint=checkpoint,
        key_name=verifier.name,
        key_id=verifier.key_id.hex(),
        tiles_checked=tree.tiles_checked,
        inclusion=inclusion,
    )


def _check_extends(
    since: bytes, verifier: NoteVerifier, checkpoint: Checkpoint, hashes: list[bytes]
) -> Checkpoint:
    """Step 6: the older checkpoint's signature, then consistency from it to `checkpoint`."""
    try:
        older = open_checkpoint(since, verifier)
    except AttestationError as exc:
        raise IntegrityFailure(f"older checkpoint: {exc.message}") from exc
    if older.origin != checkpoint.origin:
        raise IntegrityFailure(f"older checkpoint is of another log ({older.origin:.100})")
    if older.size > checkpoint.size:
        raise IntegrityFailure(
            f"the log shrank: older checkpoint has {older.size} entries, now {checkpoint.size}"
        )
    if older.size > 0:
        proof = consistency_proof(hashes, older.size)
        try:
            verify_consistency(
                older.size, checkpoint.size, older.root_hash, checkpoint.root_hash, proof
            )
        except AttestationError as exc:
            raise IntegrityFailure(exc.message) from exc
    return older


__all__ = ["InclusionResult", "LogVerification", "verify_log"]
