"""`modelctl notify deliveries`: the outbound notification delivery log (webhooks, email).

The dispatcher itself runs in the worker (`modelctl worker`, or the thread in `modelctl
serve`) when MODELCTL_NOTIFY_CONFIG or MODELCTL_SMTP_HOST is set.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli import render
from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
from registry.views import iso

notify_app = typer.Typer(help="Outbound notifications: the delivery log.", no_args_is_help=True)


@notify_app.command("deliveries")
def deliveries_command(
    ctx: typer.Context,
    state: Annotated[
        str | None,
        typer.Option("--state", help="Only deliveries in this state: pending, delivered, failed."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 100,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """List notification deliveries, newest first: target, event, state, attempts, last error."""
    options = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(options) as registry:
        found = registry.notification_deliveries(state=state, limit=limit)
    rows = [
        [
            str(d.id),
            iso(d.created_at),
            d.target,
            d.event,
            d.state,
            str(d.attempts),
            d.subject,
            d.last_error or "",
        ]
        for d in found
    ]
    emit(
        options,
        {"deliveries": [d.to_json() for d in found]},
        render.table(rows, ["ID", "AT", "TARGET", "EVENT", "STATE", "TRIES", "SUBJECT", "ERROR"])
        if rows
        else "no deliveries",
    )
