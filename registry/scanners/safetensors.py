"""Strict structure validation of safetensors files, from the header alone.

Layout: ``u64 little-endian N`` | ``N bytes of UTF-8 JSON`` | data section. The JSON maps each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the
data section) plus an optional ``__metadata__`` string-to-string map.

The reference (Rust) reader sorts tensors by offset and accepts what it can index; other readers
(C++, JS, hand-rolled) differ on duplicate keys, NaN, gaps and overlaps, so anything the
reference writer would not produce is ``malformed`` here: two parsers must never disagree about
a file we admit. Only the 8-byte length and the header are read, never the tensor data.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from registry.scanners.base import (
    FileVerdict,
    Finding,
    JSONValue,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
)
from registry.scanners.claims import SAFETENSORS_SUFFIX, named

SCANNER_ID = "safetensors"
#: The format of the files this scanner recognises (by content), as policies see it.
FORMAT = "safetensors"

#: Element size in *bits* of every dtype in the safetensors spec (Rust crate `Dtype`, 0.7/0.8).
#: Sub-byte types (F4, F6_*) are packed; a tensor's bit count must be a whole number of bytes.
DTYPE_BITS: Mapping[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

_TENSOR_FIELDS = frozenset({"dtype", "shape", "data_offsets"})
_METADATA_KEY = "__metadata__"
_MAX_FINDINGS = 64
_U64 = struct.Struct("<Q")
_U64_MAX = 2**64 - 1


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _NonFinite(ValueError):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _reject_constant(token: str) -> Any:
    raise _NonFinite(token)


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U64_MAX


def _valid_unicode(text: str) -> bool:
    """False for lone surrogates (``"\\ud800"``), which Python's json accepts and serde rejects."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _HeaderRejected(Exception):
    def __init__(self, rule: str, message: str, offset: int, **evidence: JSONValue) -> None:
        super().__init__(message)
        self.rule, self.message, self.offset, self.evidence = rule, message, offset, evidence


