"""Small filesystem helpers: files appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from registry.errors import InputError, StorageError


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, overwrite: bool = True) -> None:
    """Write `data` to a temp file beside `path`, fsync, then rename it into place."""
    if not overwrite and (path.exists() or path.is_symlink()):
        raise InputError(f"{path} already exists; refusing to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"folder {parent} does not exist")
    temp = parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(temp, path)
        else:
            os.link(temp, path)  # fails if `path` appeared meanwhile: never clobbers
            temp.unlink()
    except FileExistsError as exc:
        raise InputError(f"{path} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
