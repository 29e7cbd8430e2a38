"""Ingest benchmark: how fast does ``modelctl mirror`` take in a local model folder?

What is measured, on one synthetic sharded llama checkpoint (``bench/synthmodel.py``, reused
between invocations when the parameters match):

1. ``openssl dgst -sha256 FILE...`` over every file, in one process: the serial reference.
2. The same with one ``openssl`` process per file, all at once: the "all cores" reference.
3. ``cp -r`` of the folder followed by ``sync`` of the copies: what merely persisting the bytes
   costs on this disk (the mirror must write and fsync every byte too), and ``modelctl
   mirror`` of a one-file folder: the fixed cost of a command (start-up, database set-up).
4. ``modelctl mirror DIR --name bench/model --json`` against a fresh, empty ``MODELCTL_HOME``
   each run: wall time end to end (interpreter start-up, hashing, copying into the blob store,
   database writes), plus the child's peak RSS from ``os.wait4``.
5. Optionally (``--model-signing``), ``model_signing.hashing.hash(DIR)`` in a fresh
   interpreter, when the ``model_signing`` package is importable; skipped quietly otherwise.

Every measurement is repeated ``--runs`` times and the median is reported. The page cache is
warmed first by reading every file once, so all contenders read from memory and the numbers
compare hashing and bookkeeping, not the disk.

Why openssl is the reference: ingesting a model means computing a SHA-256 digest of every
byte of it (the content address of each blob), so the fastest a correct ingest can go is the
speed of SHA-256 over those bytes. ``openssl dgst`` is the fastest SHA-256 commonly at hand
(hand-written assembly using the SHA-NI / ARMv8 crypto instructions, about 1.7 GB/s per core
on current x86), it has no start-up cost worth mentioning, and anyone can rerun it. The serial
figure is the one-core bound; the parallel one bounds what a tool hashing files concurrently
can reach. ``ratio_vs_openssl_serial`` is ``openssl_serial_s / modelctl_s``: above 1 means
modelctl ingests faster than one openssl hashes.

Usage::

    python bench/ingest.py [--size 2G] [--shards 4] [--seed 0] [--workdir DIR] [--runs 3]
                           [--json] [--model-signing] [--modelctl PATH]

Stdlib only; GB means 1e9 bytes in throughputs, sizes on the command line are binary (K, M, G
are powers of 1024). Progress goes to stderr, the table or the JSON object to stdout.
"""

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthmodel import build_model, parse_size

DEFAULT_WORKDIR = Path(__file__).resolve().parent / "out"
MODEL_NAME = "bench/model"
READ_BLOCK = 8 * 1024 * 1024

_MODEL_SIGNING_SNIPPET = "import sys, model_signing; model_signing.hashing.hash(sys.argv[1])"


class BenchError(Exception):
    """A precondition or a measured command failed; the message says which and why."""


@dataclass(frozen=True)
class Sample:
    """One timed run of a command."""

    seconds: float
    peak_rss_mib: float | None = None


@dataclass(frozen=True)
class Measurement:
    """The median of ``--runs`` samples of one contender."""

    label: str
    samples: list[Sample]

    @property
    def seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def peak_rss_mib(self) -> float | None:
        rss = [s.peak_rss_mib for s in self.samples if s.peak_rss_mib is not None]
        return max(rss) if rss else None

    def gbps(self, nbytes: int) -> float:
        return nbytes / self.seconds / 1e9


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# -- the model under test -------------------------------------------------------------------


def prepare_model(workdir: Path, total_bytes: int, shards: int, seed: int) -> Path:
    """Build the synthetic model, or reuse the one a previous run left with the same parameters.

    A stamp file next to the model folder (never inside it: mirror would ingest it) records
    the parameters and the size of every file; any mismatch rebuilds from scratch.
    """
    model_dir = workdir / f"model-{total_bytes}-x{shards}-seed{seed}"
    stamp = workdir / f"{model_dir.name}.json"
    params = {"total_bytes": total_bytes, "shards": shards, "seed": seed}
    if stamp.is_file() and model_dir.is_dir():
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
        files: dict[str, int] = recorded.get("files", {})
        on_disk = {p.name: p.stat().st_size for p in model_dir.iterdir() if p.is_file()}
        if recorded.get("params") == params and files and files == on_disk:
            log(f"reusing {model_dir}")
            return model_dir
    stamp.unlink(missing_ok=True)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    log(f"building {model_dir} ({total_bytes:,} bytes in {shards} shards)...")
    written = build_model(model_dir, total_bytes=total_bytes, shards=shards, seed=seed)
    files = {p.name: p.stat().st_size for p in written}
    stamp.write_text(json.dumps({"params": params, "files": files}, indent=2), encoding="utf-8")
    return model_dir


