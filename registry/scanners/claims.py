"""Whether a scanner may apply to a file, from its name and first bytes: the catalog's cheap sniff.

The catalog imports a scanner module only when a file it is about to check passes that
scanner's `may_apply` here (registry/scanners/catalog.py). Each check is a superset of the
scanner's own `applies_to`: it may say yes where the scanner then says no, never the reverse,
so a report is the same whether the module was imported first or not. The magic numbers and
names live here and the scanners import them, so the two cannot drift apart.

Nothing here parses more than a varint; the one check that reads past the head (HDF5's
superblock, which may follow a user block) reads 8 bytes at a few offsets, as Keras's own
check always did.
"""

from __future__ import annotations

import posixpath

from registry.scanners.base import ScanTarget
from registry.scanners.containers.sniff import ZIP_LOCAL, is_tar_header

GGUF_MAGIC = b"GGUF"
#: A zip's local header, or the end-of-directory record of an empty archive.
ZIP_MAGIC = (ZIP_LOCAL, b"PK\x05\x06")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
JINJA_SUFFIXES = (".jinja", ".j2")
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
SAVED_MODEL_NAMES = frozenset({"saved_model.pb"})
SAVED_MODEL_TEXT_NAMES = frozenset({"saved_model.pbtxt"})
#: A file named for a format a scanner validates is that scanner's whatever its bytes: loaders
#: open these files by name, so bytes that fail the format's sniff are a malformed file (or a
#: polyglot for another scanner), never "not this format" and silently clean.
SAFETENSORS_SUFFIX = ".safetensors"
GGUF_SUFFIX = ".gguf"
ONNX_SUFFIX = ".onnx"
KERAS_SUFFIX = ".keras"
#: ModelProto's fields: number -> wire type (0 varint, 2 length-delimited).
ONNX_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}


def basename(path: str) -> str:
    """The lower-cased file name, whichever separator the path uses."""
    return posixpath.basename(path.replace("\\", "/")).lower()


def named(target: ScanTarget, suffix: str) -> bool:
    """The file's name ends with `suffix` (any case: `MODEL.SafeTensors` loads the same)."""
    return basename(target.path).endswith(suffix)


def always(_target: ScanTarget) -> bool:
    """For scanners that must look at every file (the pickle family, the unsupported formats)."""
    return True


def hdf5_offset(target: ScanTarget, head: bytes) -> int | None:
    """Where the HDF5 superblock is: offset 0 or a power of two >= 512 (a user block)."""
    offset = 0
    with target.open() as fh:
        while offset + len(HDF5_MAGIC) <= target.size:
            if offset + len(HDF5_MAGIC) <= len(head):
                found = head[offset : offset + len(HDF5_MAGIC)] == HDF5_MAGIC
            else:
                fh.seek(offset)
                found = fh.read(len(HDF5_MAGIC)) == HDF5_MAGIC
            if found:
                return offset
            offset = 512 if offset == 0 else offset * 2
    return None


def safetensors(target: ScanTarget) -> bool:
    if named(target, SAFETENSORS_SUFFIX):
        return True
    head = target.head()
    return len(head) >= 9 and head[8] == 0x7B  # a u64 header length, then the header's `{`


def gguf(target: ScanTarget) -> bool:
    return named(target, GGUF_SUFFIX) or target.head()[:4] == GGUF_MAGIC


def keras(target: ScanTarget) -> bool:
    head = target.head()
    if head.startswith(ZIP_MAGIC) or named(target, KERAS_SUFFIX):
        return True
    return hdf5_offset(target, head) is not None


def onnx(target: ScanTarget) -> bool:
    """The first key is a ModelProto field with its wire type (ONNX's own check starts so)."""
    if named(target, ONNX_SUFFIX):
        return True
    head = target.head()
    key = shift = 0
    for byte in head[:10]:
        key |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return ONNX_MODEL_FIELDS.get(key >> 3) == key & 7
    return False


def chat_template(target: ScanTarget) -> bool:
    if target.path.casefold().endswith(JINJA_SUFFIXES):
        return True
    return target.head().lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def tensorflow(target: ScanTarget) -> bool:
    name = basename(target.path)
    if name in SAVED_MODEL_NAMES or name in SAVED_MODEL_TEXT_NAMES:
        return True
    head = target.head()
    # A SavedModel starts `08 01` (schema version 1), a GraphDef `0a` (its first NodeDef).
    return head.startswith((b"\x08\x01", b"\x0a"))


def nemo(target: ScanTarget) -> bool:
    return target.path.lower().endswith(".nemo") or is_tar_header(target.head())


def skops(target: ScanTarget) -> bool:
    return target.path.lower().endswith(".skops") or target.head().startswith(ZIP_LOCAL)


def torchscript(target: ScanTarget) -> bool:
    return target.head().startswith(ZIP_LOCAL)


def hydra_config(target: ScanTarget) -> bool:
    return target.path.lower().endswith(CONFIG_SUFFIXES)
