"""Structure validation of GGUF files and static analysis of their chat templates.

GGUF layout (little-endian): ``"GGUF"`` | u32 version | tensor count | KV count | KV pairs |
tensor infos | padding to ``general.alignment`` | tensor data. Versions 2 and 3 use 64-bit
counts, string lengths, array lengths and dimensions; version 1 (the original 2023 format, which
llama.cpp no longer loads) uses 32-bit ones and is parsed the same way with narrower fields.
Big-endian files (byte-swapped version) are ``unsupported``.

Only the header is read (KV section and tensor infos); tensor data is never touched. Every
count and length is checked against `ScanLimits` *and* the bytes left in the file before any
allocation or loop, so count and length bombs cost nothing.

``tokenizer.chat_template`` (and ``tokenizer.chat_template.<name>``) is a Jinja2 template that
runtimes render (CVE-2024-34359). It is parsed with Jinja2's sandboxed environment into an AST,
never compiled to Python or rendered, and the AST is checked for sandbox-escape gadgets.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

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

SCANNER_ID = "gguf"
#: The format of the files this scanner recognises (by content), as policies see it.
FORMAT = "gguf"
MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (1, 2, 3)
DEFAULT_ALIGNMENT = 32
GGML_MAX_DIMS = 4
_INT64_MAX = 2**63 - 1
_MAX_FINDINGS = 64
_MAX_ARRAY_NESTING = 8
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"
ESCAPE_RULE = "gguf.chat-template.escape"
SUSPICIOUS_RULE = "gguf.chat-template.suspicious"
SYNTAX_RULE = "gguf.chat-template.syntax"
SSTI_REFERENCE = "CVE-2024-34359"

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
        return target.head()[:4] == MAGIC

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
        for key, source in header.templates:
            results.extend(analyze_chat_template(source, key=key))
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


# -- chat templates ----------------------------------------------------------------------------


class _GenerationTag(Extension):
    """Parses transformers' ``{% generation %}...{% endgeneration %}`` block (assistant mask)."""

    tags = {"generation"}  # noqa: RUF012 - Extension API declares a plain set

    def parse(self, parser: Parser) -> nodes.Node | list[nodes.Node]:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def _template_env() -> ImmutableSandboxedEnvironment:
    # The same parser transformers uses for chat templates (sandboxed, loopcontrols), plus
    # `do` so that templates written for other runtimes still parse. Used for `parse` only.
    return ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _GenerationTag],
    )


#: Dunder names whose appearance anywhere in template code is a known escape primitive.
ESCAPE_DUNDERS = frozenset(
    {
        "__class__", "__mro__", "__base__", "__bases__", "__subclasses__", "__globals__",
        "__builtins__", "__import__", "__init__", "__dict__", "__code__", "__func__",
        "__self__", "__closure__", "__getattribute__", "__getattr__", "__reduce__",
        "__reduce_ex__", "__loader__", "__spec__", "__call__", "__module__", "__new__",
        "__setattr__", "__delattr__", "__traceback__", "__wrapped__",
    }
)  # fmt: skip
#: Non-underscore attributes that reach frames, code, modules or process execution.
ESCAPE_ATTRIBUTES = frozenset(
    {
        "mro", "func_globals", "func_code", "im_func", "im_self", "gi_frame", "gi_code",
        "cr_frame", "cr_code", "ag_frame", "ag_code", "f_globals", "f_locals", "f_builtins",
        "f_back", "f_code", "tb_frame", "tb_next", "co_code", "os", "sys", "subprocess",
        "builtins", "importlib", "popen", "import_module", "check_output", "getoutput",
        "getstatusoutput", "spawnv", "spawnl", "execv", "execl", "execve", "load_module",
        "exec_module",
    }
)  # fmt: skip
#: Methods that run commands or code when called.
ESCAPE_CALLS = frozenset({"system", "popen", "eval", "exec", "run", "call", "check_call"})
#: Globals that exist only to be abused in a chat template (Jinja gadget objects, Flask
#: objects copied from SSTI payloads, Python builtins that Jinja does not even provide).
SUSPICIOUS_GLOBALS = frozenset(
    {
        "lipsum", "cycler", "joiner", "self", "config", "request", "session", "g", "url_for",
        "get_flashed_messages", "os", "sys", "subprocess", "builtins", "importlib", "eval",
        "exec", "getattr", "setattr", "open", "globals", "locals", "vars", "compile",
    }
)  # fmt: skip
_GADGET_GLOBALS = frozenset({"lipsum", "cycler", "joiner", "namespace", "self", "range", "dict"})
_MODULE_STRINGS = frozenset(
    {"os", "sys", "subprocess", "builtins", "posix", "nt", "importlib", "pty", "socket"}
)
_SHELL_MARKERS = ("subprocess", "popen", "os.system", "import os", "__import__", "/bin/sh")
_ATTR_TAKING_FILTERS = frozenset(
    {"map", "select", "reject", "selectattr", "rejectattr", "sort", "groupby", "sum",
     "unique", "min", "max", "dictsort"}
)  # fmt: skip
_DUNDER_NAME = re.compile(r"__\w+__")
_WORD = re.compile(r"\w+")
_FOLD_MAX = 4096
_SAFE_PERCENT = re.compile(r"%[^%csdirxX]")
_MAX_RANGE = 100_000


