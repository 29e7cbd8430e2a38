"""Content-addressed blob storage: the ports, their implementations and the factory."""

from registry.blobs.base import (
    BlobReader,
    BlobStore,
    BlobUpload,
    BlobWriter,
    StoredBlob,
    blob_key,
)

__all__ = ["BlobReader", "BlobStore", "BlobUpload", "BlobWriter", "StoredBlob", "blob_key"]