def warm_page_cache(files: list[Path]) -> None:
    """Read every file once so that every contender reads from memory."""
    buffer = memoryview(bytearray(READ_BLOCK))
    for path in files:
        with path.open("rb", buffering=0) as f:
            while f.readinto(buffer):
                pass


# -- contenders -----------------------------------------------------------------------------


def _run(argv: list[str], env: dict[str, str] | None = None) -> Sample:
    """Run one command to completion; time it and take its peak RSS from ``os.wait4``.

    stdout and stderr go to temporary files rather than pipes, so the child can never block
    on a full pipe while we wait for it.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise BenchError(f"`{' '.join(argv)}` exited with {proc.returncode}:\n{tail}")
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    rss_bytes = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return Sample(seconds=seconds, peak_rss_mib=rss_bytes / 2**20)


def openssl_serial(files: list[Path]) -> Sample:
    sample = _run(["openssl", "dgst", "-sha256", *map(str, files)])
    return Sample(seconds=sample.seconds)


def openssl_parallel(files: list[Path]) -> Sample:
    """One ``openssl dgst -sha256`` per file, all started at once; time until the last ends."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["openssl", "dgst", "-sha256", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for path in files
    ]
    failures: list[str] = []
    for path, proc in zip(files, procs, strict=True):
        _, stderr = proc.communicate()
        if proc.returncode != 0:
            failures.append(f"{path}: {stderr.decode(errors='replace').strip()}")
    seconds = time.perf_counter() - start
    if failures:
        raise BenchError("parallel openssl failed:\n" + "\n".join(failures))
    return Sample(seconds=seconds)


def modelctl_mirror(modelctl: Path, model_dir: Path, workdir: Path) -> Sample:
    """One ``modelctl mirror`` into a fresh MODELCTL_HOME, removed again after a clean run."""
    home = Path(tempfile.mkdtemp(prefix="modelctl-home-", dir=workdir))
    env = {**os.environ, "MODELCTL_HOME": str(home)}
    argv = [str(modelctl), "mirror", str(model_dir), "--name", MODEL_NAME, "--json"]
    try:
        sample = _run(argv, env=env)
    except BenchError as exc:
        raise BenchError(f"{exc}\n(its MODELCTL_HOME is kept for inspection: {home})") from None
    shutil.rmtree(home)
    return sample


def copy_and_sync(model_dir: Path, workdir: Path) -> Sample:
    """``cp`` the folder and ``sync`` the copies: what persisting the bytes costs on this disk."""
    dest = Path(tempfile.mkdtemp(prefix="copy-", dir=workdir)) / "model"
    script = 'cp -r --reflink=never "$1" "$2" && sync "$2"/*'
    try:
        return _run(["sh", "-c", script, "copy", str(model_dir), str(dest)])
    finally:
        shutil.rmtree(dest.parent)


def modelctl_fixed_cost(modelctl: Path, workdir: Path) -> Sample:
    """``modelctl mirror`` of a one-file folder into a fresh home: start-up and bookkeeping."""
    tiny = workdir / "tiny-model"
    tiny.mkdir(exist_ok=True)
    (tiny / "config.json").write_text("{}")
    return modelctl_mirror(modelctl, tiny, workdir)


def model_signing_hash(model_dir: Path) -> Sample:
    return _run([sys.executable, "-c", _MODEL_SIGNING_SNIPPET, str(model_dir)])


def measure(label: str, runs: int, once: Callable[[], Sample]) -> Measurement:
    samples: list[Sample] = []
    for run in range(1, runs + 1):
        sample = once()
        log(f"  {label:<28} run {run}/{runs}: {sample.seconds:8.3f} s")
        samples.append(sample)
    return Measurement(label, samples)


