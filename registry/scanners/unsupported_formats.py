"""Model formats the registry recognises but does not analyse: `unsupported`, never `clean`.

A file no scanner applies to is clean by the scan contract (plain text, raw tensor bytes). For
formats that carry operators, native code or a deserializer, that silence would be a lie, so
this scanner claims them by content (and by name where the format has no magic) and reports
`unsupported` with what analysing them would take. The admission policies refuse
`unsupported` (see policies/defaults), so such a model needs a person's waiver to pass.

A file *named* for one of these formats whose bytes are not that format is `suspicious`: the
framework opens it by name and would hand the bytes to its own parser anyway.

Pickles of XGBoost, LightGBM and CatBoost models are the pickle scanner's (their globals are
outside its allowlist); this scanner adds that the booster bytes inside go to a native library
that no scanner reads.
"""

from __future__ import annotations

import bz2
import lzma
import posixpath
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from registry.scanners import protobuf_wire as wire
from registry.scanners.base import (
    FileVerdict,
    Finding,
    JSONValue,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
)
from registry.scanners.containers.opcodes import genops
from registry.scanners.containers.sniff import Kind, sniff

SCANNER_ID = "unsupported-formats"
RULESET_VERSION = "2026-12-05"

_PICKLE_READ = 1 << 20  # how much of a pickle is searched for booster globals
_BOOSTER_ROOTS = ("xgboost", "lightgbm", "catboost")


@dataclass(frozen=True, slots=True)
class Format:
    name: str  # what the evidence calls it
    suffixes: tuple[str, ...]  # names that claim the format whatever the bytes
    sniff: Callable[[bytes], bool]  # the bytes are this format (from the first 4 KiB)
    claim: Callable[[bytes], bool] | None  # strict enough to claim a file whatever its name
    severity: Severity
    needed: str  # what analysing it would take (the finding's `needed`)
    reference: str | None = None


def _tflite(head: bytes) -> bool:
    return head[4:8] == b"TFL3"


_OPENVINO = re.compile(rb"^\s*(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*<net\s[^>]*version=", re.S)


def _openvino(head: bytes) -> bool:
    return bool(_OPENVINO.match(head))


def _paddle(head: bytes) -> bool:
    # ProgramDesc: field 1 `blocks` (BlockDesc, length-delimited) first.
    return _first_field(head) == (1, wire.LEN)


def looks_like_coreml(head: bytes, *, lowest: int = 2) -> bool:
    """CoreML `Model`: specificationVersion (field 1), then `description` (field 2, a
    ModelDescription message whose first field is an input FeatureDescription).

    Version 1 (Core ML 1, 2017) is left out of content sniffing: a SavedModel starts with the
    same bytes (schema version 1, then a message) and is the tensorflow scanner's."""
    try:
        key, pos = wire.read_varint(head, 0)
        if key != 0x08:
            return False
        version, pos = wire.read_varint(head, pos)
        if not lowest <= version <= 20 or pos >= len(head) or head[pos] != 0x12:
            return False
        length, pos = wire.read_varint(head, pos + 1)
    except wire.WireError:
        return False
    return length > 0 and pos < len(head) and head[pos] == 0x0A


def _coreml_any(head: bytes) -> bool:
    return looks_like_coreml(head, lowest=1)


def _llamafile(head: bytes) -> bool:
    # Actually Portable Executable: a DOS/PE stub that is also a shell script.
    return head.startswith((b"MZqFpD='", b"jartsr='"))


def _torch7(head: bytes) -> bool:
    # TYPE_TORCH (4), an object index, then the version string "V 1" and a class name.
    if len(head) < 15:
        return False
    kind, _index, length = struct.unpack("<iii", head[:12])
    return kind == 4 and length == 3 and head[12:15] == b"V 1"


def _torch7_loose(head: bytes) -> bool:
    # Any Torch7 object starts with a type id 0..8 (nil, number, string, table, torch, ...).
    return len(head) >= 4 and 0 <= struct.unpack("<i", head[:4])[0] <= 8


_R_HEADS = (
    b"X\n",
    b"A\n",
    b"B\n",
    b"RDX2\n",
    b"RDX3\n",
    b"RDA2\n",
    b"RDA3\n",
    b"RDB2\n",
    b"RDB3\n",
)


def _r_data(head: bytes) -> bool:
    inner = _unwrap(head)
    if inner.startswith((b"X\n", b"B\n")):
        return len(inner) >= 6 and inner[2:6] in (b"\x00\x00\x00\x02", b"\x00\x00\x00\x03")
    if inner.startswith(b"A\n"):
        return inner[2:4] in (b"2\n", b"3\n")
    return inner.startswith(_R_HEADS[3:])


def _catboost(head: bytes) -> bool:
    return head.startswith(b"CBM1")


def _lightgbm(head: bytes) -> bool:
    return head.startswith(b"tree\nversion=v")


