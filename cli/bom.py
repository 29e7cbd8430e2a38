"""`modelctl bom REF --format cyclonedx|spdx [--out FILE]`: an ML-BOM of a checkpoint.

The document goes to stdout (or atomically to `--out`); the signature, when the registry
signed it, is an attestation of the checkpoint, named on stderr. The BOM libraries load only
inside the registry when this command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.options import JsonOption, VerboseOption, open_registry, state_of
from registry.errors import InputError
from registry.fsutil import atomic_write

BOM_FORMATS = ("cyclonedx", "spdx")


def bom_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NS/NAME, NS/NAME@sha256:DIGEST or NS/NAME@REV.")],
    fmt: Annotated[
        str, typer.Option("--format", help="cyclonedx (CycloneDX 1.6) or spdx (SPDX 3.0.1, AI).")
    ] = "cyclonedx",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the document here instead of stdout.")
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Write an ML-BOM: every file with its hash, the source and commit, the model card's
    declarations, signatures and scans, each field tagged verified, declared or absent."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    if fmt not in BOM_FORMATS:
        raise InputError(f"--format {fmt!r}: expected one of {', '.join(BOM_FORMATS)}")
    with open_registry(state) as registry:
        result = registry.bom(ref, fmt)
    signed = (
        f"signed as attestation {result.attestation.id} ({result.attestation.signer})"
        if result.attestation is not None
        else "not signed: the registry key is not configured (MODELCTL_SIGNING_KEY_PASSPHRASE)"
    )
    if out is not None:
        atomic_write(out, result.document.encode())
        if state.json:
            typer.echo(render.dumps({**result.to_json(), "document": None, "out": str(out)}))
        else:
            typer.echo(f"wrote {result.format} ML-BOM of {ref} to {out}; {signed}")
        return
    typer.echo(render.dumps(result.to_json()) if state.json else result.document)
    typer.echo(f"modelctl: {signed}", err=True)
