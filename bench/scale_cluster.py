"""Scale-out benchmark: scan jobs per minute with 1, 2 and 4 `modelctl worker` processes, and
admission reviews per second with 1 and 2 `modelctl serve` processes, on one PostgreSQL
database (127.0.0.1:5432) and one blob store.

Set-up (not timed): a fresh database and `MODELCTL_HOME`; a PyTorch checkpoint of
`--checkpoint-mb` (torch.save of float32 tensors; built with torch, which the dev extra
installs) plus a model card and config is mirrored, scanned and attested.

Jobs: `--jobs` scan jobs of that checkpoint are queued at once (`POST /v1/scans` semantics,
through the embedded registry), then W worker processes start; measured from their start until
the last job is done; throughput counts from the first claim to the last finish (the workers'
start-up is reported beside it). Jobs per minute = jobs / minutes.

Admission: S server processes (no load balancer: the clients are spread over them round-robin),
`--clients` concurrent clients (asyncio + httpx) each sending AdmissionReview v1 requests for a
pod that names the checkpoint (`modelctl.dev/model`), to `/k8s/admission/dev`, for `--seconds`
after a warm-up. Reported: requests per second, p50 and p99 latency, errors (must be 0).

Usage::

    python bench/scale_cluster.py [--checkpoint-mb 200] [--jobs 12] [--workers 1,2,4]
                                  [--servers 1,2] [--clients 50] [--seconds 15] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.db.engine import unit_of_work  # noqa: E402
from registry.db.models import Job  # noqa: E402
from registry.embedded import EmbeddedRegistry  # noqa: E402
from registry.progress import NoProgress  # noqa: E402
from registry.requests import MirrorRequest  # noqa: E402
from registry.service.jobs import JobKind, ScanJob  # noqa: E402
from registry.settings import Settings  # noqa: E402

ADMIN_URL = os.environ.get(
    "MODELCTL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MODELCTL = Path(sys.executable).with_name("modelctl")
CARD = b"---\nlicense: apache-2.0\n---\n# scale benchmark model\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _checkpoint(folder: Path, megabytes: int) -> None:
    import torch  # the dev extra's CPU torch: builds a real zip checkpoint

    folder.mkdir(parents=True)
    per = 4 * 1024 * 1024  # 16 MB tensors
    count = max(1, megabytes * 1024 * 1024 // (per * 4))
    state = {f"layer{i}.weight": torch.randn(per) for i in range(count)}
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "README.md").write_bytes(CARD)
    (folder / "config.json").write_text('{"model_type": "bench"}')


def _database() -> tuple[str, str]:
    name = f"modelctl_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0].split("://", 1)[1]
    return name, f"postgresql+psycopg://{base}/{name}"


def _drop(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in processes:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def _jobs_per_minute(
    registry: EmbeddedRegistry, env: dict[str, str], ref: str, jobs: int, workers: int
) -> dict[str, Any]:
    ids = [registry.job_enqueue(JobKind.SCAN, ScanJob(ref=ref)).id for _ in range(jobs)]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [str(MODELCTL), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(workers)
    ]
    try:
        while True:
            with unit_of_work(registry.sessions) as session:
                states = [session.get(Job, i).state for i in ids]  # type: ignore[union-attr]
            if all(s in ("succeeded", "failed") for s in states):
                break
            time.sleep(0.1)
        wall = time.perf_counter() - started
    finally:
        _stop(procs)
    with unit_of_work(registry.sessions) as session:
        rows = [session.get(Job, i) for i in ids]
        first = min(r.started_at for r in rows if r is not None and r.started_at)
        last = max(r.finished_at for r in rows if r is not None and r.finished_at)
    # From the first claim to the last finish: the workers' start-up (imports, ~1 s each on
    # this machine) is not scan throughput; `wall` keeps it for reference.
    busy = (last - first).total_seconds()
    failed = sum(1 for s in states if s == "failed")
    return {
        "workers": workers,
        "jobs": jobs,
        "failed": failed,
        "seconds": round(busy, 2),
        "wall_seconds_with_startup": round(wall, 2),
        "jobs_per_minute": round(jobs / busy * 60, 1),
    }


def _review(ref: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "llm-0",
            "namespace": "inference-dev",
            "operation": "CREATE",
            "userInfo": {"username": "bench"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "llm-0", "annotations": {"modelctl.dev/model": ref}},
                "spec": {"containers": [{"name": "c", "image": "vllm:1"}]},
            },
            "oldObject": None,
            "dryRun": False,
        },
    }


async def _admission(
    urls: list[str], token: str, ref: str, clients: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    warm_until = time.perf_counter() + 2.0
    stop_at = warm_until + seconds

    async def client(index: int) -> None:
        nonlocal errors
        url = urls[index % len(urls)] + "/k8s/admission/dev"
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            n = 0
            while (now := time.perf_counter()) < stop_at:
                n += 1
                try:
                    answer = await http.post(url, json=_review(ref, f"{index}-{n}"))
                    ok = answer.status_code == 200 and answer.json()["response"]["allowed"]
                except httpx.HTTPError:
                    ok = False
                if now >= warm_until:
                    latencies.append(time.perf_counter() - now)
                    errors += 0 if ok else 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "servers": len(urls),
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else 0.0,
    }


def _serve(env: dict[str, str], count: int) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    procs, urls = [], []
    for _ in range(count):
        port = _free_port()
        procs.append(
            subprocess.Popen(
                [str(MODELCTL), "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server {url} did not start")
            time.sleep(0.2)
    return procs, urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint-mb", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--servers", default="1,2")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    db_name, db_url = _database()
    work = Path(tempfile.mkdtemp(prefix="modelctl-scale-"))
    env = {
        **os.environ,
        "MODELCTL_HOME": str(work / "home"),
        "MODELCTL_DATABASE_URL": db_url,
        "MODELCTL_SIGNING_KEY_PASSPHRASE": "bench",
        "MODELCTL_SERVE_WORKER": "false",
        "MODELCTL_RESCAN_ON_START": "false",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("MODELCTL_")})
    registry = EmbeddedRegistry(Settings.from_env())
    results: dict[str, Any] = {"cores": os.cpu_count(), "checkpoint_mb": args.checkpoint_mb}
    try:
        _checkpoint(work / "model", args.checkpoint_mb)
        mirrored = registry.mirror(
            MirrorRequest(source=str(work / "model"), name="bench/scale"), progress=NoProgress()
        )
        ref = f"bench/scale@{mirrored.checkpoint.digest}"
        registry.attest(ref)
        token = registry.token_create("bench", "reader").secret
        results["jobs"] = [
            _jobs_per_minute(registry, env, ref, args.jobs, int(w)) for w in args.workers.split(",")
        ]
        results["admission"] = []
        for count in (int(s) for s in args.servers.split(",")):
            procs, urls = _serve(env, count)
            try:
                results["admission"].append(
                    asyncio.run(_admission(urls, token, ref, args.clients, args.seconds))
                )
            finally:
                _stop(procs)
    finally:
        registry.close()
        _drop(db_name)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{results['cores']} cores, scan of a {args.checkpoint_mb} MB torch checkpoint")
    for row in results["jobs"]:
        print(
            f"  {row['workers']} worker(s): {row['jobs_per_minute']} jobs/min "
            f"({row['jobs']} jobs in {row['seconds']} s, {row['failed']} failed)"
        )
    for row in results["admission"]:
        print(
            f"  {row['servers']} server(s), {row['clients']} clients: {row['rps']} reviews/s, "
            f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, {row['errors']} errors"
        )


if __name__ == "__main__":
    main()
