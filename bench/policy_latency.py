"""Policy decision latency: p50 / p99 of `policies.evaluate` (DESIGN §8: p99 under 5 ms).

The checkpoint has 30 files and 10 verified attestations (the two the prod policy requires
plus eight others, some by untrusted signers) and six scans. Two policies are timed: the
shipped `prod` default (declarative checks only) and `prod` plus 10 CEL rules (ADR 0003's set,
without `matches()` inside a comprehension). Each run evaluates `--runs` times after a warm-up
and prints JSON; the exit status is 1 when a p99 reaches the 5 ms target.

Usage::

    .venv/bin/python bench/policy_latency.py [--runs 5000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from policies import (
    AttestationFact,
    Facts,
    FileFact,
    ModelPolicy,
    ScanFact,
    default_policies_text,
    evaluate,
    load_policies,
)

TARGET_P99_S = 0.005
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32
RULES = """
  rules:
    - {id: r1, expression: 'checkpoint.files.all(f, f.format != "pickle")', message: m}
    - {id: r2, expression: 'scans.exists(s, s.scanner == "pickle" && s.verdict == "clean")', message: m}
    - {id: r3, expression: 'attestations.filter(a, a.predicateType == "https://slsa.dev/provenance/v1").size() >= 1', message: m}
    - {id: r4, expression: 'checkpoint.source.uri.startsWith("hf://")', message: m}
    - {id: r5, expression: 'license in ["apache-2.0", "mit"]', message: m}
    - {id: r6, expression: 'scans.all(s, now - timestamp(s.finishedAt) < duration("720h"))', message: m}
    - {id: r7, expression: 'now > timestamp("2026-01-01T00:00:00Z")', message: m}
    - {id: r8, expression: 'checkpoint.files.all(f, size(f.sha256) == 64)', message: m}
    - {id: r9, expression: 'attestations.all(a, has(a.signer) && size(a.subject) > 7)', message: m}
    - {id: r10, expression: 'checkpoint.files.exists(f, f.path.endsWith(".safetensors"))', message: m}
"""  # noqa: E501


def facts() -> Facts:
    files = tuple(
        FileFact(f"model-{i:05d}-of-00030.safetensors", 1 << 30, f"{i:064x}", "safetensors")
        for i in range(30)
    )
    types = (
        "https://model_signing/signature/v1.0",
        "https://slsa.dev/provenance/v1",
        *(f"https://example.com/extra/v{i}" for i in range(8)),
    )
    attestations = tuple(
        AttestationFact(t, "registry" if i % 3 else "mallory", DIGEST, NOW - timedelta(hours=i))
        for i, t in enumerate(types)
    )
    attestations = (
        AttestationFact(types[0], "registry", DIGEST, NOW),
        *attestations[1:],
    )
    # the scanners the shipped policies name
    scanners = (
        "pickle",
        "safetensors",
        "gguf",
        "chat-template",
        "keras",
        "onnx",
        "tensorflow",
        "nemo",
        "skops",
        "torchscript",
        "unsupported-formats",
        "hydra-config",
        "model-folder",
    )
    scans = tuple(ScanFact(s, "1.0.0", "clean", NOW - timedelta(days=1), "none") for s in scanners)
    return Facts(
        name="acme/llama",
        digest=DIGEST,
        source_uri="hf://acme/llama",
        commit="0e9e39f249a16976918f6564b8830bc894c89659",
        files=files,
        license="apache-2.0",
        attestations=attestations,
        scans=scans,
    )


def prod_policy(with_rules: bool) -> ModelPolicy:
    docs = default_policies_text().split("\n---\n")
    prod_text = docs[0]
    if with_rules:
        prod_text = prod_text.rstrip("\n") + "\n" + RULES.lstrip("\n")
    profiles = [d for d in docs if "kind: ContainmentProfile" in d]  # prod names them
    (policy,) = load_policies("\n---\n".join([prod_text, *profiles]), "bench").policies
    return policy


def measure(policy: ModelPolicy, runs: int) -> dict[str, float | int | bool]:
    f = facts()
    decision = evaluate(policy, f, now=NOW)
    if not decision.allowed:
        raise SystemExit(f"bench facts were denied: {decision.reasons}")
    for _ in range(min(500, runs)):
        evaluate(policy, f, now=NOW)
    samples: list[float] = []
    clock = time.perf_counter
    for _ in range(runs):
        start = clock()
        evaluate(policy, f, now=NOW)
        samples.append(clock() - start)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return {
        "checks": len(decision.checks),
        "runs": runs,
        "p50_ms": round(statistics.median(samples) * 1000, 4),
        "p99_ms": round(p99 * 1000, 4),
        "max_ms": round(samples[-1] * 1000, 4),
        "p99_ratio_to_target": round(p99 / TARGET_P99_S, 4),
        "ok": p99 < TARGET_P99_S,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    args = parser.parse_args()
    result = {
        "files": 30,
        "attestations": 10,
        "prod": measure(prod_policy(with_rules=False), args.runs),
        "prod_plus_10_cel_rules": measure(prod_policy(with_rules=True), args.runs),
    }
    print(json.dumps(result, indent=2))
    return 0 if all(r["ok"] for r in (result["prod"], result["prod_plus_10_cel_rules"])) else 1


if __name__ == "__main__":
    sys.exit(main())
