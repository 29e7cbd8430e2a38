"""The blob stores' contract, run against every store: verified, atomic, deduplicated,
resumable by appending. Then what only the local folder store promises (files, modes,
symlinks, stale temp files, a full disk), and the factory that picks a store."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from pathlib import Path

import pytest

from attestations.digests import Digest
from registry.blobs.base import BlobStore
from registry.blobs.factory import memory_store, open_blob_store
from registry.blobs.local import LocalBlobStore
from registry.blobs.memory import MemoryBlobStore
from registry.blobs.s3 import S3BlobStore
from registry.errors import InputError, IntegrityFailure, NotFound, StorageError
from registry.mirror.hf import HttpGetFile
from registry.service.transfer import UploadSink
from tests.s3_server import moto_endpoint, s3_spec

__all__ = ["moto_endpoint", "s3_spec"]  # fixtures for the S3 store


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    if request.param == "s3":
        return open_blob_store(request.getfixturevalue("s3_spec"))
    return MemoryBlobStore()


@pytest.fixture
def local(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def leftovers(store: BlobStore) -> list[str]:
    """Uploads in flight and partials kept for resuming."""
    if isinstance(store, LocalBlobStore):
        return sorted(p.name for p in store.tmp.iterdir())
    if isinstance(store, S3BlobStore):
        return sorted(u.name for u in store.leftover_uploads())
    assert isinstance(store, MemoryBlobStore)
    return store.in_flight()


def read(store: BlobStore, digest: Digest) -> bytes:
    with store.open(digest) as f:
        return f.read()


# -- the contract: every store --------------------------------------------------------------


def test_commit_publishes_under_the_digest(store: BlobStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    assert not store.exists(Digest.of(data))
    with store.upload(expected_sha256=Digest.of(data), expected_size=len(data)) as up:
        for i in range(0, len(data), 65536):
            up.write(data[i : i + 65536])
        assert up.tell() == len(data)
        assert not store.exists(Digest.of(data))  # nothing visible before the commit
        blob = up.commit()
    assert blob.digest == Digest.of(data)
    assert blob.created
    assert blob.key == f"sha256/{blob.digest.hex[:2]}/{blob.digest.hex}"
    assert store.exists(blob.digest)
    assert store.size(blob.digest) == len(data)
    assert read(store, blob.digest) == data
    assert leftovers(store) == []


def test_a_missing_blob_is_not_found(store: BlobStore) -> None:
    missing = Digest.of(b"never stored")
    assert not store.exists(missing)
    with pytest.raises(NotFound):
        store.size(missing)
    with pytest.raises(NotFound):
        store.open(missing)


def test_uploads_only_append(store: BlobStore) -> None:
    """No seek, no truncate: an object store's multipart upload could not honour them."""
    with store.upload() as up:
        up.write(b"abcdef")
        assert not hasattr(up, "seek")
        assert not hasattr(up, "truncate")


def test_digest_mismatch_publishes_nothing(store: BlobStore) -> None:
    with store.upload(expected_sha256=Digest.of(b"good"), label="w.bin") as up:
        up.write(b"evil")
        with pytest.raises(IntegrityFailure, match=r"w\.bin: sha256 mismatch"):
            up.commit()
    assert not store.exists(Digest.of(b"evil"))
    assert leftovers(store) == []


def test_size_mismatch_both_ways(store: BlobStore) -> None:
    with store.upload(expected_size=5, label="short") as up:
        up.write(b"1234")
        with pytest.raises(IntegrityFailure, match="expected 5 bytes, got 4"):
            up.commit()
    with (
        store.upload(expected_size=3, label="long") as up,
        pytest.raises(IntegrityFailure, match="more than"),
    ):
        up.write(b"1234")
    assert leftovers(store) == []


def test_git_blob_id_is_checked_in_the_same_pass(store: BlobStore) -> None:
    data = b'{"a": 1}\n'
    with store.upload(expected_size=len(data), expected_git_sha1=git_oid(data)) as up:
        up.write(data)
        assert up.commit().git_sha1 == git_oid(data)
    with store.upload(expected_size=len(data), expected_git_sha1=git_oid(b"other")) as up:
        up.write(data)
        with pytest.raises(IntegrityFailure, match="git blob id mismatch"):
            up.commit()


