"""numpy's `.npy` header (also each member of an `.npz`), read without numpy."""

from __future__ import annotations

import ast
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

from registry.scanners.base import Severity, Verdict
from registry.scanners.containers.issues import ContainerError, malformed, new_issue
from registry.scanners.containers.sniff import NPY_MAGIC


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
            new_issue(
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
