"""Hash a model folder the way OpenSSF model signing v1.0 does, using every core.

Two serializations: `files` (one sha256 per file) and `shards` (one per `shard_size` byte
range of each file, so one huge file spreads over all cores). Hashing runs on a thread pool
(hashlib releases the GIL) over one reusable buffer per task: memory is flat in model size.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from attestations.errors import InvalidInputError, UnsafePathError, VerificationError
from attestations.manifest import sort_key, validate_path

Method = Literal["files", "shards"]
HashType = Literal["sha256", "blake2", "blake2b"]
DEFAULT_SHARD_SIZE = 1_000_000_000
DEFAULT_IGNORE_PATHS: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")
READ_SIZE = 1 << 20


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


# model_signing's API calls it "blake2"; version 1.1.1 writes "blake2b" into signatures.
_HASHERS: dict[str, Callable[[], _Hasher]] = {
    "sha256": hashlib.sha256,
    "blake2": hashlib.blake2b,
    "blake2b": hashlib.blake2b,
}
#: The per-resource `algorithm` model_signing writes for each hash type.
ALGORITHM_NAMES: dict[str, str] = {"sha256": "sha256", "blake2": "blake2b", "blake2b": "blake2b"}
#: model_signing names the one resource of a single-file model `.` (the file relative to
#: itself); the OMS spec names it by the file's name. Both verify; we write the file's name.
SINGLE_FILE_NAME = "."
#: Shard offsets are canonical ASCII decimals, so one range has exactly one spelling.
_OFFSET = re.compile(r"0|[1-9][0-9]*")


class SymlinkRefusedError(VerificationError):
    """The folder holds a symlink and the serialization does not allow symlinks."""


@dataclass(frozen=True, slots=True)
class Serialization:
    method: Method = "files"
    hash_type: HashType = "sha256"
    allow_symlinks: bool = False
    shard_size: int = DEFAULT_SHARD_SIZE  # shards only
    ignore_paths: tuple[str, ...] = DEFAULT_IGNORE_PATHS

    def __post_init__(self) -> None:
        if self.method not in ("files", "shards"):
            raise InvalidInputError(f"unknown serialization method {self.method!r}")
        if self.hash_type not in _HASHERS:
            raise InvalidInputError(f"unsupported hash type {self.hash_type!r}")
        if self.shard_size <= 0:
            raise InvalidInputError("shard_size must be positive")

    @property
    def algorithm(self) -> str:
        base = ALGORITHM_NAMES[self.hash_type]
        return base if self.method == "files" else f"{base}-sharded-{self.shard_size}"


@dataclass(frozen=True, slots=True, order=True)
class Resource:
    """One manifest item: a file, or a byte range `[start, end)` of one."""

    path: str
    start: int | None
    end: int | None
    digest: bytes

    @property
    def name(self) -> str:
        return self.path if self.start is None else f"{self.path}:{self.start}:{self.end}"

    @property
    def key(self) -> tuple[tuple[str, ...], int, int]:
        """model_signing's order: path components, then start and end as integers."""
        return (sort_key(self.path), self.start or 0, self.end or 0)


def parse_resource_name(name: str, method: Method) -> tuple[str, int | None, int | None]:
    """`path` (files) or `path:start:end` (shards), with the path held to manifest rules."""
    if method == "files":
        return (name if name == SINGLE_FILE_NAME else validate_path(name)), None, None
    path, sep1, rest = name.rpartition(":")
    path, sep2, start_text = path.rpartition(":")
    end_text = rest
    if not (sep1 and sep2 and _OFFSET.fullmatch(start_text) and _OFFSET.fullmatch(end_text)):
        raise InvalidInputError(f"shard resource name is not path:start:end: {name!r:.120}")
    start, end = int(start_text), int(end_text)
    if start >= end:
        raise InvalidInputError(f"empty or reversed shard range in {name!r:.120}")
    return (path if path == SINGLE_FILE_NAME else validate_path(path)), start, end


def validate_ignore_path(path: str) -> str:
    """An ignore path as OMS 6.2.1 has it: an exact path relative to the model root.

    No glob characters, no leading `/`, no `..` (nor anything else a manifest path may not
    hold). A trailing `/` is dropped. Raises `InvalidInputError` naming the entry.
    """
    if any(ch in path for ch in "*?["):
        raise InvalidInputError(f"ignore path {path!r:.100} has a glob character: give exact paths")
    try:
        return validate_path(path.rstrip("/") if path != "/" else path)
    except UnsafePathError as exc:
        raise InvalidInputError(f"ignore path {path!r:.100}: {exc.message}") from exc


def _is_ignored(rel: str, ignore_paths: Iterable[str]) -> bool:
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in ignore_paths)


