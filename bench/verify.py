"""Verify benchmark: how fast does ``modelctl verify`` check a signed model folder?

What is measured, on one synthetic sharded llama checkpoint (``bench/synthmodel.py``, built or
reused exactly as ``bench/ingest.py`` does), with the page cache warmed first so every
contender reads from memory:

1. ``openssl dgst -sha256 FILE...`` over every file, in one process: the serial reference.
2. One ``openssl dgst -sha256`` per file, all at once: the hashing limit of this machine with
   all cores in use.
3. ``modelctl verify MODEL --signature SIG --public-key PUB --json`` of a signature made once
   by ``modelctl sign`` with a fresh EC P-256 key (exit 0 and ``"verified": true`` required),
   wall time end to end plus the child's peak RSS from ``os.wait4``.
4. ``model_signing verify key MODEL --signature SIG2 --public_key PUB`` of a signature made
   once by ``model_signing sign key`` with the same key: the peer.
5. ``modelctl verify`` of that ``model_signing`` signature: interoperability, timed as well.

Every measurement is repeated ``--runs`` times and the median is reported.

Why openssl is the reference: verifying a model means re-hashing every byte of it and comparing
the digests with the signed statement; the signature check itself is microseconds. So the
fastest a correct verify can go is reading and SHA-256 hashing the same bytes, and ``openssl
dgst`` (SHA-NI assembly, no start-up cost worth mentioning) is that limit; one process per
file bounds what concurrent hashing can reach on this machine. The design target (DESIGN.md
section 8) is ``modelctl verify`` within 15% of that parallel limit, i.e.
``ratio_vs_openssl_parallel`` = ``openssl_parallel_s / modelctl_verify_s`` of at least 0.87,
and well ahead of ``model_signing`` (about 0.6 GB/s end to end), the reference implementation
of the same signature format: ``speedup_vs_model_signing`` = ``model_signing_s /
modelctl_verify_s``.

Usage::

    python bench/verify.py [--size 2G] [--shards 4] [--seed 0] [--workdir DIR] [--runs 3]
                           [--json] [--modelctl PATH] [--model-signing PATH]

The key pair and both signatures are written to the workdir, next to the model folder and never
inside it. Stdlib only; GB means 1e9 bytes in throughputs, sizes on the command line are binary
(K, M, G are powers of 1024). Progress goes to stderr, the table or the JSON object to stdout.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest import (
    DEFAULT_WORKDIR,
    BenchError,
    Measurement,
    Sample,
    _positive_int,
    _size_arg,
    log,
    measure,
    openssl_parallel,
    openssl_serial,
    prepare_model,
    warm_page_cache,
)
from synthmodel import parse_size

TARGET_RATIO = 1 / 1.15
"""Within 15%: ``modelctl verify`` may take at most 1.15 times the parallel openssl time."""


@dataclass(frozen=True)
class Material:
    """The key pair and the two signatures, all outside the model folder."""

    private_key: Path
    public_key: Path
    modelctl_sig: Path
    model_signing_sig: Path


def _run_capture(argv: list[str]) -> tuple[Sample, str]:
    """Run one command; time it, take its peak RSS from ``os.wait4``, return its stdout.

    Output goes to temporary files rather than pipes, so the child never blocks on a full pipe
    while we wait for it.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode(errors="replace")
        if proc.returncode != 0:
            err.seek(0)
            tail = (err.read().decode(errors="replace") or stdout)[-2000:]
            raise BenchError(f"`{' '.join(argv)}` exited with {proc.returncode}:\n{tail}")
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    rss_bytes = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return Sample(seconds=seconds, peak_rss_mib=rss_bytes / 2**20), stdout


