"""joblib's array layout: what follows a NumpyArrayWrapper's BUILD in a joblib pickle.

`wrapper_layout` reads the element count, item size, alignment and dtype off a wrapper's
literal state; the machine in `pickle_vm` then delimits the raw array bytes (or runs the nested
pickle of an object array) right after the BUILD, as joblib's NumpyUnpickler reads them.
"""

from __future__ import annotations

from registry.scanners.pickle_numpy import BadLayout, dtype_layout
from registry.scanners.pickle_values import COMPUTED, GlobalRef, render

# joblib's NumpyPickler writes each ndarray as a NumpyArrayWrapper record whose BUILD is followed
# in the stream by the array itself (joblib/numpy_pickle.py: NumpyArrayWrapper.write_array,
# read_array and NumpyUnpickler.load_build, which reads it from the raw file right after BUILD):
# a nested pickle for dtypes holding objects, else [one padding-length byte + that many b"\xff"
# when numpy_array_alignment_bytes is set (joblib >= 1.2)] + prod(shape) * itemsize raw bytes.
JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
WRAPPER_REQUIRED = ("subclass", "shape", "order", "dtype", "allow_mmap")
WRAPPER_KEYS = frozenset({*WRAPPER_REQUIRED, "numpy_array_alignment_bytes"})
#: Methods the loader calls on the wrapper: an instance attribute of that name replaces them.
WRAPPER_METHODS = frozenset(
    {"read", "read_array", "read_mmap", "write_array", "safe_get_numpy_array_alignment_bytes"}
)
WRAPPER_SUBCLASSES = frozenset({"numpy.ndarray", "numpy.memmap"})
#: numpy's NPY_MAXDIMS (64 in numpy 2, 32 before).
MAX_NDIM = 64


class JoblibArray:
    """The ndarray joblib's loader puts in place of a NumpyArrayWrapper after its BUILD."""

    __slots__ = ("dtype", "nbytes", "offset", "shape")

    def __init__(self, dtype: str, shape: tuple[int, ...], nbytes: int | None, offset: int) -> None:
        self.dtype = dtype
        self.shape = shape
        self.nbytes = nbytes  # None: an object array, read as a nested pickle
        self.offset = offset

    def __repr__(self) -> str:
        return f"<joblib array {self.dtype} {self.shape}>"


def wrapper_layout(attrs: dict[str, object]) -> tuple[int, int, bool, int | None, str]:
    """(element count, itemsize, has objects, alignment, type string) of a wrapper's array."""
    for key in WRAPPER_REQUIRED:
        if key not in attrs:
            raise BadLayout(f"has no {key}")
        if isinstance(attrs[key], COMPUTED) and key != "dtype":
            raise BadLayout(f"{key} is computed at load time", computed=True)
    shape = attrs["shape"]
    if type(shape) is not tuple or len(shape) > MAX_NDIM:
        raise BadLayout(f"shape {render(shape, 60)} is not a tuple of at most {MAX_NDIM} ints")
    count = 1
    for dim in shape:
        if isinstance(dim, COMPUTED):
            raise BadLayout("shape is computed at load time", computed=True)
        if type(dim) is not int or dim < 0:
            raise BadLayout(f"shape {render(shape, 60)} is not a tuple of non-negative ints")
        count *= dim
    if attrs["order"] not in ("C", "F"):
        raise BadLayout(f"order {render(attrs['order'], 40)} is not 'C' or 'F'")
    if type(attrs["allow_mmap"]) is not bool:
        raise BadLayout("allow_mmap is not a bool")
    if not isinstance(attrs["subclass"], GlobalRef):
        raise BadLayout("subclass is not a global", computed=True)
    align = attrs.get("numpy_array_alignment_bytes")
    if isinstance(align, COMPUTED):
        raise BadLayout("numpy_array_alignment_bytes is computed at load time", computed=True)
    if align is not None and not (type(align) is int and 1 <= align <= 255):
        raise BadLayout(f"numpy_array_alignment_bytes {render(align, 40)} is not in 1..255")
    itemsize, hasobject, typestr = dtype_layout(attrs["dtype"], 0)
    return count, itemsize, hasobject, align, typestr