def list_files(root: Path, serialization: Serialization) -> list[tuple[str, int]]:
    """Every file under `root` that the serialization covers: (relative path, size).

    Raises `SymlinkRefusedError` for a symlink the serialization does not allow, and
    `UnsafePathError` for names no manifest can hold.
    """
    single = _single_file(root, serialization)
    if single is not None:
        return [single]
    files: list[tuple[str, int]] = []
    root = root.resolve()
    # Followed links can lead back up the tree: a folder reached twice on one path is a cycle,
    # refused (it would never end), OMS 6.1.1.
    ancestors: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=serialization.allow_symlinks):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        if serialization.allow_symlinks:
            _refuse_cycle(Path(dirpath), rel_dir, ancestors)
        kept_dirs = []
        for name in sorted(dirnames):
            rel = prefix + name
            if _is_ignored(rel, serialization.ignore_paths):
                continue
            if (Path(dirpath) / name).is_symlink():
                _check_link(Path(dirpath) / name, rel, root, serialization)
            kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            rel = prefix + name
            if _is_ignored(rel, serialization.ignore_paths):
                continue
            full = Path(dirpath) / name
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                _check_link(full, rel, root, serialization)
                st = full.stat()
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePathError(f"{rel!r} in the model folder is not a regular file")
            try:
                validate_path(rel)
            except UnsafePathError as exc:
                raise UnsafePathError(f"model folder: {exc.message}") from exc
            files.append((rel, st.st_size))
    return files


def _check_link(link: Path, rel: str, root: Path, serialization: Serialization) -> None:
    """A symlink is refused unless the serialization allows symlinks, and then it must stay
    inside the model folder (OMS 6.1.1): a signature never makes us read the rest of the disk."""
    if not serialization.allow_symlinks:
        raise SymlinkRefusedError(f"symlink {rel!r} in the model folder is not allowed")
    if not link.resolve().is_relative_to(root):
        raise UnsafePathError(f"symlink {rel!r} points outside the model folder")


def _refuse_cycle(folder: Path, rel_dir: str, seen: dict[str, tuple[int, int]]) -> None:
    """`folder` is the same folder as one of its ancestors on this path: a symlink cycle."""
    st = folder.stat()
    here = (st.st_dev, st.st_ino)
    parts = [] if rel_dir == "." else rel_dir.split("/")
    ancestors = [".", *("/".join(parts[:i]) for i in range(1, len(parts)))]
    if parts and any(seen.get(a) == here for a in ancestors):
        raise UnsafePathError(f"symlink cycle in the model folder at {rel_dir!r}")
    seen[rel_dir] = here


def _single_file(root: Path, serialization: Serialization) -> tuple[str, int] | None:
    """A model that is one file: its resource is named by the file name alone (OMS 6.1.2).

    None when `root` is a folder. Ignore paths do not apply to a single file (as in
    model_signing); a symlink is refused unless the serialization allows symlinks.
    """
    try:
        st = root.lstat()
    except OSError as exc:
        raise InvalidInputError(f"cannot read the model {root}: {exc.strerror}") from exc
    if stat.S_ISLNK(st.st_mode):
        target = root.stat()
        if stat.S_ISDIR(target.st_mode):
            return None  # the folder named by a link: walked as before, its own links checked
        if not serialization.allow_symlinks:
            raise SymlinkRefusedError(f"the model {root.name!r} is a symlink, which is not allowed")
        st = target
    if stat.S_ISDIR(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePathError(f"the model {root.name!r} is not a regular file or a folder")
    try:
        validate_path(root.name)
    except UnsafePathError as exc:
        raise UnsafePathError(f"model file: {exc.message}") from exc
    return root.name, st.st_size


def model_base(root: Path) -> Path:
    """The folder resource names are relative to: the model folder, or a single file's."""
    resolved = root.resolve()
    return resolved if resolved.is_dir() else resolved.parent


def _hash_range(path: Path, start: int, end: int, hash_type: str) -> bytes:
    hasher = _HASHERS[hash_type]()
    buf = bytearray(READ_SIZE)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            n = f.readinto(view[: min(READ_SIZE, remaining)])
            if not n:
                raise VerificationError(f"{path.name} shrank while it was being hashed")
            hasher.update(view[:n])
            remaining -= n
    return hasher.digest()


def hash_folder(
    root: Path, serialization: Serialization, *, workers: int | None = None
) -> list[Resource]:
    """Resources of `root` in model_signing order."""
    files = list_files(root, serialization)
    tasks: list[tuple[str, int | None, int | None, int, int]] = []
    for rel, size in files:
        if serialization.method == "files":
            tasks.append((rel, None, None, 0, size))
        else:
            # model_signing makes no shard for an empty file.
            for start in range(0, size, serialization.shard_size):
                end = min(start + serialization.shard_size, size)
                tasks.append((rel, start, end, start, end))
    # Big pieces first, so the pool never ends waiting on one large file started last.
    tasks.sort(key=lambda t: t[3] - t[4])
    base = model_base(root)
    single = not root.resolve().is_dir()

    def run(task: tuple[str, int | None, int | None, int, int]) -> Resource:
        rel, start, end, lo, hi = task
        path = root if single else base / rel
        return Resource(rel, start, end, _hash_range(path, lo, hi, serialization.hash_type))

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        resources = list(pool.map(run, tasks))
    return sorted(resources, key=lambda r: r.key)