def test_same_bytes_twice_are_stored_once(store: BlobStore) -> None:
    for expected_created in (True, False):
        with store.upload() as up:
            up.write(b"shared")
            assert up.commit().created is expected_created
    assert read(store, Digest.of(b"shared")) == b"shared"


def test_abort_and_exceptions_leave_nothing(store: BlobStore) -> None:
    def write_then_crash() -> None:
        with store.upload() as up:
            up.write(b"half")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_crash()
    assert leftovers(store) == []
    assert not store.exists(Digest.of(b"half"))


def test_interrupted_transfer_resumes_from_its_partial_bytes(store: BlobStore) -> None:
    data = os.urandom(200_000)
    key = "hf://org/m@abc:model.bin"
    up = store.upload(expected_sha256=Digest.of(data), expected_size=len(data), resume_key=key)
    up.write(data[:120_000])
    up.abort(keep_partial=True)
    assert len(leftovers(store)) == 1

    resumed = store.upload(expected_sha256=Digest.of(data), expected_size=len(data), resume_key=key)
    assert resumed.resume_offset == 120_000
    assert resumed.tell() == 120_000
    resumed.write(data[120_000:])
    assert resumed.commit().digest == Digest.of(data)
    assert leftovers(store) == []


def test_partial_longer_than_expected_is_discarded(store: BlobStore) -> None:
    up = store.upload(resume_key="k")
    up.write(b"x" * 100)
    up.abort(keep_partial=True)
    again = store.upload(expected_size=10, resume_key="k")
    assert again.resume_offset == 0
    again.write(b"y" * 10)
    assert again.commit().size == 10


def test_rewind_to_restart_keeps_the_hash_consistent(store: BlobStore) -> None:
    """huggingface_hub rewinds with seek()+truncate() when a server ignores Range: to the
    append-only upload that is a restart (abort, begin again), never a truncate."""
    data = b"0123456789" * 1000
    up = store.upload(expected_sha256=Digest.of(data), resume_key="r")
    up.write(data[:3000])
    up.abort(keep_partial=True)
    sink = UploadSink(store, expected_sha256=Digest.of(data), resume_key="r")
    assert sink.resume_offset == 3000
    file = HttpGetFile(sink)
    file.write(b"garbage from a confused server")
    file.seek(file.tell() - file.tell())  # back to 0, as http_get computes it
    file.truncate()
    assert sink.tell() == 0
    assert sink.resume_offset == 0
    file.write(data)
    assert sink.commit().digest == Digest.of(data)
    assert leftovers(store) == []


def test_a_restart_discards_the_kept_partial(store: BlobStore) -> None:
    data = b"abc" * 1000
    up = store.upload(resume_key="k")
    up.write(b"not a prefix")
    up.abort(keep_partial=True)
    with UploadSink(store, expected_sha256=Digest.of(data), resume_key="k") as sink:
        assert sink.resume_offset == len(b"not a prefix")
        sink.restart()
        sink.write(data)
        sink.abort(keep_partial=True)
    again = store.upload(expected_sha256=Digest.of(data), resume_key="k")
    assert again.resume_offset == len(data)  # only the bytes after the restart were kept
    assert again.commit().digest == Digest.of(data)


def test_arbitrary_seeks_are_refused(store: BlobStore) -> None:
    with UploadSink(store) as sink:
        file = HttpGetFile(sink)
        file.write(b"abcdef")
        with pytest.raises(StorageError):
            file.seek(3)
        with pytest.raises(StorageError):
            file.truncate(2)
        file.seek(0)
        with pytest.raises(StorageError):
            file.write(b"over the top")  # a seek that is not followed by truncate
    assert leftovers(store) == []


# -- the local folder store ----------------------------------------------------------------