def _fold(node: nodes.Node, depth: int = 0) -> str | int | None:
    """Constant-fold string-building expressions, bounded; None when not a constant."""
    if depth > 64:
        return None
    result: object = None
    if isinstance(node, nodes.Const):
        result = node.value
    elif isinstance(node, nodes.Concat):
        parts = [_fold(n, depth + 1) for n in node.nodes]
        if all(p is not None for p in parts):
            result = "".join(str(p) for p in parts)
    elif isinstance(node, nodes.Add | nodes.Mul | nodes.Mod):
        left, right = _fold(node.left, depth + 1), _fold(node.right, depth + 1)
        result = _fold_binary(node, left, right)
    elif isinstance(node, nodes.Filter) and node.node is not None:
        result = _fold_filter(node, depth)
    elif isinstance(node, nodes.Getitem):
        result = _fold_getitem(node, depth)
    if isinstance(result, bool):
        return None
    if isinstance(result, str) and len(result) <= _FOLD_MAX:
        return result
    if isinstance(result, int) and abs(result) <= 10**9:
        return result
    return None


def _fold_getitem(node: nodes.Getitem, depth: int) -> str | None:
    base = _fold(node.node, depth + 1)
    if not isinstance(base, str):
        return None
    if isinstance(node.arg, nodes.Slice):
        bounds = [
            None if n is None else _fold(n, depth + 1)
            for n in (node.arg.start, node.arg.stop, node.arg.step)
        ]
        ints = [b for b in bounds if isinstance(b, int) or b is None]
        if len(ints) == 3 and ints[2] != 0:
            start, stop, step = (b if isinstance(b, int) else None for b in ints)
            return base[start:stop:step]
        return None
    index = _fold(node.arg, depth + 1)
    if isinstance(index, int) and -len(base) <= index < len(base):
        return base[index]
    return None


def _fold_binary(node: nodes.Node, left: object, right: object) -> str | int | None:
    if isinstance(node, nodes.Add):
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(left, int) and isinstance(right, int):
            return left + right
    elif isinstance(node, nodes.Mul):
        if isinstance(left, int) and isinstance(right, str):
            left, right = right, left
        if isinstance(left, str) and isinstance(right, int) and len(left) * right <= _FOLD_MAX:
            return left * right
        if isinstance(left, int) and isinstance(right, int):
            return left * right
    elif isinstance(node, nodes.Mod) and isinstance(left, str):
        return _percent(left, right)
    return None


def _percent(fmt: str, args: object) -> str | None:
    if _SAFE_PERCENT.search(fmt.replace("%%", "")):
        return None  # width/precision or exotic conversions: do not evaluate
    if not isinstance(args, tuple):
        args = (args,)
    if not all(isinstance(a, str | int) and not isinstance(a, bool) for a in args):
        return None
    try:
        return fmt % args
    except (TypeError, ValueError, OverflowError):
        return None


def _fold_filter(node: nodes.Filter, depth: int) -> str | None:
    assert node.node is not None
    if node.name == "join" and isinstance(node.node, nodes.List | nodes.Tuple):
        items = [_fold(n, depth + 1) for n in node.node.items]
        sep = _fold(node.args[0], depth + 1) if node.args else ""
        if all(i is not None for i in items) and isinstance(sep, str):
            return sep.join(str(i) for i in items)
        return None
    base = _fold(node.node, depth + 1)
    args = [_fold(a, depth + 1) for a in node.args]
    if not isinstance(base, str) or any(a is None for a in args) or node.kwargs:
        return None
    result: str | None = None
    if not args:
        unary = {
            "lower": base.lower(),
            "upper": base.upper(),
            "string": base,
            "trim": base.strip(),
            "reverse": base[::-1],
            "first": base[:1],
            "last": base[-1:],
        }
        result = unary.get(node.name)
    elif node.name == "replace" and len(args) == 2:
        old, new = str(args[0]), str(args[1])
        if len(base) + base.count(old) * len(new) <= _FOLD_MAX:
            result = base.replace(old, new)
    elif node.name == "format":
        result = _percent(base, tuple(args))
    return result


