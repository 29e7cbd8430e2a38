"""Scale-out, for real: two `modelctl serve` and two `modelctl worker` processes on one
PostgreSQL database and one blob store (a shared folder, and S3 on moto's server). Ten models
are mirrored and scanned through both servers while a worker is killed with SIGKILL in the
middle of a job, a server is killed with SIGKILL, every database connection is cut (what a
PostgreSQL restart does to its clients), and a retried POST lands on the other server.
Afterwards: every job finished exactly once, the job whose worker died was taken over, no
checkpoint is half registered, every stored blob matches its digest, and a retry never made a
second job.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select

from attestations.digests import Digest
from registry.db.engine import unit_of_work
from registry.db.models import Blob, Checkpoint, Job
from registry.embedded import EmbeddedRegistry
from registry.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL
from tests.helpers import write_tree
from tests.s3_server import moto_endpoint, s3_spec

__all__ = ["moto_endpoint", "s3_spec"]  # fixtures for the S3 store
pytestmark = [pytest.mark.slow, pytest.mark.postgres]
MODELS = 10
MODELCTL = Path(sys.executable).with_name("modelctl")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    env: dict[str, str]
    logs: Path
    token: str
    registry: EmbeddedRegistry
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [str(MODELCTL), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.processes[name] = process
        return process

    def serve(self, name: str) -> None:
        port = _free_port()
        self.start(name, "serve", "--port", str(port))
        self.urls[name] = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.urls[name]}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.processes[name].poll() is None, self.log(name)
            assert time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.1)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def mirror(self, server: str, folder: Path, key: str) -> httpx.Response:
        return httpx.post(
            f"{self.urls[server]}/v1/mirrors",
            json={"source": str(folder), "name": f"scale/{folder.name}"},
            headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": key},
            timeout=30,
        )

    def jobs(self) -> list[Job]:
        with unit_of_work(self.registry.sessions) as session:
            rows = list(session.scalars(select(Job).order_by(Job.id)))
            session.expunge_all()
            return rows

    def wait(self, predicate: Any, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: " + "; ".join(
                f"{j.id}:{j.state}:{j.worker}" for j in self.jobs()
            )
            time.sleep(0.2)


@pytest.fixture(params=["folder", "s3"])
def cluster(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    migrated_postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cluster]:
    if request.param == "s3":  # the S3 protocol server on loopback, one bucket for all
        monkeypatch.setenv("MODELCTL_BLOB_STORE", request.getfixturevalue("s3_spec"))
    env = {
        **os.environ,
        "MODELCTL_HOME": str(tmp_path / "home"),
        "MODELCTL_DATABASE_URL": migrated_postgres_url,
        "MODELCTL_MIRROR_ROOTS": str(tmp_path / "models"),
        "MODELCTL_SERVE_WORKER": "false",
        "MODELCTL_JOB_LEASE_SECONDS": "3",
    }
    for name, value in env.items():
        if name.startswith("MODELCTL_"):
            monkeypatch.setenv(name, value)
    registry = EmbeddedRegistry(Settings.from_env())
    token = registry.token_create("scale", "publisher").secret
    (tmp_path / "logs").mkdir()
    made = Cluster(env, tmp_path / "logs", token, registry)
    try:
        yield made
    finally:
        for process in made.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in made.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        registry.close()


def _models(root: Path) -> list[Path]:
    folders = []
    for i in range(MODELS):
        # Big enough that a mirror takes a while (the worker is killed inside one).
        data = hashlib.shake_256(f"model-{i}".encode()).digest(12 * 1024 * 1024)
        folders.append(
            write_tree(
                root / f"m{i}", {"config.json": b'{"model_type": "test"}', "weights.bin": data}
            )
        )
    return folders


def _all_done(cluster: Cluster) -> bool:
    return all(j.state in ("succeeded", "failed") for j in cluster.jobs())


def _cut_every_connection(database_url: str) -> int:
    """What a PostgreSQL restart does to its clients: every session of the database ends."""
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def test_two_servers_two_workers_survive_kills_and_a_database_restart(
    cluster: Cluster, tmp_path: Path, migrated_postgres_url: str
) -> None:
    folders = _models(tmp_path / "models")
    cluster.serve("server-a")
    cluster.serve("server-b")
    doomed = cluster.start("worker-1", "worker")
    cluster.start("worker-2", "worker")

    # First half through both servers; one retry goes to the other server with the same key.
    first_ids = []
    for i, folder in enumerate(folders[:5]):
        answer = cluster.mirror("server-a" if i % 2 == 0 else "server-b", folder, f"key-{i}")
        assert answer.status_code == 202, answer.text
        first_ids.append(answer.json()["id"])
    retried = cluster.mirror("server-b", folders[0], "key-0")
    assert retried.status_code == 202
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json()["id"] == first_ids[0]

    # SIGKILL worker-1 while it runs a job; its job must be taken over after the lease.
    tag = f":{doomed.pid}:"
    cluster.wait(
        lambda: any(j.state == "running" and tag in (j.worker or "") for j in cluster.jobs()),
        "worker-1 to run a job",
    )
    (orphan,) = [j.id for j in cluster.jobs() if j.state == "running" and tag in (j.worker or "")]
    doomed.kill()
    doomed.wait(timeout=10)
    cluster.processes["server-a"].kill()  # and a server, with requests behind it
    cluster.processes["server-a"].wait(timeout=10)
    with pytest.raises(httpx.TransportError):
        cluster.mirror("server-a", folders[5], "key-5")
    cluster.wait(
        lambda: all(j.state != "queued" and j.state != "running" for j in cluster.jobs()),
        "the first half",
    )

    # Every connection cut, as by a database restart: the survivors reconnect.
    assert _cut_every_connection(migrated_postgres_url) >= 2
    cluster.start("worker-3", "worker")
    for i, folder in enumerate(folders[5:], start=5):
        answer = cluster.mirror("server-b", folder, f"key-{i}")
        if answer.status_code >= 500:  # a pooled connection that died with the restart
            answer = cluster.mirror("server-b", folder, f"key-{i}")
        assert answer.status_code == 202, answer.text
    cluster.wait(
        lambda: all(j.state in ("succeeded", "failed") for j in cluster.jobs()), "all jobs"
    )

    jobs = cluster.jobs()
    assert len(jobs) == MODELS  # no retry made a second job
    assert [j.state for j in jobs] == ["succeeded"] * MODELS, [j.error for j in jobs]
    taken_over = next(j for j in jobs if j.id == orphan)
    assert taken_over.attempts == 2
    assert tag not in (taken_over.worker or "")

    with unit_of_work(cluster.registry.sessions) as session:
        checkpoints = list(session.scalars(select(Checkpoint)))
        assert sorted(c.model.full_name for c in checkpoints) == sorted(
            f"scale/{f.name}" for f in folders
        )
        for checkpoint in checkpoints:  # whole: both files, every blob present and intact
            assert checkpoint.file_count == 2
            assert len(checkpoint.files) == 2
        digests = [b.sha256 for b in session.scalars(select(Blob))]
    for digest in digests:
        with cluster.registry.blobs.open(Digest.parse(f"sha256:{digest}")) as blob:
            hasher = hashlib.sha256()
            while chunk := blob.read(1 << 20):
                hasher.update(chunk)
        assert hasher.hexdigest() == digest
