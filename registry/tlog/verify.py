"""Offline verification of a log folder: `modelctl log verify`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attestations.errors import AttestationError
from attestations.tlog import (
    Checkpoint,
    NoteVerifier,
    inclusion_proof,
    leaf_hash,
    tiles,
    tree_hash,
    verify_inclusion,
)
from registry.errors import InputError, IntegrityFailure, NotFound
from registry.tlog.files import LogFolder


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


def verify_log(root: Path, verifier: NoteVerifier, entry: int | None = None) -> LogVerification:
    """Check a log folder end to end; raises IntegrityFailure at the first thing that is off.

    1. The checkpoint's signature, with the given verifier key (signed-note).
    2. Every entry bundle the size needs: leaf-hash the entries.
    3. Every tile the size needs, byte for byte equal to the tiles recomputed from step 2.
    4. The tree hash of the entries equals the checkpoint's root.
    5. With `entry`: an inclusion proof of that entry, verified against the checkpoint root.
    """
    folder = LogFolder(root)
    if not folder.has_checkpoint():
        raise InputError(f"no transparency log checkpoint in {root}")
    checkpoint = folder.checkpoint(verifier)
    entries = folder.entries(checkpoint.size)
    hashes = [leaf_hash(e) for e in entries]
    expected = tiles(hashes)
    for path, data in expected.items():
        if folder.read(path) != data:
            raise IntegrityFailure(f"transparency log tile {path} does not match its entries")
    if tree_hash(hashes) != checkpoint.root_hash:
        raise IntegrityFailure("transparency log entries do not hash to the checkpoint's root")
    inclusion = None
    if entry is not None:
        if not 0 <= entry < checkpoint.size:
            raise NotFound(f"entry {entry} is not in a log of {checkpoint.size}")
        proof = inclusion_proof(hashes, entry)
        try:
            verify_inclusion(hashes[entry], entry, checkpoint.size, proof, checkpoint.root_hash)
        except AttestationError as exc:  # pragma: no cover - steps 2-4 already bind the root
            raise IntegrityFailure(exc.message) from exc
        inclusion = InclusionResult(entry, entries[entry], hashes[entry], tuple(proof))
    return LogVerification(
        checkpoint=checkpoint,
        key_name=verifier.name,
        key_id=verifier.key_id.hex(),
        tiles_checked=len(expected),
        inclusion=inclusion,
    )


__all__ = ["InclusionResult", "LogVerification", "verify_log"]
