"""`modelctl`: the Typer app. Commands parse, call the registry, render; nothing more."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from attestations.errors import AttestationError
from cli import check_pod, policy, render, scanning, signing
from cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, exit_code_for, kind_of, refuse
from cli.findings import finding_app
from cli.options import JsonOption, State, VerboseOption, emit, open_registry, state_of
from cli.progress import make_progress
from cli.pull import pull_command  # pull
from cli.rescan import rescan_command
from cli.serve import serve, worker  # serve
from cli.sync import sync_command
from cli.tokens import audit_command, tokens_app  # serve
from registry.errors import RegistryError
from registry.fsutil import atomic_write
from registry.requests import MirrorRequest

app = typer.Typer(
    name="modelctl",
    help="Model supply-chain registry: mirror, scan, attest, admit and pull model checkpoints.",
    no_args_is_help=True,
    invoke_without_command=True,  # so that `modelctl --version` runs without a command
    add_completion=False,
    pretty_exceptions_enable=False,  # tracebacks with locals could print tokens
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="MODELCTL_HOME",
            help="Registry home (database and blobs). Default: ~/.local/share/modelctl.",
        ),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option("--registry", envvar="MODELCTL_REGISTRY", help="URL of a remote registry."),
    ] = None,
    json_output: JsonOption = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="More detail on stderr.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the installed version and exit.")
    ] = False,
) -> None:
    ctx.obj = State(home=home, registry_url=registry_url, json=json_output, verbose=verbose)
    if version:
        installed = distribution_version()
        emit(ctx.obj, {"name": "modelctl", "version": installed}, f"modelctl {installed}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        ctx.fail("Missing command.")  # what the group says without invoke_without_command


def distribution_version() -> str:
    """The version of the installed `modelctl` distribution (pyproject.toml's, once installed).

    A source tree run without installing it (only on `PYTHONPATH`) has no distribution
    metadata; it says so rather than guessing a number."""
    try:
        return importlib.metadata.version("modelctl")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown (not installed)"


app.add_typer(signing.keys_app, name="keys")
app.command("sign")(signing.sign)
app.command("verify")(signing.verify)
app.command("scan")(scanning.scan)
app.command("rescan")(rescan_command)
app.command("sync")(sync_command)
app.add_typer(policy.policy_app, name="policy")
app.command("check-pod")(check_pod.check_pod)
app.command("quarantine")(policy.quarantine_command)
app.command("release")(policy.release_command)
app.add_typer(policy.exception_app, name="exception")
app.add_typer(finding_app, name="finding")
app.command("pull")(pull_command)  # pull (added for `modelctl pull`)
app.command("serve")(serve)  # serve (added for `modelctl serve`)
app.command("worker")(worker)  # serve
app.add_typer(tokens_app, name="tokens")  # serve
app.command("audit")(audit_command)  # serve


@app.command()
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


@app.command()
def models(
    ctx: typer.Context, json_output: JsonOption = False, verbose: VerboseOption = False
) -> None:
    """List models and their checkpoints."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        found = registry.models()
    emit(state, {"models": [m.to_json() for m in found]}, render.models_text(found))


@app.command()
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


@app.command()
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


def _fail(message: str, code: int, *, as_json: bool, kind: str, reasons: list[str]) -> NoReturn:
    line = " ".join(message.split())  # one line, whatever the message held
    print(f"modelctl: error: {line}", file=sys.stderr)
    if as_json:
        print(render.dumps({"error": line, "kind": kind, "reasons": reasons}))
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app and map every error to one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    wants_json = "--json" in args
    try:
        code = app(args=args, prog_name="modelctl", standalone_mode=False)
    except RegistryError as exc:
        _fail(
            exc.message,
            exit_code_for(exc),
            as_json=wants_json,
            kind=kind_of(exc),
            reasons=exc.reasons,
        )
    except AttestationError as exc:
        _fail(exc.message, exit_code_for(exc), as_json=wants_json, kind=kind_of(exc), reasons=[])
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted", EXIT_INTERRUPTED, as_json=wants_json, kind="interrupted", reasons=[])
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.TyperException as exc:  # Click's usage errors, vendored by Typer
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message(), file=sys.stderr)
            raise SystemExit(EXIT_ERROR) from None
        formatter = getattr(exc, "format_message", None)
        message = formatter() if callable(formatter) else str(exc)
        _fail(message, EXIT_ERROR, as_json=wants_json, kind="usage", reasons=[])
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
