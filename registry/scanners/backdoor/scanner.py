"""The `backdoor` whole-model scanner: pre-flight, leakage, motifs, scoring, verdict on `.`."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from registry.scanners.backdoor import preflight
from registry.scanners.backdoor.settings import BackdoorSettings
from registry.scanners.base import (
    FileVerdict,
    Finding,
    JSONValue,
    ModelFolder,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
)

SCANNER_ID = "backdoor"
VERSION = "0.3.0"
RULESET_VERSION = "2026-12-06"

#: The serialization scan of the folder's files (every default scanner), run before the model
#: is loaded. The catalog injects it, so this scanner never imports the catalog (no cycle).
SerializationCheck = Callable[[Sequence[ScanTarget], ScanLimits], Verdict]


def _progress(message: str) -> None:
    print(f"backdoor: {message}", file=sys.stderr, flush=True)


def _unsupported(reason: str, **evidence: JSONValue) -> dict[str, FileVerdict]:
    finding = Finding(
        scanner=SCANNER_ID,
        rule="backdoor.unsupported",
        severity=Severity.INFO,
        message=f"not scanned for backdoors: {reason}"[:300],
        evidence={"reason": reason, **evidence},
    )
    return {".": FileVerdict(Verdict.UNSUPPORTED, (finding,))}


class BackdoorScanner:
    id = SCANNER_ID
    #: Runs on a single file too (`modelctl scan MODEL.gguf --scanner backdoor`).
    single_file = True
    version = VERSION
    ruleset_version = RULESET_VERSION

    def __init__(
        self,
        settings: BackdoorSettings | None = None,
        *,
        serialization_check: SerializationCheck,
        progress: bool = True,
    ) -> None:
        # Required, not defaulted: loading a model the serialization scan has not cleared
        # would run its code, so a scanner built without the check cannot exist.
        self.settings = settings or BackdoorSettings()
        self.serialization_check = serialization_check
        self.progress = progress

    def _say(self, message: str) -> None:
        if self.progress:
            _progress(message)

    def scan_folder(self, folder: ModelFolder, limits: ScanLimits) -> Mapping[str, FileVerdict]:
        files = list(folder.files)
        try:
            gguf = preflight.gguf_target(files)
            if gguf is not None:
                preflight.check_gguf(gguf)
                info: preflight.ModelInfo | None = None
            else:
                info = preflight.check(files, self.settings.max_params)
        except preflight.UnsupportedModelError as exc:
            return _unsupported(str(exc))
        # The serialization scan (the GGUF structure scan among it) before anything is loaded;
        # a GGUF's metadata is read only once its structure has passed.
        serialization = self.serialization_check(files, limits)
        if serialization is not Verdict.CLEAN:
            return _unsupported(
                f"the serialization scan is not clean ({serialization.value}); "
                "the model is not loaded",
                serialization_verdict=serialization.value,
            )
        # Imported here, not at the top: the pipeline's stages (statistics, decimal: 20 ms) and
        # then torch (the optional `ml` extra) load only when a model is probed; the CLI imports
        # this module at start-up (through the backdoor settings), `modelctl --help` included.
        from registry.scanners.backdoor import pipeline  # noqa: PLC0415

        with tempfile.TemporaryDirectory(prefix="modelctl-backdoor-") as tmp:
            preflight.materialize(files, info, Path(tmp))
            if info is None:
                assert gguf is not None  # narrowing for mypy: set together above
                try:
                    info = preflight.gguf_info(
                        Path(tmp) / Path(gguf.path).name, self.settings.max_params
                    )
                except preflight.UnsupportedModelError as exc:
                    return _unsupported(str(exc))
            started = time.monotonic()
            return {".": pipeline.run(Path(tmp), info, self.settings, started, self._say)}
