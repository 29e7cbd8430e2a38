"""numpy dtypes as a pickle writes them, read off the symbolic values without numpy.

`numpy.dtype.__reduce__` writes ``numpy.dtype(typestr, align, copy)`` followed by a BUILD of
its 8/9-tuple state (numpy's `arraydescr_setstate`). `dtype_layout` checks that record and
returns the item size, whether the dtype holds objects, and its type string; anything it
cannot read from literals raises `BadLayout`. The joblib layout (`pickle_joblib`) uses it to
know how many raw bytes follow an array's wrapper.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from registry.scanners.pickle_values import COMPUTED, CallResult, GlobalRef, PDict, render

#: How deep dtypes may nest (fields of structured dtypes, subarray bases).
_MAX_DTYPE_DEPTH = 8
#: What `numpy.dtype.__reduce__` writes as the type string: kind + size ('U': characters).
_TYPESTR = re.compile(r"[<>|=]?([biufcOMmSUV])([0-9]{1,10})(\[[0-9]{0,6}[A-Za-z]{1,3}\])?")
_FIXED_SIZES: Mapping[str, tuple[int, ...]] = {
    "b": (1,),
    "i": (1, 2, 4, 8),
    "u": (1, 2, 4, 8),
    "f": (2, 4, 8, 12, 16),
    "c": (8, 16, 24, 32),
    "O": (4, 8),
    "M": (8,),
    "m": (8,),
}
_NPY_ITEM_HASOBJECT = 0x01


class BadLayout(Exception):
    """A NumpyArrayWrapper whose array layout cannot be read off literals."""

    def __init__(self, reason: str, *, computed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.computed = computed


def dtype_layout(value: object, depth: int) -> tuple[int, bool, str]:
    """(itemsize, has objects, type string) of a pickled `numpy.dtype(typestr, align, copy)`."""
    if depth > _MAX_DTYPE_DEPTH:
        raise BadLayout("dtype nests too deeply")
    if not (
        type(value) is CallResult
        and type(value.func) is GlobalRef
        and value.func.qualname == "numpy.dtype"
        and value.kwargs is None
        and value.items is None
    ):
        raise BadLayout(
            f"dtype {render(value, 80)} is not a numpy.dtype(...) record",
            computed=isinstance(value, COMPUTED),
        )
    args = value.args
    if not (
        type(args) is tuple
        and 1 <= len(args) <= 3
        and type(args[0]) is str
        and all(type(a) is bool for a in args[1:])
    ):
        raise BadLayout(f"numpy.dtype arguments {render(args, 80)} are not literals", computed=True)
    typestr = args[0]
    match = _TYPESTR.fullmatch(typestr)
    if match is None:
        raise BadLayout(f"dtype {typestr[:40]!r} is not a known numpy type string")
    kind, size, unit = match.group(1), int(match.group(2)), match.group(3)
    if unit and kind not in "Mm":
        raise BadLayout(f"dtype {typestr!r} has a unit but is not a datetime")
    if kind in "SUV":
        if size < 1:
            raise BadLayout(f"dtype {typestr!r} has no size")
        itemsize = size * 4 if kind == "U" else size
    elif size in _FIXED_SIZES[kind]:
        itemsize = size
    else:
        raise BadLayout(f"dtype {typestr!r} has an unknown item size")
    hasobject = kind == "O"
    state = value.state
    if state is None:  # no BUILD: numpy.dtype(typestr) as is
        return itemsize, hasobject, typestr
    return itemsize, _dtype_state(typestr, itemsize, hasobject, state, depth), typestr


def _dtype_state(typestr: str, itemsize: int, hasobject: bool, state: object, depth: int) -> bool:
    """Check a dtype's BUILD state (numpy's `arraydescr_setstate`); return `hasobject`."""
    kind = typestr.lstrip("<>|=")[0]
    if not (type(state) is tuple and len(state) in (8, 9)):
        raise BadLayout(
            f"dtype {typestr!r} state is not numpy's 8/9-tuple",
            computed=isinstance(state, COMPUTED),
        )
    version, order, sub, names, fields, elsize, _alignment, flags = state[:8]
    if version not in (3, 4) or order not in ("<", ">", "|", "="):
        raise BadLayout(f"dtype {typestr!r} state has an unknown version or byte order")
    if type(elsize) is not int or elsize not in (-1, itemsize):
        raise BadLayout(f"dtype {typestr!r} state gives another item size")
    if kind in "SUV" and elsize != itemsize:
        raise BadLayout(f"dtype {typestr!r} state gives another item size")
    if sub is not None:
        hasobject = _subarray_hasobject(typestr, itemsize, sub, depth) or hasobject
    if names is not None or fields is not None:
        hasobject = _fields_hasobject(typestr, itemsize, names, fields, depth) or hasobject
    if type(flags) is not int or bool(flags & _NPY_ITEM_HASOBJECT) != hasobject:
        raise BadLayout(f"dtype {typestr!r} flags disagree about holding objects")
    return hasobject


def _subarray_hasobject(typestr: str, itemsize: int, sub: object, depth: int) -> bool:
    if typestr.lstrip("<>|=")[0] != "V" or not (
        type(sub) is tuple and len(sub) == 2 and type(sub[1]) is tuple
    ):
        raise BadLayout(f"dtype {typestr!r} has a malformed subarray")
    base_size, base_obj, _ = dtype_layout(sub[0], depth + 1)
    n = 1
    for dim in sub[1]:
        if type(dim) is not int or dim < 0:
            raise BadLayout(f"dtype {typestr!r} has a malformed subarray shape")
        n *= dim
    if base_size * n != itemsize:
        raise BadLayout(f"dtype {typestr!r} subarray does not fill its item size")
    return base_obj


def _fields_hasobject(
    typestr: str, itemsize: int, names: object, fields: object, depth: int
) -> bool:
    if typestr.lstrip("<>|=")[0] != "V" or type(names) is not tuple or type(fields) is not PDict:
        raise BadLayout(f"dtype {typestr!r} has malformed fields")
    if len(fields.items) > 4096 or not all(type(k) is str for k in names):
        raise BadLayout(f"dtype {typestr!r} has malformed fields")
    hasobject = False
    for _key, spec in fields.items:
        if not (type(spec) is tuple and len(spec) in (2, 3) and type(spec[1]) is int):
            raise BadLayout(f"dtype {typestr!r} has a malformed field")
        field_size, field_obj, _ = dtype_layout(spec[0], depth + 1)
        if spec[1] < 0 or spec[1] + field_size > itemsize:
            raise BadLayout(f"dtype {typestr!r} has a field outside its item")
        hasobject = hasobject or field_obj
    return hasobject
