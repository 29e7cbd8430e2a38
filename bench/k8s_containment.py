"""How fast does the webhook review a workload with its containment checks? (issue 18: p99
under 10 ms for a review whose model decision is cached.)

1. A small local model folder is mirrored (no scan) into a fresh `MODELCTL_HOME`, attested, and
   served by `create_app` on uvicorn (127.0.0.1), with a policy that requires the registry's
   signature and the shipped containment profiles (no backdoor scan: `strict`), enforced.
2. Sequential reviews over one keep-alive connection (as the API server keeps one to its
   webhooks): a contained Pod and a contained Deployment, the model decision cached; every
   review is also recorded and signed (the webhook does that for every decision).
3. The same Pod with the cache emptied before each review (the model decided again).
4. In-process, no HTTP (server stopped, so nothing else runs): the whole review of the Pod
   (`k8s_review.review_pod`: parse, quarantine read, cached decision, containment), wall time
   and CPU time (`time.process_time`): on a shared machine the CPU time is the review's own
   cost, the wall time includes waiting for a core.
5. The pod checks of the `strict` profile alone (`policies.pod_checks`).

`--baseline` runs the same with a policy that asks for no containment (the model checks and the
record only), for the cost of containment itself on the same machine at the same time.

Prints JSON (p50 / p99 in ms); the exit status is 1 when a cached review's p99 reaches 10 ms.
Usage: `python bench/k8s_containment.py [--reviews 2000] [--baseline]`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from policies import default_policies_text

TARGET_P99_MS = 10.0
PROFILES = "\n---\n".join(
    d for d in default_policies_text().split("\n---\n") if "kind: ContainmentProfile" in d
)
POLICY = f"""
apiVersion: modelctl.dev/v1
kind: ModelPolicy
metadata: {{ name: bench }}
spec:
  signers: [{{ name: registry, kind: registry }}]
  attestations:
    - {{ predicateType: "https://model_signing/signature/v1.0", signers: [registry] }}
  containment:
    profile: standard
    select:
      - id: no-fresh-backdoor-scan
        when: >-
          !scans.exists(s, s.scanner == 'backdoor' && s.verdict == 'clean'
            && now - timestamp(s.finishedAt) < duration('720h'))
        profile: strict
        reason: no clean backdoor scan in the last 30 days
---
apiVersion: modelctl.dev/v1
kind: ModelPolicyBinding
metadata: {{ name: bench }}
spec:
  environments:
    bench: {{ policy: bench, mode: enforce, containmentMode: enforce }}
