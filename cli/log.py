"""`modelctl log`: the registry's transparency log, checked offline.

`verify` needs only the log folder (MODELCTL_HOME/log, or --dir) and the log's verifier key
(the home's own key, or --key for a copy of someone else's log): no database, no server.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.options import JsonOption, emit, state_of
from registry.errors import InputError
from registry.settings import Settings

if TYPE_CHECKING:
    from attestations.tlog import NoteVerifier

log_app = typer.Typer(
    help="The registry's transparency log (C2SP tlog-tiles): verify it, show its checkpoint.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="The log's verifier key (<name>+<id>+<key>, or a file holding it); "
        "default: this home's log key.",
    ),
]
DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="The log folder (default: MODELCTL_HOME/log).", file_okay=False),
]


def _refuse_remote(registry_url: str | None) -> None:
    if registry_url:
        raise InputError(
            "log commands read a log folder offline: unset --registry, copy the log "
            "(GET /v1/log/checkpoint, /v1/log/tile/...) and pass --dir and --key"
        )


def _verifier(settings: Settings, key: str | None) -> NoteVerifier:
    from attestations.errors import MalformedDocumentError  # noqa: PLC0415 - cryptography
    from attestations.tlog import NoteVerifier  # noqa: PLC0415
    from registry.tlog.key import log_verifier  # noqa: PLC0415

    if key is None:
        found = log_verifier(settings)
        if found is None:
            raise InputError(f"no log key in {settings.log_key_path}: pass --key")
        return found
    text = key
    if "+" not in key:
        try:
            text = Path(key).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the verifier key file {key}") from exc
    try:
        return NoteVerifier.parse(text)
    except MalformedDocumentError as exc:
        raise InputError(f"--key: {exc.message}") from exc


@log_app.command("verify")
def verify_command(
    ctx: typer.Context,
    entry: Annotated[
        int | None, typer.Option("--entry", help="Also prove entry N is in the log.", min=0)
    ] = None,
    since: Annotated[
        Path | None,
        typer.Option(
            "--since",
            help="An older checkpoint file you kept: prove the log only grew since.",
            dir_okay=False,
        ),
    ] = None,
    key: KeyOption = None,
    directory: DirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check the checkpoint's signature and recompute the tree from the entries and tiles."""
    from registry.tlog.verify import verify_log  # noqa: PLC0415 - cryptography

    state = state_of(ctx, json_output=json_output, verbose=False)
    _refuse_remote(state.registry_url)
    settings = Settings.from_env(home=state.home)
    verifier = _verifier(settings, key)
    older = None
    if since is not None:
        try:
            older = since.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {since}: {exc.strerror}") from exc
    result = verify_log(directory or settings.log_root, verifier, entry, older)
    checkpoint = result.checkpoint
    data: dict[str, Any] = {
        "verified": True,
        "origin": checkpoint.origin,
        "size": checkpoint.size,
        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
        "key": verifier.vkey(),
        "tiles_checked": result.tiles_checked,
    }
    lines = [
        f"log {checkpoint.origin}: {checkpoint.size} entries, root "
        f"{data['root_hash']}, signed by {result.key_name} ({result.key_id}); "
        f"{result.tiles_checked} tiles and every entry recomputed",
    ]
    if result.extends is not None:
        data["extends"] = {"size": result.extends.size}
        lines.append(f"it extends the checkpoint of size {result.extends.size} (consistent)")
    if result.inclusion is not None:
        proof = [base64.b64encode(h).decode() for h in result.inclusion.proof]
        data["inclusion"] = {
            "index": result.inclusion.index,
            "entry": result.inclusion.entry.decode("utf-8", errors="replace"),
            "leaf_hash": base64.b64encode(result.inclusion.leaf_hash).decode(),
            "proof": proof,
        }
        lines.append(
            f"entry {result.inclusion.index} is included ({len(proof)} proof hashes): "
            f"{data['inclusion']['entry']}"
        )
    emit(state, data, "\n".join(lines))


@log_app.command("checkpoint")
def checkpoint_command(
    ctx: typer.Context,
    key: KeyOption = None,
    directory: DirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print the log's current signed checkpoint (verified first) and its verifier key."""
    from registry.tlog.files import CHECKPOINT, LogFolder  # noqa: PLC0415 - cryptography

    state = state_of(ctx, json_output=json_output, verbose=False)
    _refuse_remote(state.registry_url)
    settings = Settings.from_env(home=state.home)
    verifier = _verifier(settings, key)
    folder = LogFolder(directory or settings.log_root)
    if not folder.has_checkpoint():
        raise InputError(f"no transparency log checkpoint in {folder.root}")
    checkpoint = folder.checkpoint(verifier)
    note = folder.read(CHECKPOINT).decode()
    data = {
        "origin": checkpoint.origin,
        "size": checkpoint.size,
        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
        "key": verifier.vkey(),
        "checkpoint": note,
    }
    emit(state, data, note.rstrip("\n") + f"\n\nverifier key: {verifier.vkey()}")


__all__ = ["log_app"]
