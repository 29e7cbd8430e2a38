"""Options and plumbing every command shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import render
from registry.errors import InputError
from registry.interface import Registry
from registry.settings import Settings


@dataclass
class State:
    home: Path | None = None
    registry_url: str | None = None
    json: bool = False
    verbose: bool = False


JsonOption = Annotated[
    bool, typer.Option("--json", help="Machine-readable output on stdout.", show_default=False)
]


VerboseOption = Annotated[
    bool, typer.Option("-v", "--verbose", help="More detail on stderr.", show_default=False)
]


def state_of(ctx: typer.Context, *, json_output: bool, verbose: bool) -> State:
    """The global options, with the same flags given after the command name merged in."""
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    obj.json = obj.json or json_output
    obj.verbose = obj.verbose or verbose
    return obj


@contextmanager
def open_registry(state: State) -> Iterator[Registry]:
    """The registry the global options select, closed when the command is done."""
    if state.registry_url:
        raise InputError(
            f"--registry {state.registry_url}: remote registries are not supported by this "
            "version yet; unset MODELCTL_REGISTRY to use the embedded registry"
        )
    from registry.embedded import EmbeddedRegistry

    registry = EmbeddedRegistry(Settings.from_env(home=state.home))
    try:
        yield registry
    finally:
        registry.close()


def emit(state: State, data: dict[str, Any] | list[Any], text: str) -> None:
    if state.json:
        typer.echo(render.dumps(data))
    else:
        typer.echo(text)