---
{PROFILES}
"""


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


def container(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": "vllm/vllm-openai:v0.9",
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"limits": {"cpu": "2", "memory": "8Gi"}},
        "volumeMounts": [{"name": "model", "mountPath": "/mnt/models", "readOnly": True}],
    }


def pod(ref: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llm-0",
            "labels": {"app": "llm", "modelctl.dev/egress": "none"},
            "annotations": {"modelctl.dev/model": ref},
        },
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [container("server"), container("sidecar")],
            "volumes": [{"name": "model", "emptyDir": {}}],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
        },
    }


def review(obj: dict[str, Any], kind: str, group: str, version: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "bench",
                "kind": {"group": group, "version": version, "kind": kind},
                "operation": "CREATE",
                "namespace": "bench",
                "name": "llm",
                "object": obj,
            },
        }
    ).encode()


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50": round(pct(values, 0.5), 3), "p99": round(pct(values, 0.99), 3)}


def in_process(app: Any, the_pod: dict[str, Any], n: int) -> dict[str, Any]:
    from registry.db.engine import unit_of_work
    from registry.service import k8s_review
    from registry.service.gate import Gatekeeper

    registry = app.state.registry
    gate = Gatekeeper(
        policies=registry.policy_set(),
        blobs=registry.blobs,
        registry_public_key=registry.registry_public_key(),
    )
    cache = k8s_review.DecisionCache()
    live = registry.live_statuses()
    document = json.loads(review(the_pod, "Pod", "", "v1"))
    walls: list[float] = []
    cpus: list[float] = []
    for i in range(n + 50):
        wall, cpu = time.perf_counter(), time.process_time()
        parsed = k8s_review.parse_admission_review(document)
        with unit_of_work(registry.sessions) as session:
            cache.follow(live.board.sync(session, live.context))
            verdict = k8s_review.review_pod(session, gate, cache, parsed, "bench")
        if i >= 50:  # the first ones warm the cache
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
        assert verdict.allowed, verdict.message
    return {"review_in_process_wall_ms": summary(walls), "review_in_process_cpu_ms": summary(cpus)}


def main() -> None:  # noqa: PLR0915  one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--baseline", action="store_true", help="a policy without containment")
    args = parser.parse_args()
    policy = POLICY
    if args.baseline:
        start = policy.index("  containment:")
        policy = policy[:start] + policy[policy.index("---", start) :]

    work = Path(tempfile.mkdtemp(prefix="modelctl-bench-k8s-"))
    model = work / "model"
    model.mkdir()
    (model / "model.safetensors.bin").write_bytes(os.urandom(1 << 20))
    (model / "README.md").write_text("---\nlicense: mit\n---\n# bench\n")
    (model / "config.json").write_text('{"model_type": "bert"}\n')
    (work / "policy.yaml").write_text(policy)
    os.environ.update(
        MODELCTL_HOME=str(work / "home"),
        MODELCTL_SIGNING_KEY_PASSPHRASE="bench",  # noqa: S106  a throwaway key for the run
        MODELCTL_POLICY=str(work / "policy.yaml"),
    )
    digest = cli("mirror", str(model), "--name", "bench/model", "--no-scan")["digest"]
    cli("attest", f"bench/model@{digest}")
    ref = f"bench/model@{digest}"

    import uvicorn

    from policies import load_policies
    from policies.pod_checks import check_pod
    from registry.api.app import create_app
    from registry.settings import Settings

    app = create_app(Settings.from_env())
    token = app.state.registry.token_create("bench", "reader").secret
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)

    the_pod = pod(ref)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "bench"},
        "spec": {
            "selector": {"matchLabels": {"app": "llm"}},
            "template": {"metadata": the_pod["metadata"], "spec": the_pod["spec"]},
        },
    }
    bodies = {
        "pod": review(the_pod, "Pod", "", "v1"),
        "deployment": review(deployment, "Deployment", "apps", "v1"),
    }

    def latencies(body: bytes, invalidate: bool) -> list[float]:
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
            if answer["response"]["allowed"] is not True:
                raise RuntimeError(f"not admitted: {answer['response']}")
        conn.close()
        return out

    latencies(bodies["pod"], False)  # warm-up: key loaded, decision cached
    result: dict[str, Any] = {
        "reviews": args.reviews,
        "containment": not args.baseline,
        "review_pod_cached_ms": summary(latencies(bodies["pod"], False)),
        "review_deployment_cached_ms": summary(latencies(bodies["deployment"], False)),
        "review_pod_uncached_ms": summary(latencies(bodies["pod"], True)),
    }
    server.should_exit = True
    thread.join(10)

    result.update(in_process(app, the_pod, args.reviews))
    strict = next(p for p in load_policies(POLICY).profiles if p.name == "strict")
    checks = []
    for _ in range(args.reviews):
        started = time.perf_counter()
        check_pod(strict, the_pod)
        checks.append((time.perf_counter() - started) * 1000)
    result["pod_checks_only_ms"] = summary(checks)
    result["target_p99_ms"] = TARGET_P99_MS
    print(json.dumps(result, indent=2))
    worst = max(result["review_pod_cached_ms"]["p99"], result["review_deployment_cached_ms"]["p99"])
    if worst >= TARGET_P99_MS:
        print(f"cached review p99 {worst} ms is over {TARGET_P99_MS} ms", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
