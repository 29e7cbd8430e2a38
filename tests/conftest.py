"""Shared fixtures: a fresh MODELCTL_HOME per test, the CLI in-process, both databases."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli.main import main as cli_main

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
    "HF_ENDPOINT",
    "HF_TOKEN",
    "MODELSCOPE_ENDPOINT",
    "MODELSCOPE_API_TOKEN",
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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"modelctl_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every database test runs on the embedded SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
