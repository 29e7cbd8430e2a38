"""Scan files in worker processes: the scanners are CPU-bound Python, so threads share one core.

Workers are forked, so they start with every scanner module already imported and the scanners
already built (nothing is pickled but the file targets going out and the verdicts coming back).
Fork is used only where it is safe: on Linux (macOS has fork, but system libraries there may
crash in a forked child, which is why Python defaults to spawn on it), from a process running a
single thread (a lock held by another thread at fork time would stay locked in the child).
Anywhere else `scan_in_processes` returns None and the caller scans in-process: the results
are the same either way, only the wall time differs.

Results come back in the order of the targets, whatever order the workers finish in. A worker
that dies (a crash in native code, the kernel's OOM killer) fails closed: every file whose
verdict did not come back gets an `error` verdict naming the reason, never a pass.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from registry.scanners.base import FileVerdict, ScanLimits, Scanner, ScanTarget

if TYPE_CHECKING:
    from concurrent.futures import Future

#: Scans one target with every scanner; the runner's `_scan_one`.
ScanOne = Callable[[ScanTarget, Sequence[Scanner], ScanLimits], dict[str, FileVerdict]]
#: The verdicts for a target whose worker died before answering.
OnLost = Callable[[BaseException], dict[str, FileVerdict]]

#: Chunks per worker: enough that a slow file does not leave the other workers idle for long,
#: few enough that the per-task round trip (a pickle each way) stays small next to the scans.
CHUNKS_PER_WORKER = 4

#: Without an explicit job count, a folder smaller than this (in files and in bytes) is scanned
#: in-process: starting the workers (~50 ms idle, far more on a busy machine) would cost more
#: than the scan itself (well under 1 ms per small file).
AUTO_MIN_FILES = 64
AUTO_MIN_BYTES = 64 * 1024**2

_job: tuple[ScanOne, Sequence[Scanner], ScanLimits] | None = None


def available_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def auto_jobs(targets: Sequence[ScanTarget]) -> int:
    """The job count when none is given: every core for a folder big enough to pay for it."""
    if len(targets) >= AUTO_MIN_FILES or sum(t.size for t in targets) >= AUTO_MIN_BYTES:
        return available_cores()
    return 1


def can_fork() -> bool:
    """Whether worker processes can be forked safely here and now."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def _install(scan_one: ScanOne, scanners: Sequence[Scanner], limits: ScanLimits) -> None:
    global _job  # noqa: PLW0603 - the forked worker's one job, installed before its first task
    _job = (scan_one, scanners, limits)


def _scan_chunk(targets: Sequence[ScanTarget]) -> list[dict[str, FileVerdict]]:
    assert _job is not None, "worker used before _install"
    scan_one, scanners, limits = _job
    return [scan_one(target, scanners, limits) for target in targets]


def _chunks(targets: Sequence[ScanTarget], jobs: int) -> list[Sequence[ScanTarget]]:
    size = max(1, -(-len(targets) // (jobs * CHUNKS_PER_WORKER)))
    return [targets[i : i + size] for i in range(0, len(targets), size)]


def scan_in_processes(
    targets: Sequence[ScanTarget],
    scan_one: ScanOne,
    scanners: Sequence[Scanner],
    limits: ScanLimits,
    *,
    jobs: int,
    on_lost: OnLost,
) -> list[dict[str, FileVerdict]] | None:
    """Each target's verdicts, in order, from `jobs` forked workers; None if forking is unsafe.

    The targets must be picklable (files on disk are; a blob store's opener is not)."""
    jobs = min(jobs, len(targets))
    if jobs < 2 or not can_fork():
        return None
    # Imported here: the process pool (multiprocessing's queues and connections) costs 30 ms of
    # CPU that a one-file scan, the commonest, never needs.
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

    chunks = _chunks(targets, jobs)
    context = multiprocessing.get_context("fork")
    results: list[dict[str, FileVerdict]] = []
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_install,
        initargs=(scan_one, scanners, limits),
    ) as pool:
        futures: list[Future[list[dict[str, FileVerdict]]]] = [
            pool.submit(_scan_chunk, chunk) for chunk in chunks
        ]
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                results.extend(future.result())
            # BrokenProcessPool when a worker died (this chunk and every one after it), or a
            # verdict that could not travel back: never a pass either way.
            except Exception as exc:  # noqa: BLE001
                results.extend(on_lost(exc) for _ in chunk)
    return results
