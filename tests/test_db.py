"""Schema, migrations and checkpoint records on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from attestations.digests import Digest
from attestations.manifest import Manifest, ManifestEntry
from registry.blobs.base import StoredBlob, blob_key
from registry.db.engine import (
    HEAD_REVISION,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    session_factory,
    unit_of_work,
)
from registry.db.models import AuditEvent, Blob, Checkpoint, CheckpointFile, Model
from registry.mirror.base import Snapshot
from registry.refs import ModelName, Ref
from registry.service import checkpoints, tokens
from registry.service.transfer import FetchedFile
from tests.helpers import safetensors_of, write_tree


def fetched(files: dict[str, bytes]) -> tuple[Manifest, list[FetchedFile]]:
    out = []
    for path, data in files.items():
        d = Digest.of(data)
        out.append(FetchedFile(path, StoredBlob(d, len(data), blob_key(d), None, True), len(data)))
    manifest = Manifest.build(ManifestEntry(f.path, f.blob.size, f.blob.digest) for f in out)
    return manifest, out


SNAPSHOT = Snapshot(uri="hf://org/m", requested_revision="main", commit="a" * 40, files=())


def test_pinned_head_revision_is_alembics_head() -> None:
    from registry.db.engine import HEAD_REVISION

    assert head_revision() == HEAD_REVISION


def test_migrations_create_the_schema_and_are_idempotent(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    assert current_revision(engine) is None
    migrate(engine)
    migrate(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {
        "models",
        "checkpoints",
        "checkpoint_files",
        "checkpoint_revisions",
        "blobs",
        "audit_events",
        "attestations",
    } <= tables
    engine.dispose()


def test_downgrade_then_upgrade_round_trips(empty_database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from registry.db.engine import MIGRATIONS

    engine = make_engine(empty_database_url)
    migrate(engine)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert "checkpoints" not in inspect(engine).get_table_names()
    migrate(engine)
    assert "checkpoints" in inspect(engine).get_table_names()
    engine.dispose()


def test_record_is_idempotent_for_the_same_bytes(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    sessions = session_factory(engine)
    manifest, files = fetched(
        {"config.json": b"{}", "w/model.safetensors": safetensors_of(b"weights"), "empty": b""}
    )
    name = ModelName("org", "m")
    with unit_of_work(sessions) as s:
        cp, created = checkpoints.record_checkpoint(
            s, name=name, snapshot=SNAPSHOT, manifest=manifest, fetched=files, actor="t"
        )
        assert created
    tag = Snapshot(uri="hf://org/m", requested_revision="v1", commit="a" * 40, files=())
    with unit_of_work(sessions) as s:
        cp2, created = checkpoints.record_checkpoint(
            s, name=name, snapshot=tag, manifest=manifest, fetched=files, actor="t"
        )
        assert not created
        assert cp2.id == cp.id
    with unit_of_work(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Checkpoint)) == 1
        assert s.scalar(select(func.count()).select_from(CheckpointFile)) == 3
        assert s.scalar(select(func.count()).select_from(Blob)) == 3
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 2
        view = checkpoints.inspect(s, Ref.parse("org/m@v1"))
        assert view.digest == str(manifest.digest)
        assert view.source.revisions == ("main", "v1")
        assert [f.path for f in view.files] == ["config.json", "empty", "w/model.safetensors"]
        assert checkpoints.manifest_of(checkpoints.resolve_ref(s, Ref.parse("org/m"))) == manifest
    engine.dispose()


def test_blobs_are_shared_between_checkpoints(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    sessions = session_factory(engine)
    m1, f1 = fetched({"a": b"shared", "b": b"one"})
    m2, f2 = fetched({"a": b"shared", "b": b"two"})
    with unit_of_work(sessions) as s:
        checkpoints.record_checkpoint(
            s, name=ModelName("o", "x"), snapshot=SNAPSHOT, manifest=m1, fetched=f1, actor="t"
        )
        checkpoints.record_checkpoint(
            s, name=ModelName("o", "y"), snapshot=SNAPSHOT, manifest=m2, fetched=f2, actor="t"
        )
    with unit_of_work(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Blob)) == 3
        assert s.scalar(select(func.count()).select_from(Model)) == 2
    engine.dispose()


def test_a_failed_unit_of_work_leaves_nothing(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    sessions = session_factory(engine)
    manifest, files = fetched({"a": b"1"})

    def record_then_crash() -> None:
        with unit_of_work(sessions) as s:
            checkpoints.record_checkpoint(
                s,
                name=ModelName("o", "x"),
                snapshot=SNAPSHOT,
                manifest=manifest,
                fetched=files,
                actor="t",
            )
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        record_then_crash()
    with unit_of_work(sessions) as s:
        for table in (Model, Checkpoint, CheckpointFile, Blob, AuditEvent):
            assert s.scalar(select(func.count()).select_from(table)) == 0
    engine.dispose()


def test_audit_log_is_append_only(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    sessions = session_factory(engine)
    with unit_of_work(sessions) as s:
        s.add(AuditEvent(actor="t", action="x", subject="s", details={"k": 1}))
    for statement in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with unit_of_work(sessions) as s:
        assert s.scalars(select(AuditEvent.actor)).all() == ["t"]
    engine.dispose()


def test_embedded_registry_uses_postgres_when_configured(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: object
) -> None:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", postgres_url)
    model = write_tree(
        tmp_path / "m", {"config.json": b"{}", "w.safetensors": safetensors_of(b"w" * 1000)}
    )
    result = run_cli("mirror", str(model), "--name", "pg/model", "--json")  # type: ignore[operator]
    assert result.code == 0, result.stderr
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM checkpoints")).scalar() == 1
    engine.dispose()
    assert not (tmp_path / "home" / "registry.db").exists()


def test_0009_backfills_scan_severity_from_reports(empty_database_url: str) -> None:
    """An existing database at 0008: upgrading computes `scans.max_severity` from each stored
    report (over more than one batch) and leaves `checkpoints.license` not yet recorded."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from registry.db.engine import MIGRATIONS

    engine = make_engine(empty_database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0008")
    assert current_revision(engine) == "0008"
    now = datetime(2026, 12, 1, tzinfo=UTC)
    meta = sa.MetaData()
    meta.reflect(engine, only=["models", "checkpoints", "scans"])
    models, cps, scans = (meta.tables[t] for t in ("models", "checkpoints", "scans"))

    def report(*severities: str) -> dict[str, object]:
        findings = [{"rule": "r", "severity": s} for s in severities]
        return {"files": [{"path": "a.bin", "verdict": "x", "findings": findings}], "limits": {}}

    reports: list[object] = [report() for _ in range(520)]
    reports[3] = report("low", "high", "medium")
    reports[510] = report("info")  # in the second batch
    reports[511] = {"files": [{"path": "a", "findings": [{"severity": "bogus"}, "junk"]}]}
    reports[512] = ["not", "a", "report"]
    with engine.begin() as conn:
        conn.execute(sa.insert(models).values(id=1, namespace="o", name="m", created_at=now))
        conn.execute(
            sa.insert(cps).values(
                id=1,
                model_id=1,
                manifest_digest="a" * 64,
                source_uri="hf://o/m",
                source_commit="c" * 40,
                file_count=1,
                total_size=1,
                created_at=now,
            )
        )
        conn.execute(
            sa.insert(scans),
            [
                {
                    "id": i + 1,
                    "checkpoint_id": 1,
                    "scanner_id": "pickle",
                    "scanner_version": "1",
                    "ruleset_version": "1",
                    "verdict": "clean",
                    "report": r,
                    "started_at": now,
                    "finished_at": now,
                }
                for i, r in enumerate(reports)
            ],
        )
    migrate(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        severities: dict[object, object] = dict(
            conn.execute(text("SELECT id, max_severity FROM scans")).all()
        )
        licenses = conn.execute(text("SELECT license FROM checkpoints")).scalars().all()
    assert {k: v for k, v in severities.items() if v is not None} == {4: "high", 511: "info"}
    assert len(severities) == 520
    assert licenses == [None]  # not recorded yet: read from the card when next decided
    engine.dispose()


def test_0011_turns_checkpoint_quarantines_into_digest_quarantines(empty_database_url: str) -> None:
    """An existing database at 0009: a quarantine that hung off one checkpoint row becomes a
    quarantine of that checkpoint's manifest digest (active and released alike)."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from registry.db.engine import MIGRATIONS

    engine = make_engine(empty_database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0009")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    meta = sa.MetaData()
    meta.reflect(engine, only=["models", "checkpoints", "quarantines"])
    models, cps, quarantines = (meta.tables[t] for t in ("models", "checkpoints", "quarantines"))
    with engine.begin() as conn:
        conn.execute(sa.insert(models).values(id=1, namespace="o", name="m", created_at=now))
        for cid, digest in ((1, "a" * 64), (2, "b" * 64)):
            conn.execute(
                sa.insert(cps).values(
                    id=cid,
                    model_id=1,
                    manifest_digest=digest,
                    source_uri="hf://o/m",
                    source_commit="c" * 40,
                    file_count=1,
                    total_size=1,
                    created_at=now,
                )
            )
        active = {"id": 1, "checkpoint_id": 1, "reason": "bad", "actor": "x", "created_at": now}
        conn.execute(sa.insert(quarantines).values(**active))
        released = {**active, "id": 2, "checkpoint_id": 2, "released_at": now}
        extra = {"released_by": "y", "release_reason": "ok"}
        conn.execute(sa.insert(quarantines).values(**released, **extra))
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, kind, digest, released_at IS NULL FROM quarantines ORDER BY id")
        ).all()
    assert [(i, k, d, bool(a)) for i, k, d, a in rows] == [
        (1, "checkpoint", "a" * 64, True),
        (2, "checkpoint", "b" * 64, False),
    ]
    assert "checkpoint_id" not in {c["name"] for c in inspect(engine).get_columns("quarantines")}
    engine.dispose()


def test_record_keeps_the_license_and_fills_one_not_recorded(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    sessions = session_factory(engine)
    manifest, files = fetched({"README.md": b"---\nlicense: mit\n---\n", "w": b"1"})
    name = ModelName("org", "m")
    with unit_of_work(sessions) as s:
        cp, _ = checkpoints.record_checkpoint(
            s, name=name, snapshot=SNAPSHOT, manifest=manifest, fetched=files, actor="t"
        )
        assert cp.license is None  # not read: stays "not recorded"
    with unit_of_work(sessions) as s:
        cp, created = checkpoints.record_checkpoint(
            s,
            name=name,
            snapshot=SNAPSHOT,
            manifest=manifest,
            fetched=files,
            actor="t",
            license="mit",
        )
        assert not created
    with unit_of_work(sessions) as s:
        assert s.scalars(select(Checkpoint.license)).one() == "mit"
        checkpoints.record_checkpoint(
            s,
            name=name,
            snapshot=SNAPSHOT,
            manifest=manifest,
            fetched=files,
            actor="t",
            license="unknown",
        )
    with unit_of_work(sessions) as s:
        assert s.scalars(select(Checkpoint.license)).one() == "mit"  # recorded once
    engine.dispose()


def test_0012_leaves_old_tokens_unscoped_and_old_checkpoints_not_known_complete(
    empty_database_url: str,
) -> None:
    """A database at 0009: after 0012 an existing token still works in every environment
    (scope NULL) and an existing checkpoint's completeness is unknown (NULL: not complete)."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from registry.db.engine import MIGRATIONS

    engine = make_engine(empty_database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0009")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    meta = sa.MetaData()
    meta.reflect(engine, only=["models", "checkpoints", "api_tokens"])
    models, cps, api_tokens = (meta.tables[t] for t in ("models", "checkpoints", "api_tokens"))
    with engine.begin() as conn:
        conn.execute(sa.insert(models).values(id=1, namespace="o", name="m", created_at=now))
        conn.execute(
            sa.insert(cps).values(
                id=1,
                model_id=1,
                manifest_digest="a" * 64,
                source_uri="hf://o/m",
                source_commit="c" * 40,
                file_count=1,
                total_size=1,
                created_at=now,
            )
        )
        conn.execute(
            sa.insert(api_tokens).values(
                key_id="0" * 16,
                name="old",
                role="reader",
                secret_sha256="f" * 64,
                created_at=now,
                created_by="t",
            )
        )
    migrate(engine)
    assert current_revision(engine) == HEAD_REVISION
    with unit_of_work(session_factory(engine)) as s:
        cp = s.get(Checkpoint, 1)
        assert cp is not None
        assert (cp.complete, cp.mirror_include, cp.mirror_exclude) == (None, None, None)
        assert [t.environments for t in tokens.list_tokens(s)] == [None]
    engine.dispose()


def test_record_checkpoint_keeps_the_filter_and_learns_completeness(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    sessions = session_factory(engine)
    manifest, files = fetched({"config.json": b"{}", "w": b"1"})
    name = ModelName("org", "m")
    subset = checkpoints.FileFilter(include=("*.json", "w"))
    with unit_of_work(sessions) as s:
        cp, _ = checkpoints.record_checkpoint(
            s,
            name=name,
            snapshot=SNAPSHOT,
            manifest=manifest,
            fetched=files,
            actor="t",
            file_filter=subset,
            complete=False,
        )
        assert (cp.mirror_include, cp.mirror_exclude, cp.complete) == (["*.json", "w"], [], False)
    with unit_of_work(sessions) as s:  # the same bytes, mirrored whole: they are the commit
        cp, created = checkpoints.record_checkpoint(
            s,
            name=name,
            snapshot=SNAPSHOT,
            manifest=manifest,
            fetched=files,
            actor="t",
            file_filter=checkpoints.FileFilter(),
            complete=True,
        )
        assert not created
        assert (cp.mirror_include, cp.complete) == ([], True)
    with unit_of_work(sessions) as s:  # a later filtered mirror does not undo what is known
        cp, _ = checkpoints.record_checkpoint(
            s,
            name=name,
            snapshot=SNAPSHOT,
            manifest=manifest,
            fetched=files,
            actor="t",
            file_filter=subset,
            complete=False,
        )
        assert cp.complete is True
    engine.dispose()
