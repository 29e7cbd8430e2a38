"""`modelctl push REF oci://HOST[:PORT]/REPO[:TAG] [--env ENV]`: publish as a ModelPack artifact.

The checkpoint goes out as its signature describes it: one layer per signed file (the layer
digest is the file's sha256), the config carrying the checkpoint's manifest digest, and the
signature bundle and scan attestations attached as OCI 1.1 referrers. Like `pull`, `--env`
is required: a checkpoint the environment does not admit exits 1 and nothing is sent.
Credentials come from `REGISTRY_AUTH_FILE` or `~/.docker/config.json`; see
`registry/service/oci_push.py`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli import render
from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
from cli.progress import make_progress
from registry.errors import InputError
from registry.views import PushResult


def push_text(result: PushResult) -> str:
    lines = [
        f"pushed {result.ref} as {result.target}@{result.oci_digest}",
        f"  layers     {result.layers} ({result.layers_sent} sent, "
        f"{render.human_size(result.bytes_sent)}; the others were already there)",
    ]
    lines += [f"  referrer   {r.digest}  {r.predicate_type}" for r in result.referrers]
    return "\n".join(lines)


def push_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NS/NAME, NS/NAME@sha256:DIGEST or NS/NAME@REV.")],
    target: Annotated[str, typer.Argument(help="oci://HOST[:PORT]/REPO[:TAG]")],
    env: Annotated[
        str, typer.Option("--env", help="Environment whose policy must admit it (as pull).")
    ],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Publish a signed checkpoint to an OCI registry as a CNCF ModelPack artifact."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        push = getattr(registry, "push", None)
        if push is None:
            raise InputError("push runs against the embedded registry, not --registry URL")
        result: PushResult = push(ref, target, env, progress=make_progress(verbose=state.verbose))
    emit(state, result.to_json(), push_text(result))
