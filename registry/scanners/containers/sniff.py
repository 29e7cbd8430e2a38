"""Which container a file is, from its first bytes (and size): `sniff` returns a `Kind`."""

from __future__ import annotations

import io
import re
import struct
from enum import StrEnum

from registry.scanners.containers.opcodes import genops


class Kind(StrEnum):
    ZIP = "zip"
    NPY = "npy"
    TAR = "tar"
    PICKLE = "pickle"
    GZIP = "gzip"
    BZ2 = "bz2"
    XZ = "xz"
    LZMA = "lzma"  # .lzma "alone" stream: joblib's compress="lzma"
    ZLIB = "zlib"  # joblib's compress="zlib"
    JOBLIB_ZF = "joblib-zfile"  # joblib < 0.10: b"ZF" + hex length + zlib stream
    LZ4 = "lz4"
    SEVENZ = "7z"


COMPRESSED = frozenset(
    {Kind.GZIP, Kind.BZ2, Kind.XZ, Kind.LZMA, Kind.ZLIB, Kind.JOBLIB_ZF, Kind.LZ4, Kind.SEVENZ}
)

ZIP_LOCAL = b"PK\x03\x04"
NPY_MAGIC = b"\x93NUMPY"
SEVENZ_MAGIC = b"7z\xbc\xaf\x27\x1c"
XZ_MAGIC = b"\xfd7zXZ\x00"
LZ4_MAGIC = b"\x04\x22\x4d\x18"

#: Opcodes Python's unpickler accepts as the *first* opcode of a stream. The unpickler does not
#: require PROTO first, nor restrict later opcodes to the announced protocol, so a stream may
#: start with any opcode that pushes a value (or MARK, PROTO, FRAME, GLOBAL, PERSID).
_PICKLE_FIRST = frozenset(b"()]}NIJKMLFGSTUVXBCcP\x80\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x95\x96\x97")


#: Fixed magic prefixes, in the order the consumers test them.
_PREFIXES: tuple[tuple[bytes, Kind], ...] = (
    (ZIP_LOCAL, Kind.ZIP),
    (NPY_MAGIC, Kind.NPY),
    (SEVENZ_MAGIC, Kind.SEVENZ),
    (b"\x1f\x8b", Kind.GZIP),
    (XZ_MAGIC, Kind.XZ),
    (LZ4_MAGIC, Kind.LZ4),
    (b"ZF", Kind.JOBLIB_ZF),
)


def sniff(head: bytes, size: int | None = None) -> Kind | None:
    """The container kind from the leading bytes, in the order the consumers decide.

    `torch.load` and `np.load` take `PK\\x03\\x04` at offset 0 as zip; np.load takes
    `\\x93NUMPY` as npy; joblib decides its decompressor from the prefixes below before it
    unpickles; torch tries tar (ustar magic or a valid v7 header checksum) before the legacy
    stacked pickles. Only then is the content a raw pickle (see `looks_like_pickle`).
    """
    for prefix, kind in _PREFIXES:
        if head.startswith(prefix):
            return kind
    if head.startswith(b"BZh") and len(head) >= 4 and head[3:4] in b"123456789":
        return Kind.BZ2
    if head.startswith(b"\x5d\x00\x00"):
        # LZMA "alone": properties byte 0x5d (lc=3, lp=0, pb=2) then a little-endian dict size.
        # `]` is EMPTY_LIST but `\x00` is no opcode, so no pickle starts this way.
        return Kind.LZMA
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        # zlib header: CM=8, CINFO=7 and FCHECK makes the 16-bit header divisible by 31.
        # `x` is no pickle opcode, so this cannot shadow a pickle.
        return Kind.ZLIB
    if is_tar_header(head):
        return Kind.TAR
    return Kind.PICKLE if looks_like_pickle(head, size) else None


