"""Re-scan when the rules change: checkpoints whose newest scan predates the running scanner
get one scan job each (never two), a newer recorded scan is left alone (rolling upgrades), the
worker's start-up sweep queues them, and the new scan becomes the newest. SQLite and PostgreSQL.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from registry.db.engine import unit_of_work
from registry.db.models import AuditEvent, Job, Scan
from registry.embedded import EmbeddedRegistry
from registry.progress import NoProgress
from registry.requests import MirrorRequest
from registry.scanners import chat_template_files, pickle_scanner
from registry.service.rescan import NEVER, RuleVersion, is_older
from registry.settings import Settings
from tests.helpers import write_tree


@pytest.fixture
def registry(isolated_env: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    reg = EmbeddedRegistry(Settings.from_env(home=isolated_env))
    yield reg
    reg.close()


@pytest.fixture
def ref(registry: EmbeddedRegistry, tmp_path: Path) -> str:
    folder = write_tree(
        tmp_path / "model",
        {"config.json": b"{}", "extra.pkl": pickle.dumps({"a": [1, 2, 3]}, protocol=4)},
    )
    result = registry.mirror(
        MirrorRequest(source=str(folder), name="acme/m"), progress=NoProgress()
    )
    return f"acme/m@{result.checkpoint.digest}"


def _age_scan(registry: EmbeddedRegistry, scanner: str, version: str, ruleset: str) -> None:
    with unit_of_work(registry.sessions) as session:
        newest = session.scalars(
            select(Scan.id).where(Scan.scanner_id == scanner).order_by(Scan.id.desc()).limit(1)
        ).one()
        session.execute(
            update(Scan)
            .where(Scan.id == newest)
            .values(scanner_version=version, ruleset_version=ruleset)
        )


def _scan_jobs(registry: EmbeddedRegistry) -> list[Job]:
    with unit_of_work(registry.sessions) as session:
        rows = list(session.scalars(select(Job).where(Job.kind == "scan").order_by(Job.id)))
        session.expunge_all()
        return rows


def test_versions_compare_by_number_and_by_date() -> None:
    assert is_older(RuleVersion("0.9.1", "2026-12-04"), RuleVersion("0.10.0", "2026-12-04"))
    assert is_older(RuleVersion("1.2.0", "2026-11-30"), RuleVersion("1.2.0", "2026-12-04"))
    assert not is_older(RuleVersion("1.2.0", "2026-12-04"), RuleVersion("1.2.0", "2026-12-04"))
    assert not is_older(RuleVersion("2.0.0", "2026-01-01"), RuleVersion("1.9.9", "2026-12-31"))


def test_nothing_is_stale_right_after_a_scan(registry: EmbeddedRegistry, ref: str) -> None:
    result = registry.rescan()
    assert result.checkpoints == ()
    assert _scan_jobs(registry) == []


def test_an_older_scan_gets_exactly_one_job(registry: EmbeddedRegistry, ref: str) -> None:
    _age_scan(registry, pickle_scanner.SCANNER_ID, "0.0.1", "2020-01-01")
    dry = registry.rescan(dry_run=True)
    assert [c.ref for c in dry.checkpoints] == [ref]
    (stale,) = dry.checkpoints[0].stale
    assert (stale.scanner, stale.recorded_version, stale.recorded_ruleset) == (
        pickle_scanner.SCANNER_ID,
        "0.0.1",
        "2020-01-01",
    )
    assert stale.current_version == pickle_scanner.PickleFamilyScanner.version
    assert dry.queued == 0
    assert _scan_jobs(registry) == []

    first = registry.rescan()
    assert first.queued == 1
    (job,) = _scan_jobs(registry)
    assert job.params == {"ref": ref, "scanners": [pickle_scanner.SCANNER_ID]}
    assert job.actor == registry.actor
    with unit_of_work(registry.sessions) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "scan.rescan")).one()
        assert event.subject == ref
        assert event.details["changes"][0]["recorded_version"] == "0.0.1"

    second = registry.rescan()  # another server's sweep: covered by the queued job
    assert second.queued == 0
    assert second.checkpoints[0].already_queued
    assert len(_scan_jobs(registry)) == 1


def test_a_scan_by_newer_rules_is_left_alone(registry: EmbeddedRegistry, ref: str) -> None:
    _age_scan(registry, pickle_scanner.SCANNER_ID, "99.0.0", "2099-01-01")
    assert registry.rescan().checkpoints == ()


def test_the_workers_start_up_sweep_rescans(
    registry: EmbeddedRegistry, ref: str, run_cli: Any
) -> None:
    _age_scan(registry, pickle_scanner.SCANNER_ID, "0.0.1", "2020-01-01")
    result = run_cli("worker", "--once")
    assert result.code == 0, result.stderr
    assert "ran 1 jobs" in result.stderr
    (job,) = _scan_jobs(registry)
    assert job.state == "succeeded"
    assert job.actor == "system:rescan"
    with unit_of_work(registry.sessions) as session:
        newest = session.scalars(
            select(Scan)
            .where(Scan.scanner_id == pickle_scanner.SCANNER_ID)
            .order_by(Scan.id.desc())
            .limit(1)
        ).one()
        assert newest.scanner_version == pickle_scanner.PickleFamilyScanner.version
    assert registry.rescan().checkpoints == ()  # the new scan is the newest: nothing left


def test_the_sweep_can_be_turned_off(
    registry: EmbeddedRegistry, ref: str, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _age_scan(registry, pickle_scanner.SCANNER_ID, "0.0.1", "2020-01-01")
    monkeypatch.setenv("MODELCTL_RESCAN_ON_START", "false")
    assert "ran 0 jobs" in run_cli("worker", "--once").stderr
    assert _scan_jobs(registry) == []


def test_cli_rescan_text_and_json(registry: EmbeddedRegistry, ref: str, run_cli: Any) -> None:
    clean = run_cli("rescan")
    assert clean.code == 0
    assert "every checkpoint" in clean.stdout
    _age_scan(registry, pickle_scanner.SCANNER_ID, "0.0.1", "2020-01-01")
    dry = run_cli("rescan", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    body = dry.json()
    assert body["dry_run"] is True
    assert body["checkpoints"][0]["ref"] == ref
    assert body["checkpoints"][0]["job_id"] is None
    done = run_cli("rescan", "--scanner", pickle_scanner.SCANNER_ID)
    assert done.code == 0
    assert "queued as job" in done.stdout
    assert "1 scan job(s)" in done.stdout
    bad = run_cli("rescan", "--scanner", "nope")
    assert bad.code == 2
    assert "unknown scanner nope" in bad.stderr


def test_a_default_scanner_that_never_scanned_the_checkpoint_is_stale(
    registry: EmbeddedRegistry, ref: str
) -> None:
    # A checkpoint scanned before a scanner joined the default set (issue 14's chat-template):
    # the shipped policies require that scan, so the sweep queues it.
    with unit_of_work(registry.sessions) as session:
        session.execute(delete(Scan).where(Scan.scanner_id == chat_template_files.SCANNER_ID))
    dry = registry.rescan(dry_run=True)
    assert [c.ref for c in dry.checkpoints] == [ref]
    (stale,) = dry.checkpoints[0].stale
    assert (stale.scanner, stale.recorded_version, stale.recorded_ruleset) == (
        chat_template_files.SCANNER_ID,
        NEVER,
        NEVER,
    )
    assert registry.rescan().queued == 1
    (job,) = _scan_jobs(registry)
    assert job.params == {"ref": ref, "scanners": [chat_template_files.SCANNER_ID]}
    # An opt-in scanner is never run because it is missing.
    assert registry.rescan(("backdoor", pickle_scanner.SCANNER_ID), dry_run=True).checkpoints == ()


def test_a_checkpoint_never_scanned_at_all_is_left_alone(
    registry: EmbeddedRegistry, ref: str
) -> None:
    with unit_of_work(registry.sessions) as session:
        session.execute(delete(Scan))
    assert registry.rescan(dry_run=True).checkpoints == ()
