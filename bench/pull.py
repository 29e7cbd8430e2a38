"""Pull benchmark: how fast does ``modelctl pull`` write out an admitted checkpoint?

Set-up (not timed): the synthetic sharded llama checkpoint of ``bench/ingest.py`` (reused when
the parameters match) is mirrored from its local folder into a fresh ``MODELCTL_HOME`` with
``MODELCTL_SIGNING_KEY_PASSPHRASE`` set, then attested. A local folder's checkpoint is denied
in ``prod`` (its revision is not a pinned commit), so the pull uses ``--env dev``.

Measured, each ``--runs`` times (median), page cache warmed over the blobs first:

1. ``openssl dgst -sha256`` over the stored blobs in one process (the serial reference), and
   one process per blob (the all-cores reference);
2. ``cp`` + ``sync`` of the blobs: what writing and persisting the bytes costs on this disk;
3. ``modelctl pull bench/model --env dev --dest DIR`` into a fresh DIR: decision, signature
   check, streaming, re-hashing, fsync and rename, end to end including interpreter start-up.

``ratio_vs_openssl_serial`` is ``openssl_serial_s / pull_s``: above 1, pull writes out and
verifies the model faster than one openssl merely hashes it.

Usage::

    python bench/pull.py [--size 1G] [--shards 4] [--seed 0] [--workdir DIR] [--runs 3] [--json]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ingest import (
    DEFAULT_WORKDIR,
    MODEL_NAME,
    BenchError,
    Measurement,
    Sample,
    _positive_int,
    _run,
    _size_arg,
    measure,
    openssl_parallel,
    openssl_serial,
    prepare_model,
    warm_page_cache,
)
from synthmodel import parse_size


def _setup(modelctl: Path, model_dir: Path, workdir: Path) -> dict[str, str]:
    home = Path(tempfile.mkdtemp(prefix="modelctl-pull-home-", dir=workdir))
    env = {**os.environ, "MODELCTL_HOME": str(home), "MODELCTL_SIGNING_KEY_PASSPHRASE": "bench"}
    for argv in (
        [str(modelctl), "mirror", str(model_dir), "--name", MODEL_NAME, "--no-scan"],
        [str(modelctl), "attest", MODEL_NAME],
    ):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BenchError(f"`{' '.join(argv)}` exited with {proc.returncode}: {proc.stderr}")
    return env


def _pull(modelctl: Path, env: dict[str, str], workdir: Path) -> Sample:
    parent = Path(tempfile.mkdtemp(prefix="pull-", dir=workdir))
    try:
        argv = [str(modelctl), "pull", MODEL_NAME, "--env", "dev", "--dest", str(parent / "m")]
        return _run(argv, env=env)
    finally:
        shutil.rmtree(parent)


def _copy_sync(blobs: list[Path], workdir: Path) -> Sample:
    dest = Path(tempfile.mkdtemp(prefix="copy-", dir=workdir))
    try:
        script = 'd="$1"; shift; cp --reflink=never "$@" "$d" && sync "$d"/*'
        return _run(["sh", "-c", script, "copy", str(dest), *map(str, blobs)])
    finally:
        shutil.rmtree(dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time `modelctl pull` against openssl sha256.")
    parser.add_argument("--size", type=_size_arg, default=parse_size("1G"), help="default 1G")
    parser.add_argument("--shards", type=_positive_int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--runs", type=_positive_int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--modelctl", type=Path, default=Path(sys.prefix) / "bin" / "modelctl")
    args = parser.parse_args(argv)
    try:
        if shutil.which("openssl") is None:
            raise BenchError("openssl is not on PATH")
        workdir: Path = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        model_dir = prepare_model(workdir, args.size, args.shards, args.seed)
        env = _setup(args.modelctl, model_dir, workdir)
        home = Path(env["MODELCTL_HOME"])
        blobs = sorted(p for p in (home / "blobs" / "sha256").rglob("*") if p.is_file())
        total = sum(p.stat().st_size for p in blobs)
        warm_page_cache(blobs)
        contenders: list[Measurement] = [
            measure("openssl serial", args.runs, lambda: openssl_serial(blobs)),
            measure("openssl parallel", args.runs, lambda: openssl_parallel(blobs)),
            measure("cp + sync", args.runs, lambda: _copy_sync(blobs, workdir)),
            measure("modelctl pull", args.runs, lambda: _pull(args.modelctl, env, workdir)),
        ]
        shutil.rmtree(home)
    except BenchError as exc:
        print(f"bench/pull.py: {exc}", file=sys.stderr)
        return 1
    by = {m.label: m for m in contenders}
    pull_s = by["modelctl pull"].seconds
    result: dict[str, Any] = {
        "bytes": total,
        "files": len(blobs),
        "cpus": os.cpu_count(),
        "seconds": {m.label: round(m.seconds, 3) for m in contenders},
        "gbps": {m.label: round(m.gbps(total), 3) for m in contenders},
        "pull_peak_rss_mib": by["modelctl pull"].peak_rss_mib,
        "ratio_vs_openssl_serial": round(by["openssl serial"].seconds / pull_s, 3),
        "ratio_vs_openssl_parallel": round(by["openssl parallel"].seconds / pull_s, 3),
        "ratio_vs_cp_sync": round(by["cp + sync"].seconds / pull_s, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for m in contenders:
            print(f"{m.label:<18} {m.seconds:8.3f} s  {m.gbps(total):6.2f} GB/s")
        print(
            f"pull / openssl serial: {result['ratio_vs_openssl_serial']}x, "
            f"/ parallel: {result['ratio_vs_openssl_parallel']}x, "
            f"/ cp+sync: {result['ratio_vs_cp_sync']}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
