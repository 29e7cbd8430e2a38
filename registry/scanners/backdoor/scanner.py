"""The `backdoor` whole-model scanner: pre-flight, leakage, motifs, scoring, verdict on `.`."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
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
VERSION = "0.1.0"
RULESET_VERSION = "2026-12-04"


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
    version = VERSION
    ruleset_version = RULESET_VERSION

    def __init__(self, settings: BackdoorSettings | None = None, *, progress: bool = True) -> None:
        self.settings = settings or BackdoorSettings()
        self.progress = progress

    def _say(self, message: str) -> None:
        if self.progress:
            _progress(message)

    def scan_folder(self, folder: ModelFolder, limits: ScanLimits) -> Mapping[str, FileVerdict]:
        files = list(folder.files)
        try:
            info = preflight.check(files, self.settings.max_params)
        except preflight.Unsupported as exc:
            return _unsupported(str(exc))
        serialization = self._serialization_verdict(files, limits)
        if serialization is not None:
            return _unsupported(
                f"the serialization scan is not clean ({serialization}); the model is not loaded",
                serialization_verdict=serialization,
            )
        from registry.scanners.backdoor import pipeline

        with tempfile.TemporaryDirectory(prefix="modelctl-backdoor-") as tmp:
            preflight.materialize(files, info, Path(tmp))
            started = time.monotonic()
            return {".": pipeline.run(Path(tmp), info, self.settings, started, self._say)}

    @staticmethod
    def _serialization_verdict(files: Sequence[ScanTarget], limits: ScanLimits) -> str | None:
        """None when every other scanner finds the folder clean, else the worst verdict."""
        from registry.scanners.catalog import all_scanners
        from registry.scanners.runner import scan_targets

        file_scanners, folder_scanners = all_scanners()
        report = scan_targets(files, file_scanners, folder_scanners, limits=limits)
        return None if report.verdict is Verdict.CLEAN else report.verdict.value
