"""Compare model-file scanners on the labelled corpus in tests/assets/corpus/.

    python3 -m venv /tmp/scanvenv
    /tmp/scanvenv/bin/pip install picklescan modelscan fickling modelaudit
    .venv/bin/python bench/scanner_compare.py --venv /tmp/scanvenv [--json] [--no-speed]

Tools: picklescan, modelscan, fickling and ModelAudit (CLIs from the scratch venv given by
--venv; never installed into the project's venv) and `modelctl scan FILE --json` from the repo's
.venv. A tool that is missing or broken is reported as unavailable and the others still run.

How each tool's answer is read, per file:

  picklescan -p FILE          exit 1 -> flagged ("dangerous import ... FOUND"); exit 2 -> error;
                              exit 0 with "Scanned files: 0" -> skipped; else clean.
  modelscan -p FILE -r json   JSON report: issues > 0 -> flagged (whatever the exit code);
                              exit 3 (nothing scanned) -> skipped; exit 2 / "errors" -> error.
  fickling --check-safety     exit 1 -> flagged (severity above LIKELY_SAFE); exit 2 (cannot
                              parse) -> error; exit 0 -> clean.
  modelaudit scan --format json --no-cache
                              exit 1 -> flagged (a WARNING or CRITICAL issue); exit 2 with
                              "files_scanned": 0 -> skipped; other exit 2 -> error; exit 0 ->
                              clean. Its telemetry is switched off (PROMPTFOO_DISABLE_TELEMETRY).
  modelctl scan --json        verdict malicious/suspicious -> flagged; malformed/error ->
                              error (blocked); unsupported -> skipped; clean -> clean.

Catch rate = flagged / samples labelled malicious. False-positive rate = flagged / samples
labelled clean. "closed" rates also count error as a block (a fail-closed pipeline).

Speed: a ~50 MB pure pickle (a list of floats and strings, built with pickle.dumps of plain
values) is timed under picklescan and modelctl; the ratio is reported.

Nothing here loads a sample: every tool runs in its own process and only reads bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO / "tests" / "assets" / "corpus"
TOOLS = ("picklescan", "modelscan", "fickling", "modelaudit", "modelctl")
#: ModelAudit phones home (PostHog) unless told not to; the benchmark never sends anything.
QUIET_ENV = {"PROMPTFOO_DISABLE_TELEMETRY": "1", "NO_ANALYTICS": "1", "DO_NOT_TRACK": "1"}

FLAGGED, CLEAN, ERROR, SKIPPED, UNAVAILABLE = "flagged", "clean", "error", "skipped", "n/a"
MARK = {FLAGGED: "F", CLEAN: ".", ERROR: "E", SKIPPED: "S", UNAVAILABLE: "-"}


@dataclass
class Outcome:
    status: str
    detail: str = ""
    seconds: float = 0.0


@dataclass
class ToolSummary:
    tool: str
    available: bool
    note: str = ""
    malicious: int = 0
    caught: int = 0
    caught_closed: int = 0
    clean: int = 0
    false_pos: int = 0
    false_pos_closed: int = 0
    by_label: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def catch_rate(self) -> float:
        return self.caught / self.malicious if self.malicious else 0.0

    @property
    def fp_rate(self) -> float:
        return self.false_pos / self.clean if self.clean else 0.0


#: Where the tools' Python bytecode is cached: an installed tool has its .pyc files, and a
#: timing must not count compiling a checkout's sources again on every run (some sandboxes
#: set PYTHONDONTWRITEBYTECODE). The first run of each tool warms it; timings take the best run.
PYCACHE = Path(tempfile.gettempdir(), "scanner-compare-pycache")


def _run(cmd: list[str], cwd: Path, timeout: float) -> tuple[int, str, float]:
    start = time.perf_counter()
    env = {**os.environ, **QUIET_ENV, "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        return 124, "timeout", time.perf_counter() - start
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def _json_in(out: str) -> dict[str, Any]:
    """The first JSON object in a tool's output (stdout, then stderr: a line may follow it)."""
    data, _end = json.JSONDecoder().raw_decode(out[out.index("{") :])
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _first_line(text: str, needle: str) -> str:
    for line in text.splitlines():
        if needle in line:
            return line.strip()[:160]
    return ""


