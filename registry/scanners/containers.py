"""Readers for the containers pickles travel in: zip (PyTorch, npz), tar, the legacy PyTorch
stacked format, npy, and the gzip / bz2 / xz / lzma / zlib / 7z wrappers (joblib's included).

Everything here is a pure function over bytes or a seekable binary stream. Nothing is ever
unpickled, imported, extracted to disk or executed: pickle streams are only *delimited* here
(with `pickletools.genops`, a disassembler that never resolves a global) and handed to the
pickle-machine emulator by the scanner.

The zip reader is deliberately strict. PyTorch (miniz) reads the central directory and ignores
CRCs and flag bits; Python's `zipfile` trusts local headers in places, shifts offsets for
prepended data and raises on flags. Wherever two such readers could see different bytes for the
same member, the reader reports an `Issue` instead of choosing one reading.
"""

from __future__ import annotations

import ast
import bz2
import io
import lzma
import pickletools
import re
import struct
import tarfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, BinaryIO, Protocol

from registry.scanners.base import JSONValue, ScanLimits, Severity, Verdict

# ---------------------------------------------------------------------------------------------
# Issues


@dataclass(frozen=True, slots=True)
class Issue:
    """Something about a container that is not clean; the scanner turns it into a `Finding`."""

    rule: str
    verdict: Verdict
    severity: Severity
    message: str
    offset: int | None = None
    member: str | None = None
    evidence: Mapping[str, JSONValue] = field(default_factory=dict)


class ContainerError(Exception):
    """The container cannot be read (further); `issue` says why."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue


def malformed(rule: str, message: str, **kw: object) -> ContainerError:
    return ContainerError(_issue(rule, Verdict.MALFORMED, Severity.HIGH, message, **kw))


def suspicious(rule: str, message: str, **kw: object) -> Issue:
    return _issue(rule, Verdict.SUSPICIOUS, Severity.HIGH, message, **kw)


def _issue(rule: str, verdict: Verdict, severity: Severity, message: str, **kw: object) -> Issue:
    offset = kw.pop("offset", None)
    member = kw.pop("member", None)
    evidence: dict[str, JSONValue] = {}
    for key, value in kw.items():
        if isinstance(value, str | int | float | bool) or value is None:
            evidence[key] = value
        else:
            evidence[key] = repr(value)
    return Issue(
        rule=rule,
        verdict=verdict,
        severity=severity,
        message=message,
        offset=offset if isinstance(offset, int) else None,
        member=member if isinstance(member, str) else None,
        evidence=evidence,
    )


# ---------------------------------------------------------------------------------------------
# Sniffing


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
    try:
        for op, _arg, _pos in pickletools.genops(stream):
            next_op = stream.tell()
            if op.name == "STOP":
                return True
    except ValueError:
        return total > len(head) and _cut_by_head(head, next_op, total)
    return total > len(head)  # pragma: no cover - genops raises without STOP


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


# ---------------------------------------------------------------------------------------------
# Delimiting pickle streams (no value is ever built: genops only decodes opcode arguments)


@dataclass(frozen=True, slots=True)
class PickleSpan:
    start: int
    end: int  # just past STOP


def pickle_end(stream: IO[bytes], start: int) -> int:
    """Where the pickle that starts at `start` ends (just past its STOP opcode).

    Raises `ValueError` for a stream that does not disassemble (unknown opcode, truncation).
    """
    stream.seek(start)
    for op, _arg, _pos in pickletools.genops(stream):
        if op.name == "STOP":
            return stream.tell()
    raise ValueError("pickle exhausted before seeing STOP")  # pragma: no cover - genops raises


def disassemble_until_stop(data: bytes) -> int | None:
    try:
        return pickle_end(io.BytesIO(data), 0)
    except ValueError:
        return None


def pickle_literal(stream: IO[bytes], span: PickleSpan) -> object | None:
    """The value of a pickle that is a single literal (int, str, bytes, bool, None), else None.

    Used for the legacy torch magic number, protocol version and counts: a *computed* value
    (a REDUCE producing the magic number, technique C8) is not a literal and yields None.
    """
    values: list[object] = []
    stream.seek(span.start)
    for op, arg, _pos in pickletools.genops(stream):
        if op.name in ("PROTO", "FRAME", "STOP", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            continue
        if op.name in ("NONE",):
            values.append(None)
        elif op.name in ("NEWTRUE", "NEWFALSE"):
            values.append(op.name == "NEWTRUE")
        elif op.name in (
            "INT",
            "BININT",
            "BININT1",
            "BININT2",
            "LONG",
            "LONG1",
            "LONG4",
            "SHORT_BINUNICODE",
            "BINUNICODE",
            "BINUNICODE8",
            "UNICODE",
            "SHORT_BINBYTES",
            "BINBYTES",
            "BINBYTES8",
        ):
            values.append(arg)
        else:
            return None
    return values[0] if len(values) == 1 else None


def pickle_strings(stream: IO[bytes], span: PickleSpan) -> list[str] | None:
    """The strings of a pickle that is a flat list/tuple of string literals, else None."""
    out: list[str] = []
    allowed = {
        "PROTO",
        "FRAME",
        "STOP",
        "MARK",
        "EMPTY_LIST",
        "LIST",
        "APPEND",
        "APPENDS",
        "TUPLE",
        "EMPTY_TUPLE",
        "TUPLE1",
        "TUPLE2",
        "TUPLE3",
        "MEMOIZE",
        "PUT",
        "BINPUT",
        "LONG_BINPUT",
    }
    stream.seek(span.start)
    for op, arg, _pos in pickletools.genops(stream):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            out.append(str(arg))
        elif op.name in ("SHORT_BINSTRING", "BINSTRING", "STRING"):
            out.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
        elif op.name not in allowed:
            return None
    return out


def pickle_globals(stream: IO[bytes], span: PickleSpan) -> list[str]:
    """`module.name` of the literal GLOBAL opcodes, and STACK_GLOBAL operands that are literal
    strings immediately before it. Only used to size legacy torch storages; the security
    decision is the emulator's."""
    names: list[str] = []
    recent: list[str] = []
    stream.seek(span.start)
    for op, arg, _pos in pickletools.genops(stream):
        if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
            names.append(arg.replace(" ", "."))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            recent = [*recent[-1:], str(arg)]
        elif op.name == "STACK_GLOBAL" and len(recent) == 2:
            names.append(".".join(recent))
        elif op.name not in ("MEMOIZE", "BINPUT", "PUT", "LONG_BINPUT"):
            recent = []
    return names


