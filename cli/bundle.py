"""`modelctl bundle export REF… --out FILE` and `modelctl bundle import FILE`: air-gap bundles.

Both work on a registry home (embedded): a bundle is how bytes and evidence cross a gap that
no HTTP reaches. Exit codes as everywhere: 1 when evidence does not verify (tampered bytes, a
missing member, an untrusted signer, a path the signed index does not name), 2 when the input
cannot be read or does not fit (not a bundle, cut short, too large for the disk).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import render
from cli.options import JsonOption, State, VerboseOption, emit, state_of
from cli.progress import make_progress
from registry.errors import InputError
from registry.settings import Settings
from registry.views import BundleResult

if TYPE_CHECKING:
    from registry.embedded import EmbeddedRegistry

bundle_app = typer.Typer(
    help="Air-gap bundles: every byte and all evidence in one verifiable archive.",
    no_args_is_help=True,
)


def _embedded(state: State) -> EmbeddedRegistry:
    if state.registry_url:
        raise InputError("bundles are read and written on a registry home (--home), not --registry")
    from registry.embedded import EmbeddedRegistry  # noqa: PLC0415 - the heavy part, on use

    return EmbeddedRegistry(Settings.from_env(home=state.home))


def _text(verb: str, result: BundleResult) -> str:
    lines = [
        f"{verb} {len(result.checkpoints)} checkpoint(s), {result.files} file(s), "
        f"{render.human_size(result.bytes)}, {result.attestations} attestation(s): {result.path}"
    ]
    lines += [f"  {ref}" for ref in result.checkpoints]
    if result.new_bytes is not None:
        lines.append(f"  new bytes stored: {render.human_size(result.new_bytes)}")
    return "\n".join(lines)


@bundle_app.command("export")
def export_command(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(help="Checkpoints: NS/NAME[@sha256:DIGEST|@REV].")],
    out: Annotated[Path, typer.Option("--out", help="The bundle file to create (.tar).")],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Write checkpoints, their signatures, attestations and decisions, the registry's public
    key and a signed index into one tar archive (streamed; the registry key signs)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    registry = _embedded(state)
    try:
        result = registry.bundle_export(refs, out, progress=make_progress(verbose=state.verbose))
    finally:
        registry.close()
    emit(state, result.to_json(), _text("exported", result))


@bundle_app.command("import")
def import_command(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="A bundle made by `modelctl bundle export`.")],
    trust_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--trust-key",
            help="Public key (PEM) of the exporting registry; also MODELCTL_TRUSTED_KEYS.",
        ),
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Verify every byte, signature and path in a bundle, then register all of it, or
    nothing. No network is used."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    keys: list[bytes] = []
    for path in trust_key or []:
        try:
            keys.append(path.read_bytes())
        except OSError as exc:
            raise InputError(f"cannot read --trust-key {path}: {exc.strerror or exc}") from exc
    registry = _embedded(state)
    try:
        result = registry.bundle_import(
            bundle, trust_keys=keys, progress=make_progress(verbose=state.verbose)
        )
    finally:
        registry.close()
    emit(state, result.to_json(), _text("imported", result))
