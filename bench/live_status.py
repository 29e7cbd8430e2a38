"""Live status: what lists cost now that every badge is the policy in force evaluated now.

Seeds the same registry as `bench/ui.py` (1,000 checkpoints of 20 files, two real signed
attestations and six scans each, 5% with a malicious pickle, 1% quarantined), serves the app
on 127.0.0.1 and reports, over `--repeat` requests each:

- pages with live badges, **cold** (the process's status board emptied before every request,
  as after a policy change or an event that touches every checkpoint) and **warm**;
- the admission check in-process (`EmbeddedRegistry.policy_check`: facts gathered now,
  attestations verified, decided, compared with the newest recorded decision, nothing written
  when unchanged) and over HTTP (`POST /v1/admission/check`), p50 and p99.

Targets (issue 12): models page p50 under 200 ms with live badges; admission decision p99
under 5 ms.

    .venv/bin/python bench/live_status.py [--checkpoints 1000] [--repeat 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from sqlalchemy import select
from ui import percentile, seed  # bench/ui.py: the same seeded registry

from registry.db.engine import unit_of_work
from registry.db.models import Checkpoint, Decision, Model
from registry.embedded import EmbeddedRegistry
from registry.service import tokens
from registry.service.live_status import StatusBoard
from registry.service.tokens import Role
from registry.settings import Settings
from tests.web_helpers import serve

PAGE_TARGET_MS = 200.0
DECISION_TARGET_MS = 5.0
PAGES = {
    "models": "/ui/models",
    "models (page 10)": "/ui/models?page=10",
    "models (prod denied: every checkpoint's status)": "/ui/models?env=prod&decision=denied",
    "overview (counts: every checkpoint's status)": "/",
}


def timed(repeat: int, call: Callable[[], object], before: Callable[[], object]) -> list[float]:
    out = []
    for _ in range(repeat):
        before()
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(percentile(times, 0.99), 2),
        "max_ms": round(max(times), 2),
    }


def sign_in(client: httpx.Client, token: str) -> None:
    form = client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    signed = client.post("/ui/login", data={"csrf": csrf.group(1), "token": token})
    assert signed.status_code == 303, signed.text


def pages(
    base: str, token: str, registry: EmbeddedRegistry, repeat: int
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        sign_in(client, token)

        def cold() -> None:
            registry.status_board = StatusBoard()

        for label, url in PAGES.items():

            def get(url: str = url) -> None:
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)
                assert "undecided" not in response.text

            out[f"{label}, cold"] = summary(timed(repeat, get, cold))
            get()
            out[f"{label}, warm"] = summary(timed(repeat, get, lambda: None))
    return out


def decision(registry: EmbeddedRegistry, digest: str, repeat: int) -> dict[str, float]:
    """The decision itself, on a checkpoint already loaded (what pull, /hf and live statuses
    call): the facts gathered and attestations verified now, then evaluated."""
    live = registry.live_statuses()
    with unit_of_work(registry.sessions) as s:
        checkpoint = s.scalars(select(Checkpoint).where(Checkpoint.manifest_digest == digest)).one()
        now = datetime.now(UTC)
        return summary(
            timed(repeat, lambda: live.gate.decide(s, checkpoint, "prod", now), lambda: None)
        )


def admission(
    base: str, token: str, registry: EmbeddedRegistry, repeat: int
) -> dict[str, dict[str, float]]:
    with unit_of_work(registry.sessions) as s:
        ns, name, digest = s.execute(
            select(Model.namespace, Model.name, Checkpoint.manifest_digest)
            .join(Model, Model.id == Checkpoint.model_id)
            .order_by(Checkpoint.id.desc())
            .limit(1)
        ).one()
        decisions_before = s.query(Decision).count()
    ref = f"{ns}/{name}@sha256:{digest}"
    registry.policy_check(ref, "prod")  # recorded once if it changed; then never again
    out = {
        "admission decision (Gatekeeper.decide: facts now, verified, evaluated)": decision(
            registry, digest, repeat
        )
    }
    out |= {
        "admission check, in-process": summary(
            timed(repeat, lambda: registry.policy_check(ref, "prod"), lambda: None)
        )
    }
    headers = {"Authorization": f"Bearer {token}"}
    body = {"ref": ref, "environment": "prod"}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as client:

        def post() -> None:
            response = client.post("/v1/admission/check", json=body)
            assert response.status_code == 200, response.text

        post()
        out["admission check, HTTP (POST /v1/admission/check)"] = summary(
            timed(repeat, post, lambda: None)
        )
    with unit_of_work(registry.sessions) as s:
        grown = s.query(Decision).count() - decisions_before
    out["admission check, in-process"]["decisions_recorded"] = grown
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=1000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--decisions", type=int, default=500)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep", type=Path, default=None, help="seed into DIR once, reuse")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelctl-live-bench-") as tmp:
        work = args.keep.resolve() if args.keep else Path(tmp)
        reuse = (work / "home" / "registry.db").exists()
        os.environ.update(
            {"MODELCTL_HOME": str(work / "home"), "MODELCTL_SIGNING_KEY_PASSPHRASE": "bench-only"}
        )
        if args.database_url:
            os.environ["MODELCTL_DATABASE_URL"] = args.database_url
        settings = Settings.from_env()
        registry = EmbeddedRegistry(settings)
        try:
            if not reuse:
                work.mkdir(parents=True, exist_ok=True)
                seed(registry, args.checkpoints, args.files, work)
            with unit_of_work(registry.sessions) as s:
                token = tokens.create(
                    s, name=f"bench-{int(time.time() * 1000)}", role=Role.ADMIN, actor="bench"
                ).secret
                count = s.query(Checkpoint).count()
            with serve(settings, registry) as base:
                results = pages(base, token, registry, args.repeat)
                results |= admission(base, token, registry, args.decisions)
        finally:
            registry.close()
    if args.json:
        print(json.dumps({"checkpoints": count, "results": results}, indent=2))
        return 0
    print(f"{count} checkpoints ({settings.database_url.split(':')[0]})")
    print(f"{'':58} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, r in results.items():
        print(f"{label:58} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