def is_tar_header(head: bytes) -> bool:
    """ustar magic at 257, or a v7 header whose checksum verifies (what `tarfile` accepts)."""
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    block = head[:512]
    if block[0] == 0:  # an empty name: tarfile treats a zero block as end of archive
        return False
    raw = block[148:156]
    try:
        stored = int(raw.replace(b"\x00", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = sum(struct.unpack("148b", block[:148])) + 256 + sum(struct.unpack("356b", block[156:]))
    return stored in (unsigned, signed)


def looks_like_pickle(head: bytes, size: int | None = None) -> bool:
    """Whether `head` (the first bytes of a `size`-byte stream) is the start of a pickle.

    Protocol 2+: PROTO (0x80) followed by a version 0..5 (the unpickler refuses higher ones).
    Protocol 0/1, and PROTO-less streams (the unpickler accepts any opcode first, whatever the
    protocol): the first byte must be an opcode that can start a stream *and* the head must
    disassemble without error up to STOP, or up to where the head was cut. A cut is accepted
    only where the file really goes on: a length-prefixed argument (BINSTRING, BINUNICODE,
    BINBYTES...) must end inside the file, so `This is a model card` ('T' + a 544 MB length)
    is text while a 5 KB BINSTRING hiding a payload after it is still a pickle. Random binary
    data hits an undefined opcode within a few bytes and text within a word; a misfire is
    reported malformed by the emulator, never clean.

    A stream that breaks (or ends) after it has imported something, by GLOBAL or INST naming a
    Python module and attribute or by STACK_GLOBAL, is a pickle too: the loader imports (and
    may call) before it fails, so it is a broken pickle to report, not "no format" (nullifAI).
    """
    if not head:
        return False
    if head[0] == 0x80:
        return len(head) >= 2 and head[1] <= 5
    if head[0] not in _PICKLE_FIRST:
        return False
    total = len(head) if size is None else size
    stream = io.BytesIO(head)
    next_op = 0
    imports = False
    try:
        for op, arg, _pos in genops(stream):
            next_op = stream.tell()
            if op.name == "STOP":
                return True
            if op.name == "STACK_GLOBAL" or (
                op.name in ("GLOBAL", "INST") and _IMPORT_OPERAND.fullmatch(str(arg))
            ):
                imports = True
    except ValueError:
        return imports or (total > len(head) and _cut_by_head(head, next_op, total))
    return total > len(head)  # pragma: no cover - genops raises without STOP


#: GLOBAL / INST operands as pickletools shows them ("module name") that `find_class` could
#: import: dotted Python identifiers. Text that happens to start with `c` or `i` is not one.
_IMPORT_OPERAND = re.compile(r"[A-Za-z_][\w.]* [A-Za-z_][\w.]*", re.ASCII)


#: Length-prefixed opcodes: (width of the length field, whether a length is present at all).
_LENGTH_WIDTH = {
    ord("T"): 4,
    ord("X"): 4,
    ord("B"): 4,
    ord("U"): 1,
    ord("C"): 1,
    0x8C: 1,  # SHORT_BINUNICODE
    0x8D: 8,  # BINUNICODE8
    0x8E: 8,  # BINBYTES8
    0x96: 8,  # BYTEARRAY8
    0x8B: 4,  # LONG4
    0x8A: 1,  # LONG1
}


def _cut_by_head(head: bytes, start: int, total: int) -> bool:
    """The opcode at `start` did not fit in the head: is that only because the head ends?"""
    if start >= len(head):
        return True
    width = _LENGTH_WIDTH.get(head[start])
    if width is None:
        # Fixed-size or newline-terminated argument: plausible only when the head is full.
        return len(head) - start < 64 or b"\n" not in head[start:]
    field_bytes = head[start + 1 : start + 1 + width]
    if len(field_bytes) < width:
        return True
    length = int.from_bytes(field_bytes, "little", signed=width == 4 and head[start] == 0x8B)
    return length >= 0 and start + 1 + width + length <= total