# ---------------------------------------------------------------------------------------------
# Legacy PyTorch formats

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PROTOCOL = 1001

#: Element sizes of the legacy typed storages, by class name (torch/storage.py).
STORAGE_ELEMENT_SIZE: Mapping[str, int] = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8,
    "QUInt8Storage": 1,
    "QInt8Storage": 1,
    "QInt32Storage": 4,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
}
_ELEMENT_SIZES = (1, 2, 4, 8, 16)


@dataclass(frozen=True, slots=True)
class LegacyStacked:
    """The legacy (non-zip, non-tar) `torch.save` layout: five pickles, then raw storages."""

    magic: PickleSpan
    protocol: PickleSpan
    sys_info: PickleSpan
    main: PickleSpan
    storage_keys: PickleSpan
    storage_bytes: int
    issues: tuple[Issue, ...]


#: The legacy magic-number pickle is ~15 bytes; a first pickle longer than this is not it, and
#: deciding must not disassemble a multi-gigabyte raw pickle just to find its end.
_LEGACY_MAGIC_PICKLE_MAX = 64


def is_legacy_stacked(stream: IO[bytes]) -> bool:
    """Whether the first pickle is the literal legacy magic number, as torch compares it."""
    stream.seek(0)
    head = stream.read(_LEGACY_MAGIC_PICKLE_MAX)
    end = disassemble_until_stop(head)
    if end is None:
        return False
    try:
        return pickle_literal(io.BytesIO(head), PickleSpan(0, end)) == TORCH_LEGACY_MAGIC
    except ValueError:
        return False


def read_legacy_stacked(stream: IO[bytes], size: int, limits: ScanLimits) -> LegacyStacked:
    """Delimit the five pickles `torch.serialization._legacy_load` reads, and check the raw
    storages after them (int64 element count + data, per storage key)."""
    spans: list[PickleSpan] = []
    pos = 0
    names = ("magic number", "protocol version", "sys info", "main", "storage keys")
    for what in names:
        try:
            end = pickle_end(stream, pos)
        except ValueError as exc:
            raise malformed(
                "torch.legacy.truncated",
                f"legacy torch file: the {what} pickle does not parse: {exc}",
                offset=pos,
                spans=len(spans),
            ) from None
        spans.append(PickleSpan(pos, end))
        pos = end
    issues: list[Issue] = []
    version = pickle_literal(stream, spans[1])
    if version != TORCH_LEGACY_PROTOCOL:
        issues.append(
            suspicious(
                "torch.legacy.protocol",
                f"legacy torch protocol version is {version!r}, not a literal 1001",
                offset=spans[1].start,
            )
        )
    keys = pickle_strings(stream, spans[4])
    if keys is None:
        issues.append(
            suspicious(
                "torch.legacy.storage-keys",
                "legacy torch storage-keys pickle is not a plain list of strings",
                offset=spans[4].start,
            )
        )
    elif len(keys) > limits.max_items:
        raise malformed("torch.legacy.too-many-storages", "too many storages", count=len(keys))
    else:
        issue = _check_raw_storages(stream, pos, size, len(keys))
        if issue is not None:
            issues.append(issue)
    return LegacyStacked(
        magic=spans[0],
        protocol=spans[1],
        sys_info=spans[2],
        main=spans[3],
        storage_keys=spans[4],
        storage_bytes=size - pos,
        issues=tuple(issues),
    )


def _check_raw_storages(stream: IO[bytes], start: int, size: int, count: int) -> Issue | None:
    """Each storage is an int64 element count and count * element_size bytes.

    The element sizes live in the main pickle's persistent ids, which only the emulator can
    evaluate, so this follows every element size (1..16) breadth-first, keeping a bounded
    frontier of offsets. Torch never reads past the last storage: bytes after it are hidden
    content; a layout that runs past the end is a truncated file.
    """
    frontier = {start}
    for _ in range(count):
        nxt: set[int] = set()
        for off in frontier:
            if off + 8 > size:
                continue
            stream.seek(off)
            (numel,) = struct.unpack("<q", stream.read(8))
            if numel < 0:
                continue
            nxt.update(e for e in (off + 8 + numel * s for s in _ELEMENT_SIZES) if e <= size)
        if not nxt:
            return _issue(
                "torch.legacy.storage-truncated",
                Verdict.MALFORMED,
                Severity.HIGH,
                "legacy torch raw storages run past the end of the file",
                offset=start,
            )
        if len(nxt) > 4096:
            return _issue(
                "torch.legacy.storage-unverified",
                Verdict.CLEAN,
                Severity.INFO,
                "legacy torch raw storage layout too ambiguous to verify",
                offset=start,
            )
        frontier = nxt
    if size in frontier:
        return None
    return suspicious(
        "torch.legacy.trailing-bytes",
        "bytes after the last raw storage of a legacy torch file (torch never reads them)",
        offset=min(frontier),
        trailing=size - max(o for o in frontier if o <= size),
    )


@dataclass(frozen=True, slots=True)
class LegacyTarPickles:
    """The pickles of a legacy tar member (`storages` or `tensors`), with raw records skipped."""

    spans: tuple[PickleSpan, ...]
    issues: tuple[Issue, ...]


