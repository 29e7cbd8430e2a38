"""Options and plumbing every command shares."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import render
from registry.settings import Settings

if TYPE_CHECKING:  # the protocol imports every view (pydantic): only the type checker needs it
    from registry.interface import Registry


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
    registry: Registry
    if state.registry_url:
        # Each registry loads only when a command opens it, the one the options select: the
        # remote client (httpx: 90 ms) or the embedded one (SQLAlchemy, the service: 0.4 s).
        # `--help`, `--version`, `verify` and a local `scan` pay for neither.
        from registry.client.remote import KEY_ENV, TOKEN_ENV, RemoteRegistry  # noqa: PLC0415

        key = os.environ.get(KEY_ENV)
        registry = RemoteRegistry(
            state.registry_url,
            token=os.environ.get(TOKEN_ENV) or None,
            registry_key=Path(key).expanduser() if key else None,
        )
    else:
        from registry.embedded import EmbeddedRegistry  # noqa: PLC0415 - see above

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
