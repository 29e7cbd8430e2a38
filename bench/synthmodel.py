"""Write a synthetic Hugging-Face-style model folder for benchmarks and tests.

The folder looks like a sharded llama checkpoint as published on the Hub:

* ``model-0000i-of-0000N.safetensors`` shards in the real safetensors format: an 8-byte
  little-endian header length, a JSON header (``__metadata__`` plus one entry per tensor with
  ``dtype``, ``shape`` and ``data_offsets``) padded with spaces to a multiple of 8, then the
  raw tensor bytes, laid out contiguously in header order;
* ``model.safetensors.index.json`` (``weight_map`` and ``metadata.total_size``);
* ``config.json``, ``generation_config.json``, a small but well-formed byte-level BPE
  ``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``;
* a ``README.md`` model card with ``license: apache-2.0`` in its YAML front matter.

Tensor bytes are pseudo-random yet cheap at GB scale: each shard draws one random block (4 MiB
at most) from ``random.Random`` seeded by (seed, shard) and streams it to disk over and over,
each 4 MiB chunk starting with its own 16-byte prefix (a hash of seed, shard and chunk index).
No shard is ever held in memory, chunks are not byte-identical (so a naive chunk-level dedup
finds nothing), shards differ from each other, and a given seed always yields the same bytes.

Sizes are approximate: the shapes (hidden size up to 4096, intermediate size, layer count) are
solved so the tensor bytes land a little under ``total_bytes``. Size suffixes on the command
line are binary: K = 1024, M = 1024**2, G = 1024**3, T = 1024**4.

Usage::

    python bench/synthmodel.py OUT --size 2G --shards 4 [--seed N]

Stdlib only, so the benchmark runs from any Python 3.11+.
"""

import argparse
import hashlib
import json
import math
import random
import re
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

CHUNK_SIZE = 4 * 1024 * 1024
"""Bytes written per chunk; also the size of the random block each shard repeats."""

PREFIX_SIZE = 16
"""Bytes at the start of every chunk that vary with (seed, shard, chunk index)."""

DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
"""Bytes per element of every safetensors dtype that ``check_safetensors`` accepts."""

MAX_HEADER_BYTES = 100 * 1024 * 1024
"""The safetensors reference implementation refuses headers larger than this."""

_MAX_HIDDEN = 4096
_LLAMA_INTERMEDIATE = 11008
_MIN_DIM = 8
_SIZE_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_PATTERN = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(?:([KMGT])(?:I?B)?|B)?", re.IGNORECASE)

_BOS, _EOS, _UNK = "<s>", "</s>", "<unk>"
_WORDS = (  # merged into whole-word tokens by the BPE tokenizer
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an had they you were their one all we can her has there been if more "
    "when will would who so no model weights tensor layer token attention"
)


class TensorInfo(TypedDict):
    """One tensor entry of a safetensors header."""

    dtype: str
    shape: list[int]
    data_offsets: list[int]


class SafetensorsInfo(TypedDict):
    """What ``check_safetensors`` found in a file."""

    header_len: int
    """Length of the JSON header in bytes (padding included), as stored in the first 8 bytes."""
    metadata: dict[str, str]
    """The ``__metadata__`` entry, or an empty dict."""
    tensors: dict[str, TensorInfo]
    """Tensor entries by name, in header order."""
    data_bytes: int
    """Size of the data section: the file size minus 8 minus ``header_len``."""


@dataclass(frozen=True)
class _Plan:
    """Shapes of the synthetic llama: one set of dimensions, ``layers_per_shard`` per shard."""

    hidden: int
    intermediate: int
    layers_per_shard: int
    shards: int
    vocab: int

    @property
    def layers(self) -> int:
        return self.layers_per_shard * self.shards

    @property
    def heads(self) -> int:
        head_dim = next(d for d in (128, 64, 32, 16, 8) if self.hidden % d == 0)
        return self.hidden // head_dim


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_SIZES[self.dtype]


