"""The scanners the registry runs: a registry of entries, by id.

Adding a scanner is one module (the scanner, with its `SCANNER_ID` and, for a file scanner, the
`FORMAT` it recognises) and one `Entry` below, in `FILE_SCANNERS` or `FOLDER_SCANNERS`.

The default set (entries that are not `opt_in`) is what `mirror` and a plain `scan` run, and what
the shipped policies name. Opt-in scanners (the behavioural `backdoor` scanner, which executes
the model and needs the `ml` extra) run only when asked for by id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from registry.scanners import (
    backdoor,
    chat_template_files,
    folder,
    gguf,
    hydra_config,
    keras,
    nemo,
    onnx_scanner,
    pickle_scanner,
    safetensors,
    skops,
    tensorflow_graph,
    torchscript,
    unsupported_formats,
)
from registry.scanners.backdoor.settings import BackdoorSettings
from registry.scanners.base import FolderScanner, ScanLimits, Scanner, ScanTarget, Verdict
from registry.scanners.errors import ScanInputError
from registry.scanners.runner import scan_targets

S = TypeVar("S", Scanner, FolderScanner)


@dataclass(frozen=True, slots=True)
class ScannerOptions:
    """What a caller may configure when it builds scanners (today: the backdoor scanner)."""

    backdoor: BackdoorSettings | None = None


@dataclass(frozen=True, slots=True)
class Entry(Generic[S]):
    """One scanner the registry knows: its id, how to build it, what it recognises."""

    id: str
    factory: Callable[[ScannerOptions], S]
    #: The format of the files this scanner reports on (policy facts); None for scanners that
    #: judge the folder rather than recognise a file format.
    format: str | None = None
    #: Runs only when named (`--scanner ID`), never by default.
    opt_in: bool = False


def serialization_verdict(files: Sequence[ScanTarget], limits: ScanLimits) -> Verdict:
    """The default set's verdict on `files`: what must be clean before a model is loaded."""
    file_scanners, folder_scanners = all_scanners()
    return scan_targets(files, file_scanners, folder_scanners, limits=limits).verdict


def _backdoor(options: ScannerOptions) -> FolderScanner:
    # Looked up on the package at build time, so tests can stand in for the scanner there.
    return backdoor.BackdoorScanner(options.backdoor, serialization_check=serialization_verdict)


#: File scanners, in the order they run.
FILE_SCANNERS: tuple[Entry[Scanner], ...] = (
    Entry(
        pickle_scanner.SCANNER_ID,
        lambda _: pickle_scanner.PickleFamilyScanner(),
        format=pickle_scanner.FORMAT,
    ),
    Entry(
        safetensors.SCANNER_ID,
        lambda _: safetensors.SafetensorsScanner(),
        format=safetensors.FORMAT,
    ),
    Entry(gguf.SCANNER_ID, lambda _: gguf.GgufScanner(), format=gguf.FORMAT),
    Entry(keras.SCANNER_ID, lambda _: keras.KerasScanner(), format=keras.FORMAT),
    Entry(
        onnx_scanner.SCANNER_ID, lambda _: onnx_scanner.OnnxScanner(), format=onnx_scanner.FORMAT
    ),
    # No format: the templates live in JSON and Jinja files, which stay `json` / `jinja` to
    # policies (a `formats.allow` list naming `json` must not start refusing tokenizer configs).
    Entry(chat_template_files.SCANNER_ID, lambda _: chat_template_files.ChatTemplateFileScanner()),
    Entry(
        tensorflow_graph.SCANNER_ID,
        lambda _: tensorflow_graph.TensorFlowGraphScanner(),
        format=tensorflow_graph.FORMAT,
    ),
    Entry(nemo.SCANNER_ID, lambda _: nemo.NemoScanner(), format=nemo.FORMAT),
    Entry(skops.SCANNER_ID, lambda _: skops.SkopsScanner(), format=skops.FORMAT),
    Entry(
        torchscript.SCANNER_ID,
        lambda _: torchscript.TorchScriptScanner(),
        format=torchscript.FORMAT,
    ),
    # Recognises formats nobody analyses; reports no format of its own (the files keep the
    # format another scanner gives them, or their suffix).
    Entry(
        unsupported_formats.SCANNER_ID, lambda _: unsupported_formats.UnsupportedFormatsScanner()
    ),
    # Plain YAML / JSON configs: their format stays what their suffix says.
    Entry(hydra_config.SCANNER_ID, lambda _: hydra_config.HydraConfigScanner()),
)

#: Folder scanners, in the order they run.
FOLDER_SCANNERS: tuple[Entry[FolderScanner], ...] = (
    Entry(folder.SCANNER_ID, lambda _: folder.ModelFolderScanner()),
    Entry(backdoor.SCANNER_ID, _backdoor, opt_in=True),
)

_ENTRIES: tuple[Entry[Scanner] | Entry[FolderScanner], ...] = (*FILE_SCANNERS, *FOLDER_SCANNERS)

#: Scanners that run only when named (`--scanner backdoor`), never by default.
OPT_IN = tuple(e.id for e in _ENTRIES if e.opt_in)

_FORMATS = {e.id: e.format for e in FILE_SCANNERS if e.format is not None}


def format_of(scanner_id: str) -> str | None:
    """The format of the files a scanner reports on, or None (folder or unknown scanners)."""
    return _FORMATS.get(scanner_id)


def known_ids() -> list[str]:
    return sorted(e.id for e in _ENTRIES)


def all_scanners() -> tuple[list[Scanner], list[FolderScanner]]:
    """The default set, freshly built."""
    options = ScannerOptions()
    return (
        [e.factory(options) for e in FILE_SCANNERS if not e.opt_in],
        [e.factory(options) for e in FOLDER_SCANNERS if not e.opt_in],
    )


def select(
    ids: Sequence[str], *, backdoor: BackdoorSettings | None = None
) -> tuple[list[Scanner], list[FolderScanner]]:
    """The scanners named in `ids` (the default set when empty), in catalog order.
    `backdoor` configures the opt-in backdoor scanner when it is named.

    Raises `ScanInputError` for an unknown id."""
    if not ids:
        return all_scanners()
    known = known_ids()
    unknown = sorted(set(ids) - set(known))
    if unknown:
        raise ScanInputError(f"unknown scanner {', '.join(unknown)}; known: {', '.join(known)}")
    options = ScannerOptions(backdoor=backdoor)
    return (
        [e.factory(options) for e in FILE_SCANNERS if e.id in ids],
        [e.factory(options) for e in FOLDER_SCANNERS if e.id in ids],
    )
