"""`modelctl serve`: the registry's HTTP API on uvicorn."""

from __future__ import annotations

import os
import threading
from typing import Annotated

import typer

from cli.options import state_of
from registry.errors import InputError
from registry.settings import Settings


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    workers: Annotated[
        int, typer.Option("--workers", help="Server processes (each also runs queued jobs).")
    ] = 1,
) -> None:
    """Serve the registry over HTTP (the API under /v1) until interrupted."""
    state = state_of(ctx, json_output=False, verbose=False)
    if state.registry_url:
        raise InputError("serve runs the registry itself: unset --registry / MODELCTL_REGISTRY")
    if not 0 < port < 65536:
        raise InputError(f"--port must be between 1 and 65535, not {port}")
    if not 1 <= workers <= 64:
        raise InputError(f"--workers must be between 1 and 64, not {workers}")
    # The server loads only for `serve` (FastAPI, the app and its routes: over half a second).
    import uvicorn  # noqa: PLC0415

    from registry.api.app import create_app  # noqa: PLC0415

    settings = Settings.from_env(home=state.home)
    typer.echo(f"modelctl: serving on http://{host}:{port}/v1", err=True)
    # The access log prints the method, path and status: never headers (Authorization).
    if workers == 1:
        uvicorn.run(
            create_app(settings), host=host, port=port, log_level="info", server_header=False
        )
        return
    from registry.embedded import EmbeddedRegistry  # noqa: PLC0415 - as uvicorn above

    EmbeddedRegistry(settings).close()  # migrate once, before the processes race to
    os.environ["MODELCTL_HOME"] = str(settings.home)  # the workers read the same settings
    uvicorn.run(
        "registry.api.app:app_from_env",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
        server_header=False,
    )


def worker(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run the queued jobs, then exit (no waiting).")
    ] = False,
) -> None:
    """Run mirror and scan jobs from the registry's queue (scale-out beside `serve`)."""
    # The registry and its worker (SQLAlchemy, the service: 0.4 s) load only for this command.
    from registry.embedded import EmbeddedRegistry  # noqa: PLC0415
    from registry.worker import JobRunner  # noqa: PLC0415

    state = state_of(ctx, json_output=False, verbose=False)
    if state.registry_url:
        raise InputError("a worker shares the registry's database: unset --registry")
    registry = EmbeddedRegistry(Settings.from_env(home=state.home))
    runner = JobRunner(registry)
    try:
        if once:
            ran = 0
            runner.queue_rescans()
            while runner.run_once():
                ran += 1
            typer.echo(f"modelctl: worker ran {ran} jobs", err=True)
            return
        typer.echo(f"modelctl: worker {runner.name} waiting for jobs", err=True)
        runner.run_forever(threading.Event())
    finally:
        registry.close()
