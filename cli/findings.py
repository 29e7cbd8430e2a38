"""`modelctl finding …`: a checkpoint's findings, and finding-level triage by two people.

`list REF` shows each finding's stable id; `triage ID --false-positive` requests a decision
(pending: it changes nothing); `approve REQUEST` by another principal makes it count until its
expiry; `revoke REQUEST` ends it. The only way past a malicious verdict.

`confirm ID` marks a finding a real problem (it ends any false-positive triage of it and
never loosens a decision; `--withdraw` undoes a mistaken one); `assign ID USER` names who
works on it (`--none` unassigns). ADR 0025.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
from cli.policy import parse_expiry
from registry.errors import InputError
from registry.views import FindingStateView, FindingView, TriageView

finding_app = typer.Typer(
    help="Findings of a checkpoint's scans, and false-positive triage by two people.",
    no_args_is_help=True,
)


def _finding_line(f: FindingView) -> str:
    state = f.triage or ""
    mark = "blocks" if f.blocking and not state.startswith("false positive") else ""
    more = f" (+{f.occurrences - 1} more here)" if f.occurrences > 1 else ""
    who = [f"confirmed by {f.confirmed_by}"] if f.confirmed_by else []
    who += [f"assigned to {f.assignee}"] if f.assignee else []
    return (
        f"{f.id}  {f.severity:<8}  {f.scanner}: {f.path}  {f.rule}  {f.message[:100]}{more}"
        + (f"  [{mark}]" if mark else "")
        + (f"  ({state})" if state else "")
        + (f"  ({', '.join(who)})" if who else "")
    )


def _state_line(v: FindingStateView) -> str:
    who = f", confirmed by {v.confirmed_by}" if v.confirmed_by else ""
    to = f", assigned to {v.assignee}" if v.assignee else ", unassigned"
    return f"{v.finding_id}: {v.state}{who}{to} ({v.scanner}: {v.path} {v.rule})"


def _triage_line(t: TriageView) -> str:
    state = "active" if t.active else t.status
    by = f", approved by {t.approved_by}" if t.approved_by else ""
    return (
        f"{t.id:>4}  {state:<8}  {t.finding_id}  {t.decision} until {t.to_json()['expires_at']}  "
        f"{t.scanner}: {t.path}  {t.rule}  (requested by {t.requested_by}{by}: {t.reason})"
    )


@finding_app.command("list")
def list_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NS/NAME, NS/NAME@sha256:DIGEST or NS/NAME@REV.")],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """The findings of a checkpoint's newest scans, with their ids and triage state."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        found = registry.finding_list(ref)
    emit(
        state,
        {"findings": [f.to_json() for f in found]},
        "\n".join(_finding_line(f) for f in found) or "no findings",
    )


@finding_app.command("triage")
def triage_command(
    ctx: typer.Context,
    finding_id: Annotated[str, typer.Argument(help="The finding's id (fnd-…, see `list`).")],
    false_positive: Annotated[
        bool, typer.Option("--false-positive", help="The finding is a false positive.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")] = "",
    expires: Annotated[
        str, typer.Option("--expires", help="2026-12-31T00:00:00Z or 30d (at most 90 days).")
    ] = "",
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Request a decision on a finding; it counts once another person approves it."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    if not false_positive:
        raise InputError("say what the finding is: --false-positive (the only triage decision)")
    if not expires:
        raise InputError("a triage needs --expires (e.g. 30d; at most 90 days)")
    expires_at = parse_expiry(expires, now=datetime.now(UTC))
    with open_registry(state) as registry:
        view = registry.finding_triage(
            finding_id, decision="false-positive", reason=reason, expires_at=expires_at
        )
    emit(
        state,
        view.to_json(),
        f"triage request {view.id}: {view.finding_id} is a false positive "
        f"({view.scanner}: {view.path} {view.rule}), pending: another person approves it with "
        f"`modelctl finding approve {view.id}`",
    )


@finding_app.command("approve")
def approve_command(
    ctx: typer.Context,
    request_id: Annotated[int, typer.Argument(help="The triage request's id.")],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Approve someone else's triage request (never your own)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        view = registry.finding_approve(request_id)
    emit(
        state,
        view.to_json(),
        f"triage request {view.id} approved: {view.finding_id} is a false positive until "
        f"{view.to_json()['expires_at']}",
    )


@finding_app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    request_id: Annotated[int, typer.Argument(help="The triage request's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")] = "",
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """End a triage now (the finding blocks again), or withdraw a pending request."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        view = registry.finding_revoke(request_id, reason)
    emit(state, view.to_json(), f"triage request {view.id} revoked ({view.finding_id})")


@finding_app.command("requests")
def requests_command(
    ctx: typer.Context,
    finding_id: Annotated[
        str | None, typer.Option("--finding", help="Only this finding's.")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, approved or revoked.")
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Triage requests and decisions, newest first."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        views = registry.triage_list(finding_id=finding_id, status=status)
    emit(
        state,
        {"triage": [v.to_json() for v in views]},
        "\n".join(_triage_line(v) for v in views) or "no triage requests",
    )


@finding_app.command("confirm")
def confirm_command(
    ctx: typer.Context,
    finding_id: Annotated[str, typer.Argument(help="The finding's id (fnd-…, see `list`).")],
    withdraw: Annotated[
        bool, typer.Option("--withdraw", help="Withdraw a confirmation made by mistake.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")] = "",
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Confirm a finding as a real problem: it ends any false-positive triage of it and
    loosens nothing."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        view = registry.finding_confirm(finding_id, withdraw=withdraw, reason=reason)
    emit(state, view.to_json(), _state_line(view))


@finding_app.command("assign")
def assign_command(
    ctx: typer.Context,
    finding_id: Annotated[str, typer.Argument(help="The finding's id (fnd-…, see `list`).")],
    user: Annotated[
        str | None, typer.Argument(help="Who works on it (a user or token:NAME).")
    ] = None,
    unassign: Annotated[bool, typer.Option("--none", help="Unassign it.")] = False,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Assign a finding to a user (changes no decision)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    if (user is None) == (not unassign):
        raise InputError("name a USER to assign it to, or --none to unassign it (not both)")
    with open_registry(state) as registry:
        view = registry.finding_assign(finding_id, None if unassign else user)
    emit(state, view.to_json(), _state_line(view))
