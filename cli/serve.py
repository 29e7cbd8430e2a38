"""`modelctl serve`: the registry's HTTP API on uvicorn."""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path
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
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            help="PEM certificate chain: serve HTTPS (the Kubernetes webhook requires it).",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")
    ] = None,
) -> None:
    """Serve the registry over HTTP or HTTPS (the API under /v1) until interrupted."""
    state = state_of(ctx, json_output=False, verbose=False)
    if state.registry_url:
        raise InputError("serve runs the registry itself: unset --registry / MODELCTL_REGISTRY")
    if not 0 < port < 65536:
        raise InputError(f"--port must be between 1 and 65535, not {port}")
    if not 1 <= workers <= 64:
        raise InputError(f"--workers must be between 1 and 64, not {workers}")
    tls = _tls_options(tls_cert, tls_key)
    # The server loads only for `serve` (FastAPI, the app and its routes: over half a second).
    import uvicorn  # noqa: PLC0415

    from registry.api.app import create_app  # noqa: PLC0415
    from registry.embedded import EmbeddedRegistry  # noqa: PLC0415 - as uvicorn above
    from registry.service.notify import config as notify_config  # noqa: PLC0415

    settings = Settings.from_env(home=state.home)
    if settings.run_worker:
        notify_config.load(os.environ)  # a broken notification config: one line, no server
    # Start-up checks, before the port opens: the blob store answers (one line if not), and
    # the schema is current (the embedded SQLite default migrates itself; a shared database
    # is migrated once by `modelctl migrate`, never by whichever server starts first).
    registry = EmbeddedRegistry(settings, migrate_schema=settings.embedded_database)
    scheme = "https" if tls else "http"
    typer.echo(f"modelctl: serving on {scheme}://{host}:{port}/v1", err=True)
    # The access log prints the method, path and status: never headers (Authorization).
    if workers == 1:
        try:
            uvicorn.run(
                create_app(settings, registry=registry),
                host=host,
                port=port,
                log_level="info",
                server_header=False,
                ssl_certfile=tls[0] if tls else None,
                ssl_keyfile=tls[1] if tls else None,
            )
        finally:
            registry.close()
        return
    registry.close()  # checked (and the embedded database migrated) before the processes start
    os.environ["MODELCTL_HOME"] = str(settings.home)  # the workers read the same settings
    uvicorn.run(
        "registry.api.app:app_from_env",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )


def _tls_options(cert: Path | None, key: Path | None) -> tuple[str, str] | None:
    """uvicorn's TLS settings, after checking the files are there (a one-line error now, not
    a traceback from the TLS library after the banner)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise InputError("--tls-cert and --tls-key go together: give both or neither")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise InputError(f"{option} {path}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise InputError(f"--tls-cert/--tls-key cannot be loaded: {exc}") from exc
    return str(cert), str(key)


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
    settings = Settings.from_env(home=state.home)
    registry = EmbeddedRegistry(settings, migrate_schema=settings.embedded_database)
    try:
        runner = JobRunner(registry)  # a broken notification config: one line, no worker
        if once:
            ran = 0
            runner.queue_rescans()
            while runner.run_once():
                ran += 1
            sent = 0
            if runner.notifier is not None:  # the notifications due now, attempted once each
                try:
                    while attempts := runner.notifier.tick():
                        sent += attempts
                finally:
                    runner.notifier.close()
            typer.echo(f"modelctl: worker ran {ran} jobs, {sent} notification attempts", err=True)
            return
        typer.echo(f"modelctl: worker {runner.name} waiting for jobs", err=True)
        runner.run_forever(threading.Event())
    finally:
        registry.close()
