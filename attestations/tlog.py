"""A transparency log's trust core: RFC 6962 Merkle trees, C2SP checkpoints and tiles.

Pure: bytes in, bytes or frozen objects out; no files, no clock, no network. The registry's
log (`registry/tlog/`) stores what this module computes; `modelctl log verify` recomputes it.

Formats followed, and the steps named after them:
- RFC 6962 section 2.1 / RFC 9162 section 2.1: leaf and node hashes, the Merkle Tree Hash, audit
  (inclusion) paths and consistency proofs, and their verification algorithms.
- c2sp.org/tlog-checkpoint: the checkpoint body "<origin>\\n<size>\\n<base64 root>\\n".
- c2sp.org/signed-note: signature lines "\u2014 <name> <base64(key id || signature)>", the
  Ed25519 key id being SHA-256(name || "\\n" || 0x01 || public key)[:4].
- c2sp.org/tlog-tiles: tiles of 256 hashes at `tile/<L>/<N>[.p/<W>]`, entry bundles of
  uint16-length-prefixed entries at `tile/entries/<N>[.p/<W>]`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from attestations.errors import (
    MalformedDocumentError,
    SignatureVerificationError,
    VerificationError,
)

HASH_SIZE = 32
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes, 8192 bytes in a full tile
MAX_ENTRY_SIZE = 0xFFFF  # an entry bundle prefixes each entry with a big-endian uint16 length
_ED25519_ALGORITHM = b"\x01"  # signed-note signature type of Ed25519
_SIGNATURE_DASH = "\u2014"  # the em dash that starts every signed-note signature line
_MAX_ORIGIN = 512


class InclusionProofError(VerificationError):
    """An inclusion proof that does not lead from the entry to the checkpoint's root."""


class ConsistencyProofError(VerificationError):
    """A consistency proof that does not show the newer tree extends the older one."""


# --- RFC 6962 section 2.1: hashing -------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d): the 0x00 prefix keeps leaves apart from nodes."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """k: the largest power of two smaller than size (size > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def tree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over already hashed leaves; the empty tree hashes to SHA-256("")."""
    if not leaf_hashes:
        return hashlib.sha256(b"").digest()
    return root_from_subtrees([(1, h) for h in leaf_hashes])


def root_from_subtrees(subtrees: Sequence[tuple[int, bytes]]) -> bytes:
    """MTH of a tree given as perfect subtrees (size, hash), left to right, sizes powers of two
    that never grow (e.g. a tiled log's right edge: partial tile hashes from the top level
    down). Leaves are subtrees of size 1, so `tree_hash` is this fold."""
    if not subtrees:
        return hashlib.sha256(b"").digest()
    # Fold equal neighbours on a stack, left to right: O(n) without recursion depth.
    stack: list[tuple[int, bytes]] = []
    for subtree in subtrees:
        size, digest = subtree
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, digest = left_size + size, node_hash(left, digest)
        stack.append((size, digest))
    _, root = stack.pop()
    while stack:  # the ragged right edge: smaller subtrees join their left neighbours
        _, left = stack.pop()
        root = node_hash(left, root)
    return root


# --- RFC 6962 section 2.1.1 / RFC 9162 section 2.1.3: inclusion --------------------------------


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf `index` in the tree of these leaves."""
    if not 0 <= index < len(leaf_hashes):
        raise MalformedDocumentError(f"entry {index} is not in a tree of {len(leaf_hashes)}")
    return _path(index, leaf_hashes)


def _path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_path(index, leaves[:k]), tree_hash(leaves[k:])]
    return [*_path(index - k, leaves[k:]), tree_hash(leaves[:k])]


def verify_inclusion(
    entry_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 section 2.1.3.2; raises InclusionProofError when the path does not fit."""
    # Step 1: the index must lie inside the tree.
    if not 0 <= index < tree_size:
        raise InclusionProofError(f"entry {index} is not in a tree of {tree_size}")
    _check_hashes(proof, InclusionProofError)
    # Steps 2-4: walk up from the leaf, the proof's hashes on the side the index bits say.
    fn, sn, r = index, tree_size - 1, entry_hash
    for p in proof:
        if sn == 0:
            raise InclusionProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    # Step 5: the walk must end at the root, with the computed hash equal to the root hash.
    if sn != 0:
        raise InclusionProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise InclusionProofError(f"entry {index} does not lead to the root of tree {tree_size}")