@dataclass(slots=True)
class _TemplateCheck:
    key: str
    lines: list[str]
    results: list[tuple[Verdict, Finding]] = field(default_factory=list)
    _seen: set[tuple[str, str, int]] = field(default_factory=set)

    def flag(self, verdict: Verdict, node: nodes.Node, detail: str, needle: str) -> None:
        lineno = getattr(node, "lineno", 1) or 1
        marker = (verdict.value, detail, lineno)
        if marker in self._seen:
            return
        self._seen.add(marker)
        rule = ESCAPE_RULE if verdict is Verdict.MALICIOUS else SUSPICIOUS_RULE
        what = "sandbox escape" if verdict is Verdict.MALICIOUS else "unusual construct"
        self.results.append(
            _finding(
                verdict,
                rule,
                f"chat template {self.key!r}: {what}: {detail}",
                reference=SSTI_REFERENCE if verdict is Verdict.MALICIOUS else None,
                key=self.key,
                line=lineno,
                snippet=self._snippet(lineno, needle),
                detail=detail,
            )
        )

    def _snippet(self, lineno: int, needle: str) -> str:
        line = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        at = line.find(needle) if needle else -1
        start = max(0, (at if at >= 0 else 0) - 60)
        return line[start : start + 160]

    def attribute(self, node: nodes.Node, name: str, how: str) -> None:
        if name.startswith("__"):
            self.flag(Verdict.MALICIOUS, node, f"{how} of dunder {name!r}", name)
        elif name in ESCAPE_ATTRIBUTES:
            self.flag(Verdict.MALICIOUS, node, f"{how} of {name!r}", name)
        elif name.startswith("_"):
            self.flag(Verdict.SUSPICIOUS, node, f"{how} of private {name!r}", name)

    def string(self, node: nodes.Node, text: str) -> None:
        stripped = text.strip()
        if _DUNDER_NAME.fullmatch(stripped) or any(d in text for d in ESCAPE_DUNDERS):
            self.flag(Verdict.MALICIOUS, node, f"string names a dunder: {text[:60]!r}", text)
        elif _WORD.fullmatch(stripped) and (stripped.startswith("__") or stripped.endswith("__")):
            self.flag(Verdict.SUSPICIOUS, node, f"partial dunder string {text[:60]!r}", text)
        elif stripped in _MODULE_STRINGS or any(m in text for m in _SHELL_MARKERS):
            self.flag(Verdict.SUSPICIOUS, node, f"module or shell string {text[:60]!r}", text)


def analyze_chat_template(
    source: str, *, key: str = CHAT_TEMPLATE_KEY
) -> list[tuple[Verdict, Finding]]:
    """Parse a chat template (never render or compile it) and judge its AST.

    Returns ``(verdict, finding)`` pairs: ``malicious`` for escape primitives, ``suspicious``
    for constructs no ordinary chat template needs, ``malformed`` when Jinja2 cannot parse it.
    """
    check = _TemplateCheck(key, source.splitlines())
    try:
        tree = _template_env().parse(source)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        return [
            _finding(
                Verdict.MALFORMED,
                SYNTAX_RULE,
                f"chat template {key!r} does not parse: {exc}",
                key=key,
                line=lineno,
            )
        ]
    except RecursionError:
        return [
            _finding(
                Verdict.MALFORMED, SYNTAX_RULE, f"chat template {key!r} nests too deeply", key=key
            )
        ]
    bound = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")} | {
        m.name for m in tree.find_all(nodes.Macro)
    }
    for node in tree.find_all(nodes.Node):
        _check_node(check, node, bound)
    return check.results