class Tool:
    name = ""

    def __init__(self, exe: Path, workdir: Path, timeout: float) -> None:
        self.exe = exe
        self.workdir = workdir
        self.timeout = timeout

    def available(self) -> tuple[bool, str]:
        if not self.exe.exists():
            return False, f"{self.exe} not found"
        return True, ""

    def scan(self, path: Path) -> Outcome:
        raise NotImplementedError


class Picklescan(Tool):
    name = "picklescan"

    def scan(self, path: Path) -> Outcome:
        rc, out, secs = _run([str(self.exe), "-p", str(path)], self.workdir, self.timeout)
        if rc == 1:
            return Outcome(FLAGGED, _first_line(out, "FOUND") or "infected", secs)
        if rc == 0 and "Scanned files: 0" in out:
            return Outcome(SKIPPED, "not scanned", secs)
        if rc == 0:
            return Outcome(CLEAN, "", secs)
        return Outcome(ERROR, _first_line(out, "rror") or f"exit {rc}", secs)


class Modelscan(Tool):
    name = "modelscan"

    def scan(self, path: Path) -> Outcome:
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            report = Path(tmp, "report.json")
            cmd = [str(self.exe), "-p", str(path), "-r", "json", "-o", str(report)]
            rc, out, secs = _run(cmd, Path(tmp), self.timeout)
            try:
                data = json.loads(report.read_text())
            except (OSError, ValueError):
                data = {}
        issues = data.get("issues") or []
        if issues:
            first = issues[0]
            return Outcome(FLAGGED, f"{first.get('severity')}: {first.get('description')}", secs)
        if rc == 3:
            return Outcome(SKIPPED, "no supported files", secs)
        if rc == 0:
            return Outcome(CLEAN, "", secs)
        errors = data.get("errors") or []
        msg = str(errors[0].get("description", errors[0]))[:160] if errors else f"exit {rc}"
        return Outcome(ERROR, msg or _first_line(out, "rror"), secs)


class Fickling(Tool):
    name = "fickling"

    def scan(self, path: Path) -> Outcome:
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            report = Path(tmp, "safety.json")
            cmd = [str(self.exe), "--check-safety", "--json-output", str(report), str(path)]
            rc, out, secs = _run(cmd, Path(tmp), self.timeout)
            try:
                data = json.loads(report.read_text())
            except (OSError, ValueError):
                data = {}
        severity = str(data.get("severity", ""))
        if rc == 1:
            return Outcome(FLAGGED, severity or "unsafe", secs)
        if rc == 0:
            return Outcome(CLEAN, severity, secs)
        return Outcome(ERROR, _first_line(out, "rror") or f"exit {rc}", secs)


class ModelAudit(Tool):
    name = "modelaudit"

    def scan(self, path: Path) -> Outcome:
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            report = Path(tmp, "report.json")
            cmd = [str(self.exe), "scan", str(path), "--format", "json", "--no-cache"]
            cmd += ["--output", str(report)]
            rc, out, secs = _run(cmd, Path(tmp), self.timeout)
            try:
                data = json.loads(report.read_text())
            except (OSError, ValueError):
                data = {}
        issues = [
            i
            for i in data.get("issues") or []
            if str(i.get("severity", "")).lower() in {"critical", "warning"}
        ]
        if rc == 1:
            first = issues[0] if issues else {}
            detail = f"{first.get('severity')}: {first.get('message')}" if first else "issues"
            return Outcome(FLAGGED, detail[:160], secs)
        if rc == 0:
            return Outcome(CLEAN, "", secs)
        if rc == 2 and data.get("files_scanned") == 0:
            return Outcome(SKIPPED, "no files scanned", secs)
        return Outcome(ERROR, _first_line(out, "rror") or f"exit {rc}", secs)


