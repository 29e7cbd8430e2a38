"""The trends aggregates on known rows (exact counts, SQLite and PostgreSQL) and the SVG
charts drawn from them (well-formed XML, titled, linked to the lists behind them)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime

from registry.db.engine import make_engine, session_factory, unit_of_work
from registry.db.models import (
    QUARANTINE_CHECKPOINT,
    QUARANTINE_FILE,
    Blob,
    Checkpoint,
    CheckpointFile,
    Decision,
    Model,
    Quarantine,
    Scan,
    WaiverRow,
)
from registry.service.read import trends as read_trends
from registry.web.trends import charts

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # a Wednesday; its week starts 11-30


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def _seed(url: str) -> None:
    engine = make_engine(url)
    try:
        with unit_of_work(session_factory(engine)) as s:
            model = Model(namespace="acme", name="m")
            s.add(model)
            s.flush()
            cps = []
            for i in range(3):
                cp = Checkpoint(
                    model_id=model.id,
                    manifest_digest=f"{i + 1:064x}",
                    source_uri="hf://acme/m",
                    source_commit=f"c{i}",
                    file_count=1,
                    total_size=8,
                )
                s.add(cp)
                cps.append(cp)
            s.add(Blob(sha256="f" * 64, size=8, storage_key="x"))
            s.flush()
            c1, c2, c3 = cps
            s.add(CheckpointFile(checkpoint_id=c3.id, path="model.bin", size=8, sha256="f" * 64))

            def scan(cp: Checkpoint, severity: str | None, finished: datetime) -> None:
                s.add(
                    Scan(
                        checkpoint_id=cp.id,
                        scanner_id="pickle",
                        scanner_version="1",
                        ruleset_version="1",
                        verdict="clean" if severity is None else "malicious",
                        report={},
                        max_severity=severity,
                        started_at=finished,
                        finished_at=finished,
                    )
                )

            scan(c1, "critical", at(11, 30, 10))
            scan(c1, "high", at(11, 24))
            scan(c2, "critical", at(11, 25, 8))
            scan(c3, "critical", at(11, 26))
            scan(c2, "medium", at(10, 1))
            scan(c2, "medium", at(1, 1))  # before the window
            scan(c3, None, at(11, 30))  # found nothing
            # c1 quarantined by its digest 6 h after its critical finding, c3 by its file 12 h
            # after; c2 never.
            s.add(
                Quarantine(
                    kind=QUARANTINE_CHECKPOINT,
                    digest=c1.manifest_digest,
                    reason="r",
                    actor="a",
                    created_at=at(11, 30, 16),
                )
            )
            s.add(
                Quarantine(
                    kind=QUARANTINE_FILE,
                    digest="f" * 64,
                    reason="r",
                    actor="a",
                    created_at=at(11, 26, 12),
                )
            )

            def decision(cp: Checkpoint, env: str, allowed: bool, when: datetime) -> None:
                s.add(
                    Decision(
                        checkpoint_id=cp.id,
                        environment=env,
                        allowed=allowed,
                        mode="enforce",
                        policy_name="p",
                        policy_digest="sha256:" + "0" * 64,
                        checks=[],
                        evaluated_at=when,
                    )
                )

            decision(c1, "prod", True, at(11, 24))
            decision(c1, "prod", False, at(11, 30, 17))
            decision(c2, "prod", False, at(12, 1))
            decision(c2, "dev", True, at(12, 1))
            decision(c2, "elsewhere", True, at(12, 1))  # not a bound environment

            def waiver(created: datetime, expires: datetime, revoked: bool = False) -> None:
                s.add(
                    WaiverRow(
                        checkpoint_id=c2.id,
                        waive=["licenses"],
                        reason="r",
                        approver="b",
                        expires_at=expires,
                        actor="b",
                        created_at=created,
                        revoked_at=created if revoked else None,
                    )
                )

            waiver(at(11, 25), at(12, 10))
            waiver(at(11, 30), at(12, 1))
            waiver(at(11, 30), at(12, 3), revoked=True)
    finally:
        engine.dispose()


def _trends(url: str) -> read_trends.Trends:
    engine = make_engine(url)
    try:
        with unit_of_work(session_factory(engine)) as s:
            return read_trends.trends(s, ["dev", "staging", "prod"], now=NOW, weeks=12)
    finally:
        engine.dispose()


def test_trend_aggregates_count_exactly(database_url: str) -> None:
    _seed(database_url)
    t = _trends(database_url)
    assert t.weeks[-1] == date(2026, 11, 30)
    assert t.weeks[-2] == date(2026, 11, 23)
    assert t.weeks[0] == date(2026, 9, 14)
    assert t.findings["critical"][-2:] == (2, 1)  # c2 and c3 last week, c1 this week
    assert t.findings["high"][-2:] == (1, 0)
    assert sum(t.findings["medium"]) == 1  # the one in January is outside the window
    assert t.findings["medium"][2] == 1  # the week of 2026-09-28
    assert sum(t.findings["info"]) == 0
    assert t.decisions["prod"] == (
        (0,) * 10 + (1, 0),
        (0,) * 11 + (2,),
    )
    assert t.decisions["dev"] == ((0,) * 11 + (1,), (0,) * 12)
    assert t.decisions["staging"] == ((0,) * 12, (0,) * 12)
    assert t.quarantine_hours[-2:] == (12.0, 6.0)
    assert t.quarantined_critical[-2:] == (1, 1)
    assert t.mean_hours == 9.0
    assert t.unquarantined_critical == 1
    assert len(t.ahead) == 12 + read_trends.AHEAD_WEEKS
    assert t.exceptions_granted[10:13] == (1, 2, 0)  # the revoked one was granted too
    assert t.exceptions_expiring[11:14] == (1, 1, 0)  # this week, and 12-10's week ahead
    assert sum(t.exceptions_expiring) == 2  # the revoked one expires for nobody


def test_trend_charts_are_well_formed_titled_and_linked(database_url: str) -> None:
    _seed(database_url)
    drawn = charts(_trends(database_url))
    svgs = [drawn.findings, drawn.quarantine, drawn.exceptions]
    svgs += [chart for _, chart in drawn.decisions]
    assert len(svgs) == 6
    for svg in svgs:
        root = ET.fromstring(str(svg))
        assert root.tag == f"{SVG}svg"
        assert root.get("role") == "img"
        title = root.find(f"{SVG}title")
        assert title is not None
        assert title.text
        assert root.get("aria-labelledby", "").startswith(root.get("id", "?"))
        assert root.findall(f"{SVG}line"), "no axes"
        assert root.findall(f".//{SVG}a"), "no link to the list behind the chart"
    findings = ET.fromstring(str(drawn.findings))
    bars = {(r.get("data-series"), r.get("data-value")) for r in findings.iter(f"{SVG}rect")} - {
        (None, None)
    }
    assert ("critical", "2") in bars
    links = {a.get("href") for a in findings.iter(f"{SVG}a")}
    assert "/ui/findings?severity=critical" in links
