"""The log's Ed25519 key and origin: made on first use, kept 0600 under MODELCTL_HOME/keys/."""

from __future__ import annotations

import contextlib
import socket

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from attestations.tlog import NoteSigner, NoteVerifier
from registry.errors import InputError, StorageError
from registry.fsutil import atomic_write
from registry.settings import Settings


def log_origin(settings: Settings) -> str:
    """MODELCTL_LOG_ORIGIN, else `modelctl.local/<hostname>`; it also names the log key."""
    return settings.log_origin or f"modelctl.local/{socket.gethostname()}"


def log_signer(settings: Settings) -> NoteSigner:
    """Load the log key, creating it the first time.

    Unlike the registry's P-256 key it is not passphrase-encrypted: a checkpoint is signed on
    every append, by servers and workers with no terminal, and the key only vouches for the
    log's own tree heads (file mode 0600, folder 0700).
    """
    path = settings.log_key_path
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot create {path.parent}: {exc.strerror}") from exc
        pem = Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
        with contextlib.suppress(InputError):  # another process made it first: use theirs
            atomic_write(path, pem, mode=0o600, overwrite=False)
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise StorageError(f"cannot read the log key {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise InputError(f"log key {path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"log key {path} is not an Ed25519 key")
    return NoteSigner(name=log_origin(settings), private_key=key)


def log_verifier(settings: Settings) -> NoteVerifier | None:
    """The log's public verifier key, None before the first append made the key."""
    if not settings.log_key_path.exists():
        return None
    return log_signer(settings).verifier


__all__ = ["log_origin", "log_signer", "log_verifier"]
