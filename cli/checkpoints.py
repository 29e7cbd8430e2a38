"""The registry's checkpoint commands: `mirror`, `models`, `inspect` and `attest`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli import render, scanning
from cli.errors import refuse
from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
from cli.progress import make_progress
from registry.fsutil import atomic_write
from registry.requests import MirrorRequest


def mirror(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="hf://ORG/NAME[@REV], ms://ORG/NAME[@REV] or a local folder.")
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Register as NS/NAME (default: the source's).")
    ] = None,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch, tag or commit to pin.")
    ] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Only paths matching this glob.")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Skip paths matching this glob.")
    ] = None,
    no_scan: Annotated[
        bool, typer.Option("--no-scan", help="Do not run the scanners on what was stored.")
    ] = False,
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on",
            help="Exit 1 on findings at or above: "
            f"{', '.join(scanning.FAIL_ON_CHOICES)} (as scan; the checkpoint is still recorded).",
        ),
    ] = "high",
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Mirror a model: pin its revision, hash every file while it streams, register, scan.

    Like `scan`, exits 1 when the scan finds something at or above `--fail-on` (default
    high); the checkpoint is recorded all the same (it is evidence, and policy denies it)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    scanning.check_fail_on(fail_on)
    with open_registry(state) as registry:
        result = registry.mirror(
            MirrorRequest(
                source=source,
                name=name,
                revision=revision,
                include=tuple(include or ()),
                exclude=tuple(exclude or ()),
                scan=not no_scan,
            ),
            progress=make_progress(verbose=state.verbose),
        )
    emit(state, result.to_json(), render.mirror_text(result))
    reason = scanning.fail_on_reason(result.scan.report, fail_on) if result.scan else None
    if reason is not None:
        refuse(f"mirrored {result.checkpoint.ref}, but {reason}")


def models(
    ctx: typer.Context, json_output: JsonOption = False, verbose: VerboseOption = False
) -> None:
    """List models and their checkpoints."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        found = registry.models()
    emit(state, {"models": [m.to_json() for m in found]}, render.models_text(found))


def inspect(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NS/NAME, NS/NAME@sha256:DIGEST or NS/NAME@REV.")],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Show a checkpoint: files, digests, scans, attestations, decisions."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        view = registry.inspect(ref)
    emit(state, view.to_json(), render.inspect_text(view))


def attest(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NS/NAME, NS/NAME@sha256:DIGEST or NS/NAME@REV.")],
    signature_out: Annotated[
        Path | None,
        typer.Option("--signature-out", help="Also write the model signature bundle here."),
    ] = None,
    public_key_out: Annotated[
        Path | None,
        typer.Option("--public-key-out", help="Also write the registry's public key here."),
    ] = None,
    allow_findings: Annotated[
        bool,
        typer.Option(
            "--allow-findings",
            help="Sign even when the newest scans hold critical or malicious findings.",
        ),
    ] = False,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """(Re)issue the registry's signed attestations for a checkpoint.

    Refused (exit 1) while the newest scans hold critical or malicious findings: a
    signature attests identity, not safety. `--allow-findings` signs anyway, with a warning
    per such file."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        result = registry.attest(ref, allow_findings=allow_findings)
    for finding in result.findings:
        print(f"modelctl: warning: signed despite {finding.line()}", file=sys.stderr)
    if signature_out is not None:
        atomic_write(signature_out, result.model_signature)
    if public_key_out is not None:
        atomic_write(public_key_out, result.public_key_pem)
    emit(state, result.to_json(), render.attest_text(result))
