"""The scanners the registry runs: a registry of entries, by id.

Adding a scanner is one module (the scanner, with its `SCANNER_ID` and, for a file scanner, the
`FORMAT` it recognises) and one `Entry` below, in `FILE_SCANNERS` or `FOLDER_SCANNERS`.

An entry names its scanner's module rather than importing it: the catalog hands out stand-ins
(`LazyScanner`) that import the module the first time a file passes the entry's `may_apply`,
a cheap check of the name and first bytes (registry/scanners/claims.py). A scan of one pickle
loads the pickle machine and not the Keras, ONNX, GGUF or TensorFlow readers. The entry declares
the scanner's identity (version, ruleset) too, as a report names every scanner that ran, and
`tests/test_scanner_catalog.py` proves each declaration equals the scanner's own.

The default set (entries that are not `opt_in`) is what `mirror` and a plain `scan` run, and what
the shipped policies name. Opt-in scanners (the behavioural `backdoor` scanner, which executes
the model and needs the `ml` extra) run only when asked for by id.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from registry.scanners import claims
from registry.scanners.base import (
    FileVerdict,
    FolderScanner,
    ModelFolder,
    ScanLimits,
    Scanner,
    ScanTarget,
    Verdict,
)
from registry.scanners.errors import ScanInputError
from registry.scanners.runner import scan_targets

if TYPE_CHECKING:  # the backdoor package loads only when the opt-in scanner is asked for
    from registry.scanners.backdoor.settings import BackdoorSettings


@dataclass(frozen=True, slots=True)
class ScannerOptions:
    """What a caller may configure when it builds scanners (today: the backdoor scanner)."""

    backdoor: BackdoorSettings | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One scanner the registry knows: its id, where it lives, what it recognises."""

    id: str
    #: The module that defines the scanner, imported when the scanner is first needed.
    module: str
    #: Builds the scanner from its imported module.
    factory: Callable[[ModuleType, ScannerOptions], Any]
    #: The scanner's identity, as its reports name it (a test checks it against the scanner).
    version: str
    ruleset_version: str
    #: The format of the files this scanner reports on (policy facts); None for scanners that
    #: judge the folder rather than recognise a file format.
    format: str | None = None
    #: Runs only when named (`--scanner ID`), never by default.
    opt_in: bool = False
    #: A superset of the scanner's `applies_to` that needs no import (registry/scanners/claims.py).
    may_apply: Callable[[ScanTarget], bool] = claims.always

    def build(self, options: ScannerOptions) -> Any:
        return self.factory(importlib.import_module(self.module), options)


class LazyScanner:
    """A file scanner that imports its module when a file first passes `may_apply`."""

    def __init__(self, entry: Entry, options: ScannerOptions) -> None:
        self.id = entry.id
        self.version = entry.version
        self.ruleset_version = entry.ruleset_version
        self._entry = entry
        self._options = options
        self._scanner: Scanner | None = None

    def load(self) -> Scanner:
        # Two threads may both build it: each gets a working scanner, and one is kept.
        if self._scanner is None:
            self._scanner = self._entry.build(self._options)
        return self._scanner

    def applies_to(self, target: ScanTarget) -> bool:
        return self._entry.may_apply(target) and self.load().applies_to(target)

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        return self.load().scan(target, limits)


class LazyFolderScanner:
    """A folder scanner that imports its module when it first scans a folder."""

    def __init__(self, entry: Entry, options: ScannerOptions) -> None:
        self.id = entry.id
        self.version = entry.version
        self.ruleset_version = entry.ruleset_version
        self._entry = entry
        self._options = options
        self._scanner: FolderScanner | None = None

    def load(self) -> FolderScanner:
        if self._scanner is None:
            self._scanner = self._entry.build(self._options)
        return self._scanner

    def scan_folder(self, folder: ModelFolder, limits: ScanLimits) -> Mapping[str, FileVerdict]:
        return self.load().scan_folder(folder, limits)


def preload(scanners: Sequence[object]) -> None:
    """Import every lazy scanner's module now: before forking workers, so that each starts with
    them imported (as registry/scanners/parallel.py assumes) instead of importing them again."""
    for scanner in scanners:
        if isinstance(scanner, (LazyScanner, LazyFolderScanner)):
            scanner.load()


def serialization_verdict(files: Sequence[ScanTarget], limits: ScanLimits) -> Verdict:
    """The default set's verdict on `files`: what must be clean before a model is loaded."""
    file_scanners, folder_scanners = all_scanners()
    return scan_targets(files, file_scanners, folder_scanners, limits=limits).verdict


def _backdoor(package: ModuleType, options: ScannerOptions) -> FolderScanner:
    # Looked up on the package at build time, so tests can stand in for the scanner there.
    scanner: FolderScanner = package.BackdoorScanner(
        options.backdoor, serialization_check=serialization_verdict
    )
    return scanner


_SCANNERS = "registry.scanners."
_DATED = "2026-12-05"

