"""The scan runner's contract, with small scanners written for the test (DESIGN §4)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from registry.scanners.base import (
    FileVerdict,
    Finding,
    ModelFolder,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
    worst,
)
from registry.scanners.runner import local_targets, merge, scan_targets
from tests.helpers import write_tree


class PrefixScanner:
    """Applies to files whose content starts with `magic`; returns a fixed verdict."""

    ruleset_version = "1"

    def __init__(self, id: str, magic: bytes, verdict: Verdict) -> None:
        self.id, self.version, self.magic, self.verdict = id, "1.0", magic, verdict

    def applies_to(self, target: ScanTarget) -> bool:
        return target.head().startswith(self.magic)

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        if self.verdict is Verdict.CLEAN:
            return FileVerdict(Verdict.CLEAN)
        finding = Finding(
            self.id, f"{self.id}.rule", Severity.HIGH, f"{self.id} says {self.verdict}"
        )
        return FileVerdict(self.verdict, (finding,))


class CrashingScanner(PrefixScanner):
    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        raise ZeroDivisionError("scanner bug")


class CountingFolderScanner:
    id, version, ruleset_version = "folder-test", "1.0", "1"

    def scan_folder(self, folder: ModelFolder, limits: ScanLimits) -> Mapping[str, FileVerdict]:
        return {
            ".": FileVerdict(
                Verdict.SUSPICIOUS, (Finding(self.id, "n", Severity.LOW, str(len(folder.files))),)
            )
        }


def test_verdict_order_puts_malicious_last() -> None:
    assert worst([Verdict.CLEAN, Verdict.ERROR, Verdict.SUSPICIOUS]) is Verdict.ERROR
    assert worst([Verdict.MALFORMED, Verdict.MALICIOUS]) is Verdict.MALICIOUS
    assert worst([]) is Verdict.CLEAN


def test_one_entry_per_file_worst_verdict_and_unscanned_files_clean(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {"a.bin": b"EVIL...", "b.bin": b"OKAY...", "notes.txt": b"hello", "sub/c.bin": b"EVIL"},
    )
    targets, refused = local_targets(tmp_path)
    report = scan_targets(
        targets,
        [
            PrefixScanner("evil", b"EVIL", Verdict.MALICIOUS),
            PrefixScanner("also", b"EVIL", Verdict.SUSPICIOUS),
            PrefixScanner("okay", b"OKAY", Verdict.CLEAN),
        ],
        [CountingFolderScanner()],
    )
    by_path = {f.path: f for f in report.files}
    assert list(by_path) == [".", "a.bin", "b.bin", "notes.txt", "sub/c.bin"]
    assert by_path["a.bin"].verdict is Verdict.MALICIOUS
    assert by_path["a.bin"].scanners == ("evil", "also")
    assert by_path["b.bin"].verdict is Verdict.CLEAN
    assert by_path["notes.txt"].verdict is Verdict.CLEAN
    assert by_path["notes.txt"].findings == ()
    assert by_path["."].findings[0].message == "4"
    assert report.verdict is Verdict.MALICIOUS
    assert report.max_severity() is Severity.HIGH
    runs = {r.id: r for r in report.runs}
    assert set(runs["evil"].results) == {"a.bin", "sub/c.bin"}
    assert runs["okay"].verdict is Verdict.CLEAN
    assert refused == []


def test_a_crashing_scanner_is_an_error_never_a_pass(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.bin": b"EVIL"})
    targets, _ = local_targets(tmp_path)
    report = scan_targets(targets, [CrashingScanner("buggy", b"EVIL", Verdict.CLEAN)])
    (entry,) = report.files
    assert entry.verdict is Verdict.ERROR
    assert entry.findings[0].rule == "scanner.crashed"
    assert "ZeroDivisionError" in entry.findings[0].message


def test_symlinks_and_special_files_are_reported_not_followed(tmp_path: Path) -> None:
    outside = write_tree(tmp_path / "outside", {"secret": b"EVIL"})
    model = write_tree(tmp_path / "model", {"a.bin": b"OKAY"})
    (model / "link").symlink_to(outside / "secret")
    (model / "dirlink").symlink_to(outside)
    os.mkfifo(model / "fifo")
    targets, refused = local_targets(model)
    assert [t.path for t in targets] == ["a.bin"]
    report = merge(
        scan_targets(targets, [PrefixScanner("evil", b"EVIL", Verdict.MALICIOUS)]), refused
    )
    verdicts = {
        f.path: (f.verdict, f.findings[0].rule if f.findings else None) for f in report.files
    }
    assert verdicts == {
        "a.bin": (Verdict.CLEAN, None),
        "dirlink": (Verdict.SUSPICIOUS, "folder.symlink"),
        "fifo": (Verdict.SUSPICIOUS, "folder.special-file"),
        "link": (Verdict.SUSPICIOUS, "folder.symlink"),
    }
