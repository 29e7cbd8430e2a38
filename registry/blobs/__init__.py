"""Content-addressed blob storage: the ports, their implementations and the factory."""

from registry.blobs.base import (
    BlobEntry,
    BlobReader,
    BlobStore,
    BlobSweeper,
    BlobUpload,
    BlobWriter,
    LeftoverUpload,
    StoredBlob,
    blob_key,
)

__all__ = [
    "BlobEntry",
    "BlobReader",
    "BlobStore",
    "BlobSweeper",
    "BlobUpload",
    "BlobWriter",
    "LeftoverUpload",
    "StoredBlob",
    "blob_key",
]
