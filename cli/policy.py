"""`modelctl policy lint FILE` and `modelctl policy check REF --env ENV`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.errors import refuse
from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
from registry.db.ids import MAX_ROW_ID
from registry.errors import InputError

policy_app = typer.Typer(help="Admission policy.", no_args_is_help=True)
POLICY_ENV = "MODELCTL_POLICY"


def _read_policy(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read policy {path}: {exc}") from exc


@policy_app.command("lint")
def lint_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A policy YAML file.")],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Check a policy file: errors (it would not load) and warnings (it may not mean it)."""
    from policies import LintLevel, lint  # noqa: PLC0415 - CEL and YAML: 60 ms, lint only

    state = state_of(ctx, json_output=json_output, verbose=verbose)
    messages = lint(_read_policy(file), str(file))
    errors = [m for m in messages if m.level is LintLevel.ERROR]
    emit(
        state,
        {
            "file": str(file),
            "ok": not errors,
            "messages": [
                {"level": str(m.level), "line": m.line, "path": m.path, "message": m.message}
                for m in messages
            ],
        },
        "\n".join(str(m) for m in messages) or f"{file}: ok",
    )
    if errors:
        refuse(f"{file}: {len(errors)} error(s), the first: {errors[0]}")


@policy_app.command("check")
def check_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NS/NAME, NS/NAME@sha256:DIGEST or NS/NAME@REV.")],
    env: Annotated[str, typer.Option("--env", help="The environment: dev, staging, prod, …")],
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help=f"Policy file (default: ${POLICY_ENV}, else shipped)."),
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Decide whether a checkpoint may be used in an environment, with every check's result."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    # Without --policy the registry applies its own (MODELCTL_POLICY, else the shipped set),
    # the same one `pull` enforces.
    text = _read_policy(policy) if policy is not None else None
    with open_registry(state) as registry:
        decision = registry.policy_check(ref, env, text, str(policy or ""))
    emit(state, decision.to_json(), render.decision_text(decision))
    if not decision.allowed:
        refuse(
            f"denied: {decision.name}@{decision.digest} is not admitted to "
            f"{decision.environment!r}: " + "; ".join(decision.reasons)
        )


_TARGET_HELP = (
    "NS/NAME[@sha256:DIGEST|@REV] (that manifest digest, under every name), a bare "
    "sha256:HEX (a manifest digest or a file's sha256), or `list`."
)


def quarantine_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help=_TARGET_HELP)],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the audit log).")
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Withdraw bytes from every environment at once, under every name, until `release`.

    `quarantine list` shows the active quarantines and what each holds.
    """
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    if target == "list":  # never a reference (NS/NAME) nor a digest (sha256:…)
        with open_registry(state) as registry:
            views = registry.quarantine_list()
        emit(
            state,
            {"quarantines": [v.to_json() for v in views]},
            "\n\n".join(render.quarantine_text(v) for v in views) or "no active quarantines",
        )
        return
    if reason is None:
        raise InputError("a quarantine needs a --reason")
    with open_registry(state) as registry:
        view = registry.quarantine(target, reason)
    emit(state, view.to_json(), render.quarantine_text(view))


def release_command(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="NS/NAME[@…] (its manifest digest) or a bare sha256:HEX.")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """End exactly the quarantine TARGET names (policies decide again, unless another holds)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        view = registry.release(target, reason)
    emit(state, view.to_json(), render.release_text(view))


exception_app = typer.Typer(help="Exceptions that waive named checks for one checkpoint.")
_RELATIVE = {"d": 86400, "h": 3600, "m": 60}


def parse_expiry(text: str, *, now: datetime) -> datetime:
    """`2026-12-31T00:00:00Z` (a time zone is required) or relative: `30d`, `12h`, `90m`."""
    count = text[:-1]
    if text and text[-1] in _RELATIVE and count.isascii() and count.isdigit():  # not '²d'
        try:
            return now + timedelta(seconds=int(count) * _RELATIVE[text[-1]])
        except OverflowError:
            raise InputError(f"--expires {text!r:.40} is too far in the future") from None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"--expires {text!r}: use 2026-12-31T00:00:00Z or 30d") from exc
    if when.tzinfo is None:
        raise InputError(f"--expires {text!r} needs a time zone (e.g. a trailing Z)")
    return when


