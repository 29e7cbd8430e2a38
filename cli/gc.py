"""`modelctl gc`: delete blobs no checkpoint references (mark → grace → sweep) and leftover
uploads, in the local folder or the S3 store (`registry/service/gc.py` says how it stays safe
beside a mirror in flight)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import typer

from cli import render
from cli.options import JsonOption, emit, state_of
from registry.errors import InputError
from registry.settings import Settings

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `7d` (or bare seconds) → a duration; anything else is refused."""
    match = re.fullmatch(r"(\d{1,9})([smhd]?)", text.strip())
    if match is None:
        raise InputError(f"--grace must look like 30m, 24h or 7d, not {text!r}")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2] or "s"])


def gc_command(
    ctx: typer.Context,
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            help="How long a blob must be unreferenced (and marked) before it goes: "
            "longer than any mirror takes.",
        ),
    ] = "24h",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would go; write and delete nothing.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Remove blobs that no checkpoint references, after a grace period, and stale uploads."""
    from registry.embedded import EmbeddedRegistry  # noqa: PLC0415 - 0.4 s, this command only

    state = state_of(ctx, json_output=json_output, verbose=False)
    if state.registry_url:
        raise InputError("gc works on the registry's database and blob store: unset --registry")
    period = parse_duration(grace)
    settings = Settings.from_env(home=state.home)
    registry = EmbeddedRegistry(settings, migrate_schema=settings.embedded_database)
    try:
        report = registry.gc(grace=period, dry_run=dry_run)
    finally:
        registry.close()
    emit(state, report.to_json(), render.gc_text(report))