def check_modelctl(modelctl: Path) -> None:
    """Fail early, with a clear message, when the CLI or its ``mirror`` command is missing."""
    if not (modelctl.is_file() and os.access(modelctl, os.X_OK)):
        raise BenchError(
            f"modelctl console script not found at {modelctl}; install the project into this "
            "interpreter's environment (`make venv` or `pip install -e .`), or pass --modelctl"
        )
    probe = subprocess.run(
        [str(modelctl), "mirror", "--help"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise BenchError(
            f"`{modelctl} mirror --help` exited with {probe.returncode}: this modelctl has no "
            f"working `mirror` command yet.\n{(probe.stderr or probe.stdout).strip()[-2000:]}"
        )


# -- report ---------------------------------------------------------------------------------


def report(
    files: list[Path],
    *,
    runs: int,
    serial: Measurement,
    parallel: Measurement,
    modelctl: Measurement,
    signing: Measurement | None,
    disk: Measurement,
    fixed: Measurement,
) -> dict[str, Any]:
    nbytes = sum(p.stat().st_size for p in files)
    result: dict[str, Any] = {
        "bytes": nbytes,
        "files": len(files),
        "runs": runs,
        "cores": os.cpu_count(),
        "openssl_serial_s": serial.seconds,
        "openssl_serial_gbps": serial.gbps(nbytes),
        "openssl_parallel_s": parallel.seconds,
        "openssl_parallel_gbps": parallel.gbps(nbytes),
        "modelctl_s": modelctl.seconds,
        "modelctl_gbps": modelctl.gbps(nbytes),
        "ratio_vs_openssl_serial": serial.seconds / modelctl.seconds,
        "ratio_vs_openssl_parallel": parallel.seconds / modelctl.seconds,
        "modelctl_peak_rss_mib": modelctl.peak_rss_mib,
        "copy_sync_s": disk.seconds,
        "ratio_vs_copy_sync": disk.seconds / modelctl.seconds,
        "modelctl_fixed_cost_s": fixed.seconds,
    }
    if signing is not None:
        result |= {
            "model_signing_s": signing.seconds,
            "model_signing_gbps": signing.gbps(nbytes),
            "model_signing_peak_rss_mib": signing.peak_rss_mib,
        }
    return result


def print_table(result: dict[str, Any], model_dir: Path, contenders: list[Measurement]) -> None:
    nbytes, serial_s = result["bytes"], result["openssl_serial_s"]
    print(f"model:  {model_dir}")
    print(f"        {result['files']} files, {nbytes:,} bytes ({nbytes / 1e9:.2f} GB)")
    print(f"cores:  {result['cores']}; median of {result['runs']} runs, page cache warm")
    print()
    print(f"{'':<28} {'seconds':>9} {'GB/s':>7} {'vs openssl':>11} {'peak RSS':>11}")
    for m in contenders:
        rss = f"{m.peak_rss_mib:7.1f} MiB" if m.peak_rss_mib is not None else ""
        ratio = f"{serial_s / m.seconds:10.2f}x"
        print(f"{m.label:<28} {m.seconds:9.3f} {m.gbps(nbytes):7.2f} {ratio:>11} {rss:>11}")
    print()
    print("vs openssl = openssl serial seconds / seconds (above 1: faster than one openssl)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time `modelctl mirror` of a synthetic model against openssl sha256.",
        epilog="Sizes take binary suffixes: K = 1024, M = 1024**2, G = 1024**3.",
    )
    parser.add_argument(
        "--size", type=_size_arg, default=parse_size("2G"), help="model size (default 2G)"
    )
    parser.add_argument("--shards", type=_positive_int, default=4, help="safetensors shards")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic bytes")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where the model and the MODELCTL_HOMEs go (default: bench/out, git-ignored)",
    )
    parser.add_argument(
        "--runs", type=_positive_int, default=3, help="runs per contender; the median counts"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--model-signing",
        action="store_true",
        help="also time model_signing.hashing.hash (skipped if the package is not installed)",
    )
    parser.add_argument(
        "--modelctl",
        type=Path,
        default=Path(sys.prefix) / "bin" / "modelctl",
        help="console script to benchmark (default: <sys.prefix>/bin/modelctl)",
    )
    args = parser.parse_args(argv)

    try:
        if shutil.which("openssl") is None:
            raise BenchError("openssl is not on PATH; it is the reference this benchmark needs")
        check_modelctl(args.modelctl)
        workdir: Path = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        model_dir = prepare_model(workdir, args.size, args.shards, args.seed)
        files = sorted(p for p in model_dir.iterdir() if p.is_file())
        log("warming the page cache...")
        warm_page_cache(files)

        serial = measure("openssl dgst (serial)", args.runs, lambda: openssl_serial(files))
        parallel = measure("openssl dgst (1 per file)", args.runs, lambda: openssl_parallel(files))
        disk = measure(
            "cp + sync (disk floor)", args.runs, lambda: copy_and_sync(model_dir, workdir)
        )
        fixed = measure(
            "modelctl mirror (1 file)",
            args.runs,
            lambda: modelctl_fixed_cost(args.modelctl, workdir),
        )
        modelctl = measure(
            "modelctl mirror",
            args.runs,
            lambda: modelctl_mirror(args.modelctl, model_dir, workdir),
        )
        signing: Measurement | None = None
        if args.model_signing and importlib.util.find_spec("model_signing") is not None:
            try:
                signing = measure(
                    "model_signing.hashing.hash", args.runs, lambda: model_signing_hash(model_dir)
                )
            except BenchError as exc:  # an optional reference: report it, keep the rest
                log(f"model_signing reference skipped: {exc}")
    except BenchError as exc:
        print(f"ingest benchmark: error: {exc}", file=sys.stderr)
        return 1

    result = report(
        files,
        runs=args.runs,
        serial=serial,
        parallel=parallel,
        modelctl=modelctl,
        signing=signing,
        disk=disk,
        fixed=fixed,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        contenders = [serial, parallel, disk, fixed, modelctl, *([signing] if signing else [])]
        print_table(result, model_dir, contenders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
