"""The log as files under one folder: `checkpoint`, `tile/<L>/<N>`, `tile/entries/<N>`.

The layout is c2sp.org/tlog-tiles, so the folder can be served as static files as it is.
Every file is written whole (temp, fsync, rename); bundles and tiles before the checkpoint
that needs them, so a crash leaves the old checkpoint valid. Appends are serialized by the
caller (`registry.tlog.append` holds the database lock row); a thread lock covers one process.

Cost: an append reads and rewrites only the right edge (each level's partial tile), so it
grows with the batch and the log's height, not its size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from attestations.errors import AttestationError
from attestations.tlog import (
    TILE_WIDTH,
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    decode_bundle,
    encode_bundle,
    entries_path,
    leaf_hash,
    open_checkpoint,
    root_from_subtrees,
    split_tile,
    tile_path,
    tree_hash,
)
from registry.errors import IntegrityFailure, StorageError
from registry.fsutil import atomic_write

CHECKPOINT = "checkpoint"


class LogFolder:
    """Reads of a log folder; every path is one this package built, never a caller's text."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, relative: str) -> bytes:
        try:
            return (self.root / relative).read_bytes()
        except FileNotFoundError as exc:
            raise IntegrityFailure(f"transparency log file {relative} is missing") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {self.root / relative}: {exc.strerror}") from exc

    def has_checkpoint(self) -> bool:
        return (self.root / CHECKPOINT).is_file()

    def checkpoint(self, verifier: NoteVerifier) -> Checkpoint:
        try:
            return open_checkpoint(self.read(CHECKPOINT), verifier)
        except AttestationError as exc:
            raise IntegrityFailure(f"transparency log checkpoint: {exc.message}") from exc

    def entries(self, size: int) -> list[bytes]:
        """The first `size` entries, from their bundles."""
        out: list[bytes] = []
        for index in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
            width = min(TILE_WIDTH, size - index * TILE_WIDTH)
            bundle = self.read(entries_path(index, width))
            try:
                got = decode_bundle(bundle)
            except AttestationError as exc:
                raise IntegrityFailure(f"entry bundle {index}: {exc.message}") from exc
            if len(got) != width:
                raise IntegrityFailure(f"entry bundle {index} holds {len(got)}, not {width}")
            out.extend(got)
        return out

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The first `size` leaf hashes, from the level-0 tiles."""
        out: list[bytes] = []
        for index in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
            width = min(TILE_WIDTH, size - index * TILE_WIDTH)
            try:
                hashes = split_tile(self.read(tile_path(0, index, width)))
            except AttestationError as exc:
                raise IntegrityFailure(f"level-0 tile {index}: {exc.message}") from exc
            if len(hashes) != width:
                raise IntegrityFailure(f"level-0 tile {index} holds {len(hashes)}, not {width}")
            out.extend(hashes)
        return out


class LogWriter:
    """Appends entries to the log folder and signs a new checkpoint.

    `signer` is a factory, called at the first append: reading a log never makes a key.
    """

    def __init__(self, root: Path, signer: Callable[[], NoteSigner]) -> None:
        self.folder = LogFolder(root)
        self._make_signer = signer
        self._signer: NoteSigner | None = None
        self._lock = threading.Lock()

    @property
    def signer(self) -> NoteSigner:
        if self._signer is None:
            self._signer = self._make_signer()
        return self._signer

    def current(self) -> Checkpoint | None:
        """The verified checkpoint, None for a log with none yet."""
        if not self.folder.has_checkpoint():
            return None
        return self.folder.checkpoint(self.signer.verifier)

    def append(self, entries: Sequence[bytes]) -> tuple[int, Checkpoint]:
        """Append `entries`; returns the index of the first one and the new checkpoint.

        1. Verify the current checkpoint with the log key, and that the right edge of the tree
           (each level's partial tile) hashes to its root (IntegrityFailure): never extend a
           log that was tampered with.
        2. Write the entry bundles from the last partial one on, then, level by level, the
           tiles from the last partial one on; a tile that fills up adds its tree hash to the
           level above.
        3. Sign and write the new checkpoint (last: it is what makes the new entries count).

        Only the right edge is read and rewritten: the cost grows with the batch, not the log.
        """
        if not entries:
            raise ValueError("append needs at least one entry")  # a programming error
        with self._lock:
            signer = self.signer
            old = self.current()
            size = old.size if old is not None else 0
            edges = self._right_edge(size)
            if old is not None and root_from_subtrees(_subtrees(edges)) != old.root_hash:
                raise IntegrityFailure("transparency log tiles do not hash to its checkpoint")
            try:
                bundle = [*self._partial_bundle(size), *entries]
                first = size // TILE_WIDTH
                for offset in range(0, len(bundle), TILE_WIDTH):
                    chunk = bundle[offset : offset + TILE_WIDTH]
                    self._write(
                        entries_path(first + offset // TILE_WIDTH, len(chunk)), encode_bundle(chunk)
                    )
            except AttestationError as exc:
                raise StorageError(f"cannot append to the transparency log: {exc.message}") from exc
            new_size = size + len(entries)
            rising = [leaf_hash(e) for e in entries]  # new hashes entering the current level
            new_edges: list[list[bytes]] = []
            level = 0
            while rising or level < len(edges):
                count = size // TILE_WIDTH**level  # hashes this level held before
                pending = [*(edges[level] if level < len(edges) else []), *rising]
                first = count // TILE_WIDTH
                rising = []
                for offset in range(0, len(pending), TILE_WIDTH):
                    chunk = pending[offset : offset + TILE_WIDTH]
                    self._write(
                        tile_path(level, first + offset // TILE_WIDTH, len(chunk)), b"".join(chunk)
                    )
                    if len(chunk) == TILE_WIDTH:
                        rising.append(tree_hash(chunk))
                    else:
                        new_edges.append(chunk)
                if len(pending) % TILE_WIDTH == 0:
                    new_edges.append([])
                level += 1
            checkpoint = Checkpoint(signer.name, new_size, root_from_subtrees(_subtrees(new_edges)))
            self._write(CHECKPOINT, signer.sign(checkpoint))
            return size, checkpoint

    def _right_edge(self, size: int) -> list[list[bytes]]:
        """Each level's partial tile hashes (empty where the level ends on a full tile)."""
        edges: list[list[bytes]] = []
        level = 0
        while (count := size // TILE_WIDTH**level) > 0:
            width = count % TILE_WIDTH
            if width == 0:
                edges.append([])
            else:
                try:
                    tile = split_tile(
                        self.folder.read(tile_path(level, count // TILE_WIDTH, width))
                    )
                except AttestationError as exc:
                    raise IntegrityFailure(f"level-{level} tile: {exc.message}") from exc
                if len(tile) != width:
                    raise IntegrityFailure(f"level-{level} tile holds {len(tile)}, not {width}")
                edges.append(tile)
            level += 1
        return edges

    def _partial_bundle(self, size: int) -> list[bytes]:
        width = size % TILE_WIDTH
        if width == 0:
            return []
        try:
            return decode_bundle(self.folder.read(entries_path(size // TILE_WIDTH, width)))
        except AttestationError as exc:
            raise IntegrityFailure(f"last entry bundle: {exc.message}") from exc

    def _write(self, relative: str, data: bytes) -> None:
        path = self.folder.root / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as exc:
            raise StorageError(f"cannot create {path.parent}: {exc.strerror}") from exc
        atomic_write(path, data, overwrite=True)


def _subtrees(edges: Sequence[Sequence[bytes]]) -> list[tuple[int, bytes]]:
    """The right edge as perfect subtrees, top level first: a level-L hash spans 256**L leaves."""
    return [(TILE_WIDTH**level, h) for level in range(len(edges) - 1, -1, -1) for h in edges[level]]


__all__ = ["CHECKPOINT", "LogFolder", "LogWriter"]