def split_legacy_tar_member(data: bytes, which: str, limits: ScanLimits) -> LegacyTarPickles:
    """`storages`: count pickle, then per storage an (key, location, type) pickle + int64 numel +
    raw data, then a storage-views pickle. `tensors`: count pickle, then per tensor an args
    pickle + int32 ndim + 4 pad bytes + 8*ndim sizes + 8*ndim strides + int64 offset."""
    stream = io.BytesIO(data)
    spans: list[PickleSpan] = []
    issues: list[Issue] = []

    def next_pickle(pos: int) -> PickleSpan:
        try:
            span = PickleSpan(pos, pickle_end(stream, pos))
        except ValueError as exc:
            raise malformed(
                "torch.tar.pickle",
                f"legacy torch tar: {which} pickle at {pos} does not parse: {exc}",
                offset=pos,
                member=which,
            ) from None
        spans.append(span)
        return span

    count_span = next_pickle(0)
    count = pickle_literal(stream, count_span)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        issues.append(
            suspicious(
                "torch.tar.count", f"{which}: record count is not a literal int", member=which
            )
        )
        return LegacyTarPickles(tuple(spans), tuple(issues))
    if count > limits.max_items:
        raise malformed("torch.tar.count", f"{which}: too many records", count=count, member=which)
    pos = count_span.end
    for _ in range(count):
        span = next_pickle(pos)
        pos = span.end
        if which == "storages":
            types = [
                g
                for g in pickle_globals(stream, span)
                if g.rsplit(".", 1)[-1] in STORAGE_ELEMENT_SIZE
            ]
            if len(types) != 1:
                raise malformed(
                    "torch.tar.storage-type",
                    "legacy torch tar: storage record names no known storage type",
                    offset=span.start,
                    member=which,
                )
            element = STORAGE_ELEMENT_SIZE[types[0].rsplit(".", 1)[-1]]
            header = data[pos : pos + 8]
            if len(header) < 8:
                raise malformed("torch.tar.truncated", f"{which} truncated", member=which)
            (numel,) = struct.unpack("<q", header)
            pos += 8 + numel * element
        else:
            header = data[pos : pos + 8]
            if len(header) < 8:
                raise malformed("torch.tar.truncated", f"{which} truncated", member=which)
            (ndim,) = struct.unpack("<i", header[:4])
            if ndim < 0 or ndim > 64:
                raise malformed("torch.tar.ndim", f"{which}: bad ndim {ndim}", member=which)
            pos += 8 + 16 * ndim + 8
        if numel_invalid(pos, len(data)):
            raise malformed("torch.tar.truncated", f"{which} truncated", member=which, offset=pos)
    if which == "storages":
        pos = next_pickle(pos).end
    if pos != len(data):
        issues.append(
            suspicious(
                "torch.tar.trailing-bytes",
                f"{which}: bytes after the last record (torch never reads them)",
                member=which,
                offset=pos,
            )
        )
    return LegacyTarPickles(tuple(spans), tuple(issues))


def numel_invalid(pos: int, size: int) -> bool:
    return pos < 0 or pos > size


@dataclass(frozen=True, slots=True)
class TarMember:
    name: str
    data: bytes | None  # None: not read (not a regular file, or too large)
    size: int
    type: str


@dataclass(frozen=True, slots=True)
class TarArchive:
    members: tuple[TarMember, ...]
    issues: tuple[Issue, ...]


def read_tar(
    fileobj: BinaryIO, limits: ScanLimits, want: Callable[[str, bytes, int], bool]
) -> TarArchive:
    """Read a tar the way `torch.load` does (Python's `tarfile`, PAX), without extracting.

    `want(name, first_bytes, size)` says which regular members to read into memory. Duplicate names
    (tarfile's `getmember` takes the last), and links or special files where torch extracts a
    member, are reported.
    """
    members: list[TarMember] = []
    issues: list[Issue] = []
    seen: set[str] = set()
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r:", format=tarfile.PAX_FORMAT)  # noqa: SIM115
    except tarfile.TarError as exc:
        raise malformed("tar.unreadable", f"tar archive cannot be read: {exc}") from None
    with tar:
        count = 0
        while True:
            try:
                info = tar.next()
            except tarfile.TarError as exc:
                raise malformed("tar.unreadable", f"tar header cannot be read: {exc}") from None
            if info is None:
                break
            count += 1
            if count > limits.max_archive_members:
                raise malformed("tar.too-many-members", "too many tar members", count=count)
            name = info.name
            if name in seen:
                issues.append(
                    suspicious(
                        "tar.duplicate-name",
                        f"tar member {name!r} appears more than once (readers pick different ones)",
                        member=name,
                    )
                )
            seen.add(name)
            kind = "file" if info.isreg() else ("dir" if info.isdir() else "link-or-special")
            if kind == "link-or-special":
                issues.append(
                    suspicious(
                        "tar.link",
                        f"tar member {name!r} is a link or special file",
                        member=name,
                        linkname=info.linkname,
                    )
                )
            data: bytes | None = None
            if info.isreg():
                handle = tar.extractfile(info)
                if handle is not None:
                    first = handle.read(4096)
                    if want(name, first, info.size):
                        if info.size > limits.max_pickle_bytes:
                            raise malformed(
                                "tar.member-too-large",
                                f"tar member {name!r} exceeds the pickle size limit",
                                member=name,
                                size=info.size,
                            )
                        data = first + handle.read(info.size - len(first))
            members.append(TarMember(name, data, info.size, kind))
    return TarArchive(tuple(members), tuple(issues))


# ---------------------------------------------------------------------------------------------
# Zip (strict)

_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_CENTRAL = b"PK\x01\x02"
_DESCRIPTOR = b"PK\x07\x08"
_MAX_COMMENT = 0xFFFF

FLAG_ENCRYPTED = 0x0001
FLAG_DESCRIPTOR = 0x0008
FLAG_PATCHED = 0x0020
FLAG_STRONG_ENCRYPTION = 0x0040
FLAG_UTF8 = 0x0800
FLAG_MASKED_HEADERS = 0x2000
#: Bits a well-formed archive may carry: deflate options (1, 2), data descriptor (3), UTF-8 (11).
_FLAGS_OK = 0x0002 | 0x0004 | FLAG_DESCRIPTOR | FLAG_UTF8

METHOD_STORED = 0
METHOD_DEFLATED = 8


@dataclass(frozen=True, slots=True)
class ZipEntry:
    index: int
    raw_name: bytes
    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    local_offset: int
    data_offset: int  # where the member's bytes start (after the local header)
    end_offset: int  # past the data (and data descriptor)


@dataclass(frozen=True, slots=True)
class ZipArchive:
    entries: tuple[ZipEntry, ...]
    cd_offset: int
    issues: tuple[Issue, ...]


