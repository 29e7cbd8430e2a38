"""Air-gap bundle import benchmark: ``modelctl bundle import`` against ``tar -x`` + ``openssl``.

Set-up (not timed): the synthetic sharded checkpoint of ``bench/ingest.py`` (reused when the
parameters match) is mirrored into a fresh exporting home, attested, and exported with
``modelctl bundle export``; the bundle is read once so that it sits in the page cache.

Measured, each ``--runs`` times (median):

1. ``tar -xf BUNDLE`` into a fresh folder, then ``openssl dgst -sha256`` over the extracted
   blobs: the issue's reference (unpack, then hash; nothing is verified or made durable);
2. the same followed by ``sync`` of the extracted files: what persisting the bytes costs here;
3. ``modelctl bundle import BUNDLE --trust-key PUB`` into a fresh home: signature and index
   check, streaming every blob through SHA-256 into the store (temp file, fsync, rename),
   every attestation verified, registration, and the importer's own attestations, end to end
   including interpreter start-up.

4. a one-file ``modelctl mirror`` into a fresh home: the fixed cost of any command (interpreter,
   imports, a new database), which a 1 GB bundle does not amortise on a small machine.

``ratio_vs_tar_openssl`` is ``import_s / tar_openssl_s``: the issue's target is at most 1.2;
``bytes_ratio_vs_tar_openssl`` leaves the fixed cost out.

Usage::

    python bench/bundle.py [--size 1G] [--shards 4] [--seed 0] [--workdir DIR] [--runs 3] [--json]
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
    modelctl_fixed_cost,
    prepare_model,
    warm_page_cache,
)
from synthmodel import parse_size


def _export(modelctl: Path, model_dir: Path, workdir: Path) -> tuple[Path, Path]:
    """(bundle, exporting registry's public key), made in a throw-away home."""
    home = Path(tempfile.mkdtemp(prefix="modelctl-bundle-export-", dir=workdir))
    env = {**os.environ, "MODELCTL_HOME": str(home), "MODELCTL_SIGNING_KEY_PASSPHRASE": "bench"}
    bundle = workdir / "bench.bundle.tar"
    bundle.unlink(missing_ok=True)
    for argv in (
        [str(modelctl), "mirror", str(model_dir), "--name", MODEL_NAME, "--no-scan"],
        [str(modelctl), "attest", MODEL_NAME],
        [str(modelctl), "bundle", "export", MODEL_NAME, "--out", str(bundle)],
    ):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BenchError(f"`{' '.join(argv)}` exited with {proc.returncode}: {proc.stderr}")
    public_key = workdir / "bench.bundle.pub"
    shutil.copyfile(home / "keys" / "registry.pub", public_key)
    shutil.rmtree(home)
    return bundle, public_key


def _tar_openssl(bundle: Path, workdir: Path, *, sync: bool) -> Sample:
    dest = Path(tempfile.mkdtemp(prefix="untar-", dir=workdir))
    try:
        script = 'tar -xf "$1" -C "$2" && openssl dgst -sha256 "$2"/blobs/sha256/* >/dev/null'
        if sync:
            script += ' && sync "$2"/blobs/sha256/*'
        return _run(["sh", "-c", script, "untar", str(bundle), str(dest)])
    finally:
        shutil.rmtree(dest)


def _import(modelctl: Path, bundle: Path, public_key: Path, workdir: Path) -> Sample:
    home = Path(tempfile.mkdtemp(prefix="modelctl-bundle-import-", dir=workdir))
    env = {**os.environ, "MODELCTL_HOME": str(home), "MODELCTL_SIGNING_KEY_PASSPHRASE": "bench"}
    try:
        argv = [str(modelctl), "bundle", "import", str(bundle), "--trust-key", str(public_key)]
        return _run(argv, env=env)
    finally:
        shutil.rmtree(home)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time `bundle import` against tar + openssl.")
    parser.add_argument("--size", type=_size_arg, default=parse_size("1G"), help="default 1G")
    parser.add_argument("--shards", type=_positive_int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--runs", type=_positive_int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--modelctl", type=Path, default=Path(sys.prefix) / "bin" / "modelctl")
    args = parser.parse_args(argv)
    try:
        for tool in ("openssl", "tar"):
            if shutil.which(tool) is None:
                raise BenchError(f"{tool} is not on PATH")
        workdir: Path = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        model_dir = prepare_model(workdir, args.size, args.shards, args.seed)
        bundle, public_key = _export(args.modelctl, model_dir, workdir)
        warm_page_cache([bundle])
        contenders: list[Measurement] = [
            measure(
                "tar -x + openssl",
                args.runs,
                lambda: _tar_openssl(bundle, workdir, sync=False),
            ),
            measure(
                "tar -x + openssl + sync",
                args.runs,
                lambda: _tar_openssl(bundle, workdir, sync=True),
            ),
            measure(
                "modelctl bundle import",
                args.runs,
                lambda: _import(args.modelctl, bundle, public_key, workdir),
            ),
            measure(
                "modelctl fixed cost",
                args.runs,
                lambda: modelctl_fixed_cost(args.modelctl, workdir),
            ),
        ]
        size = bundle.stat().st_size
        bundle.unlink()
    except BenchError as exc:
        print(f"bench/bundle.py: {exc}", file=sys.stderr)
        return 1
    by = {m.label: m for m in contenders}
    import_s = by["modelctl bundle import"].seconds
    result: dict[str, Any] = {
        "bundle_bytes": size,
        "cpus": os.cpu_count(),
        "seconds": {m.label: round(m.seconds, 3) for m in contenders},
        "gbps": {m.label: round(m.gbps(size), 3) for m in contenders},
        "import_peak_rss_mib": by["modelctl bundle import"].peak_rss_mib,
        "ratio_vs_tar_openssl": round(import_s / by["tar -x + openssl"].seconds, 3),
        "ratio_vs_tar_openssl_sync": round(import_s / by["tar -x + openssl + sync"].seconds, 3),
        # Without start-up and bookkeeping (a one-file mirror into a fresh home: interpreter,
        # imports, a new database): what the bytes themselves cost against the reference.
        "bytes_ratio_vs_tar_openssl": round(
            (import_s - by["modelctl fixed cost"].seconds) / by["tar -x + openssl"].seconds, 3
        ),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for m in contenders:
            print(f"{m.label:<24} {m.seconds:8.3f} s  {m.gbps(size):6.2f} GB/s")
        print(
            f"import / (tar -x + openssl): {result['ratio_vs_tar_openssl']}x (target <= 1.2), "
            f"/ (+ sync): {result['ratio_vs_tar_openssl_sync']}x, "
            f"without the fixed cost: {result['bytes_ratio_vs_tar_openssl']}x, "
            f"import peak RSS {result['import_peak_rss_mib']:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
