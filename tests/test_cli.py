"""The command-line contract of DESIGN §4: exit codes, one-line errors, --json shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import write_tree

ROOT = Path(__file__).resolve().parents[1]


def test_models_on_an_empty_registry(run_cli: Any) -> None:
    assert run_cli("models", "--json").json() == {"models": []}
    text = run_cli("models")
    assert text.code == 0
    assert "no models yet" in text.stdout


def test_global_json_flag_works_before_the_command(run_cli: Any, tmp_path: Path) -> None:
    model = write_tree(tmp_path / "m", {"config.json": b"{}"})
    out = run_cli("--json", "mirror", str(model), "--name", "a/b")
    assert out.code == 0
    assert out.json()["name"] == "a/b"


def test_home_option_overrides_the_environment(run_cli: Any, tmp_path: Path) -> None:
    model = write_tree(tmp_path / "m", {"config.json": b"{}"})
    other = tmp_path / "other-home"
    assert run_cli("--home", str(other), "mirror", str(model), "--name", "a/b").code == 0
    assert (other / "registry.db").is_file()
    assert run_cli("models", "--json").json() == {"models": []}
    assert len(run_cli("--home", str(other), "models", "--json").json()["models"]) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "nope/missing"], "no model named nope/missing"),
        (["inspect", "not-a-ref"], "bad model name"),
        (["inspect", "a/b@sha256:xyz"], "bad digest"),
        (["inspect", "a/b@../x"], "bad revision"),
        (["mirror", "hf://"], "bad source"),
        (["mirror", "/definitely/not/here"], "is not a folder"),
        (["mirror", "--name", "../x", "."], "bad model name"),
        (["nonsense"], "No such command"),
        (["mirror"], "Missing argument"),
    ],
)
def test_input_errors_exit_2_with_one_line(run_cli: Any, args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("modelctl: error: ")
    assert message in lines[0]


def test_json_errors_carry_error_kind_and_reasons(run_cli: Any) -> None:
    result = run_cli("inspect", "nope/missing", "--json")
    assert result.code == 2
    assert result.json() == {
        "error": "no model named nope/missing",
        "kind": "not_found",
        "reasons": [],
    }


def test_ambiguous_reference_lists_the_candidates(run_cli: Any, tmp_path: Path) -> None:
    model = write_tree(tmp_path / "m", {"config.json": b"{}"})
    first = run_cli("mirror", str(model), "--name", "a/b", "--json").json()["digest"]
    (model / "config.json").write_bytes(b'{"v": 2}')
    second = run_cli("mirror", str(model), "--name", "a/b", "--json").json()["digest"]
    result = run_cli("inspect", "a/b", "--json")
    assert result.code == 2
    body = result.json()
    assert body["kind"] == "ambiguous_reference"
    assert body["reasons"] == [f"a/b@{first}", f"a/b@{second}"]


def test_revision_given_twice_is_refused(run_cli: Any) -> None:
    result = run_cli("mirror", "hf://org/m@main", "--revision", "v1")
    assert result.code == 2
    assert "revision given twice" in result.stderr


def test_unreachable_remote_registry_is_one_clear_line(
    run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCTL_REGISTRY", "http://127.0.0.1:9")
    result = run_cli("models")
    assert result.code == 2
    assert "cannot reach the registry at http://127.0.0.1:9" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unusable_home_is_an_environment_error(run_cli: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("--home", str(blocker / "home"), "models")
    assert result.code == 2
    assert "cannot create" in result.stderr


@pytest.mark.slow
def test_console_script_entry_point(tmp_path: Path) -> None:
    """The installed `modelctl` runs as a program, with the same exit codes."""
    env = dict(os.environ, MODELCTL_HOME=str(tmp_path / "home"))
    ok = subprocess.run(
        [sys.executable, "-m", "cli.main", "models", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"models": []}
    bad = subprocess.run(
        [sys.executable, "-m", "cli.main", "inspect", "x/y"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "modelctl: error: no model named x/y"
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_make_demo_script_runs_offline(tmp_path: Path) -> None:
    """`make demo` (bench/demo.sh) builds a model locally, mirrors it and shows it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MODELSCOPE_"))}
    result = subprocess.run(
        ["bash", str(ROOT / "bench" / "demo.sh"), str(tmp_path / "demo")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "registered demo/tiny-llm@sha256:" in result.stdout
    assert "already registered demo/tiny-llm@sha256:" in result.stdout
    assert "model-00001-of-00003.safetensors" in result.stdout
    assert "attested demo/tiny-llm@sha256:" in result.stdout
    assert "every file matches the signature" in result.stdout
    assert (
        "does not match its signature: changed: model-00002-of-00003.safetensors" in result.stderr
    )


def test_version_prints_the_distribution_version(run_cli: Any) -> None:
    from importlib.metadata import version

    text = run_cli("--version")
    assert text.code == 0
    assert text.stdout.strip() == f"modelctl {version('modelctl')}"
    assert run_cli("--version", "--json").json() == {
        "name": "modelctl",
        "version": version("modelctl"),
    }
    assert run_cli("--json", "--version").code == 0


def test_no_command_is_still_a_usage_error(run_cli: Any) -> None:
    result = run_cli("--json")
    assert result.code == 2
    assert result.stderr.strip() == "modelctl: error: Missing command."
