"""`modelctl migrate` moves a shared database's schema once; `serve` and `worker` refuse an
old schema in one line naming it; the embedded SQLite default still migrates itself."""

from __future__ import annotations

import threading
from typing import Any

from registry.db.engine import HEAD_REVISION, MIGRATIONS, current_revision, make_engine, migrate

OLD = "0011"


def downgrade(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
    engine.dispose()


def revision_of(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def test_migrate_runs_once_and_says_what_it_did(
    postgres_url: str, run_cli: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", postgres_url + "?application_name=t")
    first = run_cli("migrate", "--json")
    assert first.code == 0, first.stderr
    assert first.json() | {"database": ""} == {
        "database": "",
        "from": None,
        "to": HEAD_REVISION,
        "changed": True,
    }
    again = run_cli("migrate")
    assert again.code == 0
    assert f"is already at {HEAD_REVISION}" in again.stdout
    assert revision_of(postgres_url) == HEAD_REVISION


def test_migrate_hides_the_password(postgres_url: str, run_cli: Any, monkeypatch: Any) -> None:
    with_password = postgres_url.replace("postgres@", "postgres:s3cret@")
    monkeypatch.setenv("MODELCTL_DATABASE_URL", with_password)
    result = run_cli("migrate", "--json")
    assert result.code == 0, result.stderr
    assert "s3cret" not in result.stdout
    assert "***" in result.json()["database"]


def test_servers_and_workers_refuse_an_old_schema(
    migrated_postgres_url: str, run_cli: Any, monkeypatch: Any
) -> None:
    downgrade(migrated_postgres_url, OLD)
    monkeypatch.setenv("MODELCTL_DATABASE_URL", migrated_postgres_url)
    for args in (("worker", "--once"), ("serve", "--port", "1")):
        refused = run_cli(*args)
        assert refused.code == 2
        assert refused.stderr.count("\n") == 1, refused.stderr  # one line
        assert f"schema is at revision {OLD}" in refused.stderr
        assert "run `modelctl migrate`" in refused.stderr
    assert revision_of(migrated_postgres_url) == OLD  # nobody migrated behind our back
    assert run_cli("migrate").code == 0
    assert run_cli("worker", "--once").code == 0


def test_an_empty_shared_database_is_refused_too(
    postgres_url: str, run_cli: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", postgres_url)
    refused = run_cli("worker", "--once")
    assert refused.code == 2
    assert "schema is empty" in refused.stderr
    assert revision_of(postgres_url) is None


def test_the_embedded_sqlite_default_needs_no_migrate_step(run_cli: Any) -> None:
    ran = run_cli("worker", "--once")
    assert ran.code == 0, ran.stderr
    assert run_cli("migrate", "--json").json()["changed"] is False


def test_concurrent_migrations_upgrade_once(postgres_url: str) -> None:
    errors: list[BaseException] = []
    results: list[str | None] = []

    def run() -> None:
        engine = make_engine(postgres_url)
        try:
            results.append(migrate(engine))
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results.count(None) == 1  # one upgraded from empty; the others found it done
    assert results.count(HEAD_REVISION) == 2
    assert revision_of(postgres_url) == HEAD_REVISION
