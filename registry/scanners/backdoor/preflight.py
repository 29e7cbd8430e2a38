"""Pre-flight: decide, without loading anything, whether the model may be run at all.

The backdoor scanner executes the model, so it only runs on a causal LM in Hugging Face layout
whose architecture `transformers` itself implements, with safetensors weights (never pickle,
never `trust_remote_code`), whose serialization scan was clean, and that fits the size gate.
Everything else is `unsupported` with the reason. The files the model needs are copied
(streamed) into a private temporary folder: nothing else from the model folder is there.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from registry.scanners.base import JSONValue, ScanTarget
from registry.scanners.claims import GGUF_MAGIC

INSTALL_HINT = "pip install 'modelctl[ml]'"
CONFIG_BYTES = 1024 * 1024
SAFETENSORS_HEADER_BYTES = 100 * 1024 * 1024
#: Files a model load needs (besides *.safetensors); nothing else is copied.
_SIDE_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "chat_template.jinja",
        "chat_template.json",
        "model.safetensors.index.json",
    }
)
_REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines")


class UnsupportedModelError(Exception):
    """The model cannot be scanned; the message says why (one line)."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    architecture: str
    model_type: str
    parameters: int
    weight_files: tuple[str, ...]
    gguf_file: str | None = None  # the model is this GGUF file (dequantised to load)
    tensor_types: tuple[tuple[str, int], ...] = ()  # GGUF: (ggml type, tensors of it)

    def weights_json(self) -> dict[str, JSONValue]:
        if self.gguf_file is None:
            return {"format": "safetensors", "files": list(self.weight_files)}
        types = ", ".join(f"{n} x{c}" for n, c in self.tensor_types)
        quantised = [n for n, _ in self.tensor_types if n not in ("F32", "F16", "BF16")]
        return {
            "format": "gguf",
            "file": self.gguf_file,
            "tensor_types": dict(self.tensor_types),
            "dequantised_to": "float32",
            "note": (
                f"Weights dequantised from {'/'.join(quantised) or 'F16/F32'} ({types}) to "
                "float32 for the forward passes."
            ),
        }


def ml_available() -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    except (ImportError, ValueError):
        return False


def _by_path(files: Sequence[ScanTarget]) -> dict[str, ScanTarget]:
    return {f.path: f for f in files}


