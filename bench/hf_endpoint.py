"""How fast does `/hf/{env}/` serve, and how fast does `/k8s/admission` answer?

1. A local model folder (one random shard of `--size`, a model card, a config) is mirrored
   into a fresh `MODELCTL_HOME`, attested, and served by `create_app` on uvicorn (127.0.0.1).
2. Reference: `openssl dgst -sha256` over the shard (page cache warm): reading and hashing the
   bytes once, which is the least a verified download must do on the server.
3. `GET /resolve` with `curl -o /dev/null` (another process): the server's cost alone (it
   re-hashes every byte while sending).
4. `huggingface_hub.hf_hub_download` into a fresh cache each run, in its own interpreter and
   timed inside it: what a user sees end to end (the client also writes the file).
5. `HEAD /resolve/main/config.json` latency: a decision made now, per request (no cache).
6. The webhook: sequential reviews of a pod with one digest-pinned reference, with the
   decision cached and, after invalidating the cache before each request, evaluated each time.

Medians of `--runs`. Usage: `python bench/hf_endpoint.py [--size 512M] [--runs 3] [--reviews 300]`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

POLICY = """\
apiVersion: modelctl.dev/v1
kind: ModelPolicy
metadata: {name: bench}
spec:
  signers:
    - { name: registry, kind: registry }
  attestations:
    - { predicateType: "https://model_signing/signature/v1.0", signers: [registry] }
---
apiVersion: modelctl.dev/v1
kind: ModelPolicyBinding
metadata: {name: bench}
spec:
  environments:
    bench: { policy: bench, mode: enforce }
"""


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def cli(*args: str) -> dict[str, Any]:
    from cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([*args, "--json"])
        except SystemExit as exc:
            if exc.code:
                raise RuntimeError(f"modelctl {' '.join(args)} failed") from exc
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def median_time(runs: int, fn: Any) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:  # noqa: PLR0915  one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="512M")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reviews", type=int, default=300)
    args = parser.parse_args()
    size = parse_size(args.size)

    work = Path(tempfile.mkdtemp(prefix="modelctl-bench-hf-"))
    model = work / "model"
    model.mkdir()
    shard = model / "model.safetensors.bin"
    with shard.open("wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    (model / "README.md").write_text("---\nlicense: mit\n---\n# bench\n")
    (model / "config.json").write_text('{"model_type": "bert"}\n')
    (work / "policy.yaml").write_text(POLICY)
    os.environ.update(
        MODELCTL_HOME=str(work / "home"),
        MODELCTL_SIGNING_KEY_PASSPHRASE="bench",  # noqa: S106  a throwaway key for the run
        MODELCTL_POLICY=str(work / "policy.yaml"),
        MODELCTL_PUBLIC_READS="true",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    digest = cli("mirror", str(model), "--name", "bench/model", "--no-scan")["digest"]
    cli("attest", f"bench/model@{digest}")
    print(f"model: {size / 1e9:.2f} GB shard, checkpoint {digest[:19]}…", file=sys.stderr)

    import uvicorn

    from registry.api.app import create_app
    from registry.settings import Settings

    app = create_app(Settings.from_env())
    token = app.state.registry.token_create("bench", "reader").secret
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the listening
    # socket says TCP; without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{port}"

    subprocess.run(["cat", str(shard)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
    openssl = median_time(
        args.runs,
        lambda: subprocess.run(
            ["openssl", "dgst", "-sha256", str(shard)], stdout=subprocess.DEVNULL, check=True
        ),
    )

    def raw_get() -> None:  # curl, another process: the server's cost alone
        subprocess.run(
            [
                "curl",
                "-sf",
                "-o",
                "/dev/null",
                f"{url}/hf/bench/bench/model/resolve/main/{shard.name}",
            ],
            check=True,
        )

    served = median_time(args.runs, raw_get)
    snippet = (
        "import sys, time; from huggingface_hub import hf_hub_download; t = time.perf_counter();"
        "hf_hub_download('bench/model', sys.argv[1], endpoint=sys.argv[2], cache_dir=sys.argv[3]);"
        "print(time.perf_counter() - t)"
    )
    hub_times = []
    for i in range(args.runs):  # in its own interpreter, timed inside (no start-up, no GIL sharing)
        done = subprocess.run(
            [sys.executable, "-c", snippet, shard.name, f"{url}/hf/bench", str(work / f"hf-{i}")],
            capture_output=True,
            text=True,
            check=True,
        )
        hub_times.append(float(done.stdout.strip().splitlines()[-1]))
    hub = statistics.median(hub_times)

    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "bench",
            "object": {
                "metadata": {"annotations": {"modelctl.dev/model": f"bench/model@{digest}"}}
            },
        },
    }

    def latencies(invalidate: bool) -> list[float]:
        # One keep-alive connection, as the API server keeps one to its webhooks.
        body = json.dumps(review).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection("127.0.0.1", port)
        out = []
        for _ in range(args.reviews):
            if invalidate and hasattr(app.state, "k8s_decisions"):
                app.state.k8s_decisions.invalidate()
            started = time.perf_counter()
            conn.request("POST", "/k8s/admission/bench", body=body, headers=headers)
            answer = json.loads(conn.getresponse().read())
            out.append((time.perf_counter() - started) * 1000)
            assert answer["response"]["allowed"] is True
        conn.close()
        return sorted(out)

    def head_latencies() -> list[float]:  # what every file of a snapshot_download costs
        conn = http.client.HTTPConnection("127.0.0.1", port)
        out = []
        for _ in range(args.reviews):
            started = time.perf_counter()
            conn.request("HEAD", "/hf/bench/bench/model/resolve/main/config.json")
            response = conn.getresponse()
            response.read()
            out.append((time.perf_counter() - started) * 1000)
            assert response.status == 200
        conn.close()
        return sorted(out)

    heads = head_latencies()
    cached = latencies(False)
    fresh = latencies(True)
    server.should_exit = True
    thread.join(10)

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(len(values) * p))]

    result = {
        "bytes": size,
        "openssl_sha256_s": round(openssl, 3),
        "openssl_GBps": round(size / openssl / 1e9, 2),
        "served_raw_s": round(served, 3),
        "served_raw_GBps": round(size / served / 1e9, 2),
        "hf_hub_download_s": round(hub, 3),
        "hf_hub_download_GBps": round(size / hub / 1e9, 2),
        "served_raw_vs_openssl": round(openssl / served, 2),
        "head_resolve_ms": {"p50": round(pct(heads, 0.5), 2), "p99": round(pct(heads, 0.99), 2)},
        "review_cached_ms": {"p50": round(pct(cached, 0.5), 2), "p99": round(pct(cached, 0.99), 2)},
        "review_uncached_ms": {"p50": round(pct(fresh, 0.5), 2), "p99": round(pct(fresh, 0.99), 2)},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
