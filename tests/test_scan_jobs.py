"""`modelctl scan FOLDER --jobs N`: files scanned in worker processes, same report as serial.

The scanners here are written for the test and record the process that ran them, so a test
can see that the work really left this process (or really stayed in it). The corpus test
compares the real scanners' reports, byte for byte, at several job counts.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from registry.scanners import catalog
from registry.scanners.base import (
    SNIFF_BYTES,
    FileVerdict,
    Finding,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
)
from registry.scanners.parallel import (
    AUTO_MIN_BYTES,
    AUTO_MIN_FILES,
    CHUNKS_PER_WORKER,
    auto_jobs,
    available_cores,
    can_fork,
)
from registry.scanners.runner import local_targets, scan_targets
from tests.helpers import write_tree

CORPUS = Path(__file__).parent / "assets" / "corpus"
TEST_PID = os.getpid()

# Worker processes are forked, which is safe only from a single-threaded process: pytest-xdist's
# workers run threads, so these tests carry the `fork` marker and `make pytest` runs them in a
# pytest of their own (`-p no:xdist`). Off Linux the feature does not exist (scans stay serial).
pytestmark = [
    pytest.mark.fork,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers: Linux only"),
]


@pytest.fixture(autouse=True)
def _single_threaded() -> None:
    if not can_fork():
        pytest.fail(
            "these tests fork worker processes: run them in a single-threaded pytest "
            "(`pytest -p no:xdist -m fork FILE`, as `make pytest` does), not under xdist; "
            f"threads now: {[t.name for t in threading.enumerate()]}"
        )


class PidScanner:
    """Says which process scanned each file (as an info finding); takes 5 ms a file, so that
    one worker cannot drain every chunk before the others are up."""

    id, version, ruleset_version = "pid", "1.0", "1"

    def applies_to(self, target: ScanTarget) -> bool:
        return True

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        time.sleep(0.005)
        finding = Finding(self.id, "pid", Severity.INFO, "scanned", evidence={"pid": os.getpid()})
        return FileVerdict(Verdict.CLEAN, (finding,))


class DyingScanner(PidScanner):
    """Kills the worker process that scans a file starting with DIE (never the test's own)."""

    id = "dying"

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        if target.head().startswith(b"DIE"):
            if os.getpid() == TEST_PID:
                raise AssertionError("scanned in the test process: no worker to kill")
            os._exit(3)  # what a crash in native code or the OOM killer looks like from outside
        return super().scan(target, limits)


def _pids(report: Any) -> set[int]:
    return {int(f.evidence["pid"]) for file in report.files for f in file.findings}


def _folder(tmp_path: Path, n: int, *, dying: str | None = None) -> Path:
    files = {f"f{i:03d}.bin": b"data %d" % i for i in range(n)}
    if dying is not None:
        files[dying] = b"DIE"
    write_tree(tmp_path, files)
    return tmp_path


def test_files_are_scanned_in_other_processes_in_target_order(tmp_path: Path) -> None:
    targets, _ = local_targets(_folder(tmp_path, 40))
    report = scan_targets(targets, [PidScanner()], processes=3)
    assert [f.path for f in report.files] == [t.path for t in targets]
    pids = _pids(report)
    assert TEST_PID not in pids
    assert 1 < len(pids) <= 3  # several workers shared the chunks
    assert report.verdict is Verdict.CLEAN
    assert threading.active_count() == 1  # the pool is gone: the next scan may fork again


def test_one_process_or_one_file_stays_in_this_process(tmp_path: Path) -> None:
    targets, _ = local_targets(_folder(tmp_path, 5))
    assert _pids(scan_targets(targets, [PidScanner()], processes=1)) == {TEST_PID}
    assert _pids(scan_targets(targets[:1], [PidScanner()], processes=4)) == {TEST_PID}


def test_no_fork_while_another_thread_runs(tmp_path: Path) -> None:
    """Fork copies a lock another thread holds, locked forever: scan in-process instead."""
    targets, _ = local_targets(_folder(tmp_path, 8))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not can_fork()
        report = scan_targets(targets, [PidScanner()], processes=4)
    finally:
        stop.set()
        other.join()
    assert _pids(report) == {TEST_PID}
    assert len(report.files) == 8


def test_a_worker_that_dies_fails_its_files_closed(tmp_path: Path) -> None:
    # 2 workers x CHUNKS_PER_WORKER chunks: the dying file takes its chunk (and, as the pool is
    # then broken, any chunk not yet answered) down with it; none of those may read as clean.
    n = 2 * CHUNKS_PER_WORKER * 3
    targets, _ = local_targets(_folder(tmp_path, n, dying="f000-die.bin"))
    report = scan_targets(targets, [DyingScanner()], processes=2)
    by_path = {f.path: f for f in report.files}
    dead = by_path["f000-die.bin"]
    assert dead.verdict is Verdict.ERROR
    assert [f.rule for f in dead.findings] == ["scanner.worker-lost"]
    assert "BrokenProcessPool" in dead.findings[0].message
    assert report.verdict is Verdict.ERROR
    for file in report.files:  # every file is either scanned by a worker or an error
        assert file.verdict is Verdict.ERROR or _pids_of(file) - {TEST_PID}


def _pids_of(file: Any) -> set[int]:
    return {int(f.evidence["pid"]) for f in file.findings if "pid" in f.evidence}


def _scan_json(run_cli: Any, target: Path, *extra: str) -> dict[str, Any]:
    result = run_cli("scan", str(target), "--json", "--fail-on", "never", *extra)
    assert result.code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    data.pop("seconds")
    return data


def test_the_corpus_report_is_the_same_at_every_job_count(run_cli: Any) -> None:
    serial = _scan_json(run_cli, CORPUS, "--jobs", "1")
    assert len(serial["files"]) > 100
    assert serial["verdict"] == "malicious"
    for jobs in ("2", "5"):
        assert _scan_json(run_cli, CORPUS, "--jobs", jobs) == serial, f"--jobs {jobs}"
    assert _scan_json(run_cli, CORPUS) == serial  # the default: every core


def test_the_scanners_and_their_verdicts_travel_between_processes(tmp_path: Path) -> None:
    """Every real scanner's verdict on the corpus comes back from a worker unchanged."""
    targets, _ = local_targets(CORPUS)
    scanners, _folder_scanners = catalog.select(())
    in_process = scan_targets(targets, scanners, workers=1)
    forked = scan_targets(targets, scanners, processes=3)
    assert [f.to_json() for f in forked.files] == [f.to_json() for f in in_process.files]
    assert not [f.path for f in forked.files if f.verdict is Verdict.ERROR]


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_jobs_must_be_positive(run_cli: Any, tmp_path: Path, jobs: str) -> None:
    result = run_cli("scan", str(_folder(tmp_path, 2)), "--jobs", jobs)
    assert result.code == 2
    assert result.stderr.strip() == "modelctl: error: --jobs must be at least 1"


def test_a_local_file_is_sniffed_once_and_travels_to_a_worker(tmp_path: Path) -> None:
    """Every scanner sniffs the head: it is read once, so all of them judge the same bytes."""
    path = tmp_path / "model.bin"
    path.write_bytes(b"FIRST" + bytes(5000))
    (target,), _ = local_targets(path)
    assert target.head()[:5] == b"FIRST"
    path.write_bytes(b"OTHER" + bytes(5000))
    assert target.head()[:5] == b"FIRST"
    assert len(target.head()) == SNIFF_BYTES
    assert target == local_targets(path)[0][0]  # the cache is not part of its identity
    assert pickle.loads(pickle.dumps(target)).head()[:5] == b"FIRST"  # our own object


def test_by_default_only_a_folder_big_enough_gets_worker_processes(tmp_path: Path) -> None:
    few, _ = local_targets(_folder(tmp_path / "few", AUTO_MIN_FILES - 1))
    many, _ = local_targets(_folder(tmp_path / "many", AUTO_MIN_FILES))
    big = tmp_path / "big"
    big.mkdir()
    with (big / "one.bin").open("wb") as f:
        f.truncate(AUTO_MIN_BYTES)  # sparse: no disk, only a size
    (big / "two.bin").write_bytes(b"x")
    large, _ = local_targets(big)
    assert auto_jobs(few) == 1
    assert auto_jobs(many) == available_cores()
    assert auto_jobs(large) == available_cores()
