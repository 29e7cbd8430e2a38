"""The legacy PyTorch formats: the stacked pickles of `torch.save` before 1.6 (magic number,
protocol, system info, the object, the storage keys, raw storages) and the older tar layout
(`sys_info`, `pickle`, `tensors`, `storages` members)."""

from __future__ import annotations

import io
import struct
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, BinaryIO

from registry.scanners.base import ScanLimits, Severity, Verdict
from registry.scanners.containers.issues import Issue, malformed, new_issue, suspicious
from registry.scanners.containers.pickle_spans import (
    PickleSpan,
    disassemble_until_stop,
    pickle_end,
    pickle_globals,
    pickle_literal,
    pickle_strings,
)

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
            return new_issue(
                "torch.legacy.storage-truncated",
                Verdict.MALFORMED,
                Severity.HIGH,
                "legacy torch raw storages run past the end of the file",
                offset=start,
            )
        if len(nxt) > 4096:
            return new_issue(
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
