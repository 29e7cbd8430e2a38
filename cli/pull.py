"""`modelctl pull REF --env ENV --dest DIR`: decide, then write the verified files.

The decision comes first: a denied checkpoint exits 1 naming the failing checks, and nothing
is written. Layouts and where the signature and decision go: `registry/client/materialize.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
from cli.progress import make_progress
from registry.errors import InputError
from registry.views import PullResult

LAYOUTS = ("plain", "hf-cache")


def pull_text(result: PullResult) -> str:
    short = result.digest.split(":")[-1][:12]
    lines = [
        f"pulled {result.name}@sha256:{short} (admitted to {result.environment}) into "
        f"{result.destination}",
        f"  files      {result.files}, {render.human_size(result.bytes)}, every digest matches "
        "the signed manifest",
        f"  model      {result.model_path}",
        f"  signature  {result.signature_path}",
        f"  decision   {result.decision_path}",
    ]
    if result.layout == "plain":
        lines.append(
            f"  check with modelctl verify {result.model_path} --signature "
            f"{result.signature_path} --public-key REGISTRY.pub"
        )
    else:
        lines.append(
            f"  load with HF_HUB_OFFLINE=1 and cache_dir={Path(result.destination).parent}"
        )
    return "\n".join(lines)


def pull_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NS/NAME, NS/NAME@sha256:DIGEST or NS/NAME@REV.")],
    env: Annotated[str, typer.Option("--env", help="Environment whose policy must admit it.")],
    dest: Annotated[Path, typer.Option("--dest", help="Folder to create (or HF cache folder).")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing destination.")
    ] = False,
    layout: Annotated[
        str,
        typer.Option("--layout", help="plain: the files in DEST; hf-cache: a Hugging Face cache."),
    ] = "plain",
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Pull an admitted checkpoint: decide, stream, re-hash against the signature, rename."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    if layout not in LAYOUTS:
        raise InputError(f"--layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    with open_registry(state) as registry:
        result = registry.pull(
            ref,
            env,
            dest,
            force=force,
            layout=layout,
            progress=make_progress(verbose=state.verbose),
        )
    # Warn mode lets the pull through; the failures must still be seen where the bytes land.
    for warning in result.decision.warnings:
        typer.echo(f"modelctl: warning: {result.environment}: {_one_line(warning)}", err=True)
    emit(state, result.to_json(), pull_text(result))


def _one_line(text: str) -> str:
    return " ".join(text.split())