def parse_size(text: str) -> int:
    """Parse ``"2G"``, ``"512M"``, ``"64K"``, ``"1.5G"`` or a plain byte count.

    Suffixes are binary and case-insensitive: K = 1024, M = 1024**2, G = 1024**3,
    T = 1024**4; ``"2GiB"`` and ``"2GB"`` mean the same as ``"2G"``, and ``"100B"`` is 100.
    """
    match = _SIZE_PATTERN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r} (expected e.g. 2G, 512M, 64K or 1048576)")
    number, suffix = match.group(1), (match.group(2) or "").upper()
    value = int(float(number) * _SIZE_SUFFIXES[suffix])
    if value <= 0:
        raise ValueError(f"size must be positive: {text!r}")
    return value


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def shard_name(index: int, shards: int) -> str:
    """Hub file name of shard ``index`` (1-based) of ``shards``."""
    return f"model-{index:05d}-of-{shards:05d}.safetensors"


def _layer_bytes(hidden: int, intermediate: int) -> int:
    """F16 attention and MLP projections plus the two F32 RMS norms of one decoder layer."""
    return 8 * hidden * hidden + 6 * hidden * intermediate + 8 * hidden


def _plan(total_bytes: int, shards: int, vocab: int) -> _Plan:
    """Pick dimensions whose tensor bytes come as close to ``total_bytes`` as they can."""
    full_layer = _layer_bytes(_MAX_HIDDEN, _LLAMA_INTERMEDIATE)
    layers_per_shard = max(1, math.ceil(total_bytes / shards / full_layer))
    layers = layers_per_shard * shards
    # Multiples of 128 (whole 128-wide attention heads) while they fit, then of 8 for toy sizes.
    candidates = [*range(_MAX_HIDDEN, 127, -128), *range(120, _MIN_DIM - 1, -_MIN_DIM)]
    for hidden in candidates:
        # F16 embed_tokens and lm_head (vocab x hidden) plus the F32 final norm.
        fixed = 4 * vocab * hidden + 4 * hidden
        per_layer = (total_bytes - fixed) // layers
        if per_layer >= _layer_bytes(hidden, hidden):
            room = (per_layer - _layer_bytes(hidden, 0)) // (6 * hidden)
            intermediate = max(hidden, room // _MIN_DIM * _MIN_DIM)
            return _Plan(hidden, intermediate, layers_per_shard, shards, vocab)
    return _Plan(_MIN_DIM, _MIN_DIM, layers_per_shard, shards, vocab)


def _shard_tensors(plan: _Plan, shard: int) -> list[_Tensor]:
    """Tensors of shard ``shard`` (0-based) in on-disk order."""
    h, i = plan.hidden, plan.intermediate
    tensors: list[_Tensor] = []
    if shard == 0:
        tensors.append(_Tensor("model.embed_tokens.weight", "F16", (plan.vocab, h)))
    first = shard * plan.layers_per_shard
    for layer in range(first, first + plan.layers_per_shard):
        p = f"model.layers.{layer}"
        tensors += [
            _Tensor(f"{p}.input_layernorm.weight", "F32", (h,)),
            _Tensor(f"{p}.self_attn.q_proj.weight", "F16", (h, h)),
            _Tensor(f"{p}.self_attn.k_proj.weight", "F16", (h, h)),
            _Tensor(f"{p}.self_attn.v_proj.weight", "F16", (h, h)),
            _Tensor(f"{p}.self_attn.o_proj.weight", "F16", (h, h)),
            _Tensor(f"{p}.post_attention_layernorm.weight", "F32", (h,)),
            _Tensor(f"{p}.mlp.gate_proj.weight", "F16", (i, h)),
            _Tensor(f"{p}.mlp.up_proj.weight", "F16", (i, h)),
            _Tensor(f"{p}.mlp.down_proj.weight", "F16", (h, i)),
        ]
    if shard == plan.shards - 1:
        tensors.append(_Tensor("model.norm.weight", "F32", (h,)))
        tensors.append(_Tensor("lm_head.weight", "F16", (plan.vocab, h)))
    return tensors


def _encode_header(tensors: list[_Tensor]) -> bytes:
    """The safetensors header: length prefix plus JSON padded with spaces to a multiple of 8."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for tensor in tensors:
        header[tensor.name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    body = json.dumps(header, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)
    return struct.pack("<Q", len(body)) + body


def _chunks(data_bytes: int, seed: int, shard: int) -> Iterator[tuple[bytes, memoryview]]:
    """Stream ``data_bytes`` pseudo-random bytes as (16-byte prefix, rest of chunk) pairs."""
    rng = random.Random(f"synthmodel/{seed}/{shard}")  # noqa: S311 - filler, not a secret
    block = rng.randbytes(min(CHUNK_SIZE, data_bytes))
    view = memoryview(block)
    written = 0
    index = 0
    while written < data_bytes:
        size = min(CHUNK_SIZE, data_bytes - written)
        tag = hashlib.blake2b(f"{seed}/{shard}/{index}".encode(), digest_size=PREFIX_SIZE)
        prefix = tag.digest()[:size]
        yield prefix, view[len(prefix) : size]
        written += size
        index += 1


def _write_shard(path: Path, tensors: list[_Tensor], seed: int, shard: int) -> int:
    """Write one safetensors shard; return the number of tensor bytes."""
    data_bytes = sum(t.nbytes for t in tensors)
    with path.open("wb") as f:
        f.write(_encode_header(tensors))
        for prefix, rest in _chunks(data_bytes, seed, shard):
            f.write(prefix)
            f.write(rest)
    return data_bytes


def _byte_alphabet() -> list[str]:
    """GPT-2's byte-to-unicode table: 256 printable characters standing for the 256 bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    extra = 0
    table: dict[int, str] = {}
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def _tokenizer() -> dict[str, Any]:
    """A small byte-level BPE ``tokenizer.json``: 3 specials, 256 bytes, merges for _WORDS."""
    specials = [_UNK, _BOS, _EOS]
    vocab: dict[str, int] = {token: i for i, token in enumerate(specials)}
    for char in _byte_alphabet():
        vocab[char] = len(vocab)
    merges: list[str] = []
    for word in _WORDS.split():
        for piece in (word, "\u0120" + word):  # "Ġ" is the byte-level form of a leading space
            for end in range(2, len(piece) + 1):
                left, right, merged = piece[: end - 1], piece[end - 1], piece[:end]
                if merged not in vocab:
                    merges.append(f"{left} {right}")
                    vocab[merged] = len(vocab)
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": vocab[token],
                "content": token,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for token in specials
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": {"type": "ByteLevel", **byte_level},
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


def _config(plan: _Plan) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": plan.hidden,
        "initializer_range": 0.02,
        "intermediate_size": plan.intermediate,
        "max_position_embeddings": 4096,
        "model_type": "llama",
        "num_attention_heads": plan.heads,
        "num_hidden_layers": plan.layers,
        "num_key_value_heads": plan.heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "transformers_version": "4.44.0",
        "use_cache": True,
        "vocab_size": plan.vocab,
    }


