"""`modelctl serve`: the registry's HTTP API on uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import state_of
from registry.errors import InputError
from registry.settings import Settings


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
) -> None:
    """Serve the registry over HTTP (the API under /v1) until interrupted."""
    state = state_of(ctx, json_output=False, verbose=False)
    if state.registry_url:
        raise InputError("serve runs the registry itself: unset --registry / MODELCTL_REGISTRY")
    if not 0 < port < 65536:
        raise InputError(f"--port must be between 1 and 65535, not {port}")
    import uvicorn

    from registry.api.app import create_app

    app = create_app(Settings.from_env(home=state.home))
    typer.echo(f"modelctl: serving on http://{host}:{port}/v1", err=True)
    # The access log prints the method, path and status: never headers (Authorization).
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