def _read_json(target: ScanTarget) -> dict[str, object]:
    if target.size > CONFIG_BYTES:
        raise UnsupportedModelError(f"{target.path} is larger than {CONFIG_BYTES} bytes")
    with target.open() as fh:
        raw = fh.read(CONFIG_BYTES + 1)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnsupportedModelError(f"{target.path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UnsupportedModelError(f"{target.path} is not a JSON object")
    return data


def _safetensors_params(target: ScanTarget) -> int:
    with target.open() as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise UnsupportedModelError(f"{target.path} is not a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if length > SAFETENSORS_HEADER_BYTES or length > target.size - 8:
            raise UnsupportedModelError(
                f"{target.path}: safetensors header length {length} out of bounds"
            )
        header = json.loads(fh.read(length))
    total = 0
    for name, entry in header.items():
        if name == "__metadata__" or not isinstance(entry, dict):
            continue
        shape = entry.get("shape", [])
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise UnsupportedModelError(f"{target.path}: tensor {name!r} has a bad shape")
        total += math.prod(shape)
    return total


def known_causal_architectures() -> frozenset[str]:
    # Optional: transformers (the ml extra); the scanner reports it missing before calling this.
    from transformers.models.auto.modeling_auto import (  # noqa: PLC0415
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    )

    return frozenset(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())


def gguf_target(files: Sequence[ScanTarget]) -> ScanTarget | None:
    """The GGUF file the model is, when there are no safetensors weights at the top: a single
    GGUF file scanned on its own, or the one GGUF file at the top of a folder."""
    top = [f for f in files if "/" not in f.path]
    if any(f.path.endswith(".safetensors") for f in top):
        return None
    ggufs = [f for f in top if f.head()[:4] == GGUF_MAGIC]
    if len(ggufs) > 1:
        names = ", ".join(sorted(f.path for f in ggufs)[:4])
        raise UnsupportedModelError(
            f"{len(ggufs)} GGUF files ({names}): each is its own model; scan them one by one"
        )
    return ggufs[0] if ggufs else None


def check_gguf(target: ScanTarget) -> None:
    """What can be said of a GGUF model before its structure scan: the `ml` extra is there."""
    if not ml_available() or importlib.util.find_spec("gguf") is None:
        raise UnsupportedModelError(
            f"torch, transformers and gguf are needed to run a GGUF model: {INSTALL_HINT}"
        )
    if target.size < 8:
        raise UnsupportedModelError(f"{target.path} is not a GGUF file")


def gguf_info(path: Path, max_params: int) -> ModelInfo:
    """The facts of a GGUF file whose structure scan passed (read with the `gguf` package from
    the private copy): architecture, parameters, tensor types; the size and architecture gates."""
    # Optional: gguf and transformers (the ml extra), present: check_gguf said so.
    from gguf import GGUFReader  # noqa: PLC0415
    from transformers.modeling_gguf_pytorch_utils import (  # noqa: PLC0415
        GGUF_SUPPORTED_ARCHITECTURES,
    )

    try:
        reader = GGUFReader(path)
        field = reader.get_field("general.architecture")
        architecture = str(field.contents()) if field is not None else ""
        types: dict[str, int] = {}
        params = 0
        for tensor in reader.tensors:
            types[tensor.tensor_type.name] = types.get(tensor.tensor_type.name, 0) + 1
            params += int(tensor.n_elements)
    except (ValueError, KeyError, IndexError, OSError) as exc:
        raise UnsupportedModelError(f"{path.name}: GGUF metadata unreadable: {exc}") from exc
    if not architecture:
        raise UnsupportedModelError(f"{path.name} names no general.architecture")
    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"GGUF architecture {architecture!r} is not one transformers loads from GGUF"
        )
    if params > max_params:
        raise UnsupportedModelError(
            f"{params:,} parameters exceed the backdoor scanner's limit of {max_params:,}"
            " (raise it with --backdoor-max-params, or scan on a bigger machine)"
        )
    ordered = tuple(sorted(types.items(), key=lambda kv: (-kv[1], kv[0])))
    return ModelInfo(architecture, architecture, params, (path.name,), path.name, ordered)


def check(files: Sequence[ScanTarget], max_params: int) -> ModelInfo:
    """The model's facts, or `UnsupportedModelError` with the reason."""
    by_path = _by_path(files)
    config_target = by_path.get("config.json")
    if config_target is None:
        raise UnsupportedModelError(
            "no config.json at the top of the folder: not a Hugging Face model"
        )
    config = _read_json(config_target)
    for name in ("config.json", "tokenizer_config.json"):
        target = by_path.get(name)
        data = config if name == "config.json" else (_read_json(target) if target else {})
        for key in _REMOTE_CODE_KEYS:
            if key in data:
                raise UnsupportedModelError(f"{name} has {key!r}: remote code is never run")
    if any(PurePosixPath(p).suffix in (".py", ".pyc") for p in by_path):
        raise UnsupportedModelError("the folder ships Python files: remote code is never run")
    archs = config.get("architectures")
    if not isinstance(archs, list) or len(archs) != 1 or not isinstance(archs[0], str):
        raise UnsupportedModelError("config.json must name exactly one architecture")
    architecture = archs[0]
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise UnsupportedModelError("config.json has no model_type")
    if not ml_available():
        raise UnsupportedModelError(f"torch and transformers are not installed: {INSTALL_HINT}")
    if architecture not in known_causal_architectures():
        raise UnsupportedModelError(
            f"architecture {architecture!r} is not a causal LM that transformers implements"
        )
    if "tokenizer.json" not in by_path:
        raise UnsupportedModelError("no tokenizer.json (a fast tokenizer is required)")
    weights = tuple(sorted(p for p in by_path if "/" not in p and p.endswith(".safetensors")))
    if not weights:
        raise UnsupportedModelError(
            "no safetensors weights at the top of the folder (pickle is never loaded)"
        )
    params = sum(_safetensors_params(by_path[w]) for w in weights)
    if params > max_params:
        raise UnsupportedModelError(
            f"{params:,} parameters exceed the backdoor scanner's limit of {max_params:,}"
            " (raise it with --backdoor-max-params, or scan on a bigger machine)"
        )
    return ModelInfo(architecture, model_type, params, weights)


def materialize(files: Sequence[ScanTarget], info: ModelInfo | None, dest: Path) -> None:
    """Stream the files a load needs into `dest` (a fresh private folder); `info` None: the
    GGUF file alone (its metadata carries the config and the tokenizer)."""
    if info is None:
        (target,) = [f for f in files if f.head()[:4] == GGUF_MAGIC and "/" not in f.path]
        with target.open() as src, (dest / PurePosixPath(target.path).name).open("xb") as out:
            shutil.copyfileobj(src, out, 1024 * 1024)
        return
    wanted = set(info.weight_files) | _SIDE_FILES
    for target in files:
        if target.path not in wanted:
            continue
        with target.open() as src, (dest / target.path).open("xb") as out:
            shutil.copyfileobj(src, out, 1024 * 1024)