class Modelctl(Tool):
    name = "modelctl"

    def available(self) -> tuple[bool, str]:
        ok, why = super().available()
        if not ok:
            return ok, why
        rc, out, _ = _run([str(self.exe), "scan", "--help"], self.workdir, self.timeout)
        if rc != 0:
            return False, "`modelctl scan` is not available yet: " + (out.strip()[-160:] or "")
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            probe = Path(tmp, "probe.json")
            probe.write_text("{}")
            rc, out, _ = _run([str(self.exe), "scan", str(probe), "--json"], Path(tmp), 60)
        try:
            _json_in(out)
        except ValueError:
            tail = out.strip().splitlines()[-1:] or [f"exit {rc}"]
            return False, f"`modelctl scan --json` does not work yet: {tail[0][:160]}"
        return True, ""

    def scan(self, path: Path) -> Outcome:
        # --fail-on never: the verdict is read from the JSON, not from the exit code
        cmd = [str(self.exe), "scan", str(path), "--json", "--fail-on", "never"]
        rc, out, secs = _run(cmd, self.workdir, self.timeout)
        try:
            data = _json_in(out)
        except ValueError:
            return Outcome(ERROR, _first_line(out, "rror") or f"exit {rc}, no JSON", secs)
        verdict = str(data.get("verdict", "")).lower()
        rules: list[str] = []
        for f in data.get("files") or []:
            rules += [str(x.get("rule", "")) for x in f.get("findings") or [] if x.get("rule")]
        detail = f"{verdict}: {', '.join(rules[:3])}" if rules else verdict
        if verdict in {"malicious", "suspicious"}:
            return Outcome(FLAGGED, detail, secs)
        if verdict in {"malformed", "error"}:
            return Outcome(ERROR, detail, secs)
        if verdict == "unsupported":
            return Outcome(SKIPPED, detail, secs)
        if verdict == "clean":
            return Outcome(CLEAN, detail, secs)
        return Outcome(ERROR, f"unknown verdict {verdict!r} (exit {rc})", secs)


def make_tools(venv: Path, modelctl: Path, workdir: Path, timeout: float) -> list[Tool]:
    return [
        Picklescan(venv / "bin" / "picklescan", workdir, timeout),
        Modelscan(venv / "bin" / "modelscan", workdir, timeout),
        Fickling(venv / "bin" / "fickling", workdir, timeout),
        ModelAudit(venv / "bin" / "modelaudit", workdir, timeout),
        Modelctl(modelctl, workdir, timeout),
    ]


def summarize(
    tool: Tool, ok: bool, note: str, manifest: list[dict[str, str]], results: dict[str, Outcome]
) -> ToolSummary:
    s = ToolSummary(tool.name, ok, note)
    for entry in manifest:
        label = entry["expected"]
        status = results[entry["path"]].status
        s.by_label.setdefault(label, {}).setdefault(status, 0)
        s.by_label[label][status] += 1
        if label == "malicious":
            s.malicious += 1
            s.caught += status == FLAGGED
            s.caught_closed += status in {FLAGGED, ERROR}
        elif label == "clean":
            s.clean += 1
            s.false_pos += status == FLAGGED
            s.false_pos_closed += status in {FLAGGED, ERROR}
    return s


def _pct(n: int, d: int) -> str:
    return f"{n:>3}/{d:<3} {100 * n / d:5.1f}%" if d else "  n/a"


