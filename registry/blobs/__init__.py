"""Content-addressed blob storage: the port and its implementations."""

from registry.blobs.base import BlobStore, BlobUpload, StoredBlob, blob_key

__all__ = ["BlobStore", "BlobUpload", "StoredBlob", "blob_key"]
