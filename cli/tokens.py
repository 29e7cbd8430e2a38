"""`modelctl tokens create|list|revoke`: API tokens for `modelctl serve`.

Embedded (no --registry) this writes the registry's database directly: how the first admin
token is made. Remote, it needs an admin token in MODELCTL_TOKEN.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from attestations.utc import aware_or_none
from cli import render
from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
from registry.errors import InputError
from registry.requests import AuditQuery
from registry.views import TokenView, iso

tokens_app = typer.Typer(help="API tokens for the registry server.", no_args_is_help=True)


def _scope(token: TokenView) -> str:
    if token.environments is None:
        return "every environment"
    return "environments " + ",".join(token.environments)


def _table(found: list[TokenView]) -> str:
    if not found:
        return "no tokens"
    rows = [
        [
            str(t.id),
            t.name,
            t.role,
            ",".join(t.environments) if t.environments is not None else "*",
            iso(t.created_at),
            iso(t.expires_at) if t.expires_at else "-",
            f"revoked {iso(t.revoked_at)}" if t.revoked_at else "active",
        ]
        for t in found
    ]
    return render.table(rows, ["ID", "NAME", "ROLE", "ENVS", "CREATED", "EXPIRES", "STATE"])


@tokens_app.command("create")
def create_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A unique name: it is the audit log's actor.")],
    role: Annotated[
        str, typer.Option("--role", help="reader, publisher, security or admin.")
    ] = "reader",
    expires_in_days: Annotated[
        int | None, typer.Option("--expires-in-days", help="Expire after this many days.")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            help="Scope the token to this environment (repeatable): /hf, the webhook and byte "
            "reads refuse any other. Default: every environment.",
        ),
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Create a token. It is printed once, now: store it; the registry keeps only a hash."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    expires_at = None
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= 3650:
            raise InputError("--expires-in-days must be between 1 and 3650")
        expires_at = datetime.now(UTC) + timedelta(days=expires_in_days)
    with open_registry(state) as registry:
        created = registry.token_create(name, role, expires_at=expires_at, environments=env or None)
    typer.echo(
        f"modelctl: token {created.token.name!r} ({created.token.role}, {_scope(created.token)}) "
        "created; it is shown only this once",
        err=True,
    )
    emit(state, created.to_json(), created.secret)


@tokens_app.command("list")
def list_command(
    ctx: typer.Context, json_output: JsonOption = False, verbose: VerboseOption = False
) -> None:
    """List tokens (never their secrets)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        found = registry.token_list()
    emit(state, {"tokens": [t.to_json() for t in found]}, _table(found))


@tokens_app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    token: Annotated[str, typer.Argument(help="The token's id or name.")],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Revoke a token: from now on every request with it is refused."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        view = registry.token_revoke(token)
    emit(state, view.to_json(), f"revoked token {view.name!r} (id {view.id})")


def audit_command(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this actor.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="This action, or a prefix ending in '.'.")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Subjects containing this text.")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option("--since", help="At or after this time (ISO 8601, UTC).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 100,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Read the append-only audit log: who changed what, when."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    since = aware_or_none(since)
    query = AuditQuery(actor=actor, action=action, subject=subject, since=since, limit=limit)
    with open_registry(state) as registry:
        found = registry.audit_log(query)
    rows = [[str(e.id), iso(e.at), e.actor, e.action, e.subject] for e in found]
    emit(
        state,
        {"events": [e.to_json() for e in found]},
        render.table(rows, ["ID", "AT", "ACTOR", "ACTION", "SUBJECT"]) if rows else "no events",
    )
