"""`registry/client/` runs without the database side of the registry, at import time too.

The import-linter contract in pyproject.toml checks the static graph; this checks what a
fresh interpreter actually loads for `--registry URL` (function-level and package `__init__`
imports included), so a lazy import that drags SQLAlchemy back in fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys

_FORBIDDEN = (
    "sqlalchemy",
    "alembic",
    "fastapi",
    "registry.db",
    "registry.service",
    "registry.embedded",
    "registry.api",
    "registry.web",
    "registry.worker",
)


def _loaded_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return set(json.loads(out))


def _forbidden(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in _FORBIDDEN))


def test_the_http_client_loads_no_database_service_or_server() -> None:
    loaded = _loaded_after("from registry.client.remote import RemoteRegistry")
    assert "httpx" in loaded
    assert _forbidden(loaded) == []


def test_materialize_loads_no_database_nor_http() -> None:
    loaded = _loaded_after("from registry.client import materialize")
    assert _forbidden(loaded) == []
    assert "httpx" not in loaded  # the embedded pull does not pay for the HTTP client
