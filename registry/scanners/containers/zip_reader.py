"""The strict zip reader (PyTorch checkpoints, `.npz`, `.keras`).

PyTorch (miniz) reads the central directory and ignores CRCs and flag bits; Python's `zipfile`
trusts local headers in places, shifts offsets for prepended data and raises on flags. Wherever
two such readers could see different bytes for the same member, the reader reports an `Issue`
instead of choosing one reading.

Why this module is over 600 lines: it is one reader, and most of it is one check per field of
the end-of-central-directory record, the central directory and each local header, which only
make sense read together.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from registry.scanners.base import ScanLimits, Severity, Verdict
from registry.scanners.containers.issues import (
    ContainerError,
    Issue,
    malformed,
    new_issue,
    suspicious,
)
from registry.scanners.containers.sniff import ZIP_LOCAL

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
                new_issue(
                    "zip.multi-disk", Verdict.UNSUPPORTED, Severity.MEDIUM, "multi-disk zip64"
                )
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
            new_issue("zip.multi-disk", Verdict.UNSUPPORTED, Severity.MEDIUM, "multi-disk zip")
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
                new_issue(
                    "zip.multi-disk", Verdict.UNSUPPORTED, Severity.MEDIUM, "multi-disk member"
                )
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
                new_issue(
                    "zip.deflate",
                    Verdict.MALFORMED,
                    Severity.HIGH,
                    f"member {entry.name!r}: deflate stream does not end where the member does",
                    member=entry.name,
                )
            )
        if len(data) != entry.size:
            issues.append(
                new_issue(
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
            new_issue(
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
            new_issue(
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