def test_commit_publishes_under_the_digest_read_only(local: LocalBlobStore) -> None:
    store = local
    data = os.urandom(3 * 1024 * 1024 + 7)
    with store.upload(expected_sha256=Digest.of(data), expected_size=len(data)) as up:
        for i in range(0, len(data), 65536):
            up.write(data[i : i + 65536])
        blob = up.commit()
    assert blob.digest == Digest.of(data)
    assert blob.created
    path = store.path(blob.digest)
    assert path.read_bytes() == data
    assert (
        path.relative_to(store.root).as_posix() == f"sha256/{blob.digest.hex[:2]}/{blob.digest.hex}"
    )
    assert not stat.S_IMODE(path.stat().st_mode) & 0o222
    assert leftovers(store) == []


def test_same_bytes_twice_are_one_file(local: LocalBlobStore) -> None:
    for expected_created in (True, False):
        with local.upload() as up:
            up.write(b"shared")
            assert up.commit().created is expected_created
    assert len(list((local.root / "sha256").rglob("*"))) == 2  # one folder, one blob


def test_temp_files_cannot_be_redirected_by_a_symlink(
    local: LocalBlobStore, tmp_path: Path
) -> None:
    store = local
    import hashlib as h

    target = tmp_path / "outside.txt"
    target.write_text("keep me")
    name = "resume-" + h.sha256(b"evil-key").hexdigest() + ".part"
    (store.tmp / name).symlink_to(target)
    with pytest.raises(StorageError, match="cannot open upload file"):
        store.upload(resume_key="evil-key")
    assert target.read_text() == "keep me"


def test_stale_temp_files_from_crashed_processes_are_removed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    old_upload = store.tmp / "upload-dead.part"
    old_resume = store.tmp / "resume-old.part"
    young_resume = store.tmp / "resume-young.part"
    live_upload = store.tmp / "upload-live.part"
    for path in (old_upload, old_resume, young_resume, live_upload):
        path.write_bytes(b"partial")
    two_days, eight_days = 2 * 24 * 3600, 8 * 24 * 3600
    now = time.time()
    os.utime(old_upload, (now - two_days, now - two_days))
    os.utime(young_resume, (now - two_days, now - two_days))
    os.utime(old_resume, (now - eight_days, now - eight_days))
    LocalBlobStore(tmp_path / "blobs")
    assert leftovers(store) == ["resume-young.part", "upload-live.part"]


def test_a_full_disk_is_a_storage_error_not_a_source_error(
    local: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = local

    def disk_full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with store.upload(label="big.bin") as up:
        monkeypatch.setattr(os, "write", disk_full)
        with pytest.raises(
            StorageError, match=r"big\.bin: cannot write to the blob store: No space"
        ):
            up.write(b"x" * 10)
        monkeypatch.undo()
    assert leftovers(store) == []


# -- the factory: MODELCTL_BLOB_STORE's scheme picks the store ----------------------------


def test_a_path_or_file_url_is_the_local_store(tmp_path: Path) -> None:
    bare = open_blob_store(str(tmp_path / "a"))
    url = open_blob_store((tmp_path / "b").as_uri())
    assert isinstance(bare, LocalBlobStore)
    assert bare.root == tmp_path / "a"
    assert isinstance(url, LocalBlobStore)
    assert url.root == tmp_path / "b"


def test_memory_names_one_store_per_process() -> None:
    first = open_blob_store("memory://test-factory")
    assert isinstance(first, MemoryBlobStore)
    assert open_blob_store("memory://test-factory") is first
    assert memory_store("test-factory") is first
    assert open_blob_store("memory://other") is not first


def test_s3_opens_the_object_store(s3_spec: str) -> None:
    store = open_blob_store(s3_spec)
    assert isinstance(store, S3BlobStore)
    assert store.location.prefix == "registry/"


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(InputError, match=r"unsupported blob store 'gopher://x'.*memory://"):
        open_blob_store("gopher://x")


def test_settings_open_the_store_their_scheme_names(tmp_path: Path) -> None:
    from registry.embedded import EmbeddedRegistry
    from registry.settings import Settings

    settings = Settings.from_env({"MODELCTL_BLOB_STORE": "memory://settings"}, home=tmp_path)
    registry = EmbeddedRegistry(settings)
    try:
        assert registry.blobs is memory_store("settings")
    finally:
        registry.close()
    with pytest.raises(InputError, match="unsupported blob store"):
        EmbeddedRegistry(Settings.from_env({"MODELCTL_BLOB_STORE": "ftp://b/p"}, home=tmp_path))