def print_report(
    summaries: list[ToolSummary],
    manifest: list[dict[str, str]],
    results: dict[str, dict[str, Outcome]],
    speed: dict[str, object] | None,
) -> None:
    names = [s.tool for s in summaries]
    print("Per sample (F flagged, . clean, E error/blocked, S skipped/unsupported, - n/a):")
    print(f"  {'expected':<10} " + " ".join(f"{n[:10]:>10}" for n in names) + "  path")
    for e in manifest:
        marks = " ".join(f"{MARK[results[n][e['path']].status]:>10}" for n in names)
        print(f"  {e['expected']:<10} {marks}  {e['path']}")
    print()
    header = f"{'tool':<11} {'catch (malicious)':>18} {'+errors (closed)':>18}"
    header += f" {'false pos (clean)':>18} {'+errors (closed)':>18}"
    print(header)
    for s in summaries:
        if not s.available:
            print(f"{s.tool:<11} unavailable: {s.note}")
            continue
        print(
            f"{s.tool:<11} {_pct(s.caught, s.malicious):>18} "
            f"{_pct(s.caught_closed, s.malicious):>18} "
            f"{_pct(s.false_pos, s.clean):>18} {_pct(s.false_pos_closed, s.clean):>18}"
        )
    print()
    print("Outcomes by expected label:")
    for s in summaries:
        if s.available:
            parts = [
                f"{label}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
                for label, counts in sorted(s.by_label.items())
            ]
            print(f"  {s.tool:<11} " + " | ".join(parts))
    if speed:
        print_speed(speed)


def print_speed(speed: dict[str, object]) -> None:
    if speed:
        print()
        print(f"Speed ({speed['size_mb']} MB pure pickle, best of {speed['repeats']}):")
        for tool, secs in dict(speed["seconds"]).items():  # type: ignore[call-overload]
            print(f"  {tool:<11} {secs}")
        print(f"  ratio picklescan/modelctl: {speed['ratio']}")


