"""What `modelctl` loads at start-up: each command's module only when that command runs.

A behavioural guard, not a timing test: a fresh interpreter imports `cli.main` (or runs a
local `scan`) and reports `sys.modules`. A top-level import that drags the database, the
signing stack, the HTTP client, the views or the progress bars back into every command fails
here, whatever the machine's speed (cli/lazy.py says why it matters).
"""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.lazy import COMMANDS, LazyCommand

ROOT = Path(__file__).resolve().parents[1]

#: Never loaded by `import cli.main`: each belongs to some commands, not to all of them.
_NOT_AT_START = (
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "cryptography",
    "torch",
    "numpy",
    "pydantic",
    "jinja2",
    "rich",
    "yaml",
    "model_signing",
    "sigstore",
    "huggingface_hub",
    "boto3",  # the S3 blob store
    "cyclonedx",  # ML-BOMs
    "spdx_python_model",
    "weasyprint",  # PDF reports
    "importlib.metadata",
    "registry.views",
    "registry.interface",
    "registry.db",
    "registry.service",
    "registry.embedded",
    "registry.client",
    "registry.scanners",
    "attestations.keys",
    "attestations.signing",
    "cli.signing",
    "cli.scanning",
    "cli.policy",
    "cli.progress",
    "concurrent.futures.process",  # the scan's process pool, only for a folder of files
)

#: Loaded by a local scan, on purpose: the scanners are the command's work. Not pydantic (nor the
#: `importlib.metadata` its plugin loader reads): plain option values are coerced without it
#: (cli/coercion.py). Not jinja2: the chat-template checks load it when a file carries a template.
_A_LOCAL_SCAN_NEEDS = {"registry.scanners", "cli.scanning"}

#: Never loaded by a local `modelctl scan FILE`: nothing of the registry, signing or the server.
_NOT_FOR_A_LOCAL_SCAN = tuple(m for m in _NOT_AT_START if m not in _A_LOCAL_SCAN_NEEDS)


def _loaded_after(code: str, cwd: Path) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _present(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in names))


def test_importing_the_cli_loads_no_command_module_and_no_heavy_library() -> None:
    loaded = _loaded_after("import cli.main", ROOT)
    assert "typer" in loaded  # the probe works: the CLI itself did load
    assert _present(loaded, _NOT_AT_START) == []


def test_a_local_scan_loads_the_scanners_and_nothing_of_the_registry(tmp_path: Path) -> None:
    small = tmp_path / "small.pkl"
    small.write_bytes(pickle.dumps({"w": [0.5, 1.5]}, protocol=4))
    code = (
        "from cli.main import main\n"
        "try:\n"
        f"    main(['scan', {str(small)!r}, '--json'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
    )
    loaded = _loaded_after(code, ROOT)
    assert "registry.scanners.catalog" in loaded  # it did scan
    assert _present(loaded, _NOT_FOR_A_LOCAL_SCAN) == []
    assert _present(loaded, ("registry.scanners.chat_template",)) == []


#: Scanner modules a pickle never needs: the catalog imports them only for files that may be theirs.
_NOT_FOR_A_PICKLE = (
    "registry.scanners.safetensors",
    "registry.scanners.gguf",
    "registry.scanners.keras",
    "registry.scanners.keras_members",
    "registry.scanners.keras_names",
    "registry.scanners.onnx_scanner",
    "registry.scanners.chat_template_files",
    "registry.scanners.tensorflow_graph",
    "registry.scanners.nemo",
    "registry.scanners.skops",
    "registry.scanners.hydra_config",
    "registry.scanners.folder",
)


def _scan_loads(path: Path) -> set[str]:
    code = (
        "from cli.main import main\n"
        "try:\n"
        f"    main(['scan', {str(path)!r}, '--json'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, 1), exc.code\n"
    )
    return _loaded_after(code, ROOT)


def test_a_local_scan_of_a_pickle_imports_no_unrelated_scanner(tmp_path: Path) -> None:
    small = tmp_path / "small.pkl"
    small.write_bytes(pickle.dumps({"w": [0.5, 1.5]}, protocol=4))
    loaded = _scan_loads(small)
    assert "registry.scanners.pickle_scanner" in loaded  # it did scan, with the pickle scanner
    assert _present(loaded, _NOT_FOR_A_PICKLE) == []


def test_a_file_of_another_format_imports_its_scanner(tmp_path: Path) -> None:
    """The other side of the guard above: laziness must not skip the scanner a file needs."""
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes((ROOT / "tests/assets/corpus/gguf/no_template.gguf").read_bytes())
    loaded = _scan_loads(gguf)
    assert "registry.scanners.gguf" in loaded
    assert _present(loaded, ("registry.scanners.keras", "registry.scanners.onnx_scanner")) == []


def test_gguf_looks_for_the_key_the_template_checks_name() -> None:
    from registry.scanners import chat_template, gguf

    assert gguf.CHAT_TEMPLATE_KEY == chat_template.CHAT_TEMPLATE_KEY


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_lazy_command_loads_and_answers_help(run_cli: Any, command: LazyCommand) -> None:
    result = run_cli(command.name, "--help")
    assert result.code == 0, result.stderr
    assert "Usage: modelctl " + command.name in " ".join(result.stdout.split())


def test_help_lists_every_command_once(run_cli: Any) -> None:
    result = run_cli("--help")
    assert result.code == 0
    # a row of the Commands panel: "│ NAME  help…"; wrapped help lines start with spaces
    rows = [re.match(r"│ ([a-z][\w-]*)\s", line) for line in result.stdout.splitlines()]
    listed = [row.group(1) for row in rows if row]
    assert listed == [c.name for c in COMMANDS]


def test_an_unknown_command_is_a_usage_error(run_cli: Any) -> None:
    result = run_cli("no-such-command")
    assert result.code == 2
    assert "No such command 'no-such-command'" in result.stderr
