"""Pick the blob store from the scheme of MODELCTL_BLOB_STORE.

- a path or `file:///path`: the local folder store (`registry.blobs.local`);
- `memory://` or `memory://NAME`: the in-memory store, one per name and process (tests);
- `s3://bucket/prefix`: the S3-compatible object store (`registry.blobs.s3`), checked at once;
- anything else with a scheme: refused, naming the schemes there are.

A new store is one module under `registry/blobs/` and one branch here.
"""

from __future__ import annotations

import threading
from pathlib import Path

from registry.blobs.base import BlobStore
from registry.blobs.local import LocalBlobStore
from registry.blobs.memory import MemoryBlobStore
from registry.errors import InputError

SCHEMES = ("file", "memory", "s3")

_memory_stores: dict[str, MemoryBlobStore] = {}
_memory_lock = threading.Lock()


def open_blob_store(spec: str) -> BlobStore:
    """The store that `spec` (the value of MODELCTL_BLOB_STORE) names; `InputError` if none."""
    scheme, _, rest = spec.partition("://")
    if not _:
        return LocalBlobStore(local_root(spec))
    if scheme == "file":
        return LocalBlobStore(local_root(spec))
    if scheme == "memory":
        return memory_store(rest)
    if scheme == "s3":
        # Imported only here: the S3 store loads botocore (an optional extra, 0.2 s).
        from registry.blobs.s3 import S3BlobStore  # noqa: PLC0415

        return S3BlobStore(spec)
    raise InputError(
        f"unsupported blob store {spec!r}: use a folder, file:///PATH, s3://BUCKET/PREFIX "
        "or memory://NAME"
    )


def local_root(spec: str) -> Path:
    """The folder of a local store spec: a bare path or `file:///path`."""
    if spec.startswith("file://"):
        return Path(spec[len("file://") :])
    if "://" in spec:
        raise InputError(f"blob store {spec!r} is not a local folder")
    return Path(spec)


def memory_store(name: str = "") -> MemoryBlobStore:
    """The process's in-memory store called `name`, created on first use."""
    with _memory_lock:
        store = _memory_stores.get(name)
        if store is None:
            store = _memory_stores[name] = MemoryBlobStore()
        return store