def _check_node(check: _TemplateCheck, node: nodes.Node, bound: set[str]) -> None:  # noqa: PLR0912
    if isinstance(node, nodes.Getattr):
        check.attribute(node, node.attr, "attribute access")
    elif isinstance(node, nodes.NSRef):
        check.attribute(node, node.attr, "namespace assignment")
    elif isinstance(node, nodes.Getitem):
        key = _fold(node.arg)
        if isinstance(key, str):
            check.attribute(node, key, "item access")
    elif isinstance(node, nodes.Keyword):
        check.attribute(node, node.key, "keyword argument")
    elif isinstance(node, nodes.Const) and isinstance(node.value, str):
        check.string(node, node.value)
    elif isinstance(node, nodes.Name) and node.ctx == "load":
        if node.name.startswith("__"):
            check.flag(Verdict.MALICIOUS, node, f"dunder global {node.name!r}", node.name)
        elif node.name in SUSPICIOUS_GLOBALS and node.name not in bound:
            check.flag(Verdict.SUSPICIOUS, node, f"gadget global {node.name!r}", node.name)
    elif isinstance(node, nodes.Filter):
        _check_filter(check, node)
    elif isinstance(node, nodes.Call):
        _check_call(check, node, bound)
    elif isinstance(node, nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends):
        check.flag(Verdict.SUSPICIOUS, node, f"loads another template ({type(node).__name__})", "")
    elif isinstance(node, nodes.Pow):
        check.flag(Verdict.SUSPICIOUS, node, "exponentiation (resource exhaustion)", "**")
    if isinstance(node, nodes.Concat | nodes.Add | nodes.Mul | nodes.Mod | nodes.Filter):
        built = _fold(node)
        if isinstance(built, str) and "__" in built:
            check.flag(Verdict.MALICIOUS, node, f"dunder built at render time: {built[:60]!r}", "")
        elif isinstance(node, nodes.Mul) and built is None:
            sizes = [_fold(node.left), _fold(node.right)]
            if any(isinstance(s, int) and s > _MAX_RANGE for s in sizes):
                check.flag(Verdict.SUSPICIOUS, node, "huge repetition", "*")


def _check_filter(check: _TemplateCheck, node: nodes.Filter) -> None:
    args = list(node.args)
    if node.name == "map" and args and _fold(args[0]) == "attr":
        args = args[1:]
    elif node.name != "attr":
        if node.name in _ATTR_TAKING_FILTERS:
            for arg in [*args, *(kw.value for kw in node.kwargs)]:
                name = _fold(arg)
                if isinstance(name, str):
                    check.attribute(node, name, f"|{node.name} attribute")
        if node.name == "format" and node.node is not None:
            fmt = _fold(node.node)
            if isinstance(fmt, str) and "%c" in fmt:
                check.flag(Verdict.SUSPICIOUS, node, "builds characters with %c", "%c")
        return
    if not args:
        return
    name = _fold(args[0])
    if isinstance(name, str):
        check.attribute(node, name, "|attr")
        if not (name.startswith("_") or name in ESCAPE_ATTRIBUTES):
            check.flag(Verdict.SUSPICIOUS, node, f"|attr({name!r}) instead of plain access", "attr")
    else:
        check.flag(Verdict.SUSPICIOUS, node, "|attr with a computed attribute name", "attr")


def _check_call(check: _TemplateCheck, node: nodes.Call, bound: set[str]) -> None:
    callee = node.node
    if isinstance(callee, nodes.Getattr) and callee.attr in ESCAPE_CALLS:
        receiver = callee.node
        # `.run`, `.call` are only dangerous on gadget chains; `.system`/`.popen`/`eval` always.
        always = callee.attr in ("system", "popen", "eval", "exec")
        chained = isinstance(receiver, nodes.Getattr | nodes.Getitem) and _reaches_gadget(receiver)
        if always or chained:
            check.flag(Verdict.MALICIOUS, node, f"calls .{callee.attr}()", callee.attr)
    elif isinstance(callee, nodes.Name) and callee.name == "range" and "range" not in bound:
        for arg in node.args:
            value = _fold(arg)
            if isinstance(value, int) and value > _MAX_RANGE:
                check.flag(Verdict.SUSPICIOUS, node, f"range({value})", "range")


def _reaches_gadget(node: nodes.Node) -> bool:
    for n in [node, *node.find_all(nodes.Node)]:
        if isinstance(n, nodes.Getattr) and (n.attr.startswith("_") or n.attr in ESCAPE_ATTRIBUTES):
            return True
        if isinstance(n, nodes.Name) and n.name in _GADGET_GLOBALS:
            return True
    return False
