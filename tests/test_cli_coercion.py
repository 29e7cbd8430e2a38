"""Plain option values are coerced without pydantic, to the value Typer's own coercion gives.

cli/coercion.py handles str, int, Path and bool values (and lists of them) itself; anything else
goes to Typer's pydantic coercion. These run the real CLI (`run_cli`) and compare, value by value,
with what Typer's coercion returns for the same parameter.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from typer import _click
from typer._coercion import build_runtime_param
from typer.core import TyperGroup
from typer.main import get_command

from cli import coercion
from cli.main import app


def _scan_command() -> tuple[_click.Command, _click.Context]:
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    ctx = _click.Context(group, info_name="modelctl")
    command = group.get_command(ctx, "scan")
    assert command is not None
    return command, ctx


def _param(command: _click.Command, ctx: _click.Context, name: str) -> Any:
    return next(p for p in command.get_params(ctx) if p.name == name)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jobs", "3"),
        ("jobs", "-2"),
        ("jobs", 7),
        ("jobs", " 4 "),  # not plain: Typer's coercion strips it
        ("jobs", "1_000"),
        ("fail_on", "medium"),
        ("scanner", ("pickle", "gguf")),
        ("help", False),
    ],
)
def test_plain_coercion_gives_what_typer_gives(name: str, value: Any) -> None:
    command, ctx = _scan_command()
    param = _param(command, ctx, name)
    plain = param.get_runtime_param()
    assert isinstance(plain, coercion.PlainRuntimeParam)  # installed by the lazy group
    typer_own = build_runtime_param(param.type_descriptor)
    assert plain.coerce(value, param=param, ctx=ctx) == typer_own.coerce(
        value, param=param, ctx=ctx
    )


def test_a_path_option_becomes_a_path() -> None:
    group = get_command(app)
    ctx = _click.Context(group, info_name="modelctl")
    coercion.install(group, ctx)
    home = _param(group, ctx, "home")
    assert home.get_runtime_param().coerce("/tmp/x", param=home, ctx=ctx) == Path("/tmp/x")


def test_a_bad_integer_keeps_typers_message(run_cli: Any, tmp_path: Path) -> None:
    small = tmp_path / "small.pkl"
    small.write_bytes(pickle.dumps([1, 2], protocol=4))
    result = run_cli("scan", str(small), "--jobs", "many")
    assert result.code == 2
    assert "Invalid value for '--jobs' / '-j'" in result.stderr
    assert "Input should be a valid integer" in result.stderr


def test_options_reach_the_command(run_cli: Any, tmp_path: Path) -> None:
    small = tmp_path / "small.pkl"
    small.write_bytes(pickle.dumps([1, 2], protocol=4))
    result = run_cli("scan", str(small), "-j", "1", "--scanner", "pickle", "--json")
    assert result.code == 0, result.stderr
    assert '"id": "pickle"' in result.stdout
    assert '"id": "gguf"' not in result.stdout  # --scanner, a list option, was honoured