@dataclass(frozen=True, slots=True)
class _Eocd:
    offset: int
    entries: int
    cd_size: int
    cd_offset: int
    comment_end: int
    zip64: bool
    record_start: int  # start of the zip64 EOCD record when present, else `offset`


def _read_at(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


def find_eocd(f: BinaryIO, size: int) -> int | None:
    """Offset of the last end-of-central-directory signature in the tail, or None."""
    if size < 22:
        return None
    last = _read_at(f, size - 22, 22)
    if last[:4] == _EOCD and last[20:22] == b"\x00\x00":
        return size - 22  # the common case: no comment, a 22-byte read
    tail_start = max(0, size - 22 - _MAX_COMMENT)
    tail = _read_at(f, tail_start, size - tail_start)
    pos = tail.rfind(_EOCD)
    while pos >= 0:
        if len(tail) - pos >= 22:
            return tail_start + pos
        pos = tail.rfind(_EOCD, 0, pos)
    return None


def has_zip_directory(f: BinaryIO, size: int) -> bool:
    """Whether the tail holds an EOCD whose central directory starts where it says (polyglots)."""
    try:
        eocd = _parse_eocd(f, size, [])
    except ContainerError:
        return False
    if eocd.entries == 0:
        return False
    return _read_at(f, eocd.cd_offset, 4) == _CENTRAL


def _parse_eocd(f: BinaryIO, size: int, issues: list[Issue]) -> _Eocd:  # noqa: PLR0912 - one check per field
    offset = find_eocd(f, size)
    if offset is None:
        raise malformed("zip.no-eocd", "zip end-of-central-directory record not found")
    rec = _read_at(f, offset, 22)
    (_sig, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment_len) = struct.unpack(
        "<4sHHHHIIH", rec
    )
    comment_end = offset + 22 + comment_len
    if comment_end > size:
        raise malformed(
            "zip.eocd-comment", "zip comment runs past the end of the file", offset=offset
        )
    if comment_end != size:
        issues.append(
            suspicious(
                "zip.trailing-bytes",
                "bytes after the zip end record (another format may be appended)",
                offset=comment_end,
                trailing=size - comment_end,
            )
        )
    zip64 = False
    record_start = offset
    if offset >= 20 and _read_at(f, offset - 20, 4) == _EOCD64_LOCATOR:
        zip64 = True
        loc = _read_at(f, offset - 20, 20)
        _s, loc_disk, rec64_offset, disks = struct.unpack("<4sIQI", loc)
        if loc_disk != 0 or disks != 1:
            raise ContainerError(
                _issue("zip.multi-disk", Verdict.UNSUPPORTED, Severity.MEDIUM, "multi-disk zip64")
            )
        rec64 = _read_at(f, rec64_offset, 56)
        if len(rec64) < 56 or rec64[:4] != _EOCD64:
            raise malformed("zip.zip64-record", "zip64 end record missing", offset=rec64_offset)
        (
            _s,
            rec_size,
            _made,
            _need,
            disk64,
            cd_disk64,
            n_disk64,
            n_total64,
            cd_size64,
            cd_off64,
        ) = struct.unpack("<4sQHHIIQQQQ", rec64)
        if rec64_offset + 12 + rec_size != offset - 20:
            issues.append(
                suspicious(
                    "zip.zip64-layout",
                    "zip64 end record does not sit directly before its locator",
                    offset=rec64_offset,
                )
            )
        for label, v32, v64, sat in (
            ("entries on disk", n_disk, n_disk64, 0xFFFF),
            ("total entries", n_total, n_total64, 0xFFFF),
            ("central directory size", cd_size, cd_size64, 0xFFFFFFFF),
            ("central directory offset", cd_offset, cd_off64, 0xFFFFFFFF),
        ):
            if v32 not in (sat, v64):
                issues.append(
                    suspicious(
                        "zip.zip64-mismatch",
                        f"zip64 and classic end records disagree on the {label}",
                        offset=rec64_offset,
                        classic=v32,
                        zip64=v64,
                    )
                )
        # The zip64 value stands in only for a saturated classic field (APPNOTE 4.4.1.4);
        # a disagreement on any other field was reported above.
        disk, cd_disk = disk64, cd_disk64
        n_disk = n_disk64 if n_disk == 0xFFFF else n_disk
        n_total = n_total64 if n_total == 0xFFFF else n_total
        cd_size = cd_size64 if cd_size == 0xFFFFFFFF else cd_size
        cd_offset = cd_off64 if cd_offset == 0xFFFFFFFF else cd_offset
        record_start = rec64_offset
    elif 0xFFFF in (n_disk, n_total) or 0xFFFFFFFF in (cd_size, cd_offset):
        raise malformed("zip.zip64-missing", "saturated zip end record without a zip64 locator")
    if disk != 0 or cd_disk != 0 or n_disk != n_total:
        raise ContainerError(
            _issue("zip.multi-disk", Verdict.UNSUPPORTED, Severity.MEDIUM, "multi-disk zip")
        )
    if cd_offset + cd_size != record_start:
        issues.append(
            suspicious(
                "zip.cd-location",
                "the central directory does not end where the end record starts "
                "(data was prepended or hidden; zipfile shifts offsets, torch does not)",
                offset=cd_offset,
                expected_end=record_start,
                actual_end=cd_offset + cd_size,
            )
        )
    if cd_offset + cd_size > size:
        raise malformed("zip.cd-bounds", "central directory runs past the end of the file")
    return _Eocd(offset, n_total, cd_size, cd_offset, comment_end, zip64, record_start)


def _zip64_extra(extra: bytes, want: Sequence[str], member: str) -> dict[str, int]:
    """Values of the zip64 extra field (0x0001) for the saturated fields, in spec order."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[pos : pos + 4])
        body = extra[pos + 4 : pos + 4 + length]
        if len(body) != length:
            raise malformed("zip.extra", "truncated zip extra field", member=member)
        if tag == 0x0001:
            out: dict[str, int] = {}
            p = 0
            for name in want:
                width = 4 if name == "disk" else 8
                if p + width > len(body):
                    raise malformed(
                        "zip.zip64-extra", "zip64 extra field is too short", member=member
                    )
                out[name] = int.from_bytes(body[p : p + width], "little")
                p += width
            return out
        pos += 4 + length
    if want:
        raise malformed(
            "zip.zip64-extra", "saturated sizes without a zip64 extra field", member=member
        )
    return {}


def read_zip(
    f: BinaryIO, size: int, limits: ScanLimits, issues: list[Issue] | None = None
) -> ZipArchive:
    """Parse the central directory and every local header; report what readers disagree on.

    Issues are appended to `issues` as found, so a caller still has them when a later,
    fatal problem raises `ContainerError`."""
    issues = [] if issues is None else issues
    eocd = _parse_eocd(f, size, issues)
    if eocd.entries > limits.max_archive_members:
        raise malformed("zip.too-many-members", "too many zip members", count=eocd.entries)
    cd = _read_at(f, eocd.cd_offset, eocd.cd_size)
    if len(cd) != eocd.cd_size:
        raise malformed("zip.cd-bounds", "central directory is truncated")
    entries: list[ZipEntry] = []
    pos = 0
    for index in range(eocd.entries):
        if cd[pos : pos + 4] != _CENTRAL or pos + 46 > len(cd):
            raise malformed(
                "zip.cd-record",
                f"central directory record {index} is missing or corrupt",
                offset=eocd.cd_offset + pos,
            )
        (
            _sig,
            _made,
            _need,
            flags,
            method,
            _time,
            _date,
            crc,
            csize,
            usize,
            nlen,
            xlen,
            clen,
            disk_start,
            _iattr,
            _eattr,
            loffset,
        ) = struct.unpack("<4sHHHHHHIIIHHHHHII", cd[pos : pos + 46])
        raw_name = cd[pos + 46 : pos + 46 + nlen]
        extra = cd[pos + 46 + nlen : pos + 46 + nlen + xlen]
        pos += 46 + nlen + xlen + clen
        if pos > len(cd):
            raise malformed("zip.cd-record", f"central directory record {index} is truncated")
        name = raw_name.decode("utf-8", "replace")
        want = [
            k
            for k, v, sat in (
                ("size", usize, 0xFFFFFFFF),
                ("csize", csize, 0xFFFFFFFF),
                ("offset", loffset, 0xFFFFFFFF),
                ("disk", disk_start, 0xFFFF),
            )
            if v == sat
        ]
        z64 = _zip64_extra(extra, want, name)
        usize = z64.get("size", usize)
        csize = z64.get("csize", csize)
        loffset = z64.get("offset", loffset)
        disk_start = z64.get("disk", disk_start)
        if disk_start != 0:
            raise ContainerError(
                _issue("zip.multi-disk", Verdict.UNSUPPORTED, Severity.MEDIUM, "multi-disk member")
            )
        entries.append(
            _check_local(
                f, size, index, raw_name, name, flags, method, crc, csize, usize, loffset, issues
            )
        )
    if pos != len(cd):
        issues.append(
            suspicious(
                "zip.cd-size",
                "central directory size disagrees with its records",
                offset=eocd.cd_offset,
                parsed=pos,
                declared=len(cd),
            )
        )
    _check_names(entries, issues)
    _check_layout(entries, eocd.cd_offset, issues)
    return ZipArchive(tuple(entries), eocd.cd_offset, tuple(issues))


def _check_local(  # noqa: PLR0912, PLR0917 - one check per header field
    f: BinaryIO,
    size: int,
    index: int,
    raw_name: bytes,
    name: str,
    flags: int,
    method: int,
    crc: int,
    csize: int,
    usize: int,
    loffset: int,
    issues: list[Issue],
) -> ZipEntry:
    header = _read_at(f, loffset, 30)
    if len(header) != 30 or header[:4] != ZIP_LOCAL:
        raise malformed(
            "zip.local-header",
            f"member {name!r}: no local header where the central directory points",
            member=name,
            offset=loffset,
        )
    (_sig, _need, lflags, lmethod, _t, _d, lcrc, lcsize, lusize, lnlen, lxlen) = struct.unpack(
        "<4sHHHHHIIIHH", header
    )
    lname = _read_at(f, loffset + 30, lnlen)
    lextra = _read_at(f, loffset + 30 + lnlen, lxlen)
    data_offset = loffset + 30 + lnlen + lxlen
    if lname != raw_name:
        issues.append(
            suspicious(
                "zip.name-mismatch",
                f"local header name {lname.decode('utf-8', 'replace')!r} differs from central "
                f"directory name {name!r} (torch reads the central one, zipfile refuses)",
                member=name,
                offset=loffset,
            )
        )
    if b"\x00" in raw_name or b"\\" in raw_name:
        issues.append(
            suspicious("zip.name-bytes", f"member name {name!r} has NUL or backslash", member=name)
        )
    bad_flags = flags & ~_FLAGS_OK
    if bad_flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS):
        issues.append(
            suspicious(
                "zip.encrypted",
                f"member {name!r} is flagged encrypted (zipfile refuses, torch ignores the flag)",
                member=name,
                flags=flags,
            )
        )
    elif bad_flags:
        issues.append(
            suspicious(
                "zip.flags",
                f"member {name!r} has unexpected general-purpose flag bits {bad_flags:#06x}",
                member=name,
                flags=flags,
            )
        )
    if lflags != flags or lmethod != method:
        issues.append(
            suspicious(
                "zip.local-central-mismatch",
                f"member {name!r}: local and central flags or method differ",
                member=name,
                local_flags=lflags,
                central_flags=flags,
                local_method=lmethod,
                central_method=method,
            )
        )
    end = data_offset + csize
    if end > size:
        raise malformed("zip.member-bounds", f"member {name!r} runs past the end", member=name)
    if flags & FLAG_DESCRIPTOR:
        desc = _read_at(f, end, 24)
        if desc[:4] == _DESCRIPTOR:
            desc = desc[4:]
            end += 4
        zip64 = lcsize == 0xFFFFFFFF or lusize == 0xFFFFFFFF or csize > 0xFFFFFFFE
        if zip64:
            dcrc, dcsize, dusize = struct.unpack("<IQQ", desc[:20])
            end += 20
        else:
            dcrc, dcsize, dusize = struct.unpack("<III", desc[:12])
            end += 12
        if (dcrc, dcsize, dusize) != (crc, csize, usize):
            issues.append(
                suspicious(
                    "zip.descriptor-mismatch",
                    f"member {name!r}: data descriptor disagrees with the central directory",
                    member=name,
                    offset=end,
                )
            )
        if (lcrc, lcsize, lusize) not in ((0, 0, 0), (crc, csize, usize)) and not zip64:
            issues.append(
                suspicious(
                    "zip.local-central-mismatch",
                    f"member {name!r}: local header sizes/CRC differ from the central directory",
                    member=name,
                )
            )
    else:
        local64 = _zip64_extra(
            lextra,
            [k for k, v in (("size", lusize), ("csize", lcsize)) if v == 0xFFFFFFFF],
            name,
        )
        lusize = local64.get("size", lusize)
        lcsize = local64.get("csize", lcsize)
        if (lcrc, lcsize, lusize) != (crc, csize, usize):
            issues.append(
                suspicious(
                    "zip.local-central-mismatch",
                    f"member {name!r}: local header sizes/CRC differ from the central directory",
                    member=name,
                    offset=loffset,
                )
            )
    return ZipEntry(
        index, raw_name, name, flags, method, crc, csize, usize, loffset, data_offset, end
    )


def _check_names(entries: Sequence[ZipEntry], issues: list[Issue]) -> None:
    seen: dict[bytes, int] = {}
    folded: dict[str, str] = {}
    for e in entries:
        if e.raw_name in seen:
            issues.append(
                suspicious(
                    "zip.duplicate-name",
                    f"member {e.name!r} appears more than once (readers pick different copies)",
                    member=e.name,
                    offset=e.local_offset,
                )
            )
        seen[e.raw_name] = e.index
        key = e.name.casefold()
        if key in folded and folded[key] != e.name:
            issues.append(
                suspicious(
                    "zip.case-duplicate",
                    f"members {folded[key]!r} and {e.name!r} differ only in case",
                    member=e.name,
                )
            )
        folded.setdefault(key, e.name)


def _check_layout(entries: Sequence[ZipEntry], cd_offset: int, issues: list[Issue]) -> None:
    """Records must tile [0, central directory) exactly: no prefix, gap or overlap."""
    ordered = sorted(entries, key=lambda e: (e.local_offset, e.index))
    cursor = 0
    for e in ordered:
        if e.local_offset < cursor:
            issues.append(
                suspicious(
                    "zip.overlap",
                    f"member {e.name!r} overlaps the previous member's bytes",
                    member=e.name,
                    offset=e.local_offset,
                )
            )
        elif e.local_offset > cursor:
            rule, msg = (
                ("zip.prefix-bytes", "bytes before the first local header (a polyglot prefix)")
                if cursor == 0
                else ("zip.gap", "bytes between members that no central record describes")
            )
            issues.append(
                suspicious(rule, msg, offset=cursor, length=e.local_offset - cursor, member=e.name)
            )
        cursor = max(cursor, e.end_offset)
    if not ordered and cd_offset > 0:
        issues.append(
            suspicious("zip.prefix-bytes", "bytes before an empty zip directory", offset=0)
        )
    elif ordered and cursor != cd_offset:
        issues.append(
            suspicious(
                "zip.gap" if cursor < cd_offset else "zip.overlap",
                "member data and the central directory do not meet",
                offset=cursor,
                cd_offset=cd_offset,
            )
        )


def read_zip_member(
    f: BinaryIO, entry: ZipEntry, limit: int, *, verify_crc: bool = True
) -> tuple[bytes, list[Issue]]:
    """The member's bytes (decompressed), bounded by `limit`; CRC and size are checked."""
    issues: list[Issue] = []
    if entry.size > limit or entry.compressed_size > limit:
        raise malformed(
            "zip.member-too-large",
            f"member {entry.name!r} exceeds the size limit for scanned members",
            member=entry.name,
            size=entry.size,
            limit=limit,
        )
    raw = _read_at(f, entry.data_offset, entry.compressed_size)
    if len(raw) != entry.compressed_size:
        raise malformed(
            "zip.member-bounds", f"member {entry.name!r} is truncated", member=entry.name
        )
    if entry.method == METHOD_STORED:
        data = raw
        if entry.size != entry.compressed_size:
            issues.append(
                suspicious(
                    "zip.stored-size",
                    f"stored member {entry.name!r} has different compressed and plain sizes",
                    member=entry.name,
                )
            )
    elif entry.method == METHOD_DEFLATED:
        d = zlib.decompressobj(-15)
        try:
            data = d.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise malformed(
                "zip.deflate", f"member {entry.name!r}: {exc}", member=entry.name
            ) from None
        if len(data) > limit:
            raise malformed(
                "zip.member-too-large",
                f"member {entry.name!r} inflates past the limit",
                member=entry.name,
            )
        if not d.eof or d.unused_data:
            issues.append(
                _issue(
                    "zip.deflate",
                    Verdict.MALFORMED,
                    Severity.HIGH,
                    f"member {entry.name!r}: deflate stream does not end where the member does",
                    member=entry.name,
                )
            )
        if len(data) != entry.size:
            issues.append(
                _issue(
                    "zip.size-mismatch",
                    Verdict.MALFORMED,
                    Severity.HIGH,
                    f"member {entry.name!r}: inflated size differs from the declared size",
                    member=entry.name,
                    declared=entry.size,
                    actual=len(data),
                )
            )
    else:
        raise ContainerError(
            _issue(
                "zip.method",
                Verdict.UNSUPPORTED,
                Severity.MEDIUM,
                f"member {entry.name!r} uses compression method {entry.method}",
                member=entry.name,
                method=entry.method,
            )
        )
    if verify_crc and zlib.crc32(data) != entry.crc:
        issues.append(
            _issue(
                "zip.crc-mismatch",
                Verdict.MALFORMED,
                Severity.HIGH,
                f"member {entry.name!r}: CRC-32 mismatch (zipfile refuses, torch ignores the CRC)",
                member=entry.name,
                declared=entry.crc,
                actual=zlib.crc32(data),
            )
        )
    return data, issues


def zip_member_head(f: BinaryIO, entry: ZipEntry, n: int = 64) -> bytes:
    """The first bytes of a member without reading the rest (for sniffing unknown members)."""
    if entry.method == METHOD_STORED:
        return _read_at(f, entry.data_offset, min(n, entry.compressed_size))
    if entry.method == METHOD_DEFLATED:
        raw = _read_at(f, entry.data_offset, min(entry.compressed_size, 64 * 1024))
        try:
            return zlib.decompressobj(-15).decompress(raw, n)
        except zlib.error:
            return b""
    return b""


# ---------------------------------------------------------------------------------------------
# npy


@dataclass(frozen=True, slots=True)
class NpyHeader:
    version: tuple[int, int]
    descr: object
    fortran_order: bool
    shape: tuple[int, ...]
    data_offset: int
    has_object: bool
    itemsize: int | None  # None when not computed (structured dtypes)


_NPY_MAX_HEADER = 10_000  # numpy's default `max_header_size`
_SIMPLE_DESCR = re.compile(r"^[<>|=]?([?bBhHiIlLqQpPefdgFDGSUVOMmabiufcSUV])(\d*)(\[\w+\])?$")


def read_npy_header(f: BinaryIO, member: str | None = None) -> NpyHeader:
    """Parse an .npy header as `numpy.lib.format` does (a Python literal dict, evaluated with
    `ast.literal_eval`, which builds literals only)."""
    start = f.tell()
    pre = f.read(10)
    if len(pre) < 10 or not pre.startswith(NPY_MAGIC):
        raise malformed("npy.magic", "not an .npy stream", member=member)
    major, minor = pre[6], pre[7]
    if major == 1:
        (hlen,) = struct.unpack("<H", pre[8:10])
        prefix = 10
    elif major in (2, 3):
        (hlen,) = struct.unpack("<I", pre[8:10] + f.read(2))
        prefix = 12
    else:
        raise ContainerError(
            _issue(
                "npy.version",
                Verdict.UNSUPPORTED,
                Severity.MEDIUM,
                f"npy format version {major}.{minor}",
                member=member,
            )
        )
    if hlen > _NPY_MAX_HEADER:
        raise malformed(
            "npy.header-size", "npy header is larger than numpy accepts", member=member, length=hlen
        )
    raw = f.read(hlen)
    if len(raw) != hlen:
        raise malformed("npy.truncated", "npy header is truncated", member=member)
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise malformed("npy.header", "npy header is not a Python literal", member=member) from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise malformed(
            "npy.header", "npy header keys are not descr/fortran_order/shape", member=member
        )
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise malformed("npy.shape", "npy shape is not a tuple of non-negative ints", member=member)
    fortran = header["fortran_order"]
    if not isinstance(fortran, bool):
        raise malformed("npy.header", "npy fortran_order is not a bool", member=member)
    descr = header["descr"]
    return NpyHeader(
        version=(major, minor),
        descr=descr,
        fortran_order=fortran,
        shape=shape,
        data_offset=start + prefix + hlen,
        has_object=descr_has_object(descr),
        itemsize=_itemsize(descr),
    )


def descr_has_object(descr: object) -> bool:
    """Whether a numpy `descr` (string, or list of fields, possibly nested) holds objects.

    Anything that is not a recognizable descr counts as object-bearing (fail closed)."""
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O") or not _SIMPLE_DESCR.match(descr)
    if isinstance(descr, list):
        for fld in descr:
            if not isinstance(fld, tuple) or len(fld) not in (2, 3):
                return True
            if descr_has_object(fld[1]):
                return True
        return False
    return True


def _itemsize(descr: object) -> int | None:
    if not isinstance(descr, str):
        return None
    m = _SIMPLE_DESCR.match(descr)
    if m is None:
        return None
    kind, digits = m.group(1), m.group(2)
    if kind in "?bB":
        return 1
    if not digits:
        return None
    n = int(digits)
    return n * 4 if kind == "U" else n


def npy_data_bytes(header: NpyHeader) -> int | None:
    if header.itemsize is None:
        return None
    count = 1
    for d in header.shape:
        count *= d
    return count * header.itemsize


# ---------------------------------------------------------------------------------------------
# Compression wrappers

_CHUNK = 1 << 16
_BOMB_FLOOR = 1 << 20  # below this, a high ratio is just a small file


def decompress(  # noqa: PLR0912 - one bounded loop, several stream endings
    f: BinaryIO, kind: Kind, compressed_size: int, limits: ScanLimits
) -> bytes:
    """Decompress a single-stream wrapper in bounded steps; a bomb or overlong output raises.

    Bounds: the output may not exceed `max_decompressed_bytes`, nor (past 1 MiB)
    `max_compression_ratio` times the compressed size."""
    budget = min(
        limits.max_decompressed_bytes,
        max(_BOMB_FLOOR, compressed_size * limits.max_compression_ratio),
    )
    f.seek(0)
    if kind is Kind.JOBLIB_ZF:
        header = f.read(2 + 19)
        try:
            declared = int(header[2:].strip(), 16)
        except ValueError:
            raise malformed("joblib.zfile", "joblib ZF header has no hex length") from None
        if declared > budget:
            raise _bomb(declared, compressed_size, limits)
    factories: Mapping[Kind, Callable[[], _Decomp]] = {
        Kind.GZIP: lambda: _ZlibDecomp(31),
        Kind.ZLIB: lambda: _ZlibDecomp(15),
        Kind.JOBLIB_ZF: lambda: _ZlibDecomp(15),
        Kind.BZ2: lambda: _BufferedDecomp(bz2.BZ2Decompressor()),
        Kind.XZ: lambda: _BufferedDecomp(lzma.LZMADecompressor(format=lzma.FORMAT_XZ)),
        Kind.LZMA: lambda: _BufferedDecomp(lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)),
    }
    factory = factories.get(kind)
    if factory is None:
        raise ContainerError(
            _issue(
                f"{kind.value}.unsupported",
                Verdict.UNSUPPORTED,
                Severity.MEDIUM,
                f"{kind.value} compression is not supported by this scanner",
            )
        )
    out = bytearray()
    dec = factory()
    pending = b""
    finished = False
    single = kind in (Kind.ZLIB, Kind.JOBLIB_ZF, Kind.LZMA)
    while True:
        if not pending and dec.needs_input:
            pending = f.read(_CHUNK)
            if not pending:
                break
        try:
            chunk = dec.decompress(pending, budget + 1 - len(out))
        except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
            raise malformed(
                f"{kind.value}.corrupt", f"{kind.value} stream is corrupt: {exc}"
            ) from None
        pending = b""
        out += chunk
        if len(out) > budget:
            raise _bomb(len(out), compressed_size, limits)
        if dec.eof:
            pending = dec.unused_data
            if single:
                if pending or f.read(1):
                    raise malformed(
                        f"{kind.value}.trailing", f"bytes after the {kind.value} stream"
                    )
                finished = True
                break
            if not pending:
                pending = f.read(_CHUNK)
                if not pending:
                    finished = True
                    break
            dec = factory()  # gzip, bz2 and xz readers go on with concatenated streams
    if not finished:
        raise malformed(f"{kind.value}.truncated", f"{kind.value} stream is truncated")
    return bytes(out)


