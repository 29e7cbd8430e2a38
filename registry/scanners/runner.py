"""Run every scanner over a model (a local folder, a file, or a stored checkpoint).

One entry per file: its verdict is the worst of the scanners that apply to it (decided by
content); a file no scanner applies to is clean with no findings. Whole-model scanners report
on `.`. A scanner that raises is an `error` verdict for that file, never a pass.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from registry.scanners.base import (
    SNIFF_BYTES,
    FileVerdict,
    Finding,
    FolderScanner,
    ScanLimits,
    Scanner,
    ScanTarget,
    Severity,
    Verdict,
    worst,
)
from registry.scanners.parallel import scan_in_processes

RUNNER_ID = "modelctl-scan"


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A `ScanTarget` over a file on disk (opened without following symlinks)."""

    path: str
    full_path: Path
    size: int
    #: The head, once read: every scanner (and the folder scanner) sniffs each file, and each
    #: re-read cost an open and a read; read once, they all judge the same bytes too.
    _head: list[bytes] = field(default_factory=list, init=False, repr=False, compare=False)

    def head(self) -> bytes:
        if not self._head:
            with self.open() as f:
                self._head.append(f.read(SNIFF_BYTES))
        return self._head[0]

    def open(self) -> BinaryIO:
        fd = os.open(self.full_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        return os.fdopen(fd, "rb")


@dataclass(frozen=True, slots=True)
class OpenerFile:
    """A `ScanTarget` whose bytes come from a callable (a blob in the registry's store)."""

    path: str
    size: int
    opener: Callable[[], BinaryIO]
    sha256: str | None = None

    def head(self) -> bytes:
        with self.opener() as f:
            return f.read(SNIFF_BYTES)

    def open(self) -> BinaryIO:
        return self.opener()


@dataclass(frozen=True, slots=True)
class Folder:
    files: Sequence[ScanTarget]


@dataclass(frozen=True, slots=True)
class FileReport:
    path: str
    verdict: Verdict
    findings: tuple[Finding, ...]
    scanners: tuple[str, ...]  # the scanners that applied

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "verdict": self.verdict.value,
            "scanners": list(self.scanners),
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class ScannerRun:
    """What one scanner said about the files it applied to."""

    id: str
    version: str
    ruleset_version: str
    results: Mapping[str, FileVerdict]

    @property
    def verdict(self) -> Verdict:
        return worst([r.verdict for r in self.results.values()])


@dataclass(frozen=True, slots=True)
class ScanReport:
    files: tuple[FileReport, ...]
    runs: tuple[ScannerRun, ...]
    started: float
    finished: float
    limits: ScanLimits = field(default_factory=ScanLimits)

    @property
    def verdict(self) -> Verdict:
        return worst([f.verdict for f in self.files])

    def max_severity(self) -> Severity | None:
        severities = [x.severity for f in self.files for x in f.findings]
        return max(severities, key=lambda s: s.rank, default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "files": [f.to_json() for f in self.files],
            "scanners": [
                {"id": r.id, "version": r.version, "ruleset_version": r.ruleset_version}
                for r in self.runs
            ],
            "seconds": round(self.finished - self.started, 3),
        }


def _crash(scanner_id: str, exc: BaseException) -> FileVerdict:
    return FileVerdict(
        Verdict.ERROR,
        (
            Finding(
                scanner=scanner_id,
                rule="scanner.crashed",
                severity=Severity.HIGH,
                message=f"{scanner_id} failed on this file: {type(exc).__name__}: {exc}"[:300],
                evidence={"exception": type(exc).__name__},
            ),
        ),
    )


def _lost(exc: BaseException) -> dict[str, FileVerdict]:
    return {
        RUNNER_ID: FileVerdict(
            Verdict.ERROR,
            (
                Finding(
                    scanner=RUNNER_ID,
                    rule="scanner.worker-lost",
                    severity=Severity.HIGH,
                    message=f"the worker process scanning this file failed: "
                    f"{type(exc).__name__}: {exc}"[:300],
                    evidence={"exception": type(exc).__name__},
                ),
            ),
        )
    }


def _scan_one(
    target: ScanTarget, scanners: Sequence[Scanner], limits: ScanLimits
) -> dict[str, FileVerdict]:
    results: dict[str, FileVerdict] = {}
    for scanner in scanners:
        try:
            if not scanner.applies_to(target):
                continue
            results[scanner.id] = scanner.scan(target, limits)
        except Exception as exc:  # noqa: BLE001 - a crashing scanner must be an error, not a pass
            results[scanner.id] = _crash(scanner.id, exc)
    return results


def scan_targets(
    targets: Sequence[ScanTarget],
    scanners: Sequence[Scanner],
    folder_scanners: Sequence[FolderScanner] = (),
    *,
    limits: ScanLimits | None = None,
    workers: int | None = None,
    processes: int = 0,
) -> ScanReport:
    """Every scanner over `targets`, then the folder scanners over all of them.

    `processes` > 1 scans the files in that many forked worker processes (the targets must be
    picklable: `LocalFile` is); otherwise, or where forking is unsafe, in `workers` threads.
    The report is the same either way."""
    limits = limits or ScanLimits()
    started = time.time()
    per_file = (
        scan_in_processes(targets, _scan_one, scanners, limits, jobs=processes, on_lost=_lost)
        if processes > 1
        else None
    )
    threads = workers or os.cpu_count() or 1
    if per_file is None and (threads == 1 or len(targets) <= 1):
        # One thread is this one: a pool would only add a hand-off per file.
        per_file = [_scan_one(t, scanners, limits) for t in targets]
    if per_file is None:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            per_file = list(pool.map(lambda t: _scan_one(t, scanners, limits), targets))
    by_path: dict[str, dict[str, FileVerdict]] = {
        t.path: results for t, results in zip(targets, per_file, strict=True)
    }
    for folder_scanner in folder_scanners:
        try:
            verdicts = folder_scanner.scan_folder(Folder(files=targets), limits)
        except Exception as exc:  # noqa: BLE001 - see _scan_one
            verdicts = {".": _crash(folder_scanner.id, exc)}
        for path, verdict in verdicts.items():
            by_path.setdefault(path, {})[folder_scanner.id] = verdict
    files = tuple(
        FileReport(
            path=path,
            verdict=worst([v.verdict for v in results.values()]),
            findings=tuple(f for v in results.values() for f in v.findings),
            scanners=tuple(results),
        )
        for path, results in sorted(by_path.items(), key=lambda kv: tuple(kv[0].split("/")))
    )
    identities = [(s.id, s.version, s.ruleset_version) for s in scanners] + [
        (s.id, s.version, s.ruleset_version) for s in folder_scanners
    ]
    runs = [
        ScannerRun(sid, version, ruleset, {p: r[sid] for p, r in by_path.items() if sid in r})
        for sid, version, ruleset in identities
    ]
    return ScanReport(
        files=files, runs=tuple(runs), started=started, finished=time.time(), limits=limits
    )


def local_targets(target: Path) -> tuple[list[ScanTarget], list[FileReport]]:
    """Scan targets for a file or a folder, plus reports for entries that cannot be scanned."""
    if target.is_file() and not target.is_symlink():
        return [LocalFile(target.name, target, target.stat().st_size)], []
    files: list[ScanTarget] = []
    refused: list[FileReport] = []
    root = target
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted([*filenames, *(d for d in dirnames if Path(dirpath, d).is_symlink())]):
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if stat.S_ISREG(st.st_mode):
                files.append(LocalFile(rel, full, st.st_size))
                continue
            kind = "symlink" if stat.S_ISLNK(st.st_mode) else "special file"
            refused.append(
                FileReport(
                    path=rel,
                    verdict=Verdict.SUSPICIOUS,
                    findings=(
                        Finding(
                            scanner=RUNNER_ID,
                            rule=f"folder.{kind.replace(' ', '-')}",
                            severity=Severity.MEDIUM,
                            message=f"{kind} in the model folder is not followed or scanned",
                        ),
                    ),
                    scanners=(RUNNER_ID,),
                )
            )
    return files, refused


def merge(report: ScanReport, extra: Sequence[FileReport]) -> ScanReport:
    if not extra:
        return report
    files = tuple(sorted([*report.files, *extra], key=lambda f: tuple(f.path.split("/"))))
    return ScanReport(files, report.runs, report.started, report.finished, report.limits)
