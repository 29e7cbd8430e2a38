"""`modelctl policy lint FILE` and `modelctl policy check REF --env ENV`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
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
    from policies import LintLevel, lint

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
        raise typer.Exit(1)


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
    source = policy or (Path(os.environ[POLICY_ENV]) if os.environ.get(POLICY_ENV) else None)
    text = _read_policy(source) if source is not None else None
    with open_registry(state) as registry:
        decision = registry.policy_check(ref, env, text, str(source or ""))
    emit(state, decision.to_json(), render.decision_text(decision))
    if not decision.allowed:
        raise typer.Exit(1)


def quarantine_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NS/NAME, NS/NAME@sha256:DIGEST or NS/NAME@REV.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Withdraw a checkpoint: every environment denies it at once, until `release`."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        view = registry.quarantine(ref, reason)
    emit(state, view.to_json(), f"quarantined {view.ref}: {reason}")


def release_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NS/NAME, NS/NAME@sha256:DIGEST or NS/NAME@REV.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """End a checkpoint's quarantine (policies decide again)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        view = registry.release(ref, reason)
    emit(state, view.to_json(), f"released {view.ref}: {reason}")