# --- RFC 6962 section 2.1.2 / RFC 9162 section 2.1.4: consistency -------------------------------


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) for 0 < m <= n; empty when m == n."""
    if not 0 < old_size <= len(leaf_hashes):
        raise MalformedDocumentError(
            f"no consistency proof from size {old_size} to size {len(leaf_hashes)}"
        )
    if old_size == len(leaf_hashes):
        return []
    return _subproof(old_size, leaf_hashes, complete=True)


def _subproof(m: int, leaves: Sequence[bytes], *, complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [tree_hash(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete=complete), tree_hash(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], complete=False), tree_hash(leaves[:k])]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2; raises ConsistencyProofError when the trees do not fit."""
    # Step 1: sizes in order; equal trees need an empty proof and equal roots.
    if not 0 < old_size <= new_size:
        raise ConsistencyProofError(f"no consistency from size {old_size} to size {new_size}")
    _check_hashes(proof, ConsistencyProofError)
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ConsistencyProofError(f"two different trees of size {old_size}")
        return
    if not proof:
        raise ConsistencyProofError("empty consistency proof between different sizes")
    # Step 2: a power-of-two old tree is itself a node of the new tree: its root starts the path.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Steps 3-4: shift off the right-edge bits the old tree shares with the new one.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    # Step 5: rebuild both roots from the same path.
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    # Step 6: both roots reproduced and the walk ended at the top.
    if sn != 0 or fr != old_root or sr != new_root:
        raise ConsistencyProofError(
            f"tree {new_size} does not extend tree {old_size} (history was rewritten)"
        )


def _check_hashes(proof: Sequence[bytes], error: type[VerificationError]) -> None:
    if any(len(h) != HASH_SIZE for h in proof):
        raise error("a proof hash is not 32 bytes")


