"""`modelctl sync`: mirror the new upstream commits of watched hub models.

Watched: the hub models the registry holds whose source matches MODELCTL_PROXY_SOURCES, or the
sources named. Each new upstream commit gets one mirror-and-scan job (run by `modelctl worker`
or the server); workers also run it every MODELCTL_SYNC_INTERVAL seconds.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
from registry.views import SyncItem, SyncResult


def _line(item: SyncItem) -> str:
    head = f" at {item.upstream_commit[:12]}" if item.upstream_commit else ""
    what = {
        "up-to-date": "up to date",
        "queued": f"new commit: queued as job {item.job_id}",
        "already-queued": "a mirror is already queued",
        "new": "new commit (dry run: nothing queued)",
        "error": f"error: {item.error}",
    }.get(item.state, item.state)
    return f"{item.source} ({item.name}){head}: {what}"


def _summary(result: SyncResult) -> str:
    if not result.sources:
        return "no watched models: set MODELCTL_PROXY_SOURCES or name hf://ORG/NAME sources"
    return "\n".join(_line(i) for i in result.sources)


def sync_command(
    ctx: typer.Context,
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="hf://ORG/NAME or ms://ORG/NAME (default: the watched models)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Look upstream; queue nothing.")
    ] = False,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Queue mirrors (and scans) of watched hub models' new upstream commits.

    Exits 1 when a source could not be checked (the others are still synced)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        result = registry.sync(tuple(sources or ()), dry_run=dry_run)
    emit(state, result.to_json(), _summary(result))
    if any(item.state == "error" for item in result.sources):
        raise typer.Exit(1)
