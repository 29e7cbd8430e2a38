"""Shared fixtures: a fresh MODELCTL_HOME per test, the CLI in-process, both databases.

Databases: Alembic runs once per session (and per xdist worker) into a template; each test
gets a copy (`CREATE DATABASE ... TEMPLATE` on PostgreSQL, a file copy on SQLite). Tests of the
migrations themselves take `empty_database_url` or `postgres_url`, which start empty.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli.main import main as cli_main
from registry.db.engine import make_engine, migrate
from tests.slow_tests import SLOW_TESTS
from tests.socket_guard import SocketGuard

POSTGRES_ADMIN_URL = os.environ.get(
    "MODELCTL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)

_SCRUBBED_ENV = (
    "MODELCTL_HOME",
    "MODELCTL_DATABASE_URL",
    "MODELCTL_BLOB_STORE",
    "MODELCTL_REGISTRY",
    "MODELCTL_DOWNLOAD_WORKERS",
    "MODELCTL_SIGNING_KEY",
    "MODELCTL_SIGNING_KEY_PASSPHRASE",
    "MODELCTL_KEY_PASSPHRASE",
    "SIGSTORE_ID_TOKEN",
    "MODELCTL_NOTIFY_CONFIG",  # a developer's notifications must not fire from tests
    "MODELCTL_SMTP_HOST",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "MODELSCOPE_ENDPOINT",
    "MODELSCOPE_API_TOKEN",
    "AWS_ENDPOINT_URL",  # the S3 blob store's: tests set their own (tests/s3_server.py)
    "AWS_PROFILE",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the developer's registry, tokens or hub endpoints."""
    for name in _SCRUBBED_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("MODELCTL_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return home


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `modelctl ARGS...` in-process; returns exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            cli_main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return CliResult(code=code, stdout=out, stderr=err)

    return run


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[SocketGuard]:
    """Every connect outside loopback fails the test, even when the code under test catches it."""
    guard = SocketGuard()
    guard.install(monkeypatch)
    yield guard
    if guard.refused:
        pytest.fail("; ".join(guard.refused), pytrace=False)


def _unique_name(prefix: str) -> str:
    """A database name no other test, session or xdist worker uses at the same time."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}_{worker}_{uuid.uuid4().hex[:12]}"


def _admin_execute(statement: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(statement)


def _postgres_url_for(name: str) -> str:
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A PostgreSQL database at the newest migration, made once; tests get copies of it."""
    name = _unique_name("modelctl_tmpl")
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        engine = make_engine(_postgres_url_for(name))
        migrate(engine)
        engine.dispose()  # CREATE DATABASE ... TEMPLATE refuses while anyone is connected
        yield name
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = _unique_name("modelctl_test")
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield _postgres_url_for(name)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_postgres_url(postgres_template: str) -> Iterator[str]:
    """A PostgreSQL database already at the newest migration (a copy of the template)."""
    name = _unique_name("modelctl_test")
    _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    try:
        yield _postgres_url_for(name)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the newest migration, made once; tests get copies of it."""
    path = tmp_path_factory.mktemp("sqlite-template") / "registry.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file we copy
    return path


DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every database test runs on the embedded SQLite and on the real PostgreSQL, both
    already at the newest migration."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, tmp_path / "registry.db")
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("migrated_postgres_url")
    return url


@pytest.fixture(params=DATABASES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both databases, empty: for the tests of the migrations themselves."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers that follow from fixtures or measurements, so that no test has to remember them."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "postgres_url" in names or "migrated_postgres_url" in names:
            item.add_marker(pytest.mark.postgres)
        if item.nodeid.split("[", 1)[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