# --- c2sp.org/tlog-checkpoint and c2sp.org/signed-note -----------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head: origin (the log's name), tree size, root hash."""

    origin: str
    size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if not self.origin or len(self.origin) > _MAX_ORIGIN or not self.origin.isprintable():
            raise MalformedDocumentError("checkpoint origin must be one printable line")
        if self.size < 0:
            raise MalformedDocumentError("checkpoint size must not be negative")
        if len(self.root_hash) != HASH_SIZE:
            raise MalformedDocumentError("checkpoint root hash must be 32 bytes")

    def body(self) -> bytes:
        """The signed text: three lines, each ending in a newline."""
        root = base64.b64encode(self.root_hash).decode()
        return f"{self.origin}\n{self.size}\n{root}\n".encode()

    @classmethod
    def parse_body(cls, text: bytes) -> Checkpoint:
        try:
            lines = text.decode("utf-8").split("\n")
        except UnicodeDecodeError as exc:
            raise MalformedDocumentError("checkpoint is not UTF-8") from exc
        # Three lines, optional extension lines, then the empty string after the last newline.
        if len(lines) < 4 or lines[-1] != "":
            raise MalformedDocumentError("checkpoint body must be at least three lines")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
            raise MalformedDocumentError("checkpoint size is not a decimal number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error as exc:
            raise MalformedDocumentError("checkpoint root is not base64") from exc
        return cls(origin=origin, size=int(size_text), root_hash=root)


def key_id(name: str, public_key: bytes) -> bytes:
    """signed-note key id of an Ed25519 key: SHA-256(name || "\\n" || 0x01 || key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + _ED25519_ALGORITHM + public_key).digest()[:4]


def _check_key_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise MalformedDocumentError(f"note key name {name!r} must be non-empty, no spaces or +")


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """One trusted signed-note key: its name and raw 32-byte Ed25519 public key."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.public_key) != HASH_SIZE:
            raise MalformedDocumentError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def vkey(self) -> str:
        """The verifier key string `<name>+<hex key id>+<base64(0x01 || key)>`."""
        encoded = base64.b64encode(_ED25519_ALGORITHM + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        parts = vkey.strip().split("+", 2)  # names hold no "+"; base64 keys may
        if len(parts) != 3:
            raise MalformedDocumentError("a verifier key is <name>+<hex id>+<base64 key>")
        name, id_hex, key_text = parts
        try:
            raw = base64.b64decode(key_text, validate=True)
            claimed_id = bytes.fromhex(id_hex)
        except (binascii.Error, ValueError) as exc:
            raise MalformedDocumentError("verifier key is not hex and base64") from exc
        if raw[:1] != _ED25519_ALGORITHM:
            raise MalformedDocumentError("verifier key is not an Ed25519 key")
        verifier = cls(name=name, public_key=raw[1:])
        if verifier.key_id != claimed_id:
            raise MalformedDocumentError("verifier key id does not match its name and key")
        return verifier


@dataclass(frozen=True, slots=True)
class NoteSigner:
    """An Ed25519 private key under a signed-note key name."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_key_name(self.name)

    @property
    def verifier(self) -> NoteVerifier:
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return NoteVerifier(name=self.name, public_key=raw)

    def sign(self, checkpoint: Checkpoint) -> bytes:
        """The signed note: body, an empty line, one signature line."""
        body = checkpoint.body()
        signature = self.verifier.key_id + self.private_key.sign(body)
        line = f"{_SIGNATURE_DASH} {self.name} {base64.b64encode(signature).decode()}\n"
        return body + b"\n" + line.encode()


def open_checkpoint(note: bytes, verifier: NoteVerifier) -> Checkpoint:
    """Verify a signed checkpoint note and return its checkpoint.

    1. Split the note at its last blank line into body and signature lines (MalformedDocumentError).
    2. Find a signature line with the verifier's name and key id; lines from other keys are
       ignored, as signed-note says (SignatureVerificationError when none is ours).
    3. Verify the Ed25519 signature over the body (SignatureVerificationError).
    4. Parse the body (MalformedDocumentError).
    """
    if len(note) > 1 << 16:
        raise MalformedDocumentError("checkpoint note is larger than 64 KiB")
    body, separator, signatures = note.rpartition(b"\n\n")
    if not separator or not signatures.endswith(b"\n"):
        raise MalformedDocumentError("checkpoint note has no signature block")
    body += b"\n"
    ours = verifier.key_id
    for raw_line in signatures[:-1].split(b"\n"):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedDocumentError("signature line is not UTF-8") from exc
        dash, _, rest = line.partition(" ")
        name, _, encoded = rest.partition(" ")
        if dash != _SIGNATURE_DASH or not name or not encoded:
            raise MalformedDocumentError("malformed signature line in checkpoint note")
        try:
            signature = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise MalformedDocumentError("signature is not base64") from exc
        if name != verifier.name or signature[:4] != ours:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public_key).verify(signature[4:], body)
        except InvalidSignature as exc:
            raise SignatureVerificationError(
                f"checkpoint signature by {verifier.name} does not verify"
            ) from exc
        return Checkpoint.parse_body(body)
    raise SignatureVerificationError(f"checkpoint is not signed by {verifier.name}")


# --- c2sp.org/tlog-tiles -----------------------------------------------------------------------


def _index_path(index: int) -> str:
    """1234067 -> x001/x234/067: 3-digit elements, all but the last prefixed with x."""
    if index < 0:
        raise MalformedDocumentError("tile index must not be negative")
    elements = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        elements.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(elements))


def _width_suffix(width: int) -> str:
    if not 0 < width <= TILE_WIDTH:
        raise MalformedDocumentError(f"tile width {width} is not between 1 and 256")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int) -> str:
    """`tile/<L>/<N>[.p/<W>]`."""
    if not 0 <= level <= 63:
        raise MalformedDocumentError(f"tile level {level} is not between 0 and 63")
    return f"tile/{level}/{_index_path(index)}{_width_suffix(width)}"


def entries_path(index: int, width: int) -> str:
    """`tile/entries/<N>[.p/<W>]`."""
    return f"tile/entries/{_index_path(index)}{_width_suffix(width)}"


def level_hashes(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """The hashes each tile level holds: level 0 the leaf hashes, level L+1 the tree hash of
    every *full* group of 256 level-L hashes; levels stop when a level would be empty."""
    levels = [list(leaf_hashes)]
    while len(levels[-1]) >= TILE_WIDTH:
        below = levels[-1]
        full = len(below) - len(below) % TILE_WIDTH
        levels.append([tree_hash(below[i : i + TILE_WIDTH]) for i in range(0, full, TILE_WIDTH)])
    return levels if levels[0] else []


def tiles(leaf_hashes: Sequence[bytes]) -> dict[str, bytes]:
    """Every tile of the tree of these leaves, by path (the partial ones of this size only)."""
    out: dict[str, bytes] = {}
    for level, hashes in enumerate(level_hashes(leaf_hashes)):
        for start in range(0, len(hashes), TILE_WIDTH):
            chunk = hashes[start : start + TILE_WIDTH]
            out[tile_path(level, start // TILE_WIDTH, len(chunk))] = b"".join(chunk)
    return out


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length and the entry's bytes."""
    if len(entries) > TILE_WIDTH:
        raise MalformedDocumentError("an entry bundle holds at most 256 entries")
    parts: list[bytes] = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise MalformedDocumentError(f"log entry of {len(entry)} bytes is over 65535")
        parts.append(len(entry).to_bytes(2, "big") + entry)
    return b"".join(parts)


def decode_bundle(bundle: bytes) -> list[bytes]:
    """The entries of a bundle; a truncated or overlong bundle is MalformedDocumentError."""
    entries: list[bytes] = []
    offset = 0
    while offset < len(bundle):
        if offset + 2 > len(bundle):
            raise MalformedDocumentError("entry bundle ends inside a length prefix")
        size = int.from_bytes(bundle[offset : offset + 2], "big")
        offset += 2
        if offset + size > len(bundle):
            raise MalformedDocumentError("entry bundle ends inside an entry")
        entries.append(bundle[offset : offset + size])
        offset += size
    if len(entries) > TILE_WIDTH:
        raise MalformedDocumentError("an entry bundle holds at most 256 entries")
    return entries


def split_tile(tile: bytes) -> list[bytes]:
    """The hashes of a tile; a tile that is not whole hashes is MalformedDocumentError."""
    if not tile or len(tile) % HASH_SIZE or len(tile) > TILE_WIDTH * HASH_SIZE:
        raise MalformedDocumentError(f"tile of {len(tile)} bytes is not 1-256 whole hashes")
    return [tile[i : i + HASH_SIZE] for i in range(0, len(tile), HASH_SIZE)]


__all__ = [
    "HASH_SIZE",
    "MAX_ENTRY_SIZE",
    "TILE_WIDTH",
    "Checkpoint",
    "ConsistencyProofError",
    "InclusionProofError",
    "NoteSigner",
    "NoteVerifier",
    "consistency_proof",
    "decode_bundle",
    "encode_bundle",
    "entries_path",
    "inclusion_proof",
    "key_id",
    "leaf_hash",
    "level_hashes",
    "node_hash",
    "open_checkpoint",
    "root_from_subtrees",
    "split_tile",
    "tile_path",
    "tiles",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]