def make_big_pickle(path: Path, target_mb: int) -> None:
    # plain floats and short strings only; pickle.dumps of plain values is safe
    n = max(1, target_mb * 1024 * 1024 // 22)
    values: list[object] = [i * 0.5 for i in range(n)]
    values += [f"tok{i}" for i in range(n)]
    path.write_bytes(pickle.dumps(values, protocol=4))


def speed_test(
    tools: dict[str, Tool], workdir: Path, target_mb: int, repeats: int
) -> dict[str, object]:
    big = workdir / "big.pkl"
    make_big_pickle(big, target_mb)
    seconds: dict[str, object] = {}
    for name in ("picklescan", "modelctl"):
        tool = tools.get(name)
        if tool is None:
            seconds[name] = "unavailable"
            continue
        runs = []
        outcome = Outcome(ERROR)
        for _ in range(repeats):
            outcome = tool.scan(big)
            runs.append(outcome.seconds)
        seconds[name] = (
            f"{min(runs):.2f}s ({outcome.status}{': ' + outcome.detail if outcome.detail else ''})"
        )
        seconds[name + "_s"] = min(runs)
    ratio: object = "n/a"
    ps, mc = seconds.get("picklescan_s"), seconds.get("modelctl_s")
    if isinstance(ps, float) and isinstance(mc, float) and mc > 0:
        ratio = f"{ps / mc:.2f}x (modelctl {'faster' if mc < ps else 'slower'})"
    size_mb = round(big.stat().st_size / 1e6, 1)
    shown = {k: v for k, v in seconds.items() if not k.endswith("_s")}
    return {"size_mb": size_mb, "repeats": repeats, "seconds": shown, "ratio": ratio}


def make_small_models(
    folder: Path, count: int, *, pickles: str = "values", width: int = 64
) -> None:
    """`count` small model files as a training run leaves them (torch is the `ml` extra).

    A quarter each: torch zip checkpoints (`.pt`), legacy torch pickles (`.bin`), `.pkl` state
    dicts and safetensors files; 2 to 6 `width` x `width` float32 tensors each. The `.pkl`
    files hold the tensors as plain Python lists (`pickles="values"`: one opcode per number,
    where an opcode-walking scanner spends its time; 70 to 220 kB) or as numpy arrays
    (`pickles="arrays"`, as scikit-learn style code writes them: a few opcodes around raw bytes;
    30 to 100 kB)."""
    import torch  # the project's ml extra; only this leg needs it

    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    for i in range(count):
        layers = 2 + i % 5
        state = {
            f"layers.{k}.weight": torch.randn(width, width, generator=generator)
            for k in range(layers)
        }
        kind = i % 4
        if kind == 0:
            torch.save(state, folder / f"ckpt_{i:04d}.pt")
        elif kind == 1:
            torch.save(state, folder / f"ckpt_{i:04d}.bin", _use_new_zipfile_serialization=False)
        elif kind == 2:
            # pickle.dumps of our own plain values and numpy arrays: safe to write and to scan
            values: dict[str, object] = {
                name: t.numpy() if pickles == "arrays" else t.flatten().tolist()
                for name, t in state.items()
            }
            (folder / f"state_{i:04d}.pkl").write_bytes(pickle.dumps(values, protocol=4))
        else:
            header: dict[str, object] = {}
            body = b""
            for name, t in state.items():
                raw = t.numpy().tobytes()
                header[name] = {
                    "dtype": "F32",
                    "shape": list(t.shape),
                    "data_offsets": [len(body), len(body) + len(raw)],
                }
                body += raw
            head = json.dumps(header).encode()
            head += b" " * (-len(head) % 8)
            data = len(head).to_bytes(8, "little") + head + body
            (folder / f"weights_{i:04d}.safetensors").write_bytes(data)


def _best_of(cmd: list[str], cwd: Path, repeats: int, timeout: float) -> tuple[float, int]:
    runs: list[float] = []
    rc = 0
    for _ in range(repeats):
        rc, _out, secs = _run(cmd, cwd, timeout)
        runs.append(secs)
    return min(runs), rc


def folder_speed_test(
    venv: Path,
    modelctl: Path,
    workdir: Path,
    *,
    count: int,
    pickles: str,
    repeats: int,
    timeout: float,
) -> dict[str, object]:
    """Wall time of one CLI call over a folder of `count` small model files, best of `repeats`.

    modelctl runs with its default `--jobs` (every core) and with `--jobs 1`; the ratio that
    counts is modelctl's default over picklescan's (<= 1.0 is the goal)."""
    folder = workdir / "small-models"
    make_small_models(folder, count, pickles=pickles)
    legs = {
        "picklescan": [str(venv / "bin" / "picklescan"), "-p", str(folder)],
        "modelctl": [str(modelctl), "scan", str(folder), "--json", "--fail-on", "never"],
        "modelctl --jobs 1": [
            *[str(modelctl), "scan", str(folder), "--json", "--fail-on", "never"],
            *["--jobs", "1"],
        ],
    }
    seconds: dict[str, float] = {}
    exits: dict[str, int] = {}
    for name, cmd in legs.items():
        if not Path(cmd[0]).exists():
            continue
        secs, rc = _best_of(cmd, workdir, repeats, timeout)
        exits[name] = rc
        # picklescan exits 1 for a finding (a scan all the same), 2 when it failed; modelctl
        # with --fail-on never exits 0 for any verdict: a failed run's time means nothing
        if rc == 0 or (name == "picklescan" and rc == 1):
            seconds[name] = secs
    ratio: object = "n/a"
    if seconds.get("picklescan") and "modelctl" in seconds:
        ratio = round(seconds["modelctl"] / seconds["picklescan"], 2)
    return {
        "files": count,
        "pickles": pickles,
        "repeats": repeats,
        "cores": os.cpu_count(),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "exit_codes": exits,
        "ratio_modelctl_over_picklescan": ratio,
    }


def print_folder_speed(folder: dict[str, object]) -> None:
    print()
    print(
        f"Folder speed ({folder['files']} small model files, .pkl as {folder['pickles']}, "
        f"{folder['cores']} cores, "
        f"best of {folder['repeats']}):"
    )
    seconds: dict[str, float] = dict(folder["seconds"])  # type: ignore[call-overload]
    for tool, rc in dict(folder["exit_codes"]).items():  # type: ignore[call-overload]
        shown = f"{seconds[tool]:.2f}s" if tool in seconds else f"FAILED (exit {rc})"
        print(f"  {tool:<18} {shown}")
    print(f"  ratio modelctl/picklescan: {folder['ratio_modelctl_over_picklescan']} (goal <= 1.0)")


def log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument(
        "--venv", type=Path, required=True, help="scratch venv holding the external scanners"
    )
    ap.add_argument("--modelctl", type=Path, default=REPO / ".venv" / "bin" / "modelctl")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset")
    ap.add_argument("--jobs", type=int, default=max(2, os.cpu_count() or 2))
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per tool run")
    ap.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    ap.add_argument("--no-speed", action="store_true", help="skip the large-pickle timing")
    ap.add_argument("--speed-mb", type=int, default=50)
    ap.add_argument("--speed-repeats", type=int, default=2)
    ap.add_argument(
        "--folder-files", type=int, default=400, help="files in the folder-speed leg (0: skip it)"
    )
    ap.add_argument(
        "--folder-pickles",
        choices=("values", "arrays"),
        default="values",
        help="what the folder's .pkl files hold: plain lists of numbers, or numpy arrays",
    )
    ap.add_argument(
        "--speed-only", action="store_true", help="only the timings, not the corpus comparison"
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    manifest: list[dict[str, str]] = json.loads((args.corpus / "manifest.json").read_text())
    if args.speed_only:
        manifest = []
    wanted = {t.strip() for t in args.tools.split(",") if t.strip()}

    with tempfile.TemporaryDirectory(prefix="scanner-compare-") as tmp:
        workdir = Path(tmp)
        tools = [
            t
            for t in make_tools(args.venv, args.modelctl, workdir, args.timeout)
            if t.name in wanted
        ]
        summaries: list[ToolSummary] = []
        results: dict[str, dict[str, Outcome]] = {}
        usable: dict[str, Tool] = {}
        for tool in tools:
            ok, note = tool.available()
            if not ok:
                log(f"[{tool.name}] UNAVAILABLE - {note}; reporting the other tools")
            else:
                usable[tool.name] = tool
            per: dict[str, Outcome] = {}
            if ok:
                paths = [args.corpus / e["path"] for e in manifest]
                with ThreadPoolExecutor(args.jobs) as pool:
                    for e, outcome in zip(manifest, pool.map(tool.scan, paths), strict=True):
                        per[e["path"]] = outcome
                log(f"[{tool.name}] scanned {len(per)} samples")
            else:
                per = {e["path"]: Outcome(UNAVAILABLE, note) for e in manifest}
            results[tool.name] = per
            summaries.append(summarize(tool, ok, note, manifest, per))
        speed = (
            None
            if args.no_speed
            else speed_test(usable, workdir, args.speed_mb, args.speed_repeats)
        )
        folder = (
            None
            if args.no_speed or args.folder_files <= 0
            else folder_speed_test(
                args.venv,
                args.modelctl,
                workdir,
                count=args.folder_files,
                pickles=args.folder_pickles,
                repeats=max(3, args.speed_repeats),
                timeout=args.timeout,
            )
        )

    if args.json:
        report = {
            "corpus": str(args.corpus),
            "tools": [
                {
                    **asdict(s),
                    "catch_rate": round(s.catch_rate, 4),
                    "false_positive_rate": round(s.fp_rate, 4),
                }
                for s in summaries
            ],
            "samples": [
                {
                    **e,
                    "results": {n: asdict(results[n][e["path"]]) for n in results},
                }
                for e in manifest
            ],
            "speed": speed,
            "folder_speed": folder,
        }
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        if manifest:
            print_report(summaries, manifest, results, speed)
        elif speed:
            print_speed(speed)
        if folder:
            print_folder_speed(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
