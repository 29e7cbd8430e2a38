"""The job queue on SQLite and PostgreSQL: one winner per claim, dead workers' jobs re-queued,
given up after MAX_ATTEMPTS; `modelctl worker --once` runs what the API queued."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from registry.db.engine import unit_of_work
from registry.db.models import Job
from registry.embedded import EmbeddedRegistry
from registry.service import jobs
from registry.settings import Settings


@pytest.fixture
def registry(tmp_path: Path, database_url: str) -> Any:
    reg = EmbeddedRegistry(
        Settings.from_env({"MODELCTL_DATABASE_URL": database_url}, home=tmp_path / "home")
    )
    yield reg
    reg.close()


def test_each_job_is_claimed_by_exactly_one_worker(registry: EmbeddedRegistry) -> None:
    ids = [registry.job_enqueue("scan", {"ref": f"a/b@v{i}"}).id for i in range(20)]
    claimed: list[tuple[str, int]] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while True:
            with unit_of_work(registry.sessions) as session:
                job = jobs.claim(session, name)
            if job is None:
                with unit_of_work(registry.sessions) as session:
                    left = session.query(Job).filter(Job.state == "queued").count()
                if left == 0:
                    return
                continue
            with lock:
                claimed.append((name, job.id))

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(job_id for _, job_id in claimed) == ids  # every job once, none twice
    with unit_of_work(registry.sessions) as session:
        assert {j.state for j in session.query(Job)} == {"running"}


def test_a_dead_workers_job_is_requeued_then_given_up(registry: EmbeddedRegistry) -> None:
    job_id = registry.job_enqueue("scan", {"ref": "a/b"}).id
    later = datetime.now(UTC)
    for attempt in range(1, jobs.MAX_ATTEMPTS + 1):
        with unit_of_work(registry.sessions) as session:
            got = jobs.claim(session, f"w{attempt}", now=later)
        assert got is not None
        assert (got.id, got.attempts) == (job_id, attempt)
        with unit_of_work(registry.sessions) as session:  # a live lease is not taken
            assert jobs.claim(session, "other", now=later) is None
        later += jobs.LEASE + timedelta(seconds=1)  # the worker died: its lease runs out
    with unit_of_work(registry.sessions) as session:
        assert jobs.claim(session, "last", now=later) is None
    job = registry.job(job_id)
    assert job.state == "failed"
    assert job.error is not None
    assert "abandoned" in job.error["message"]


def test_only_the_owner_heartbeats_and_finishes(registry: EmbeddedRegistry) -> None:
    job_id = registry.job_enqueue("scan", {"ref": "a/b"}).id
    with unit_of_work(registry.sessions) as session:
        assert jobs.claim(session, "me") is not None
    with unit_of_work(registry.sessions) as session:
        assert not jobs.heartbeat(session, job_id, "someone-else")
        assert jobs.heartbeat(session, job_id, "me", {"bytes_done": 5})
        assert not jobs.finish(session, job_id, "someone-else", result={})
        assert jobs.finish(session, job_id, "me", result={"ok": True})
    job = registry.job(job_id)
    assert (job.state, job.result, job.progress) == ("succeeded", {"ok": True}, {"bytes_done": 5})


def test_worker_once_runs_queued_jobs(
    registry: EmbeddedRegistry, run_cli: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    job_id = registry.job_enqueue("scan", {"ref": "org/none"}).id
    with unit_of_work(registry.sessions) as session:  # and one whose worker died long ago
        stale = registry.job_enqueue("scan", {"ref": "org/gone"}).id
        session.execute(
            update(Job)
            .where(Job.id == stale)
            .values(
                state="running",
                worker="dead",
                attempts=1,
                heartbeat_at=datetime.now(UTC) - timedelta(hours=1),
            )
        )
    result = run_cli("worker", "--once")
    assert result.code == 0, result.stderr
    assert "ran 2 jobs" in result.stderr
    for jid, ref in ((job_id, "org/none"), (stale, "org/gone")):
        job = registry.job(jid)
        assert job.state == "failed"
        assert job.error == {"message": f"no model named {ref}", "kind": "not_found", "reasons": []}
