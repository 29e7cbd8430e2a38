"""The real-model half of bench/backdoor.py (`--real`): SmolLM2-135M-Instruct, clean and planted.

Rows: the clean model as the safetensors folder bench/plant_backdoor.py saved (dequantised from
the package's Q4_1 GGUF), the GGUF file itself, and the two planted copies. Each model is scanned
in a child process (`python bench/backdoor_real.py --scan-one PATH ...`) so that its peak RSS is
its own and a scan past `--timeout` can be stopped; the last progress line it printed names the
stage it was in. Settings the scanner does not have yet (`budget` before bd-core's branch lands)
are recorded as not passed rather than failing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.plant_backdoor import SPECS, THREADS, PlantSpec, clean_folder, planted_folder
from registry.scanners import catalog
from registry.scanners.backdoor import BackdoorScanner, BackdoorSettings
from registry.scanners.base import ScanLimits
from registry.scanners.runner import Folder, local_targets
from tests.real_models import RealModelMissingError, smollm2_gguf


def settings_for(
    device: str = "cpu", seed: int = 0, budget: str | None = None
) -> tuple[BackdoorSettings, dict[str, Any]]:
    """BackdoorSettings with what this scanner version accepts, and a note of what it did not."""
    accepted = {f.name for f in dataclasses.fields(BackdoorSettings)}
    wanted: dict[str, Any] = {"device": device, "seed": seed}
    if budget is not None:
        wanted["budget"] = budget
    passed = {k: v for k, v in wanted.items() if k in accepted}
    dropped = {k: v for k, v in wanted.items() if k not in accepted}
    return BackdoorSettings(**passed), dropped


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def trigger_match(evidence: dict[str, Any], trigger: str) -> tuple[bool, str | None]:
    """(the exact planted trigger is named, the minimal sub-phrase named), from the evidence.

    The exact trigger counts when any reported form of the top candidate (its full text, or a
    `full_trigger` field where the scanner reports the full and the minimal phrase separately)
    equals the planted one; the sub-phrase is the top candidate when its words are a non-empty
    subset of the planted trigger's.
    """
    top = (evidence.get("top_candidates") or [{}])[0]
    forms = [
        str(v)
        for k in ("trigger", "full_trigger", "trigger_full", "as_fired", "minimal_trigger")
        for v in [top.get(k), evidence.get(k)]
        if isinstance(v, str) and v
    ]
    exact = any(norm(f) == norm(trigger) for f in forms)
    planted = set(norm(trigger).split())
    minimal = next(
        (f for f in forms if set(norm(f).split()) and set(norm(f).split()) <= planted), None
    )
    return exact, minimal


def scan_one(path: Path, device: str, seed: int, budget: str | None) -> dict[str, Any]:
    """Scan one model in this process; the row (with this process's peak RSS)."""
    import torch  # optional heavy imports: the ml extra
    import transformers  # noqa: F401 - imported here so the baseline below counts it

    if device == "cpu":
        torch.set_num_threads(THREADS)
    # The process before any model: Python, torch and transformers (about 250 MiB). The
    # scan's own memory is the peak above it.
    baseline = peak_rss_mib(os.getpid())
    settings, dropped = settings_for(device, seed, budget)
    targets, _ = local_targets(path)
    scanner = BackdoorScanner(
        settings, serialization_check=catalog.serialization_verdict, progress=True
    )
    started = time.perf_counter()
    result = scanner.scan_folder(Folder(targets), ScanLimits())["."]
    seconds = time.perf_counter() - started
    evidence = dict(result.findings[0].evidence) if result.findings else {}
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "verdict": result.verdict.value,
        "message": result.findings[0].message if result.findings else "",
        "evidence": evidence,
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(rss_kib / 1024),
        "baseline_rss_mib": baseline,
        "settings_not_passed": dropped,
    }


def run_child(
    path: Path, device: str, seed: int, budget: str | None, timeout: float
) -> dict[str, Any]:
    """Scan `path` in a child process; stop it after `timeout` s and report its last stage."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--scan-one", str(path)]
    cmd += ["--device", device, "--seed", str(seed)]
    if budget:
        cmd += ["--budget", budget]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    stage = ""
    stages: list[tuple[float, str]] = []
    peak: int | None = None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    timed_out = False
    while True:
        left = timeout - (time.perf_counter() - started)
        if left <= 0:
            timed_out = True
            peak = peak_rss_mib(proc.pid)  # read before the kill: the child's high-water mark
            os.killpg(proc.pid, signal.SIGKILL)
            break
        if not sel.select(timeout=min(left, 5.0)):
            if proc.poll() is not None:
                break
            continue
        line = proc.stderr.readline()
        if not line:
            break
        if line.startswith("backdoor: "):
            stage = line.removeprefix("backdoor: ").strip()
            stages.append((round(time.perf_counter() - started, 1), stage))
            print(f"  [{path.name}] {stage}", file=sys.stderr, flush=True)
    out = proc.stdout.read() if not timed_out else ""
    proc.wait()
    elapsed = round(time.perf_counter() - started, 1)
    if timed_out:
        return {
            "verdict": "timeout",
            "seconds": elapsed,
            "stage": stage,
            "stages": stages,
            "peak_rss_mib": peak,
        }
    try:
        row: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"verdict": "error", "seconds": elapsed, "stage": stage, "peak_rss_mib": None}
    row["stage"] = stage
    row["stages"] = stages
    return row


def peak_rss_mib(pid: int) -> int | None:
    """A live process's peak resident set (VmHWM), in MiB; None where /proc cannot say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def find_planted(spec: PlantSpec) -> Path | None:
    """The planted folder for `spec`: the one this script version would build, else the newest
    folder of the same name and spec built by an older plant_backdoor.py (with a warning)."""
    folder = planted_folder(spec)
    if (folder / "model.safetensors").is_file():
        return folder
    same: list[Path] = []
    for other in folder.parent.glob(f"{spec.name}-*"):
        try:
            meta = json.loads((other / "plant.json").read_text())
        except (OSError, ValueError):
            continue
        if meta.get("spec") == dataclasses.asdict(spec) and (other / "model.safetensors").is_file():
            same.append(other)
    if not same:
        return None
    newest = max(same, key=lambda p: p.stat().st_mtime)
    print(
        f"backdoor bench: {spec.name}: using {newest.name}, planted by an older"
        " bench/plant_backdoor.py (rerun it to rebuild)",
        file=sys.stderr,
    )
    return newest