#: File scanners, in the order they run.
FILE_SCANNERS: tuple[Entry, ...] = (
    Entry(
        "pickle",
        _SCANNERS + "pickle_scanner",
        lambda m, _: m.PickleFamilyScanner(),
        "1.1.0",
        _DATED,
        format="pickle",
    ),
    Entry(
        "safetensors",
        _SCANNERS + "safetensors",
        lambda m, _: m.SafetensorsScanner(),
        "1.0.0",
        "2026.1",
        format="safetensors",
        may_apply=claims.safetensors,
    ),
    Entry(
        "gguf",
        _SCANNERS + "gguf",
        lambda m, _: m.GgufScanner(),
        "1.0.0",
        "2026.1",
        format="gguf",
        may_apply=claims.gguf,
    ),
    Entry(
        "keras",
        _SCANNERS + "keras",
        lambda m, _: m.KerasScanner(),
        "1.0.0",
        _DATED,
        format="keras",
        may_apply=claims.keras,
    ),
    Entry(
        "onnx",
        _SCANNERS + "onnx_scanner",
        lambda m, _: m.OnnxScanner(),
        "1.0.0",
        _DATED,
        format="onnx",
        may_apply=claims.onnx,
    ),
    # No format: the templates live in JSON and Jinja files, which stay `json` / `jinja` to
    # policies (a `formats.allow` list naming `json` must not start refusing tokenizer configs).
    Entry(
        "chat-template",
        _SCANNERS + "chat_template_files",
        lambda m, _: m.ChatTemplateFileScanner(),
        "1.0.0",
        _DATED,
        may_apply=claims.chat_template,
    ),
    Entry(
        "tensorflow",
        _SCANNERS + "tensorflow_graph",
        lambda m, _: m.TensorFlowGraphScanner(),
        "1.0.0",
        _DATED,
        format="tensorflow",
        may_apply=claims.tensorflow,
    ),
    Entry(
        "nemo",
        _SCANNERS + "nemo",
        lambda m, _: m.NemoScanner(),
        "1.0.0",
        _DATED,
        format="nemo",
        may_apply=claims.nemo,
    ),
    Entry(
        "skops",
        _SCANNERS + "skops",
        lambda m, _: m.SkopsScanner(),
        "1.0.0",
        _DATED,
        format="skops",
        may_apply=claims.skops,
    ),
    Entry(
        "torchscript",
        _SCANNERS + "torchscript",
        lambda m, _: m.TorchScriptScanner(),
        "1.0.0",
        _DATED,
        format="torchscript",
        may_apply=claims.torchscript,
    ),
    # Recognises formats nobody analyses; reports no format of its own (the files keep the
    # format another scanner gives them, or their suffix). Looks at every file.
    Entry(
        "unsupported-formats",
        _SCANNERS + "unsupported_formats",
        lambda m, _: m.UnsupportedFormatsScanner(),
        "1.0.0",
        _DATED,
    ),
    # Plain YAML / JSON configs: their format stays what their suffix says.
    Entry(
        "hydra-config",
        _SCANNERS + "hydra_config",
        lambda m, _: m.HydraConfigScanner(),
        "1.0.0",
        _DATED,
        may_apply=claims.hydra_config,
    ),
)

#: Folder scanners, in the order they run.
FOLDER_SCANNERS: tuple[Entry, ...] = (
    Entry(
        "model-folder",
        _SCANNERS + "folder",
        lambda m, _: m.ModelFolderScanner(),
        "1.0.0",
        "2026-11-22",
    ),
    Entry("backdoor", _SCANNERS + "backdoor", _backdoor, "0.3.0", "2026-12-06", opt_in=True),
)

_ENTRIES: tuple[Entry, ...] = (*FILE_SCANNERS, *FOLDER_SCANNERS)

#: Scanners that run only when named (`--scanner backdoor`), never by default.
OPT_IN = tuple(e.id for e in _ENTRIES if e.opt_in)

_FORMATS = {e.id: e.format for e in FILE_SCANNERS if e.format is not None}


def format_of(scanner_id: str) -> str | None:
    """The format of the files a scanner reports on, or None (folder or unknown scanners)."""
    return _FORMATS.get(scanner_id)


def known_ids() -> list[str]:
    return sorted(e.id for e in _ENTRIES)


def _file_scanner(entry: Entry, options: ScannerOptions) -> Scanner:
    return LazyScanner(entry, options)


def _folder_scanner(entry: Entry, options: ScannerOptions) -> FolderScanner:
    # An opt-in scanner was asked for by name: built now, so a broken setup fails up front.
    return entry.build(options) if entry.opt_in else LazyFolderScanner(entry, options)


def all_scanners() -> tuple[list[Scanner], list[FolderScanner]]:
    """The default set, freshly built (each scanner's module loads when a file needs it)."""
    options = ScannerOptions()
    return (
        [_file_scanner(e, options) for e in FILE_SCANNERS if not e.opt_in],
        [_folder_scanner(e, options) for e in FOLDER_SCANNERS if not e.opt_in],
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
        [_file_scanner(e, options) for e in FILE_SCANNERS if e.id in ids],
        [_folder_scanner(e, options) for e in FOLDER_SCANNERS if e.id in ids],
    )