def _bomb(size: int, compressed: int, limits: ScanLimits) -> ContainerError:
    return malformed(
        "compression.bomb",
        "decompressed size exceeds the limits (compression bomb)",
        decompressed_at_least=size,
        compressed=compressed,
        max_ratio=limits.max_compression_ratio,
        max_bytes=limits.max_decompressed_bytes,
    )


class _Decomp(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    @property
    def needs_input(self) -> bool: ...
    def decompress(self, data: bytes, max_length: int) -> bytes: ...


class _ZlibDecomp:
    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    @property
    def needs_input(self) -> bool:
        return not self._d.unconsumed_tail

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return self._d.decompress(self._d.unconsumed_tail + data, max_length)


class _BufferedDecomp:
    """bz2 and lzma decompressors: they keep unconsumed input themselves (unlike zlib)."""

    def __init__(self, decompressor: bz2.BZ2Decompressor | lzma.LZMADecompressor) -> None:
        self._d = decompressor

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    @property
    def needs_input(self) -> bool:
        return self._d.needs_input

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return self._d.decompress(data, max(1, max_length))


# ---------------------------------------------------------------------------------------------
# 7z (py7zr, in memory)


#: What py7zr's codecs raise on corrupt member data (a damaged LZMA/LZMA2, bz2 or deflate
#: stream, a header that points nowhere): the archive is malformed, never a scanner crash.
_SEVENZ_CORRUPT = (
    lzma.LZMAError,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    OverflowError,
    struct.error,
)


@dataclass(frozen=True, slots=True)
class SevenZMember:
    name: str
    data: bytes


def read_7z(
    f: BinaryIO, compressed_size: int, limits: ScanLimits
) -> tuple[list[SevenZMember], list[Issue]]:
    """Decompress every regular member into memory (never to disk), bounded like `decompress`."""
    try:
        import py7zr
        from py7zr.exceptions import (
            ArchiveError,
            DecompressionBombError,
            PasswordRequired,
            UnsupportedCompressionMethodError,
        )
        from py7zr.io import Py7zIO, WriterFactory
    except ImportError:
        raise ContainerError(
            _issue(
                "7z.unsupported",
                Verdict.UNSUPPORTED,
                Severity.MEDIUM,
                "py7zr is not installed; 7z cannot be read",
            )
        ) from None
    budget = min(
        limits.max_decompressed_bytes,
        max(_BOMB_FLOOR, compressed_size * limits.max_compression_ratio),
    )

    class _Mem(Py7zIO):
        def __init__(self, name: str, total: list[int]) -> None:
            self.name = name
            self.buf = bytearray()
            self.total = total

        def write(self, s: bytes | bytearray) -> int:
            self.total[0] += len(s)
            if self.total[0] > budget:
                raise DecompressionBombError("over budget")
            self.buf += s
            return len(s)

        def read(self, size: int | None = None) -> bytes:
            return bytes(self.buf)

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def flush(self) -> None:
            return None

        def size(self) -> int:
            return len(self.buf)

    class _Factory(WriterFactory):
        def __init__(self) -> None:
            self.files: list[_Mem] = []
            self.total = [0]

        def create(self, filename: str) -> Py7zIO:
            mem = _Mem(filename, self.total)
            self.files.append(mem)
            return mem

    issues: list[Issue] = []
    factory = _Factory()
    f.seek(0)
    try:
        with py7zr.SevenZipFile(f, mode="r", max_extract_size=budget) as archive:
            if archive.needs_password():
                raise ContainerError(
                    _issue(
                        "7z.encrypted",
                        Verdict.UNSUPPORTED,
                        Severity.MEDIUM,
                        "encrypted 7z archive cannot be scanned",
                    )
                )
            names = [i.filename for i in archive.list()]
            if len(names) > limits.max_archive_members:
                raise malformed("7z.too-many-members", "too many 7z members", count=len(names))
            if len(set(names)) != len(names):
                issues.append(
                    suspicious("7z.duplicate-name", "7z archive has duplicate member names")
                )
            archive.extractall(factory=factory)  # noqa: S202 - into memory, never to disk
    except DecompressionBombError:
        raise _bomb(factory.total[0], compressed_size, limits) from None
    except PasswordRequired:
        raise ContainerError(
            _issue(
                "7z.encrypted",
                Verdict.UNSUPPORTED,
                Severity.MEDIUM,
                "encrypted 7z archive cannot be scanned",
            )
        ) from None
    except UnsupportedCompressionMethodError as exc:
        raise ContainerError(
            _issue(
                "7z.codec", Verdict.UNSUPPORTED, Severity.MEDIUM, f"7z codec not supported: {exc}"
            )
        ) from None
    except _SEVENZ_CORRUPT as exc:
        raise malformed("7z.corrupt", f"7z archive cannot be read: {exc}") from None
    except ArchiveError as exc:  # CrcError, DecompressionError, ... (after the cases above)
        raise malformed(
            "7z.corrupt", f"7z archive cannot be read: {type(exc).__name__}: {exc}"
        ) from None
    return [SevenZMember(m.name, bytes(m.buf)) for m in factory.files], issues
