"""Load benchmark: 50 concurrent clients pulling files and checking admission on ``modelctl serve``.

Set-up (not timed): a small model folder (a model card, a safetensors file of ``--file-size``
bytes, a config) is mirrored into a fresh ``MODELCTL_HOME`` with
``MODELCTL_SIGNING_KEY_PASSPHRASE`` set, scanned and attested; a reader token is made; then
``modelctl serve`` starts as its own process on 127.0.0.1 and a free port.

Measured for ``--seconds`` (after a short warm-up): ``--clients`` concurrent HTTP clients
(asyncio + httpx, one connection each), each in a loop alternating

1. a pull of one file: ``GET /v1/checkpoints/NS/NAME/sha256:…/files/PATH?env=dev``, the whole
   body read (the server decides for ``dev`` first, then re-hashes every byte it sends), its
   sha256 checked by the client too;
2. an admission check: ``POST /v1/admission/check`` for ``--env dev`` (a decision evaluated,
   recorded and signed as a VSA on every call).

Reported: requests per second (all, and per kind), p50 and p99 latency per kind, bytes per
second, and errors (any non-2xx, transport error or digest mismatch; must be zero).

Usage::

    python bench/load.py [--clients 50] [--seconds 20] [--file-size 1M] [--workers 1] [--json]
"""

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

NAME = "bench/load"
CARD = b"---\nlicense: apache-2.0\n---\n# load benchmark model\n"


def _size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    text = text.strip().upper()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _safetensors(nbytes: int) -> bytes:
    n = max(1, nbytes // 4)
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, n * 4]}})
    raw = header.encode() + b" " * (-len(header) % 8)
    return len(raw).to_bytes(8, "little") + raw + os.urandom(n * 4)


def _run(argv: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench/load.py: {' '.join(argv[1:3])} failed: {proc.stderr.strip()}")
    return proc.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True)
class Plan:
    url: str
    token: str
    file_path: str
    file_sha: str
    clients: int
    seconds: float


@dataclass
class Tally:
    samples: dict[str, list[float]] = field(default_factory=lambda: {"pull": [], "admission": []})
    errors: list[str] = field(default_factory=list)
    bytes: int = 0


async def _client(plan: Plan, stop_at: float, record_from: float, tally: Tally) -> None:
    url, file_path, file_sha = plan.url, plan.file_path, plan.file_sha
    headers = {"Authorization": f"Bearer {plan.token}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=60.0
    ) as client:
        kind = 0
        while time.monotonic() < stop_at:
            started = time.monotonic()
            name = "pull" if kind % 2 == 0 else "admission"
            kind += 1
            try:
                if name == "pull":
                    h = hashlib.sha256()
                    size = 0
                    async with client.stream("GET", file_path) as response:
                        async for chunk in response.aiter_bytes():
                            h.update(chunk)
                            size += len(chunk)
                    ok = response.status_code == 200 and h.hexdigest() == file_sha
                    why = f"pull: HTTP {response.status_code}, sha256 match {ok}"
                else:
                    response = await client.post(
                        "/v1/admission/check", json={"ref": NAME, "environment": "dev"}
                    )
                    ok = response.status_code == 200 and response.json().get("allowed") is True
                    size = 0
                    why = f"admission: HTTP {response.status_code} {response.text[:120]}"
            except httpx.HTTPError as exc:
                ok, size, why = False, 0, f"{name}: {type(exc).__name__}: {exc}"
            elapsed = time.monotonic() - started
            if started >= record_from:
                if ok:
                    tally.samples[name].append(elapsed)
                    tally.bytes += size
                else:
                    tally.errors.append(why)