def _model_card(plan: _Plan, parameters: int, total_size: int, seed: int) -> str:
    return f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
tags:
- llama
- synthetic
---

# Synthetic llama ({plan.layers} layers, hidden size {plan.hidden})

This model was written by `bench/synthmodel.py` (seed {seed}) for benchmarks and tests.
It has the layout of a real checkpoint, but its weights are pseudo-random bytes.

* Parameters: {parameters:,} (F16 weights, F32 norms)
* Shards: {plan.shards}, tensor bytes: {total_size:,}
"""


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_model(out: Path, *, total_bytes: int, shards: int, seed: int = 0) -> list[Path]:
    """Write a synthetic sharded llama checkpoint into ``out``; return the files written.

    ``total_bytes`` is the approximate size of all tensor data; shards come first in the
    returned list, then the index, the configs, the tokenizer files and the model card. Files
    of the same names already in ``out`` are overwritten; nothing else there is touched.
    """
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    if total_bytes < 1:
        raise ValueError(f"total_bytes must be positive, got {total_bytes}")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    plan = _plan(total_bytes, shards, vocab=len(tokenizer["model"]["vocab"]))

    written: list[Path] = []
    weight_map: dict[str, str] = {}
    total_size = 0
    parameters = 0
    for shard in range(shards):
        path = out / shard_name(shard + 1, shards)
        tensors = _shard_tensors(plan, shard)
        total_size += _write_shard(path, tensors, seed, shard)
        parameters += sum(math.prod(t.shape) for t in tensors)
        weight_map.update({t.name: path.name for t in tensors})
        written.append(path)

    files: dict[str, Any] = {
        "model.safetensors.index.json": {
            "metadata": {"total_size": total_size},
            "weight_map": dict(sorted(weight_map.items())),
        },
        "config.json": _config(plan),
        "generation_config.json": {
            "_from_model_config": True,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "transformers_version": "4.44.0",
        },
        "tokenizer.json": tokenizer,
        "tokenizer_config.json": {
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": _BOS,
            "clean_up_tokenization_spaces": False,
            "eos_token": _EOS,
            "model_max_length": 4096,
            "pad_token": None,
            "tokenizer_class": "PreTrainedTokenizerFast",
            "unk_token": _UNK,
        },
        "special_tokens_map.json": {"bos_token": _BOS, "eos_token": _EOS, "unk_token": _UNK},
    }
    for name, value in files.items():
        _write_json(out / name, value)
        written.append(out / name)
    card = out / "README.md"
    card.write_text(_model_card(plan, parameters, total_size, seed), encoding="utf-8")
    written.append(card)
    return written


def check_safetensors(path: Path) -> SafetensorsInfo:
    """Parse a safetensors file's header and check that its tensors tile the data exactly.

    Checks: the header length fits the file; the header is a JSON object; every tensor has a
    known dtype, a shape of non-negative integers and ``[start, end]`` offsets spanning exactly
    ``prod(shape) * itemsize`` bytes; sorted by offset, the tensors start at 0, leave no gap and
    no overlap, and end exactly at the end of the file. Raises ``ValueError`` on any failure.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) != 8:
            raise ValueError(f"{path}: {size} bytes is too short for a safetensors file")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(size - 8, MAX_HEADER_BYTES):
            raise ValueError(f"{path}: header length {header_len} does not fit a {size}-byte file")
        raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: header is not UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")

    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        tensors[name] = _check_tensor(path, name, entry)

    data_bytes = size - 8 - header_len
    position = 0
    for name, info in sorted(tensors.items(), key=lambda item: item[1]["data_offsets"]):
        start, end = info["data_offsets"]
        if start != position:
            problem = "overlaps the previous tensor" if start < position else "leaves a gap"
            raise ValueError(f"{path}: tensor {name} at offset {start} {problem} (at {position})")
        position = end
    if position != data_bytes:
        raise ValueError(
            f"{path}: tensors cover {position} bytes, the data section is {data_bytes}"
        )
    return SafetensorsInfo(
        header_len=header_len, metadata=metadata, tensors=tensors, data_bytes=data_bytes
    )


