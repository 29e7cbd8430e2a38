"""The registry's own signing key: configured, or made on first use, always encrypted at rest."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

from attestations.errors import SigningError
from attestations.keys import KeySigner, generate_key, load_private_key
from registry.errors import InputError, StorageError
from registry.fsutil import atomic_write
from registry.settings import Settings

PASSPHRASE_VARIABLE = "MODELCTL_SIGNING_KEY_PASSPHRASE"  # noqa: S105 (a variable name)


@functools.cache  # reading package metadata parses files: once a process, not per decision
def tool_version() -> str:
    try:
        return version("modelctl")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def registry_signer(settings: Settings) -> KeySigner:
    """Load the registry key, creating it (P-256, encrypted) the first time.

    The passphrase comes from the environment only: a registry key never sits unencrypted on
    disk and is never prompted for (servers and workers have no terminal).
    """
    path = settings.signing_key_path
    passphrase = settings.signing_key_passphrase
    if not passphrase:
        raise InputError(
            f"the registry signs with an encrypted key ({path}): set {PASSPHRASE_VARIABLE}"
        )
    if not path.exists():
        if settings.signing_key is not None:
            raise InputError(f"MODELCTL_SIGNING_KEY {path} does not exist")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot create {path.parent}: {exc.strerror}") from exc
        pair = generate_key("P-256", passphrase=passphrase.encode())
        atomic_write(path, pair.private_pem, mode=0o600, overwrite=False)
        atomic_write(path.with_suffix(".pub"), pair.public_pem, overwrite=True)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read the registry key {path}: {exc.strerror}") from exc
    try:
        return KeySigner(load_private_key(pem, passphrase.encode()))
    except SigningError as exc:
        raise InputError(f"registry key {path}: {exc.message}") from exc


__all__ = ["PASSPHRASE_VARIABLE", "registry_signer", "tool_version"]


def registry_public_key(settings: Settings) -> bytes | None:
    """The registry's public key: the `.pub` beside the key, else from the (decrypted) key;
    None before the first `attest` made one."""
    pub = settings.signing_key_path.with_suffix(".pub")
    if pub.is_file():
        return pub.read_bytes()
    if settings.signing_key_passphrase and settings.signing_key_path.is_file():
        return registry_signer(settings).public_pem
    return None
