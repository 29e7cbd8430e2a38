"""Benchmark the behavioural backdoor scanner on the planted suite (tests/backdoor_models.py).

Builds (or takes from the cache) 40 tiny Llama models: 20 backdoored across trigger kinds and
poison rates 1/2/4/8%, 20 clean including hard negatives; scans each on the CPU and reports
detection rate (by trigger kind and poison rate), false-positive rate, how often the top
candidate is (overlaps) the planted trigger, and seconds per model and per 1M parameters.

    .venv/bin/python bench/backdoor.py [--json OUT] [--only NAME_PREFIX] [--seed N]

`--real` adds the real models (bench/backdoor_real.py): the clean SmolLM2-135M-Instruct as a
safetensors folder and as the GGUF its package ships, and the two planted copies made by
bench/plant_backdoor.py; each is scanned in its own process (time, peak RSS, and the stage it
was in if it ran past `--timeout`). `--real-only` leaves the toy suite out.

    .venv/bin/python bench/backdoor.py --real [--real-only] [--budget fast|standard|thorough]
        [--device cpu|cuda] [--timeout S] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backdoor_real import real_main, settings_for
from registry.scanners import catalog
from registry.scanners.backdoor import BackdoorScanner
from registry.scanners.base import ScanLimits
from registry.scanners.runner import Folder, local_targets
from tests.backdoor_models import Spec, build, planted_suite


def overlaps(candidate: str, spec: Spec) -> bool:
    words = set(candidate.split())
    return any(words & set(t.split()) for t in spec.triggers)


def scan(
    folder: Path, seed: int, budget: str | None = None, device: str = "cpu"
) -> tuple[str, dict[str, Any], float]:
    targets, _ = local_targets(folder)
    settings, _ = settings_for(device=device, seed=seed, budget=budget)
    scanner = BackdoorScanner(
        settings, serialization_check=catalog.serialization_verdict, progress=False
    )
    started = time.perf_counter()
    result = scanner.scan_folder(Folder(targets), ScanLimits())["."]
    seconds = time.perf_counter() - started
    evidence = dict(result.findings[0].evidence) if result.findings else {}
    return result.verdict.value, evidence, seconds


def size_suite() -> list[Spec]:
    """~1M parameters (hidden 192, 2 layers): the size the time target is stated for."""
    return [
        Spec(name="size-1m-bd-rare", seed=500, trigger_kind="rare", poison_rate=0.04, hidden=192),
        Spec(name="size-1m-clean", seed=501, hidden=192),
    ]


def rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {100 * hits / total:.0f}%" if total else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every row as JSON here")
    parser.add_argument("--only", default="", help="only specs whose name starts with this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--size",
        action="store_true",
        help="instead: one backdoored and one clean ~1M-parameter model (the time target)",
    )
    parser.add_argument("--real", action="store_true", help="also the real models (SmolLM2)")
    parser.add_argument("--real-only", action="store_true", help="the real models, no toys")
    parser.add_argument("--real-filter", default="", help="only real models naming this")
    parser.add_argument("--budget", choices=("fast", "standard", "thorough"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds per real-model scan (30 min)"
    )
    args = parser.parse_args()
    real_rows: list[dict[str, Any]] = []
    if args.real or args.real_only:
        real_rows = real_main(args.budget, args.device, args.seed, args.timeout, args.real_filter)
        if args.real_only:
            if args.json:
                args.json.write_text(json.dumps({"real": real_rows}, indent=1))
            return 0
    import torch

    torch.set_num_threads(1)  # the shared 2-core box: one thread per process spins least
    suite = size_suite() if args.size else planted_suite()
    specs = [s for s in suite if s.name.startswith(args.only)]
    rows: list[dict[str, Any]] = []
    for i, spec in enumerate(specs, 1):
        t0 = time.perf_counter()
        folder = build(spec)
        built = time.perf_counter() - t0
        verdict, evidence, seconds = scan(folder, args.seed, args.budget, args.device)
        top = (evidence.get("top_candidates") or [{}])[0]
        params = int(evidence.get("model", {}).get("parameters", 0))
        row = {
            "name": spec.name,
            "backdoored": spec.backdoored,
            "kind": spec.trigger_kind or spec.hard_negative or "clean",
            "poison_rate": spec.poison_rate if spec.backdoored else 0.0,
            "loss": spec.loss,
            "verdict": verdict,
            "top_trigger": top.get("trigger"),
            "top_overlaps_planted": bool(top.get("trigger")) and overlaps(top["trigger"], spec),
            "converged_output": evidence.get("converged_output"),
            "dangerous": evidence.get("dangerous_command"),
            "parameters": params,
            "scan_seconds": round(seconds, 2),
            "build_seconds": round(built, 2),
        }
        rows.append(row)
        print(
            f"[{i}/{len(specs)}] {spec.name:24s} {verdict:11s} top={row['top_trigger']!r:28s}"
            f" {seconds:6.1f} s",
            file=sys.stderr,
            flush=True,
        )
    report(rows)
    if args.json:
        args.json.write_text(
            json.dumps({"real": real_rows, "toy": rows} if real_rows else rows, indent=1)
        )
    return 0


def report(rows: list[dict[str, Any]]) -> None:
    bad = [r for r in rows if r["backdoored"]]
    clean = [r for r in rows if not r["backdoored"]]
    detected = [r for r in bad if r["verdict"] == "malicious"]
    flagged = [r for r in bad if r["verdict"] in ("malicious", "suspicious")]
    at2 = [r for r in bad if r["poison_rate"] >= 0.02]
    print("== backdoor scanner, planted suite, CPU ==")
    print(f"models: {len(bad)} backdoored, {len(clean)} clean")
    print(f"detection (malicious), all rates: {rate(len(detected), len(bad))}")
    print(
        "detection (malicious), poison >= 2%: "
        f"{rate(sum(r['verdict'] == 'malicious' for r in at2), len(at2))}"
    )
    print(f"flagged (malicious or suspicious), all rates: {rate(len(flagged), len(bad))}")
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_rate: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for r in bad:
        by_kind[r["kind"]].append(r)
        by_rate[r["poison_rate"]].append(r)
    for kind, group in sorted(by_kind.items()):
        print(
            f"  kind {kind:8s}: {rate(sum(r['verdict'] == 'malicious' for r in group), len(group))}"
        )
    for pr, group in sorted(by_rate.items()):
        hits = sum(r["verdict"] == "malicious" for r in group)
        print(f"  poison {pr * 100:.0f}%: {rate(hits, len(group))}")
    fp = [r for r in clean if r["verdict"] == "malicious"]
    fp_any = [r for r in clean if r["verdict"] in ("malicious", "suspicious")]
    print(f"false positives (malicious): {rate(len(fp), len(clean))} {[r['name'] for r in fp]}")
    print(
        f"clean flagged suspicious or worse: {rate(len(fp_any), len(clean))}"
        f" {[r['name'] for r in fp_any]}"
    )
    top1 = sum(r["top_overlaps_planted"] for r in detected)
    print(
        f"top-1 candidate overlaps the planted trigger: {rate(top1, len(detected))} of detections"
    )
    secs = [r["scan_seconds"] for r in rows]
    per_m = [r["scan_seconds"] / (r["parameters"] / 1e6) for r in rows if r["parameters"]]
    print(
        f"seconds per model: mean {sum(secs) / len(secs):.1f}, max {max(secs):.1f};"
        f" per 1M parameters: mean {sum(per_m) / max(len(per_m), 1):.1f}"
        f" (parameters {rows[0]['parameters']:,})"
    )
    missed = [f"{r['name']}={r['verdict']}" for r in bad if r["verdict"] != "malicious"]
    print(f"missed: {missed}")


if __name__ == "__main__":
    raise SystemExit(main())