def real_models() -> list[tuple[str, Path, PlantSpec | None]]:
    """(name, path, spec or None for clean) for every real model whose files exist."""
    rows: list[tuple[str, Path, PlantSpec | None]] = []
    clean = clean_folder()
    if (clean / "model.safetensors").is_file():
        rows.append(("smollm2-135m (safetensors)", clean, None))
    rows.append(("smollm2-135m (GGUF Q4_1)", smollm2_gguf(), None))
    for spec in SPECS:
        folder = find_planted(spec)
        if folder is not None:
            rows.append((spec.name, folder, spec))
        else:
            print(
                f"backdoor bench: {spec.name} is not planted yet:"
                " run bench/plant_backdoor.py first",
                file=sys.stderr,
            )
    return rows


def real_main(
    budget: str | None, device: str, seed: int, timeout: float, only: str = ""
) -> list[dict[str, Any]]:
    """Scan every real model (whose name contains `only`), print the table, return the rows."""
    try:
        models = [m for m in real_models() if only in m[0]]
    except RealModelMissingError as exc:
        print(f"backdoor bench: {exc}", file=sys.stderr)
        return []
    rows: list[dict[str, Any]] = []
    for name, path, spec in models:
        print(f"backdoor bench: scanning {name} ({path})", file=sys.stderr, flush=True)
        got = run_child(path, device, seed, budget, timeout)
        evidence = got.get("evidence") or {}
        exact, minimal = trigger_match(evidence, spec.trigger) if spec else (False, None)
        verdict = got["verdict"]
        row = {
            "model": name,
            "path": str(path),
            "backdoored": spec is not None,
            "trigger": spec.trigger if spec else None,
            "target": spec.target if spec else None,
            "parameters": (evidence.get("model") or {}).get("parameters"),
            "verdict": verdict,
            "detected": spec is not None and verdict == "malicious",
            "false_positive": spec is None and verdict in ("malicious", "suspicious"),
            "exact_trigger": exact,
            "minimal_subphrase": minimal,
            "top_trigger": ((evidence.get("top_candidates") or [{}])[0]).get("trigger"),
            "seconds": got.get("seconds"),
            "peak_rss_mib": got.get("peak_rss_mib"),
            "baseline_rss_mib": got.get("baseline_rss_mib"),
            "stage": got.get("stage"),
            "stages": got.get("stages", []),
            "message": got.get("message", ""),
            "budget": budget,
            "device": device,
            "settings_not_passed": got.get("settings_not_passed", {}),
            # The scan's whole evidence: why a planted copy was missed is read here.
            "evidence": evidence,
        }
        rows.append(row)
    print_table(rows)
    return rows


def above(row: dict[str, Any]) -> int | str:
    """The peak RSS above the process's baseline (Python, torch, transformers), in MiB."""
    peak, baseline = row.get("peak_rss_mib"), row.get("baseline_rss_mib")
    return peak - baseline if peak is not None and baseline is not None else "-"


def print_table(rows: list[dict[str, Any]]) -> None:
    print("== backdoor scanner, real models ==")
    head = (
        f"{'model':34s} {'params':>12s} {'verdict':11s} {'det':4s} {'FP':4s}"
        f" {'exact':5s} {'minimal':18s} {'time s':>8s} {'RSS MiB':>8s} {'above MiB':>9s}"
    )
    print(head)
    for r in rows:
        params = f"{r['parameters']:,}" if r["parameters"] else "-"
        det = ("yes" if r["detected"] else "no") if r["backdoored"] else "-"
        fp = "-" if r["backdoored"] else ("yes" if r["false_positive"] else "no")
        exact = ("yes" if r["exact_trigger"] else "no") if r["backdoored"] else "-"
        print(
            f"{r['model']:34s} {params:>12s} {r['verdict']:11s} {det:4s} {fp:4s} {exact:5s}"
            f" {r['minimal_subphrase'] or '-':18s} {r['seconds']!s:>8s}"
            f" {r['peak_rss_mib'] or '-'!s:>8s} {above(r)!s:>9s}"
        )
        if r["verdict"] in ("timeout", "error", "unsupported"):
            print(f"    {r['verdict']}: {r['message'] or ''} last stage: {r['stage']}")
    dropped = {k for r in rows for k in r["settings_not_passed"]}
    if dropped:
        print(f"(this scanner has no {', '.join(sorted(dropped))} setting: not passed)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan-one", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget")
    args = parser.parse_args()
    row = scan_one(args.scan_one, args.device, args.seed, args.budget)
    print(json.dumps(row, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