async def _drive(plan: Plan) -> dict[str, Any]:
    tally = Tally()
    warmup = min(3.0, plan.seconds / 5)
    record_from = time.monotonic() + warmup
    stop_at = record_from + plan.seconds
    await asyncio.gather(*(_client(plan, stop_at, record_from, tally) for _ in range(plan.clients)))
    measured = time.monotonic() - record_from
    samples, errors, clients = tally.samples, tally.errors, plan.clients
    total = sum(len(v) for v in samples.values()) + len(errors)

    def ms(values: list[float], q: float) -> float:
        return round(_percentile(values, q) * 1000, 2)

    return {
        "clients": clients,
        "seconds": round(measured, 2),
        "requests": total,
        "requests_per_s": round(total / measured, 1),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "bytes_per_s": round(tally.bytes / measured),
        "kinds": {
            kind: {
                "requests": len(values),
                "requests_per_s": round(len(values) / measured, 1),
                "p50_ms": ms(values, 0.50),
                "p99_ms": ms(values, 0.99),
                "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else None,
            }
            for kind, values in samples.items()
        },
    }


def _prepare(workdir: Path, file_size: int) -> tuple[dict[str, str], str, str, str]:
    """A registry home with the model mirrored, attested; (env, digest, token, file sha256)."""
    modelctl = Path(sys.executable).with_name("modelctl")
    model = workdir / "model"
    model.mkdir()
    (model / "README.md").write_bytes(CARD)
    weights = _safetensors(file_size)
    (model / "model.safetensors").write_bytes(weights)
    (model / "config.json").write_bytes(b'{"model_type": "bert"}\n')
    env = {
        **os.environ,
        "MODELCTL_HOME": str(workdir / "home"),
        "MODELCTL_SIGNING_KEY_PASSPHRASE": "bench",
    }
    env.pop("MODELCTL_REGISTRY", None)
    env.pop("MODELCTL_DATABASE_URL", None)
    mirrored = _run([str(modelctl), "mirror", str(model), "--name", NAME, "--json"], env)
    _run([str(modelctl), "attest", NAME], env)
    created = _run([str(modelctl), "tokens", "create", "load", "--role", "reader", "--json"], env)
    digest = json.loads(mirrored)["digest"]
    token = json.loads(created)["token"]
    return env, digest, token, hashlib.sha256(weights).hexdigest()


def _serve(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    modelctl = Path(sys.executable).with_name("modelctl")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(modelctl),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env={**env, "MODELCTL_SERVE_WORKER": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit("bench/load.py: modelctl serve did not start")
        time.sleep(0.1)


def _print(result: dict[str, Any]) -> None:
    print(
        f"{result['clients']} clients, {result['seconds']} s: "
        f"{result['requests_per_s']} requests/s, {result['errors']} errors, "
        f"{result['bytes_per_s'] / 1e6:.1f} MB/s of verified file bytes"
    )
    for kind, k in result["kinds"].items():
        print(
            f"  {kind:<9} {k['requests_per_s']:>7} req/s  p50 {k['p50_ms']} ms  "
            f"p99 {k['p99_ms']} ms"
        )
    for example in result["error_examples"]:
        print(f"  error: {example}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--file-size", default="1M", help="size of the pulled file (1M, 64K)")
    parser.add_argument("--workers", type=int, default=1, help="modelctl serve --workers")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    if not 1 <= args.clients <= 1000 or not 1 <= args.seconds <= 3600:
        raise SystemExit("bench/load.py: --clients 1..1000, --seconds 1..3600")
    workdir = Path(tempfile.mkdtemp(prefix="modelctl-load-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        env, digest, token, sha = _prepare(workdir, _size(args.file_size))
        server, url = _serve(env, args.workers)
        plan = Plan(
            url=url,
            token=token,
            file_path=f"/v1/checkpoints/{NAME}/{digest}/files/model.safetensors?env=dev",
            file_sha=sha,
            clients=args.clients,
            seconds=args.seconds,
        )
        result = asyncio.run(_drive(plan))
        result["file_bytes"] = _size(args.file_size) // 4 * 4
        result["cpus"] = os.cpu_count()
        result["server_workers"] = args.workers
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    if result["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
