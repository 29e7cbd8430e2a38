"""Scale bench, part 1: a sharded model into and out of the S3 blob store.

Against a real S3 protocol server on loopback (moto's server, in its own process, so that it
does not share the bench's interpreter lock), with the same boto3 client settings on every leg:

1. **ingest**: `EmbeddedRegistry.mirror` of a local folder of `--shards` random shards
   (`--size` in all) into `MODELCTL_BLOB_STORE=s3://BUCKET/PREFIX`: streaming multipart upload
   while hashing, verify, server-side copy to the digest's key (a local folder lists no
   digests up front), database record. No scan.
1b. **ingest, digest known**: the shards streamed into the S3 store's uploads with their sha256
   given up front (as a hub lists an LFS file's): hashed while streaming, and the multipart
   upload completed under the digest's key only once it matched (no copy).
2. **plain upload** (the reference): the same files uploaded with boto3's `upload_file`
   (s3transfer), the same part size and parts in flight, every shard at once, no hashing.
3. **pull**: `EmbeddedRegistry.pull` of the attested checkpoint (`--env dev`) from S3 into a
   fresh folder: decision, signature check, streaming, re-hashing, fsync and rename.
4. **plain download** (the reference): one streaming `GetObject` per object, every shard at
   once, written to a file in 1 MiB pieces, then fsync. (boto3's `download_file` splits into
   ranged GETs, and moto reads the whole object for each range: 2.5x slower than this here.)

Each leg runs `--runs` times (median); ingest and plain upload each write to a fresh bucket.
`ingest_ratio = plain_upload_s / ingest_s` and `pull_ratio = plain_download_s / pull_s`: 1.0
means as fast as moving the bytes with no checks at all (the issue's target: >= 0.8).

    python bench/scale.py [--size 512M] [--shards 4] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
from boto3.s3.transfer import TransferConfig

from attestations.digests import Digest
from registry.blobs.factory import open_blob_store
from registry.blobs.s3 import IN_FLIGHT, PART_SIZE
from registry.embedded import EmbeddedRegistry
from registry.progress import NoProgress
from registry.requests import MirrorRequest
from registry.settings import Settings

MODEL_NAME = "bench/scale"
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    text = text.strip().upper()
    if text[-1:] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, endpoint
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("moto's server did not start")


def write_shards(folder: Path, size: int, shards: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(shards):
        path = folder / f"model-{i + 1:05d}-of-{shards:05d}.bin"
        remaining = size // shards
        with open(path, "wb") as f:
            while remaining:
                chunk = os.urandom(min(remaining, 8 << 20))
                f.write(chunk)
                remaining -= len(chunk)
        paths.append(path)
    return paths


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


class Legs:
    """The four legs on one moto server; each call is one timed run of one leg."""

    def __init__(self, work: Path, shards: list[Path]) -> None:
        self.work = work
        self.shards = shards
        self.digests = {p: Digest.of(p.read_bytes()) for p in shards}  # not timed
        self.s3 = boto3.client("s3")
        self.transfer = TransferConfig(
            multipart_threshold=PART_SIZE,
            multipart_chunksize=PART_SIZE,
            max_concurrency=IN_FLIGHT,
        )
        self.registry: EmbeddedRegistry | None = None
        self.plain_bucket = ""

    def new_bucket(self) -> str:
        name = f"bench-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=name)
        return name

    def all_at_once(self, fn: Callable[[Path], object]) -> None:
        with ThreadPoolExecutor(len(self.shards)) as pool:
            list(pool.map(fn, self.shards))

    def close(self) -> None:
        if self.registry is not None:
            self.registry.close()
            self.registry = None

    def ingest(self, run: int) -> float:
        """1. `mirror` of the local folder into a fresh bucket and home (not timed: opening)."""
        self.close()
        settings = Settings.from_env(
            {**os.environ, "MODELCTL_BLOB_STORE": f"s3://{self.new_bucket()}/registry"},
            home=self.work / f"home-{run}",
        )
        registry = self.registry = EmbeddedRegistry(settings)
        request = MirrorRequest(source=str(self.work / "model"), name=MODEL_NAME, scan=False)
        return timed(lambda: registry.mirror(request, progress=NoProgress()))

    def ingest_known_digest(self) -> float:
        """1b. The store alone, each shard's sha256 given up front."""
        store = open_blob_store(f"s3://{self.new_bucket()}/registry")

        def stream_in(path: Path) -> None:
            with open(path, "rb") as f, store.upload(expected_sha256=self.digests[path]) as up:
                while chunk := f.read(1 << 20):
                    up.write(chunk)
                up.commit()

        return timed(lambda: self.all_at_once(stream_in))

    def plain_upload(self) -> float:
        """2. The same bytes with s3transfer, no hashing."""
        bucket = self.plain_bucket = self.new_bucket()

        def put(path: Path) -> None:
            self.s3.upload_file(str(path), bucket, path.name, Config=self.transfer)

        return timed(lambda: self.all_at_once(put))

    def pull(self, run: int) -> float:
        """3. `pull --env dev` of the attested checkpoint into a fresh folder."""
        assert self.registry is not None
        registry = self.registry
        registry.attest(MODEL_NAME)  # not timed
        dest = self.work / f"pulled-{run}"
        seconds = timed(lambda: registry.pull(MODEL_NAME, "dev", dest, progress=NoProgress()))
        self._check_and_remove(dest)
        return seconds

    def plain_download(self, run: int) -> float:
        """4. One streaming GET per object, written and fsynced."""
        into = self.work / f"downloaded-{run}"
        into.mkdir()

        def download(path: Path) -> None:
            body = self.s3.get_object(Bucket=self.plain_bucket, Key=path.name)["Body"]
            with open(into / path.name, "wb") as f:
                while chunk := body.read(1 << 20):
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())

        seconds = timed(lambda: self.all_at_once(download))
        self._check_and_remove(into)
        return seconds

    def _check_and_remove(self, folder: Path) -> None:
        got = sorted(p.name for p in folder.iterdir())
        if got != sorted(p.name for p in self.shards):
            raise SystemExit(f"{folder}: expected the shards, found {got}")
        shutil.rmtree(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="512M")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    size = parse_size(args.size)

    work = Path(tempfile.mkdtemp(prefix="modelctl-scale-"))
    moto, endpoint = start_moto()
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",  # noqa: S106 - moto's, on loopback
        AWS_DEFAULT_REGION="us-east-1",
        MODELCTL_SIGNING_KEY_PASSPHRASE="bench",  # noqa: S106 - a throwaway bench key
    )
    samples: dict[str, list[float]] = {
        "ingest": [],
        "ingest_known_digest": [],
        "plain_upload": [],
        "pull": [],
        "plain_download": [],
    }
    try:
        legs = Legs(work, write_shards(work / "model", size, args.shards))
        try:
            for run in range(args.runs):
                samples["ingest"].append(legs.ingest(run))
                samples["ingest_known_digest"].append(legs.ingest_known_digest())
                samples["plain_upload"].append(legs.plain_upload())
                samples["pull"].append(legs.pull(run))
                samples["plain_download"].append(legs.plain_download(run))
        finally:
            legs.close()
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)
    print_result(samples, size, args)
    return 0


def print_result(samples: dict[str, list[float]], size: int, args: argparse.Namespace) -> None:
    median = {k: statistics.median(v) for k, v in samples.items()}
    mib = size / (1 << 20)
    result: dict[str, Any] = {
        "size_bytes": size,
        "shards": args.shards,
        "runs": args.runs,
        "part_size": PART_SIZE,
        "parts_in_flight": IN_FLIGHT,
        "seconds_median": {k: round(v, 3) for k, v in median.items()},
        "mib_per_s": {k: round(mib / v, 1) for k, v in median.items()},
        "ingest_ratio": round(median["plain_upload"] / median["ingest"], 3),
        "ingest_known_digest_ratio": round(
            median["plain_upload"] / median["ingest_known_digest"], 3
        ),
        "pull_ratio": round(median["plain_download"] / median["pull"], 3),
        "server": "moto 5.2.5 server mode, own process, 127.0.0.1",
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    raise SystemExit(main())
