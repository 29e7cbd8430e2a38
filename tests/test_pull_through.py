"""Pull-through from the hubs and scheduled upstream sync, with the real `huggingface_hub`
client against a real server on 127.0.0.1 and the fake Hub as upstream.

`/hf/{env}` for a model matching MODELCTL_PROXY_SOURCES that the registry does not hold
answers 503 with Retry-After and queues one mirror-and-scan job (never a second while it runs);
once the job is done the ordinary gate decides (served in dev, refused in prod where the
policy needs a signature). A name outside the globs is a plain 404 and queues nothing. A
failed pull-through is answered 502 for a while, not fetched again. `modelctl sync` queues
mirrors of watched models' new upstream commits, once each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError
from sqlalchemy import select

from registry.api.app import create_app
from registry.db.engine import unit_of_work
from registry.db.models import AuditEvent, Job
from registry.embedded import EmbeddedRegistry
from registry.errors import InputError
from registry.settings import Settings, parse_proxy_globs
from registry.worker import JobRunner
from tests.api_server import live_server
from tests.fakes.hfhub import FakeHub
from tests.test_hf_endpoint import model_files, reader_token


@dataclass
class Proxy:
    url: str
    token: str
    hub: FakeHub
    registry: EmbeddedRegistry

    def get(self, env: str, path: str) -> httpx.Response:
        return httpx.get(
            f"{self.url}/hf/{env}{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def jobs(self) -> list[Job]:
        with unit_of_work(self.registry.sessions) as session:
            rows = list(session.scalars(select(Job).order_by(Job.id)))
            session.expunge_all()
            return rows

    def run_jobs(self) -> None:
        runner = JobRunner(self.registry)
        while runner.run_once():
            pass


@pytest.fixture
def proxy(
    isolated_env: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Proxy]:
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
        monkeypatch.setenv("MODELCTL_PROXY_SOURCES", "hf://acme/*, hf://other/exact")
        monkeypatch.setenv("MODELCTL_SERVE_WORKER", "false")  # the test runs the jobs
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        token = reader_token(isolated_env)
        app = create_app(Settings.from_env())
        with live_server(app) as live:
            yield Proxy(live.url, token, hub, app.state.registry)


def test_globs_are_checked() -> None:
    assert parse_proxy_globs("hf://Qwen/*, ms://iic/x hf://a/b-?") == (
        "hf://Qwen/*",
        "ms://iic/x",
        "hf://a/b-?",
    )
    for bad in ("Qwen/*", "s3://a/b", "hf://a", "hf://a/b/c"):
        with pytest.raises(InputError, match="MODELCTL_PROXY_SOURCES"):
            parse_proxy_globs(bad)


def test_first_ask_mirrors_then_the_gate_decides(proxy: Proxy, tmp_path: Path) -> None:
    upstream = proxy.hub.add_repo("acme/fresh", model_files())
    first = proxy.get("dev", "/api/models/acme/fresh")
    assert first.status_code == 503
    assert int(first.headers["Retry-After"]) > 0
    assert "job" in first.headers["X-Error-Message"]
    again = proxy.get("prod", "/api/models/acme/fresh/revision/main")  # any env: same job
    assert again.status_code == 503
    (job,) = proxy.jobs()
    assert (job.kind, job.state, job.actor) == ("mirror", "queued", "system:proxy")
    assert job.params == {"source": "hf://acme/fresh", "name": "acme/fresh", "attest": True}
    # The real client sees the 503 and shows our message (no snapshot on disk to fall back on).
    with pytest.raises(LocalEntryNotFoundError, match="being mirrored and scanned"):
        snapshot_download(
            "acme/fresh",
            endpoint=f"{proxy.url}/hf/dev",
            token=proxy.token,
            cache_dir=tmp_path / "early",
        )

    proxy.run_jobs()
    (job,) = proxy.jobs()
    assert job.state == "succeeded", job.error
    assert job.result is not None
    assert job.result["mirror"]["source"]["commit"] == upstream  # pinned at the first ask
    assert job.result["attest"]["attested"] is True  # /hf serves only what the registry signed
    folder = snapshot_download(
        "acme/fresh", endpoint=f"{proxy.url}/hf/dev", token=proxy.token, cache_dir=tmp_path / "c"
    )
    assert (Path(folder) / "config.json").read_bytes() == model_files()["config.json"]
    assert proxy.get("prod", "/api/models/acme/fresh").status_code == 200  # admitted: served
    assert len(proxy.jobs()) == 1  # held now: no new mirror
    with unit_of_work(proxy.registry.sessions) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "mirror.proxy")).one()
        assert event.subject == "hf://acme/fresh"


def test_a_malicious_pull_through_is_never_served(proxy: Proxy) -> None:
    payload = b"cos\nsystem\n(S'echo pwned'\ntR."  # os.system at load: never unpickled here
    proxy.hub.add_repo("acme/risky", {**model_files(), "pytorch_model.bin": payload})
    assert proxy.get("dev", "/api/models/acme/risky").status_code == 503
    proxy.run_jobs()
    (job,) = proxy.jobs()
    assert job.state == "succeeded", job.error  # recorded: it is evidence
    assert job.result is not None
    assert job.result["attest"]["attested"] is False
    for env in ("dev", "prod"):
        refused = proxy.get(env, "/api/models/acme/risky")
        assert refused.status_code == 403, env
    assert len(proxy.jobs()) == 1


def test_names_outside_the_globs_are_not_pulled(proxy: Proxy) -> None:
    proxy.hub.add_repo("elsewhere/model", model_files())
    proxy.hub.add_repo("other/exactly", model_files())
    for name in ("elsewhere/model", "other/exactly"):
        answer = proxy.get("dev", f"/api/models/{name}")
        assert answer.status_code == 404
        assert answer.headers["X-Error-Code"] == "RepoNotFound"
    assert proxy.jobs() == []


def test_a_failed_pull_through_is_remembered(proxy: Proxy) -> None:
    first = proxy.get("dev", "/api/models/acme/missing")  # not on the hub either
    assert first.status_code == 503
    proxy.run_jobs()
    (job,) = proxy.jobs()
    assert job.state == "failed"
    again = proxy.get("dev", "/api/models/acme/missing")
    assert again.status_code == 502
    assert "pull-through of hf://acme/missing failed" in again.headers["X-Error-Message"]
    assert len(proxy.jobs()) == 1  # not fetched again within the cooldown


def test_sync_queues_new_upstream_commits_once(proxy: Proxy, run_cli: Any) -> None:
    proxy.hub.add_repo("acme/watched", model_files())
    assert proxy.get("dev", "/api/models/acme/watched").status_code == 503
    proxy.run_jobs()
    current = run_cli("sync", "--json")
    assert current.code == 0, current.stderr
    (item,) = current.json()["sources"]
    assert (item["source"], item["state"]) == ("hf://acme/watched", "up-to-date")

    newer = proxy.hub.add_repo("acme/watched", {**model_files(), "extra.txt": b"v2"})
    dry = run_cli("sync", "--dry-run", "--json").json()["sources"][0]
    assert (dry["state"], dry["upstream_commit"]) == ("new", newer)
    assert len(proxy.jobs()) == 1
    queued = run_cli("sync", "--json").json()["sources"][0]
    assert queued["state"] == "queued"
    twice = run_cli("sync").stdout
    assert "a mirror is already queued" in twice
    mirrors = [j for j in proxy.jobs() if j.actor == "system:sync"]
    assert len(mirrors) == 1
    assert mirrors[0].params == {
        "source": f"hf://acme/watched@{newer}",
        "name": "acme/watched",
        "attest": True,
    }
    proxy.run_jobs()
    assert run_cli("sync", "--json").json()["sources"][0]["state"] == "up-to-date"


def test_sync_of_a_named_source_and_errors(proxy: Proxy, run_cli: Any) -> None:
    proxy.hub.add_repo("solo/model", model_files())
    named = run_cli("sync", "hf://solo/model", "--json")
    assert named.code == 0, named.stderr
    assert named.json()["sources"][0]["state"] == "queued"
    gone = run_cli("sync", "hf://solo/nothing-here")
    assert gone.code == 1
    assert "error" in gone.stdout
    local = run_cli("sync", "/tmp")
    assert local.code == 2
    assert "sync watches hub models" in local.stderr