def _check_tensor(path: Path, name: str, entry: Any) -> TensorInfo:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: tensor {name} is not a JSON object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ValueError(f"{path}: tensor {name} has a malformed shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise ValueError(f"{path}: tensor {name} has malformed data_offsets {offsets!r}")
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if offsets[1] - offsets[0] != expected:
        raise ValueError(
            f"{path}: tensor {name} spans {offsets[1] - offsets[0]} bytes, "
            f"its {dtype} shape {shape} needs {expected}"
        )
    return TensorInfo(dtype=dtype, shape=shape, data_offsets=offsets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a synthetic sharded llama checkpoint (real safetensors format).",
        epilog="Sizes take binary suffixes: K = 1024, M = 1024**2, G = 1024**3, T = 1024**4.",
    )
    parser.add_argument("out", type=Path, help="folder to write (created if missing)")
    parser.add_argument(
        "--size", type=_size_arg, default=parse_size("2G"), help="approximate tensor bytes"
    )
    parser.add_argument("--shards", type=int, default=4, help="number of safetensors shards")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pseudo-random bytes")
    args = parser.parse_args(argv)
    if args.shards < 1:
        parser.error("--shards must be at least 1")

    files = build_model(args.out, total_bytes=args.size, shards=args.shards, seed=args.seed)
    total = 0
    for path in files:
        if path.suffix == ".safetensors":
            check_safetensors(path)
        size = path.stat().st_size
        total += size
        print(f"{size:>15,}  {path}")
    print(f"{total:>15,}  total bytes in {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