FORMATS: tuple[Format, ...] = (
    Format("TensorFlow Lite", (".tflite",), _tflite, _tflite, Severity.MEDIUM,
           "a FlatBuffers reader of the operator codes: custom ops and Flex (TensorFlow) ops "
           "need native kernels"),
    Format("OpenVINO IR", (), _openvino, _openvino, Severity.MEDIUM,
           "a reader of the IR's layer types: extension layers load native libraries"),
    Format("PaddlePaddle program", (".pdmodel",), _paddle, None, Severity.MEDIUM,
           "a ProgramDesc reader: custom operators and py_func ops run native or Python code"),
    Format("Core ML model", (".mlmodel",), _coreml_any, looks_like_coreml, Severity.MEDIUM,
           "a Model spec reader: custom layers and custom models name native classes"),
    Format("llamafile", (".llamafile",), _llamafile, _llamafile, Severity.HIGH,
           "no model reader can: it is a native executable (Actually Portable Executable); the "
           "GGUF inside could be scanned, never the program itself"),
    Format("Torch7 object", (".t7", ".th7"), _torch7_loose, _torch7, Severity.MEDIUM,
           "a Torch7 reader: objects name Lua classes whose read methods run on load"),
    Format("R serialized data", (".rds", ".rda", ".rdata"), _r_data, _r_data, Severity.HIGH,
           "an R serialization reader: promise and closure objects run R code when "
           "unserialized", "CVE-2024-27322"),
    Format("CatBoost model", (".cbm",), _catboost, _catboost, Severity.LOW,
           "a CatBoost model reader (parsed by libcatboost's native code)"),
    Format("LightGBM model", (), _lightgbm, _lightgbm, Severity.LOW,
           "a LightGBM model reader (parsed by the native library)"),
)  # fmt: skip


def _first_field(head: bytes) -> tuple[int, int] | None:
    try:
        key, _ = wire.read_varint(head, 0)
    except wire.WireError:
        return None
    return key >> 3, key & 7


def _unwrap(head: bytes) -> bytes:
    """The first bytes inside a gzip / bz2 / xz wrapper (R compresses .rds), else `head`."""
    try:
        if head.startswith(b"\x1f\x8b"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 64)
        if head.startswith(b"BZh"):
            return bz2.BZ2Decompressor().decompress(head, 64)
        if head.startswith(b"\xfd7zXZ\x00"):
            return lzma.LZMADecompressor().decompress(head, 64)
    except (zlib.error, OSError, EOFError, lzma.LZMAError):
        return b""
    return head


def _booster_globals(data: bytes) -> list[str]:
    """Names in a pickle's opening opcodes that belong to a gradient-boosting library."""
    found: list[str] = []
    try:
        for op, arg, _pos in genops(data):
            root = arg.split(".", 1)[0].split(" ", 1)[0] if isinstance(arg, str) else ""
            if root in _BOOSTER_ROOTS and isinstance(arg, str):
                name = arg.replace(" ", ".")
                if name not in found:
                    found.append(name)
            if op.name == "STOP" or len(found) >= 8:
                break
    except (ValueError, struct.error):  # cut by the read bound, or not a clean stream
        pass
    return found


def _finding(rule: str, severity: Severity, message: str, evidence: dict[str, JSONValue],
             reference: str | None = None) -> Finding:  # fmt: skip
    return Finding(SCANNER_ID, rule, severity, message[:300], evidence, reference=reference)


@dataclass
class UnsupportedFormatsScanner:
    """Recognises model formats no scanner analyses and says so (`unsupported`)."""

    id: str = SCANNER_ID
    version: str = "1.0.0"
    ruleset_version: str = RULESET_VERSION

    def applies_to(self, target: ScanTarget) -> bool:
        head = target.head()
        name = posixpath.basename(target.path.replace("\\", "/")).lower()
        for fmt in FORMATS:
            if (fmt.suffixes and name.endswith(fmt.suffixes)) or (fmt.claim and fmt.claim(head)):
                return True
        return sniff(head, target.size) is Kind.PICKLE and bool(_booster_globals(head))

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        head = target.head()
        name = posixpath.basename(target.path.replace("\\", "/")).lower()
        for fmt in FORMATS:
            named = bool(fmt.suffixes) and name.endswith(fmt.suffixes)
            if (named and fmt.sniff(head)) or (fmt.claim is not None and fmt.claim(head)):
                return FileVerdict(
                    Verdict.UNSUPPORTED,
                    (
                        _finding(
                            "format.unsupported",
                            fmt.severity,
                            f"{fmt.name}: recognised, not analysed; what would analyse it: "
                            f"{fmt.needed}",
                            {"format": fmt.name, "needed": fmt.needed},
                            fmt.reference,
                        ),
                    ),
                )
            if named:
                return FileVerdict(
                    Verdict.SUSPICIOUS,
                    (
                        _finding(
                            "format.name-mismatch",
                            Severity.HIGH,
                            f"named as {fmt.name} ({fmt.suffixes[0]}) but its bytes are not one "
                            "(the framework opens it by name)",
                            {"format": fmt.name, "suffix": fmt.suffixes[0]},
                        ),
                    ),
                )
        with target.open() as fh:
            data = fh.read(min(_PICKLE_READ, limits.max_pickle_bytes))
        names = _booster_globals(data)
        if not names:
            return FileVerdict(Verdict.CLEAN)
        return FileVerdict(
            Verdict.UNSUPPORTED,
            (
                _finding(
                    "format.unsupported",
                    Severity.MEDIUM,
                    f"pickled gradient-boosting model ({names[0]}): the booster bytes it holds "
                    "are parsed by the library's native code, which no scanner reads",
                    {"format": "gradient-boosting pickle", "globals": list(names)},
                ),
            ),
        )
