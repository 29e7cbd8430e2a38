"""`modelctl`: the Typer app. Commands parse, call the registry, render; nothing more."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from attestations.errors import AttestationError
from cli import render
from cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, exit_code_for, kind_of
from cli.lazy import LazyGroup
from cli.options import JsonOption, State, emit
from registry.errors import RegistryError

app = typer.Typer(
    name="modelctl",
    cls=LazyGroup,  # every command's module loads when that command runs (cli/lazy.py)
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
    # Imported here: reading distribution metadata costs 40 ms that no other command needs.
    from importlib import metadata  # noqa: PLC0415

    try:
        return metadata.version("modelctl")
    except metadata.PackageNotFoundError:
        return "0+unknown (not installed)"


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
