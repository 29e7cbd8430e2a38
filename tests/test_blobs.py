"""The local content-addressed blob store: verified, atomic, deduplicated, resumable."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

import pytest

from attestations.digests import Digest
from registry.blobs.local import LocalBlobStore
from registry.errors import IntegrityFailure


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def leftovers(store: LocalBlobStore) -> list[str]:
    return sorted(p.name for p in store.tmp.iterdir())


def test_commit_publishes_under_the_digest_read_only(store: LocalBlobStore) -> None:
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


def test_digest_mismatch_publishes_nothing(store: LocalBlobStore) -> None:
    with store.upload(expected_sha256=Digest.of(b"good"), label="w.bin") as up:
        up.write(b"evil")
        with pytest.raises(IntegrityFailure, match=r"w\.bin: sha256 mismatch"):
            up.commit()
    assert not store.exists(Digest.of(b"evil"))
    assert leftovers(store) == []


def test_size_mismatch_both_ways(store: LocalBlobStore) -> None:
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


def test_git_blob_id_is_checked_in_the_same_pass(store: LocalBlobStore) -> None:
    data = b'{"a": 1}\n'
    with store.upload(expected_size=len(data), expected_git_sha1=git_oid(data)) as up:
        up.write(data)
        assert up.commit().git_sha1 == git_oid(data)
    with store.upload(expected_size=len(data), expected_git_sha1=git_oid(b"other")) as up:
        up.write(data)
        with pytest.raises(IntegrityFailure, match="git blob id mismatch"):
            up.commit()


def test_same_bytes_twice_are_stored_once(store: LocalBlobStore) -> None:
    for expected_created in (True, False):
        with store.upload() as up:
            up.write(b"shared")
            assert up.commit().created is expected_created
    assert len(list((store.root / "sha256").rglob("*"))) == 2  # one folder, one blob


def test_abort_and_exceptions_leave_nothing(store: LocalBlobStore) -> None:
    def write_then_crash() -> None:
        with store.upload() as up:
            up.write(b"half")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_crash()
    assert leftovers(store) == []
    assert not store.exists(Digest.of(b"half"))


def test_interrupted_transfer_resumes_from_its_partial_bytes(store: LocalBlobStore) -> None:
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


def test_partial_longer_than_expected_is_discarded(store: LocalBlobStore) -> None:
    up = store.upload(resume_key="k")
    up.write(b"x" * 100)
    up.abort(keep_partial=True)
    again = store.upload(expected_size=10, resume_key="k")
    assert again.resume_offset == 0
    again.write(b"y" * 10)
    assert again.commit().size == 10


def test_rewind_to_restart_keeps_the_hash_consistent(store: LocalBlobStore) -> None:
    """huggingface_hub rewinds with seek()+truncate() when a server ignores Range."""
    data = b"0123456789" * 1000
    up = store.upload(expected_sha256=Digest.of(data), resume_key="r")
    up.write(data[:3000])
    up.abort(keep_partial=True)
    up = store.upload(expected_sha256=Digest.of(data), resume_key="r")
    up.write(b"garbage from a confused server")
    up.seek(up.tell() - up.tell())  # back to 0, as http_get computes it
    up.truncate()
    up.write(data)
    assert up.commit().digest == Digest.of(data)


def test_arbitrary_seeks_are_refused(store: LocalBlobStore) -> None:
    from registry.errors import StorageError

    with store.upload() as up:
        up.write(b"abcdef")
        with pytest.raises(StorageError):
            up.seek(3)
        with pytest.raises(StorageError):
            up.truncate(2)


def test_temp_files_cannot_be_redirected_by_a_symlink(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    import hashlib as h

    from registry.errors import StorageError

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
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from registry.errors import StorageError

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
