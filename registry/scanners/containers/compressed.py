"""The compression wrappers pickles travel in (gzip / bz2 / xz / lzma / zlib, joblib's
included) and 7z (py7zr, in memory): bounded decompression with a bomb check."""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from registry.scanners.base import ScanLimits, Severity, Verdict
from registry.scanners.containers.issues import (
    ContainerError,
    Issue,
    malformed,
    new_issue,
    suspicious,
)
from registry.scanners.containers.sniff import Kind

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
            new_issue(
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
        # Lazy: py7zr costs start-up time and a 7z wrapper is rare; its absence is a finding.
        import py7zr  # noqa: PLC0415
        from py7zr.exceptions import (  # noqa: PLC0415
            ArchiveError,
            DecompressionBombError,
            PasswordRequired,
            UnsupportedCompressionMethodError,
        )
        from py7zr.io import Py7zIO, WriterFactory  # noqa: PLC0415
    except ImportError:
        raise ContainerError(
            new_issue(
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
                    new_issue(
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
            archive.extractall(factory=factory)
    except DecompressionBombError:
        raise _bomb(factory.total[0], compressed_size, limits) from None
    except PasswordRequired:
        raise ContainerError(
            new_issue(
                "7z.encrypted",
                Verdict.UNSUPPORTED,
                Severity.MEDIUM,
                "encrypted 7z archive cannot be scanned",
            )
        ) from None
    except UnsupportedCompressionMethodError as exc:
        raise ContainerError(
            new_issue(
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
