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

from registry.scanners.base import ScanTarget

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


def materialize(files: Sequence[ScanTarget], info: ModelInfo, dest: Path) -> None:
    """Stream the files a load needs into `dest` (a fresh private folder)."""
    wanted = set(info.weight_files) | _SIDE_FILES
    for target in files:
        if target.path not in wanted:
            continue
        with target.open() as src, (dest / target.path).open("xb") as out:
            shutil.copyfileobj(src, out, 1024 * 1024)