@exception_app.command("request")
def exception_request(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The checkpoint (NS/NAME@sha256:DIGEST is best).")],
    waive: Annotated[
        list[str], typer.Option("--waive", help="Check id to waive (repeatable), e.g. licenses.")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why this is acceptable.")],
    expires: Annotated[str, typer.Option("--expires", help="2026-12-31T00:00:00Z or 30d.")],
    env: Annotated[
        list[str] | None, typer.Option("--env", help="Only in this environment (repeatable).")
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Ask for an exception: it waives nothing until another principal approves it."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    expires_at = parse_expiry(expires, now=datetime.now(UTC))
    with open_registry(state) as registry:
        view = registry.exception_request(
            ref,
            waive=list(waive),
            reason=reason,
            expires_at=expires_at,
            environments=list(env) if env else None,
        )
    emit(
        state,
        view.to_json(),
        f"exception request {view.id} by {view.requested_by}: {', '.join(view.waive)} for "
        f"{view.ref} until {view.to_json()['expires_at']}; it waives nothing until someone "
        f"else runs: modelctl exception approve {view.id}",
    )


@exception_app.command("approve")
def exception_approve(
    ctx: typer.Context,
    request_id: Annotated[int, typer.Argument(help="The request's id (`exception requests`).")],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Grant a pending request (as a principal other than the one that asked)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        view = registry.exception_approve(request_id)
    emit(
        state,
        view.to_json(),
        f"exception {view.id}: {', '.join(view.waive)} waived for {view.ref} until "
        f"{view.to_json()['expires_at']} (requested by {view.requested_by}, approved by "
        f"{view.approver})",
    )


@exception_app.command("reject")
def exception_reject(
    ctx: typer.Context,
    request_id: Annotated[int, typer.Argument(help="The request's id.")],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Turn a pending request down."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        view = registry.exception_reject(request_id)
    emit(state, view.to_json(), f"exception request {view.id} rejected")


@exception_app.command("requests")
def exception_requests(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, approved or rejected.")
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Requested exceptions (newest first)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        views = registry.exception_requests(status)
    rows = [v.to_json() for v in views]
    emit(
        state,
        {"requests": rows},
        "\n".join(
            f"{r['id']:>4}  {r['status']:<8}  {','.join(r['waive'])}  {r['ref']}  "
            f"(by {r['requested_by']}: {r['reason']})"
            for r in rows
        )
        or "no exception requests",
    )


@exception_app.command(
    "add",
    hidden=True,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
def exception_add(
    args: Annotated[list[str] | None, typer.Argument(hidden=True)] = None,
) -> None:
    """Removed: exceptions are requested by one principal and approved by another."""
    raise InputError(
        "`exception add` is gone: run `modelctl exception request REF --waive ID --reason … "
        "--expires 30d`, then another person runs `modelctl exception approve REQUEST_ID`"
    )


@exception_app.command("list")
def exception_list(
    ctx: typer.Context,
    ref: Annotated[str | None, typer.Argument(help="Only this checkpoint's.")] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Every exception, active, expired or revoked."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        views = registry.exception_list(ref)
    rows = [v.to_json() for v in views]
    emit(
        state,
        {"exceptions": rows},
        "\n".join(
            f"{r['id']:>4}  {'revoked' if r['revoked_at'] else 'until ' + r['expires_at']}  "
            f"{','.join(r['waive'])}  {r['ref']}  (requested by {r['requested_by']}, "
            f"approved by {r['approver']}: {r['reason']})"
            for r in rows
        )
        or "no exceptions",
    )


@exception_app.command("revoke")
def exception_revoke(
    ctx: typer.Context,
    exception_id: Annotated[int, typer.Argument(help="The exception's id.", min=1, max=MAX_ROW_ID)],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """End an exception now."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        view = registry.exception_revoke(exception_id)
    emit(state, view.to_json(), f"exception {view.id} revoked")
