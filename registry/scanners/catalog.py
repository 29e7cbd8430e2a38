"""The scanners the registry runs, by id."""

from __future__ import annotations

from collections.abc import Sequence

from registry.errors import InputError
from registry.scanners.base import FolderScanner, Scanner


def all_scanners() -> tuple[list[Scanner], list[FolderScanner]]:
    from registry.scanners.folder import ModelFolderScanner
    from registry.scanners.gguf import GgufScanner
    from registry.scanners.keras import KerasScanner
    from registry.scanners.onnx_scanner import OnnxScanner
    from registry.scanners.pickle_scanner import PickleFamilyScanner
    from registry.scanners.safetensors import SafetensorsScanner

    files: list[Scanner] = [
        PickleFamilyScanner(),
        SafetensorsScanner(),
        GgufScanner(),
        KerasScanner(),
        OnnxScanner(),
    ]
    return files, [ModelFolderScanner()]


def select(ids: Sequence[str]) -> tuple[list[Scanner], list[FolderScanner]]:
    """The scanners named in `ids` (all of them when empty); an unknown id is an error."""
    files, folders = all_scanners()
    if not ids:
        return files, folders
    known = {s.id for s in files} | {s.id for s in folders}
    unknown = sorted(set(ids) - known)
    if unknown:
        raise InputError(f"unknown scanner {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [s for s in files if s.id in ids], [s for s in folders if s.id in ids]
