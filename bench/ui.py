"""Web UI render times with 1,000 checkpoints and 20,000 files in the database.

Seeds a fresh registry (SQLite by default, or `--database-url postgresql+psycopg://...`):
250 models, 1,000 checkpoints of 20 files each (rows inserted directly; the README blob is
real so license facts are read as in production), six scans per checkpoint (5% with a
malicious pickle finding), two real signed attestations per checkpoint (the registry key),
a recorded decision per environment, 1% quarantined, a few exceptions. Then it serves the app
with uvicorn on 127.0.0.1, signs in with a real token and times each page over repeated GETs
(wall time at the client over loopback: an upper bound on the server's render time).

    .venv/bin/python bench/ui.py [--checkpoints 1000] [--files 20] [--repeat 30] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from attestations.decision import DecisionRecord
from attestations.digests import Digest
from attestations.manifest import Manifest, ManifestEntry
from policies import load_default_policies
from registry.db.engine import unit_of_work
from registry.db.models import (
    Blob,
    Checkpoint,
    CheckpointFile,
    Model,
    Quarantine,
    Scan,
    WaiverRow,
)
from registry.embedded import EmbeddedRegistry
from registry.progress import NoProgress
from registry.requests import MirrorRequest
from registry.service import admission, attest, decide, tokens
from registry.service.scan import report_max_severity
from registry.service.tokens import Role
from registry.settings import Settings
from registry.signing_key import registry_signer, tool_version
from tests.web_helpers import serve

# the scanners the shipped policies name
SCANNERS = (
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
TARGET_MS = 200.0


def seed(  # noqa: PLR0915 - one linear seeding script reads best in one piece
    registry: EmbeddedRegistry, n_checkpoints: int, n_files: int, work: Path
) -> None:
    rng = random.Random(7)  # noqa: S311 - reproducible bench data, not secrets
    card = work / "card"
    card.mkdir()
    # A card of a typical size (about 10 KiB of Markdown) naming a base model it holds.
    body = "".join(
        f"## Section {i}\n\nSome *text* with a [link](https://example.com/{i}) and `code`.\n\n"
        f"| metric | value |\n|---|---|\n| score {i} | {i * 1.5} |\n\n"
        for i in range(60)
    )
    (card / "README.md").write_bytes(
        f"---\nlicense: apache-2.0\nbase_model: org1/model-001\n---\n# bench\n\n{body}".encode()
    )
    registry.mirror(MirrorRequest(source=str(card), name="bench/card"), progress=NoProgress())
    readme_sha = hashlib.sha256((card / "README.md").read_bytes()).hexdigest()
    readme_size = (card / "README.md").stat().st_size
    signer = registry_signer(registry.settings)
    policy_set = load_default_policies()
    envs = decide.environments(policy_set)
    pub = signer.public_pem
    now = datetime.now(UTC)
    with unit_of_work(registry.sessions) as s:
        models = [
            Model(namespace=f"org{i % 10}", name=f"model-{i:03d}")
            for i in range(max(1, n_checkpoints // 4))
        ]
        s.add_all(models)
        s.flush()
        for i in range(n_checkpoints):
            model = models[i % len(models)]
            evil = i % 20 == 3
            entries = [ManifestEntry("README.md", readme_size, Digest(readme_sha))]
            blobs = []
            for j in range(n_files - 1):
                name = (
                    "pytorch_model.bin"
                    if evil and j == 0
                    else f"model-{j + 1:05d}-of-{n_files - 1:05d}.safetensors"
                )
                sha = hashlib.sha256(f"{i}/{j}".encode()).hexdigest()
                size = rng.randrange(1 << 20, 1 << 32)
                entries.append(ManifestEntry(name, size, Digest(sha)))
                blobs.append(
                    {"sha256": sha, "size": size, "storage_key": f"sha256/{sha[:2]}/{sha}"}
                )
            s.execute(Blob.__table__.insert(), blobs)
            manifest = Manifest.build(entries)
            cp = Checkpoint(
                model_id=model.id,
                manifest_digest=manifest.digest.hex,
                source_uri=f"hf://{model.namespace}/{model.name}",
                source_commit=hashlib.sha1(f"c{i}".encode()).hexdigest(),  # noqa: S324
                file_count=len(entries),
                total_size=manifest.total_size,
                created_at=now - timedelta(hours=n_checkpoints - i),
                license="apache-2.0",  # what mirroring records from this README
            )
            s.add(cp)
            s.flush()
            s.execute(
                CheckpointFile.__table__.insert(),
                [
                    {"checkpoint_id": cp.id, "path": e.path, "size": e.size, "sha256": e.sha256.hex}
                    for e in entries
                ],
            )
            finished = now - timedelta(days=rng.randrange(0, 40))
            for scanner in SCANNERS:
                files = []
                verdict = "clean"
                for e in entries:
                    is_pickle = e.path.endswith(".bin")
                    if scanner == "pickle" and is_pickle and evil:
                        verdict = "malicious"
                        files.append(
                            {
                                "path": e.path,
                                "sha256": e.sha256.hex,
                                "verdict": "malicious",
                                "findings": [
                                    {
                                        "scanner": "pickle",
                                        "rule": "pickle.global.not-allowed",
                                        "severity": "critical",
                                        "message": "imports posix.system",
                                        "evidence": {"globals": ["posix system"], "opcode": 12},
                                    }
                                ],
                            }
                        )
                    elif (scanner == "safetensors" and not is_pickle) or (
                        scanner == "pickle" and is_pickle
                    ):
                        files.append(
                            {
                                "path": e.path,
                                "sha256": e.sha256.hex,
                                "verdict": "clean",
                                "findings": [],
                            }
                        )
                s.add(
                    Scan(
                        checkpoint_id=cp.id,
                        scanner_id=scanner,
                        scanner_version="1.0.0",
                        ruleset_version="1",
                        verdict=verdict,
                        report={"files": files, "limits": {}},
                        max_severity=report_max_severity({"files": files}),
                        started_at=finished - timedelta(seconds=2),
                        finished_at=finished,
                    )
                )
            if i % 100 == 5:
                s.add(
                    Quarantine(
                        kind="checkpoint", digest=cp.manifest_digest, reason="bench", actor="bench"
                    )
                )
            if i % 97 == 11:
                s.add(
                    WaiverRow(
                        checkpoint_id=cp.id,
                        waive=["licenses"],
                        reason="bench",
                        approver="bench",
                        expires_at=now + timedelta(days=rng.randrange(1, 30)),
                        actor="bench",
                    )
                )
            s.flush()
            s.refresh(cp)
            attest.attest_checkpoint(
                s,
                cp,
                signer=signer,
                tool_version=tool_version(),
                actor="bench",
                allow_findings=True,
            )
            s.flush()
            for item in decide.decide_now(
                s, cp, policy_set, envs, blobs=registry.blobs, registry_public_key=pub, now=now
            ):
                assert item.decision is not None
                d = item.decision

                admission.record_decision(
                    s,
                    cp,
                    DecisionRecord(
                        name=model.full_name,
                        manifest_digest=Digest(cp.manifest_digest),
                        environment=item.environment,
                        allowed=d.allowed,
                        mode=str(d.mode.value),
                        policy_name=d.policy_name,
                        policy_digest=d.policy_digest,
                        checks=decide.check_rows(d),
                        evaluated_at=d.evaluated_at,
                        expires_at=d.expires_at,
                        input_attestations=[],
                        tool_version=tool_version(),
                    ),
                    signer=None,
                    actor="bench",
                )
            if i % 100 == 99:
                print(f"  seeded {i + 1} checkpoints", file=sys.stderr)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def measure(base: str, token: str, repeat: int) -> dict[str, dict[str, float]]:
    with httpx.Client(base_url=base, timeout=60) as client:
        form = client.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        signed = client.post(
            "/ui/login", data={"csrf": csrf.group(1), "token": token}, follow_redirects=False
        )
        assert signed.status_code == 303, signed.text
        models = client.get("/ui/models?sort=name")
        refs = re.findall(r'href="(/ui/m/org\d/model-\d+/[0-9a-f]{64})"', models.text)
        cp = refs[0]
        other = refs[1].rsplit("/", 1)[1]
        files_tab = client.get(cp + "?tab=files")
        preview = re.search(r'href="([^"]+/files/[0-9a-f]{64})" data-preview', files_tab.text)
        assert preview is not None, "no previewable file on the files tab"
        pages = {
            "overview": "/",
            "models": "/ui/models",
            "models (prod denied)": "/ui/models?env=prod&decision=denied",
            "models (search)": "/ui/models?q=model-01&sort=size",
            "models (sort by model storage)": "/ui/models?sort=storage",
            "models (page 10)": "/ui/models?page=10",
            "models (findings >= high)": "/ui/models?severity=high",
            "models (license)": "/ui/models?license=apache-2.0&sort=name",
            "models (license + severity + decision)": (
                "/ui/models?license=apache-2.0&severity=medium&env=prod&decision=denied"
            ),
            "checkpoint (policy, live decision)": cp,
            "checkpoint (files)": cp + "?tab=files",
            "checkpoint (model card, lineage)": cp + "?tab=card",
            "file preview (README.md)": preview.group(1),
            "checkpoint (attestations, verified now)": cp + "?tab=attestations",
            "diff": cp + f"/diff?against={other}",
            "findings": "/ui/findings",
            "exceptions": "/ui/exceptions",
            "policies": "/ui/policies",
            "audit log": "/ui/audit",
            "audit log (machine events shown)": "/ui/audit?machine=1",
            "trends (12 weeks, 6 SVG charts)": "/ui/trends",
            "trends (52 weeks)": "/ui/trends?weeks=52",
            "bulk preview (quarantine, one org)": "/ui/bulk?action=quarantine&org=org1",
            "bulk preview (rescan, findings >= high)": "/ui/bulk?action=rescan&severity=high",
        }
        out: dict[str, dict[str, float]] = {}
        for label, url in pages.items():
            first = client.get(url)
            assert first.status_code == 200, (url, first.status_code, first.text[:300])
            times = []
            cpu = []
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                r = client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                assert r.status_code == 200
            out[label] = {
                "p50_ms": round(statistics.median(times), 1),
                "p99_ms": round(percentile(times, 0.99), 1),
                "max_ms": round(max(times), 1),
                # CPU of this process (server thread + client) per request: what the page
                # costs, without the waits for other processes on a shared machine.
                "cpu_p50_ms": round(statistics.median(cpu), 1),
                "cpu_p99_ms": round(percentile(cpu, 0.99), 1),
                "bytes": len(first.content),
            }
        t0, c0 = time.perf_counter(), time.process_time()
        export = client.get("/ui/audit.csv")
        wall = round((time.perf_counter() - t0) * 1000, 1)
        used = round((time.process_time() - c0) * 1000, 1)
        out["audit export (CSV, all; not a page)"] = {
            "p50_ms": wall,
            "p99_ms": wall,
            "max_ms": wall,
            "cpu_p50_ms": used,
            "cpu_p99_ms": used,
            "bytes": len(export.content),
        }
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=1000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--keep", type=Path, default=None, help="seed into DIR once and reuse it on later runs"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelctl-ui-bench-") as tmp:
        work = args.keep.resolve() if args.keep else Path(tmp)
        reuse = (work / "home" / "registry.db").exists()
        env = {
            "MODELCTL_HOME": str(work / "home"),
            "MODELCTL_SIGNING_KEY_PASSPHRASE": "bench-only",
            # The seeded scans carry an old rule set on purpose (rows, not real scans): the
            # server's worker would otherwise queue and run ~1,000 re-scans while pages are
            # timed, and every page would measure the machine's load instead of its render.
            "MODELCTL_RESCAN_ON_START": "false",
        }
        if args.database_url:
            env["MODELCTL_DATABASE_URL"] = args.database_url
        os.environ.update(env)
        settings = Settings.from_env()
        registry = EmbeddedRegistry(settings)
        try:
            t0 = time.monotonic()
            if not reuse:
                seed(registry, args.checkpoints, args.files, work)
            seeded = time.monotonic() - t0
            with unit_of_work(registry.sessions) as s:
                token = tokens.create(
                    s, name=f"bench-{int(time.time() * 1000)}", role=Role.ADMIN, actor="bench"
                ).secret
                counts = {
                    "checkpoints": s.query(Checkpoint).count(),
                    "files": s.query(CheckpointFile).count(),
                }
            print(
                f"seeded {counts['checkpoints']} checkpoints, {counts['files']} files "
                f"in {seeded:.1f} s ({settings.database_url.split(':')[0]})",
                file=sys.stderr,
            )
            with serve(settings, registry) as base:
                results = measure(base, token, args.repeat)
        finally:
            registry.close()
    if args.json:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        report = {"counts": counts, "target_ms": TARGET_MS, "load": load, "pages": results}
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{'page':42} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu p50':>8} {'cpu p99':>8} "
        f"{'KiB':>7}"
    )
    for label, r in results.items():
        mark = "" if r["p99_ms"] < TARGET_MS else "  over target (wall)"
        print(
            f"{label:42} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['max_ms']:8.1f} "
            f"{r['cpu_p50_ms']:8.1f} {r['cpu_p99_ms']:8.1f} {r['bytes'] / 1024:7.1f}{mark}"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"target: every page under {TARGET_MS:.0f} ms (p99); load average {load:.2f} "
        f"on {os.cpu_count()} CPUs during the run"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