def _decode_header(raw: bytes) -> dict[str, Any]:
    """The header JSON object, or `_HeaderRejected` naming the first violated rule."""
    if raw[:1] != b"{":
        raise _HeaderRejected(
            "safetensors.header.start", "header does not start with '{'", 8, first_byte=raw[0]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _HeaderRejected(
            "safetensors.header.utf8",
            f"header is not valid UTF-8 ({exc.reason} at header byte {exc.start})",
            8 + exc.start,
        ) from None
    decoder = json.JSONDecoder(
        object_pairs_hook=_pairs_no_duplicates, parse_constant=_reject_constant
    )
    try:
        obj, end = decoder.raw_decode(text)
    except _DuplicateKey as exc:
        raise _HeaderRejected(
            "safetensors.json.duplicate-key",
            f"duplicate JSON key {exc.key!r} (readers disagree on which one wins)",
            8,
            key=exc.key,
        ) from None
    except _NonFinite as exc:
        raise _HeaderRejected(
            "safetensors.json.non-finite",
            f"non-standard JSON constant {exc.token}",
            8,
            token=exc.token,
        ) from None
    except json.JSONDecodeError as exc:
        raise _HeaderRejected(
            "safetensors.json.invalid",
            f"header is not well-formed JSON: {exc.msg} at char {exc.pos}",
            8,
        ) from None
    except (ValueError, RecursionError) as exc:  # int too long, nesting too deep
        raise _HeaderRejected(
            "safetensors.json.invalid", f"header JSON rejected: {type(exc).__name__}", 8
        ) from None
    rest = text[end:]
    if rest.strip(" "):
        first_bad = next(i for i, ch in enumerate(rest) if ch != " ")
        raise _HeaderRejected(
            "safetensors.header.trailing-bytes",
            "bytes other than space padding after the header JSON",
            8 + len(text[: end + first_bad].encode("utf-8")),
            trailing=rest[first_bad : first_bad + 32],
        )
    if not isinstance(obj, dict):  # pragma: no cover - raw starts with '{'
        raise _HeaderRejected("safetensors.header.not-object", "header is not an object", 8)
    return obj


@dataclass(frozen=True, slots=True)
class _Span:
    name: str
    begin: int
    end: int


class _Report:
    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.dropped = 0

    def add(
        self,
        rule: str,
        message: str,
        *,
        tensor: str | None = None,
        offset: int | None = None,
        extra: Mapping[str, JSONValue] | None = None,
        **evidence: JSONValue,
    ) -> None:
        if len(self.findings) >= _MAX_FINDINGS:
            self.dropped += 1
            return
        ev: dict[str, JSONValue] = {**(extra or {}), **evidence}
        if tensor is not None:
            ev["tensor"] = tensor
        self.findings.append(
            Finding(
                scanner=SCANNER_ID,
                rule=rule,
                severity=Severity.HIGH,
                message=message,
                evidence=ev,
                offset=offset,
            )
        )

    def verdict(self) -> FileVerdict:
        if not self.findings:
            return FileVerdict(Verdict.CLEAN)
        findings = list(self.findings)
        if self.dropped:
            findings.append(
                Finding(
                    scanner=SCANNER_ID,
                    rule="safetensors.findings.truncated",
                    severity=Severity.INFO,
                    message=f"{self.dropped} further violations not listed",
                    evidence={"dropped": self.dropped},
                )
            )
        return FileVerdict(Verdict.MALFORMED, tuple(findings))


_HEADER_KEYS = (b'"data_offsets"', b'"__metadata__"')


class SafetensorsScanner:
    """Validates the safetensors header against the spec; never reads tensor data."""

    id = SCANNER_ID
    version = "1.0.0"
    ruleset_version = "2026.1"

    def __init__(self, sniff_max_header_bytes: int = ScanLimits().max_header_bytes) -> None:
        self._sniff_max_header_bytes = sniff_max_header_bytes

    def applies_to(self, target: ScanTarget) -> bool:
        """Safetensors has no magic, so the sniff checks the only fixed structure it has.

        The first 8 bytes must read as a plausible header length N (2 <= N <= the header bound)
        *and* byte 8 must be ``{``, the start of the JSON object. A length past the end of the
        file still claims it: that is a truncated or lying safetensors file (malformed), not
        "not safetensors". Other
        formats fail it: "GGUF", "PK\\x03\\x04" or a pickle's "\\x80\\x0N..." as a u64 is far
        larger than any file, and random data passes both tests with negligible probability.
        A file *named* ``.safetensors`` is claimed whatever its bytes: the loader opens it by
        name, so bytes that fail the sniff are a malformed file, never silently clean (other
        scanners still look: a pickle so named is the pickle scanner's too). Any other file
        that fails the sniff is left to other scanners (or ``unsupported``).
        """
        if named(target, SAFETENSORS_SUFFIX):
            return True
        head = target.head()
        if len(head) < 9:
            return False
        (n,) = _U64.unpack_from(head, 0)
        if head[8] != 0x7B:
            return False
        # An absurd length with a safetensors-shaped header is a lying file, not another format.
        return 2 <= n <= self._sniff_max_header_bytes or any(k in head for k in _HEADER_KEYS)

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        report = _Report()
        size = target.size
        try:
            with target.open() as stream:
                prefix = stream.read(8)
                if len(prefix) < 8:
                    report.add(
                        "safetensors.header.truncated",
                        f"file is {size} bytes, shorter than the 8-byte header length",
                        offset=0,
                    )
                    return report.verdict()
                (n,) = _U64.unpack(prefix)
                if n < 2 or n > limits.max_header_bytes or n > size - 8:
                    report.add(
                        "safetensors.header.length",
                        f"header length {n} outside 2..min({limits.max_header_bytes}, "
                        f"file size - 8 = {size - 8})",
                        offset=0,
                        header_length=n,
                        file_size=size,
                        limit=limits.max_header_bytes,
                    )
                    return report.verdict()
                raw = stream.read(n)
        except OSError as exc:
            return FileVerdict(
                Verdict.ERROR,
                (
                    Finding(
                        scanner=SCANNER_ID,
                        rule="safetensors.io-error",
                        severity=Severity.MEDIUM,
                        message=f"could not read the header: {exc}",
                    ),
                ),
            )
        if len(raw) < n:
            report.add(
                "safetensors.header.truncated",
                f"header declares {n} bytes, only {len(raw)} could be read",
                offset=8,
            )
            return report.verdict()
        header = self._parse_header(raw, report)
        if header is not None:
            self._check_header(header, size - 8 - n, limits, report)
        return report.verdict()

    # -- header text -------------------------------------------------------------------------

    @staticmethod
    def _parse_header(raw: bytes, report: _Report) -> dict[str, Any] | None:
        try:
            return _decode_header(raw)
        except _HeaderRejected as exc:
            report.add(exc.rule, exc.message, offset=exc.offset, extra=exc.evidence)
            return None

    # -- header content ----------------------------------------------------------------------

    def _check_header(
        self, header: dict[str, Any], data_len: int, limits: ScanLimits, report: _Report
    ) -> None:
        if len(header) > limits.max_items:
            report.add(
                "safetensors.header.too-many-entries",
                f"{len(header)} header entries exceed the limit of {limits.max_items}",
                entries=len(header),
            )
            return
        spans: list[_Span] = []
        for name, entry in header.items():
            if not _valid_unicode(name):
                report.add(
                    "safetensors.header.invalid-string",
                    "key contains a lone surrogate escape",
                    key=name.encode("utf-8", "backslashreplace").decode("ascii"),
                )
                continue
            if name == _METADATA_KEY:
                self._check_metadata(entry, report)
                continue
            span = self._check_tensor(name, entry, report)
            if span is not None:
                spans.append(span)
        self._check_layout(spans, data_len, report)

    @staticmethod
    def _check_metadata(entry: object, report: _Report) -> None:
        if not isinstance(entry, dict):
            report.add(
                "safetensors.metadata.not-string-map",
                f"__metadata__ is {type(entry).__name__}, not an object",
            )
            return
        for key, value in entry.items():
            if not isinstance(value, str):
                report.add(
                    "safetensors.metadata.not-string-map",
                    f"__metadata__[{key!r}] is {type(value).__name__}, not a string",
                    key=key,
                )
            elif not (_valid_unicode(key) and _valid_unicode(value)):
                report.add(
                    "safetensors.header.invalid-string",
                    "__metadata__ entry contains a lone surrogate escape",
                )

    @staticmethod
    def _check_tensor(name: str, entry: object, report: _Report) -> _Span | None:
        if not isinstance(entry, dict):
            report.add(
                "safetensors.tensor.not-object",
                f"tensor {name!r} entry is {type(entry).__name__}, not an object",
                tensor=name,
            )
            return None
        fields = set(entry)
        if fields != _TENSOR_FIELDS:
            report.add(
                "safetensors.tensor.fields",
                f"tensor {name!r} must have exactly dtype, shape, data_offsets",
                tensor=name,
                missing=sorted(_TENSOR_FIELDS - fields),
                unexpected=sorted(fields - _TENSOR_FIELDS),
            )
            return None
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        ok = True
        bits = DTYPE_BITS.get(dtype) if isinstance(dtype, str) else None
        if bits is None:
            report.add(
                "safetensors.tensor.dtype",
                f"tensor {name!r} has unknown dtype {dtype!r}",
                tensor=name,
                dtype=dtype if isinstance(dtype, str) else repr(dtype),
            )
            ok = False
        if not (isinstance(shape, list) and all(_is_uint(d) for d in shape)):
            report.add(
                "safetensors.tensor.shape",
                f"tensor {name!r} shape is not a list of non-negative integers",
                tensor=name,
                shape=repr(shape)[:200],
            )
            ok = False
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_uint(o) for o in offsets)
            and offsets[0] <= offsets[1]
        ):
            report.add(
                "safetensors.tensor.offsets",
                f"tensor {name!r} data_offsets is not [begin, end] with 0 <= begin <= end",
                tensor=name,
                data_offsets=repr(offsets)[:200],
            )
            return None
        begin, end = offsets
        if ok and bits is not None:
            elements = 1
            for dim in shape:
                elements *= dim
            total_bits = elements * bits
            if total_bits % 8:
                report.add(
                    "safetensors.tensor.misaligned",
                    f"tensor {name!r}: {elements} x {bits}-bit elements is not a whole byte count",
                    tensor=name,
                )
            elif end - begin != total_bits // 8:
                report.add(
                    "safetensors.tensor.size-mismatch",
                    f"tensor {name!r}: data_offsets span {end - begin} bytes, "
                    f"dtype x shape needs {total_bits // 8}",
                    tensor=name,
                    span=end - begin,
                    expected=total_bits // 8,
                )
        return _Span(name, begin, end)

    @staticmethod
    def _check_layout(spans: list[_Span], data_len: int, report: _Report) -> None:
        for prev, cur in itertools.pairwise(spans):
            if (cur.begin, cur.end) < (prev.begin, prev.end):
                report.add(
                    "safetensors.layout.unsorted",
                    f"tensor {cur.name!r} comes after {prev.name!r} in the header but lies "
                    "before it in the data (the reference writer emits offset order)",
                    tensor=cur.name,
                    previous=prev.name,
                )
                break
        expected = 0
        previous: str | None = None
        for span in sorted(spans, key=lambda s: (s.begin, s.end)):
            if span.begin < expected:
                report.add(
                    "safetensors.layout.overlap",
                    f"tensor {span.name!r} [{span.begin}, {span.end}) overlaps {previous!r}",
                    tensor=span.name,
                    other=previous,
                )
            elif span.begin > expected:
                report.add(
                    "safetensors.layout.gap",
                    f"{span.begin - expected} unreferenced bytes before tensor {span.name!r}",
                    tensor=span.name,
                    gap_start=expected,
                    gap_end=span.begin,
                )
            if span.end > data_len:
                report.add(
                    "safetensors.layout.out-of-bounds",
                    f"tensor {span.name!r} ends at {span.end}, past the {data_len}-byte data "
                    "section",
                    tensor=span.name,
                    end=span.end,
                    data_len=data_len,
                )
            if span.end >= expected:
                expected, previous = span.end, span.name
        if expected < data_len:
            report.add(
                "safetensors.layout.trailing-data",
                f"data section is {data_len} bytes, tensors cover only {expected}",
                covered=expected,
                data_len=data_len,
            )
