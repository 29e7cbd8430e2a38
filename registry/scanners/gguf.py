"""Structure validation of GGUF files; their chat templates go to `chat_template`.

GGUF layout (little-endian): ``"GGUF"`` | u32 version | tensor count | KV count | KV pairs |
tensor infos | padding to ``general.alignment`` | tensor data. Versions 2 and 3 use 64-bit
counts, string lengths, array lengths and dimensions; version 1 (the original 2023 format, which
llama.cpp no longer loads) uses 32-bit ones and is parsed the same way with narrower fields.
Big-endian files (byte-swapped version) are ``unsupported``.

Only the header is read (KV section and tensor infos); tensor data is never touched. Every
count and length is checked against `ScanLimits` *and* the bytes left in the file before any
allocation or loop, so count and length bombs cost nothing.

``tokenizer.chat_template`` (and ``tokenizer.chat_template.<name>``) is a Jinja2 template that
runtimes render (CVE-2024-34359); its text is handed to `chat_template.analyze_chat_template`.

Why this module is a little over 600 lines: it is one job (the header walk, with its reader,
value decoder and layout checks sharing one bounds-checked cursor), and a third of it is the
GGUF value-type and GGML tensor-type tables.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from registry.scanners.base import (
    FileVerdict,
    Finding,
    JSONValue,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
    worst,
)
from registry.scanners.claims import GGUF_MAGIC, GGUF_SUFFIX, named

SCANNER_ID = "gguf"
#: The format of the files this scanner recognises (by content), as policies see it.
FORMAT = "gguf"
MAGIC = GGUF_MAGIC
SUPPORTED_VERSIONS = (1, 2, 3)
DEFAULT_ALIGNMENT = 32
GGML_MAX_DIMS = 4
_INT64_MAX = 2**63 - 1
_MAX_FINDINGS = 64
_MAX_ARRAY_NESTING = 8
#: The metadata key of the chat template (`chat_template.CHAT_TEMPLATE_KEY`, the same string:
#: that module loads jinja2, so it is imported only when a template is found).
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"

# GGUF metadata value types: id -> (name, fixed byte size or 0 for string/array).
_T_STRING = 8
_T_ARRAY = 9
_T_UINT32 = 4
_T_BOOL = 7
VALUE_TYPES: Mapping[int, tuple[str, int]] = {
    0: ("UINT8", 1),
    1: ("INT8", 1),
    2: ("UINT16", 2),
    3: ("INT16", 2),
    4: ("UINT32", 4),
    5: ("INT32", 4),
    6: ("FLOAT32", 4),
    7: ("BOOL", 1),
    8: ("STRING", 0),
    9: ("ARRAY", 0),
    10: ("UINT64", 8),
    11: ("INT64", 8),
    12: ("FLOAT64", 8),
}
_V2_ONLY_TYPES = frozenset({10, 11, 12})
_SCALAR_FORMATS: Mapping[int, struct.Struct] = {
    0: struct.Struct("<B"),
    1: struct.Struct("<b"),
    2: struct.Struct("<H"),
    3: struct.Struct("<h"),
    4: struct.Struct("<I"),
    5: struct.Struct("<i"),
    6: struct.Struct("<f"),
    7: struct.Struct("<B"),
    10: struct.Struct("<Q"),
    11: struct.Struct("<q"),
    12: struct.Struct("<d"),
}
_U32 = _SCALAR_FORMATS[4]
_U64 = _SCALAR_FORMATS[10]


@dataclass(frozen=True, slots=True)
class GgmlType:
    name: str
    block_size: int  # elements per block
    type_size: int  # bytes per block


#: The ggml tensor types a GGUF file may carry (ggml.h `enum ggml_type`). Ids 4-5 (Q4_2/Q4_3),
#: 31-33 (Q4_0_N_M) and 36-38 (IQ4_NL_N_M) were removed from GGUF and are rejected; ids past
#: NVFP4 (40) are newer than this table and rejected as unknown until the table is updated.
GGML_TYPES: Mapping[int, GgmlType] = {
    0: GgmlType("F32", 1, 4),
    1: GgmlType("F16", 1, 2),
    2: GgmlType("Q4_0", 32, 18),
    3: GgmlType("Q4_1", 32, 20),
    6: GgmlType("Q5_0", 32, 22),
    7: GgmlType("Q5_1", 32, 24),
    8: GgmlType("Q8_0", 32, 34),
    9: GgmlType("Q8_1", 32, 36),
    10: GgmlType("Q2_K", 256, 84),
    11: GgmlType("Q3_K", 256, 110),
    12: GgmlType("Q4_K", 256, 144),
    13: GgmlType("Q5_K", 256, 176),
    14: GgmlType("Q6_K", 256, 210),
    15: GgmlType("Q8_K", 256, 292),
    16: GgmlType("IQ2_XXS", 256, 66),
    17: GgmlType("IQ2_XS", 256, 74),
    18: GgmlType("IQ3_XXS", 256, 98),
    19: GgmlType("IQ1_S", 256, 50),
    20: GgmlType("IQ4_NL", 32, 18),
    21: GgmlType("IQ3_S", 256, 110),
    22: GgmlType("IQ2_S", 256, 82),
    23: GgmlType("IQ4_XS", 256, 136),
    24: GgmlType("I8", 1, 1),
    25: GgmlType("I16", 1, 2),
    26: GgmlType("I32", 1, 4),
    27: GgmlType("I64", 1, 8),
    28: GgmlType("F64", 1, 8),
    29: GgmlType("IQ1_M", 256, 56),
    30: GgmlType("BF16", 1, 2),
    34: GgmlType("TQ1_0", 256, 54),
    35: GgmlType("TQ2_0", 256, 66),
    39: GgmlType("MXFP4", 32, 17),
    40: GgmlType("NVFP4", 64, 36),
}

_SEVERITY = {
    Verdict.MALICIOUS: Severity.CRITICAL,
    Verdict.MALFORMED: Severity.HIGH,
    Verdict.ERROR: Severity.MEDIUM,
    Verdict.SUSPICIOUS: Severity.MEDIUM,
    Verdict.UNSUPPORTED: Severity.LOW,
}


def _finding(
    verdict: Verdict,
    rule: str,
    message: str,
    *,
    offset: int | None = None,
    reference: str | None = None,
    **evidence: JSONValue,
) -> tuple[Verdict, Finding]:
    return verdict, Finding(
        scanner=SCANNER_ID,
        rule=rule,
        severity=_SEVERITY[verdict],
        message=message,
        evidence=evidence,
        offset=offset,
        reference=reference,
    )


def _template_results(templates: list[tuple[str, str]]) -> list[tuple[Verdict, Finding]]:
    if not templates:
        return []
    # Imported here: jinja2 and the template checks cost ~45 ms of CPU at start-up, which every
    # `modelctl scan` paid for; only a GGUF file that carries a chat template needs them.
    from registry.scanners.chat_template import analyze_chat_template  # noqa: PLC0415

    return [
        result for key, source in templates for result in analyze_chat_template(source, key=key)
    ]


def _verdict(results: Iterable[tuple[Verdict, Finding]]) -> FileVerdict:
    items = list(results)
    if not items:
        return FileVerdict(Verdict.CLEAN)
    kept = items[:_MAX_FINDINGS]
    findings = [f for _, f in kept]
    if len(items) > len(kept):
        findings.append(
            Finding(
                scanner=SCANNER_ID,
                rule="gguf.findings.truncated",
                severity=Severity.INFO,
                message=f"{len(items) - len(kept)} further findings not listed",
            )
        )
    return FileVerdict(worst([v for v, _ in items]), tuple(findings))


class _Stop(Exception):
    """A structural problem after which the header cannot be parsed further."""

    def __init__(self, verdict: Verdict, finding: Finding) -> None:
        super().__init__(finding.message)
        self.result = (verdict, finding)


def _stop(
    rule: str, message: str, *, offset: int | None = None, verdict: Verdict = Verdict.MALFORMED
) -> _Stop:
    return _Stop(*_finding(verdict, rule, message, offset=offset))


class _Reader:
    """Bounded sequential reads of the header: never past the file, never past the limit."""

    CHUNK = 64 * 1024

    def __init__(self, stream: BinaryIO, size: int, limit: int, deadline: float) -> None:
        self._stream = stream
        self._size = size
        self._limit = limit
        self._deadline = deadline
        self._buf = b""
        self._buf_start = 0
        self.pos = 0

    @property
    def remaining(self) -> int:
        return self._size - self.pos

    def _need(self, n: int, what: str) -> None:
        if self.pos + n > self._size:
            raise _stop(
                "gguf.header.truncated",
                f"{what} needs {n} bytes at offset {self.pos}, past the end of the "
                f"{self._size}-byte file",
                offset=self.pos,
            )
        if self.pos + n > self._limit:
            raise _stop(
                "gguf.header.too-large",
                f"{what} at offset {self.pos} takes the header past the {self._limit}-byte limit",
                offset=self.pos,
            )

    def check_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise _stop(
                "gguf.scan.timeout",
                "header parsing exceeded the per-file time budget",
                offset=self.pos,
                verdict=Verdict.ERROR,
            )

    def read(self, n: int, what: str) -> bytes:
        self._need(n, what)
        start = self.pos - self._buf_start
        if start >= 0 and start + n <= len(self._buf):
            out = self._buf[start : start + n]
        else:
            self._stream.seek(self.pos)
            if n >= self.CHUNK:
                out = self._stream.read(n)
            else:
                want = min(self.CHUNK, min(self._size, self._limit) - self.pos)
                self._buf = self._stream.read(want)
                self._buf_start = self.pos
                out = self._buf[:n]
            if len(out) < n:
                raise _stop("gguf.header.truncated", f"short read of {what}", offset=self.pos)
        self.pos += n
        return out

    def skip(self, n: int, what: str) -> None:
        self._need(n, what)
        self.pos += n

    def unpack(self, st: struct.Struct, what: str) -> int:
        value: int = st.unpack(self.read(st.size, what))[0]
        return value


@dataclass(slots=True)
class _TensorInfo:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int
    info_offset: int


@dataclass(slots=True)
class _Header:
    version: int = 0
    alignment: int = DEFAULT_ALIGNMENT
    alignment_value: tuple[int, object] | None = None  # (value type, value) when present
    templates: list[tuple[str, str]] = field(default_factory=list)
    tensors: list[_TensorInfo] = field(default_factory=list)
    end: int = 0


@dataclass(slots=True)
class _Ctx:
    """Version-dependent field widths, limits and the file-wide array-element budget."""

    reader: _Reader
    wide: bool  # v2+: 64-bit counts, lengths and dims; v1: 32-bit
    limits: ScanLimits
    budget: int
    n_tensors: int = 0
    n_kv: int = 0

    @property
    def len_size(self) -> int:
        return 8 if self.wide else 4

    def read_len(self, what: str) -> int:
        return self.reader.unpack(_U64 if self.wide else _U32, what)

    def read_str(self, what: str) -> str:
        at = self.reader.pos
        raw = self.reader.read(self._checked_len(what), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _stop("gguf.string.utf8", f"{what} is not valid UTF-8", offset=at) from None

    def _checked_len(self, what: str) -> int:
        at = self.reader.pos
        n = self.read_len(f"length of {what}")
        if n > self.limits.max_string_bytes:
            raise _stop(
                "gguf.string.too-long",
                f"{what} is {n} bytes, over the {self.limits.max_string_bytes}-byte limit",
                offset=at,
            )
        return n

    def _check_type(self, vtype: int, what: str, at: int) -> None:
        if vtype not in VALUE_TYPES or (not self.wide and vtype in _V2_ONLY_TYPES):
            raise _stop("gguf.kv.type", f"{what} has unknown value type {vtype}", offset=at)

    def read_value(self, vtype: int, key: str, *, keep: bool, depth: int) -> object:
        """The value when `keep` and scalar or string; otherwise it is validated and skipped."""
        r = self.reader
        at = r.pos
        self._check_type(vtype, repr(key), at - 4)
        if vtype == _T_STRING:
            if keep:
                return self.read_str(f"value of {key!r}")
            r.skip(self._checked_len(f"string in {key!r}"), f"string in {key!r}")
            return None
        if vtype == _T_ARRAY:
            self._skip_array(key, depth + 1)
            return None
        fmt = _SCALAR_FORMATS[vtype]
        value: object = fmt.unpack(r.read(fmt.size, f"value of {key!r}"))[0]
        if vtype == _T_BOOL and value not in (0, 1):
            raise _stop("gguf.kv.bool", f"{key!r} has BOOL value {value}", offset=at)
        return value

    def _skip_array(self, key: str, depth: int) -> None:
        r = self.reader
        at = r.pos
        if depth > _MAX_ARRAY_NESTING:
            raise _stop(
                "gguf.kv.array-nesting",
                f"{key!r} nests arrays deeper than {_MAX_ARRAY_NESTING}",
                offset=at,
            )
        item_type = r.unpack(_U32, f"array type in {key!r}")
        self._check_type(item_type, f"array in {key!r}", at)
        n = self.read_len(f"array length in {key!r}")
        item_size = VALUE_TYPES[item_type][1]
        if n > self.budget or n * (item_size or self.len_size) > r.remaining:
            raise _stop(
                "gguf.kv.array-too-long",
                f"array in {key!r} declares {n} items: over the item limit "
                f"({self.limits.max_items} per file) or the bytes left in the file",
                offset=at,
            )
        self.budget -= n
        if item_type == _T_BOOL:
            if r.read(n, f"BOOL array in {key!r}").strip(b"\x00\x01"):
                raise _stop("gguf.kv.bool", f"{key!r} has a BOOL that is not 0/1", offset=at)
        elif item_size:
            r.skip(n * item_size, f"array in {key!r}")
        else:
            for i in range(n):
                if i % 4096 == 0:
                    r.check_time()
                if item_type == _T_STRING:
                    r.skip(self._checked_len(f"string in {key!r}"), f"string in {key!r}")
                else:
                    self._skip_array(key, depth + 1)


class GgufScanner:
    """Validates GGUF headers and flags chat-template sandbox escapes."""

    id = SCANNER_ID
    version = "1.0.0"
    ruleset_version = "2026.1"

    def applies_to(self, target: ScanTarget) -> bool:
        """By the magic, or by the name whatever the bytes (a `.gguf` that is not: malformed)."""
        return named(target, GGUF_SUFFIX) or target.head()[:4] == MAGIC

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        results: list[tuple[Verdict, Finding]] = []
        header = _Header()
        try:
            with target.open() as stream:
                reader = _Reader(
                    stream,
                    target.size,
                    limits.max_header_bytes,
                    time.monotonic() + limits.seconds_per_file,
                )
                self._parse(reader, header, limits)
        except _Stop as stop:
            results.append(stop.result)
        except OSError as exc:
            results.append(
                _finding(Verdict.ERROR, "gguf.io-error", f"could not read the header: {exc}")
            )
        else:
            results.extend(self._check_layout(header, target.size))
        results.extend(_template_results(header.templates))
        return _verdict(results)

    # -- header ------------------------------------------------------------------------------

    def _parse(self, r: _Reader, header: _Header, limits: ScanLimits) -> None:
        ctx = self._parse_preamble(r, header, limits)
        seen: set[str] = set()
        for i in range(ctx.n_kv):
            r.check_time()
            key_at = r.pos
            key = ctx.read_str(f"key of KV #{i}")
            if not key:
                raise _stop("gguf.kv.key", f"KV #{i} has an empty key", offset=key_at)
            if key in seen:
                raise _stop("gguf.kv.duplicate-key", f"duplicate KV key {key!r}", offset=key_at)
            seen.add(key)
            vtype = r.unpack(_U32, f"type of {key!r}")
            is_template = key == CHAT_TEMPLATE_KEY or key.startswith(CHAT_TEMPLATE_KEY + ".")
            keep = is_template or key == "general.alignment"
            value = ctx.read_value(vtype, key, keep=keep, depth=0)
            if is_template:
                if not isinstance(value, str):
                    raise _stop(
                        "gguf.kv.chat-template-type",
                        f"{key!r} has type {VALUE_TYPES[vtype][0]}, not STRING",
                        offset=key_at,
                    )
                header.templates.append((key, value))
            elif key == "general.alignment":
                header.alignment_value = (vtype, value)
        self._set_alignment(header)
        names: set[str] = set()
        for i in range(ctx.n_tensors):
            r.check_time()
            info = self._read_tensor_info(ctx, i)
            if info.name in names:
                raise _stop(
                    "gguf.tensor.duplicate-name",
                    f"duplicate tensor {info.name!r}",
                    offset=info.info_offset,
                )
            names.add(info.name)
            header.tensors.append(info)
        header.end = r.pos

    @staticmethod
    def _parse_preamble(r: _Reader, header: _Header, limits: ScanLimits) -> _Ctx:
        if r.read(4, "magic") != MAGIC:
            raise _stop("gguf.header.magic", "file does not start with 'GGUF'", offset=0)
        version = r.unpack(_U32, "version")
        if version not in SUPPORTED_VERSIONS:
            if int.from_bytes(version.to_bytes(4, "little"), "big") in SUPPORTED_VERSIONS:
                raise _stop(
                    "gguf.header.big-endian",
                    "big-endian GGUF is not supported",
                    offset=4,
                    verdict=Verdict.UNSUPPORTED,
                )
            raise _stop(
                "gguf.header.version",
                f"GGUF version {version} is not one of {SUPPORTED_VERSIONS}",
                offset=4,
                verdict=Verdict.MALFORMED if version == 0 else Verdict.UNSUPPORTED,
            )
        header.version = version
        ctx = _Ctx(r, version >= 2, limits, limits.max_items)
        ctx.n_tensors = ctx.read_len("tensor count")
        ctx.n_kv = ctx.read_len("KV count")
        # Smallest possible encodings: a KV is key length + 1-byte key + type + 1-byte value,
        # a tensor info is name length + 1-byte name + n_dims + type + offset.
        min_kv = ctx.len_size + 1 + 4 + 1
        min_tensor = ctx.len_size + 1 + 4 + 4 + 8
        for what, count, minimum in (
            ("KV", ctx.n_kv, min_kv),
            ("tensor", ctx.n_tensors, min_tensor),
        ):
            if count > limits.max_items or count * minimum > r.remaining:
                raise _stop(
                    "gguf.header.count",
                    f"{what} count {count} exceeds the limit ({limits.max_items}) or what "
                    f"{r.remaining} remaining bytes can hold",
                    offset=r.pos,
                )
        return ctx

    @staticmethod
    def _read_tensor_info(ctx: _Ctx, i: int) -> _TensorInfo:
        r = ctx.reader
        at = r.pos
        name = ctx.read_str(f"name of tensor #{i}")
        n_dims = r.unpack(_U32, f"n_dims of {name!r}")
        if n_dims > GGML_MAX_DIMS:
            raise _stop(
                "gguf.tensor.dims",
                f"tensor {name!r} has {n_dims} dimensions (max {GGML_MAX_DIMS})",
                offset=at,
            )
        dims = tuple(ctx.read_len(f"dims of {name!r}") for _ in range(n_dims))
        if any(d > _INT64_MAX for d in dims):
            raise _stop("gguf.tensor.dims", f"tensor {name!r} has a dimension over 2^63", offset=at)
        ggml_type = r.unpack(_U32, f"type of {name!r}")
        if ggml_type not in GGML_TYPES:
            raise _stop(
                "gguf.tensor.type",
                f"tensor {name!r} has unknown or removed ggml type {ggml_type}",
                offset=at,
            )
        offset = r.unpack(_U64, f"offset of {name!r}")
        return _TensorInfo(name, dims, ggml_type, offset, at)

    @staticmethod
    def _set_alignment(header: _Header) -> None:
        if header.alignment_value is None:
            return
        vtype, value = header.alignment_value
        if vtype != _T_UINT32 or not isinstance(value, int) or value <= 0 or value & (value - 1):
            raise _stop(
                "gguf.kv.alignment",
                f"general.alignment must be a UINT32 power of two, got "
                f"{VALUE_TYPES.get(vtype, ('?', 0))[0]} {value!r}",
            )
        header.alignment = value

    # -- tensor layout -----------------------------------------------------------------------

    @staticmethod
    def _check_layout(header: _Header, size: int) -> Iterator[tuple[Verdict, Finding]]:
        align = header.alignment
        data_start = -(-header.end // align) * align
        spans: list[tuple[int, int, str]] = []
        for t in header.tensors:
            gt = GGML_TYPES[t.ggml_type]
            ne0 = t.dims[0] if t.dims else 1
            if ne0 % gt.block_size:
                yield _finding(
                    Verdict.MALFORMED,
                    "gguf.tensor.block",
                    f"tensor {t.name!r}: first dimension {ne0} is not a multiple of the "
                    f"{gt.name} block size {gt.block_size}",
                    offset=t.info_offset,
                    tensor=t.name,
                )
                continue
            rows = 1
            for d in t.dims[1:]:
                rows *= d
            nbytes = ne0 // gt.block_size * gt.type_size * rows
            if t.offset % align:
                yield _finding(
                    Verdict.MALFORMED,
                    "gguf.tensor.misaligned",
                    f"tensor {t.name!r} offset {t.offset} is not a multiple of {align}",
                    offset=t.info_offset,
                    tensor=t.name,
                    data_offset=t.offset,
                    alignment=align,
                )
            if data_start + t.offset + nbytes > size:
                yield _finding(
                    Verdict.MALFORMED,
                    "gguf.tensor.out-of-bounds",
                    f"tensor {t.name!r} ({nbytes} bytes at data offset {t.offset}) ends past "
                    f"the {size}-byte file",
                    offset=t.info_offset,
                    tensor=t.name,
                    nbytes=nbytes,
                    data_offset=t.offset,
                )
            spans.append((t.offset, t.offset + nbytes, t.name))
        if [s[0] for s in spans] != sorted(s[0] for s in spans):
            yield _finding(
                Verdict.SUSPICIOUS,
                "gguf.tensor.order",
                "tensor infos are not in data order (writers emit them in order)",
            )
        expected, prev = 0, ""
        for begin, end, name in sorted(spans):
            if begin < expected:
                yield _finding(
                    Verdict.MALFORMED,
                    "gguf.tensor.overlap",
                    f"tensor {name!r} [{begin}, {end}) overlaps tensor {prev!r}",
                    tensor=name,
                    other=prev,
                )
            elif begin > -(-expected // align) * align:
                yield _finding(
                    Verdict.SUSPICIOUS,
                    "gguf.tensor.gap",
                    f"{begin - expected} unreferenced bytes before tensor {name!r}",
                    tensor=name,
                    gap_start=expected,
                    gap_end=begin,
                )
            if end >= expected:
                expected, prev = end, name
        data_end = data_start + -(-expected // align) * align
        if size > data_end:
            yield _finding(
                Verdict.SUSPICIOUS,
                "gguf.data.trailing",
                f"{size - data_end} bytes after the last tensor are referenced by nothing",
                offset=data_end,
            )