def _check_executable(path: Path, what: str) -> None:
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise BenchError(f"{what} not found at {path}; install it into this environment")
    probe = subprocess.run([str(path), "--help"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise BenchError(f"`{path} --help` exited with {probe.returncode}: {probe.stderr[-2000:]}")


def make_material(workdir: Path, model_dir: Path, modelctl: Path, model_signing: Path) -> Material:
    """A fresh EC P-256 key pair, and the model signed once by each tool."""
    prefix = workdir / f"verify-{model_dir.name}"
    material = Material(
        private_key=Path(f"{prefix}.key.pem"),
        public_key=Path(f"{prefix}.pub.pem"),
        modelctl_sig=Path(f"{prefix}.modelctl.sig"),
        model_signing_sig=Path(f"{prefix}.model_signing.sig"),
    )
    for path in (material.modelctl_sig, material.model_signing_sig):
        path.unlink(missing_ok=True)
    log("making an EC P-256 key pair and signing the model with both tools...")
    key, pub = str(material.private_key), str(material.public_key)
    model, sig, sig2 = str(model_dir), str(material.modelctl_sig), str(material.model_signing_sig)
    steps: list[list[str]] = [
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
        ["openssl", "ec", "-in", key, "-pubout", "-out", pub],
        [str(modelctl), "sign", model, "--key", key, "--output", sig],
        [str(model_signing), "sign", "key", model, "--signature", sig2, "--private_key", key],
    ]
    for argv in steps:
        sample, _ = _run_capture(argv)
        log(f"  {Path(argv[0]).name} {argv[1]}: {sample.seconds:.3f} s")
    return material


def modelctl_verify(
    modelctl: Path, model_dir: Path, signature: Path, public_key: Path, files: list[Path]
) -> Sample:
    """``modelctl verify --json``: exit 0, ``verified`` true, every file and byte counted."""
    argv = [str(modelctl), "verify", str(model_dir), "--signature", str(signature)]
    argv += ["--public-key", str(public_key), "--json"]
    sample, stdout = _run_capture(argv)
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError:
        raise BenchError(f"`{' '.join(argv)}` printed no JSON object:\n{stdout[-2000:]}") from None
    nbytes = sum(p.stat().st_size for p in files)
    if result.get("verified") is not True:
        raise BenchError(f"`{' '.join(argv)}` did not say verified true:\n{stdout[-2000:]}")
    counted = (result.get("files"), result.get("bytes"))
    if counted != (len(files), nbytes):
        raise BenchError(
            f"`{' '.join(argv)}` verified {counted[0]} files / {counted[1]} bytes, "
            f"expected {len(files)} / {nbytes}"
        )
    return sample


def model_signing_verify(
    model_signing: Path, model_dir: Path, signature: Path, public_key: Path
) -> Sample:
    argv = [str(model_signing), "verify", "key", str(model_dir), "--signature", str(signature)]
    argv += ["--public_key", str(public_key)]
    sample, _ = _run_capture(argv)
    return sample


# -- report ---------------------------------------------------------------------------------


def report(
    files: list[Path],
    *,
    runs: int,
    serial: Measurement,
    parallel: Measurement,
    verify: Measurement,
    signing: Measurement,
    interop: Measurement,
) -> dict[str, Any]:
    nbytes = sum(p.stat().st_size for p in files)
    return {
        "bytes": nbytes,
        "files": len(files),
        "cores": os.cpu_count(),
        "runs": runs,
        "openssl_serial_s": serial.seconds,
        "openssl_serial_gbps": serial.gbps(nbytes),
        "openssl_parallel_s": parallel.seconds,
        "openssl_parallel_gbps": parallel.gbps(nbytes),
        "modelctl_verify_s": verify.seconds,
        "modelctl_verify_gbps": verify.gbps(nbytes),
        "model_signing_s": signing.seconds,
        "model_signing_gbps": signing.gbps(nbytes),
        "modelctl_verify_interop_s": interop.seconds,
        "modelctl_verify_interop_gbps": interop.gbps(nbytes),
        "ratio_vs_openssl_parallel": parallel.seconds / verify.seconds,
        "ratio_vs_openssl_serial": serial.seconds / verify.seconds,
        "speedup_vs_model_signing": signing.seconds / verify.seconds,
        "meets_target": parallel.seconds / verify.seconds >= TARGET_RATIO,
        "modelctl_peak_rss_mib": verify.peak_rss_mib,
        "model_signing_peak_rss_mib": signing.peak_rss_mib,
    }


def print_table(result: dict[str, Any], model_dir: Path, contenders: list[Measurement]) -> None:
    nbytes, parallel_s = result["bytes"], result["openssl_parallel_s"]
    print(f"model:  {model_dir}")
    print(f"        {result['files']} files, {nbytes:,} bytes ({nbytes / 1e9:.2f} GB)")
    print(f"cores:  {result['cores']}; median of {result['runs']} runs, page cache warm")
    print()
    print(f"{'':<34} {'seconds':>9} {'GB/s':>7} {'vs limit':>9} {'peak RSS':>11}")
    for m in contenders:
        rss = f"{m.peak_rss_mib:7.1f} MiB" if m.peak_rss_mib is not None else ""
        ratio = f"{parallel_s / m.seconds:8.2f}x"
        print(f"{m.label:<34} {m.seconds:9.3f} {m.gbps(nbytes):7.2f} {ratio:>9} {rss:>11}")
    print()
    print("vs limit = openssl parallel seconds / seconds (target for modelctl verify: >= 0.87)")
    print(
        f"modelctl verify: {result['ratio_vs_openssl_parallel']:.2f}x the limit "
        f"({'meets' if result['meets_target'] else 'misses'} the target), "
        f"{result['speedup_vs_model_signing']:.2f}x model_signing"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time `modelctl verify` of a signed synthetic model against openssl sha256 "
        "and model_signing.",
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
        help="where the model, the keys and the signatures go (default: bench/out, git-ignored)",
    )
    parser.add_argument(
        "--runs", type=_positive_int, default=3, help="runs per contender; the median counts"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    bindir = Path(sys.prefix) / "bin"
    parser.add_argument(
        "--modelctl",
        type=Path,
        default=bindir / "modelctl",
        help="console script to benchmark (default: <sys.prefix>/bin/modelctl)",
    )
    parser.add_argument(
        "--model-signing",
        type=Path,
        default=bindir / "model_signing",
        help="the peer's CLI (default: <sys.prefix>/bin/model_signing)",
    )
    args = parser.parse_args(argv)

    try:
        if shutil.which("openssl") is None:
            raise BenchError("openssl is not on PATH; it is the reference this benchmark needs")
        _check_executable(args.modelctl, "modelctl console script")
        _check_executable(args.model_signing, "model_signing CLI")
        workdir: Path = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        model_dir = prepare_model(workdir, args.size, args.shards, args.seed)
        files = sorted(p for p in model_dir.iterdir() if p.is_file())
        mat = make_material(workdir, model_dir, args.modelctl, args.model_signing)
        log("warming the page cache...")
        warm_page_cache(files)

        serial = measure("openssl dgst (serial)", args.runs, lambda: openssl_serial(files))
        parallel = measure("openssl dgst (1 per file)", args.runs, lambda: openssl_parallel(files))
        verify = measure(
            "modelctl verify",
            args.runs,
            lambda: modelctl_verify(
                args.modelctl, model_dir, mat.modelctl_sig, mat.public_key, files
            ),
        )
        signing = measure(
            "model_signing verify key",
            args.runs,
            lambda: model_signing_verify(
                args.model_signing, model_dir, mat.model_signing_sig, mat.public_key
            ),
        )
        interop = measure(
            "modelctl verify (interop)",
            args.runs,
            lambda: modelctl_verify(
                args.modelctl, model_dir, mat.model_signing_sig, mat.public_key, files
            ),
        )
    except BenchError as exc:
        print(f"verify benchmark: error: {exc}", file=sys.stderr)
        return 1

    result = report(
        files,
        runs=args.runs,
        serial=serial,
        parallel=parallel,
        verify=verify,
        signing=signing,
        interop=interop,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result, model_dir, [serial, parallel, verify, signing, interop])
    return 0


if __name__ == "__main__":
    sys.exit(main())
