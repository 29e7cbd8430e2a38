"""The scanners the registry runs, by id.

`all_scanners()` is the default set (what `mirror` and a plain `scan` run, and what the shipped
policies name). Opt-in scanners (`OPT_IN`: the behavioural `backdoor` scanner, which executes
the model and needs the `ml` extra) run only when asked for by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from registry.errors import InputError
from registry.scanners.base import FolderScanner, Scanner

if TYPE_CHECKING:
    from registry.scanners.backdoor.settings import BackdoorSettings

#: Scanners that run only when named (`--scanner backdoor`), never by default.
OPT_IN = ("backdoor",)


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


def select(
    ids: Sequence[str], *, backdoor: BackdoorSettings | None = None
) -> tuple[list[Scanner], list[FolderScanner]]:
    """The scanners named in `ids` (the default set when empty); an unknown id is an error.
    `backdoor` configures the opt-in backdoor scanner when it is named."""
    files, folders = all_scanners()
    if not ids:
        return files, folders
    known = {s.id for s in files} | {s.id for s in folders} | set(OPT_IN)
    unknown = sorted(set(ids) - known)
    if unknown:
        raise InputError(f"unknown scanner {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    chosen_folders = [s for s in folders if s.id in ids]
    if "backdoor" in ids:
        from registry.scanners.backdoor import BackdoorScanner

        chosen_folders.append(BackdoorScanner(backdoor))
    return [s for s in files if s.id in ids], chosen_folders
