"""What only the S3 store promises, against moto's S3 server on loopback: verified before
visible (multipart completed or copied only after the digest matched), conditional creates so
two writers of one blob do not race, ranged reads, server-side resume of large partials, and a
misconfigured store refused at start-up in one line."""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

import pytest

from attestations.digests import Digest
from registry.blobs import s3 as s3_module
from registry.blobs.factory import open_blob_store
from registry.blobs.s3 import PART_SIZE, S3BlobStore, S3Location
from registry.errors import InputError, IntegrityFailure, StorageError
from tests.s3_server import aws_env, moto_endpoint, s3_spec

__all__ = ["moto_endpoint", "s3_spec"]

BIG = os.urandom(2 * PART_SIZE + 12345)  # three parts: a real multipart upload


@pytest.fixture
def s3(s3_spec: str) -> S3BlobStore:
    store = open_blob_store(s3_spec)
    assert isinstance(store, S3BlobStore)
    return store


def keys(store: S3BlobStore) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.location.bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def pending(store: S3BlobStore) -> list[str]:
    """Multipart uploads started and neither completed nor aborted."""
    return [u.name for u in store.leftover_uploads() if u.name.startswith("multipart:")]


def write(upload: object, data: bytes) -> None:
    for i in range(0, len(data), 1 << 20):
        upload.write(data[i : i + (1 << 20)])  # type: ignore[attr-defined]


def test_blobs_live_under_prefix_blobs_sha256(s3: S3BlobStore) -> None:
    with s3.upload() as up:
        up.write(b"hello")
        blob = up.commit()
    assert keys(s3) == [f"registry/blobs/sha256/{blob.digest.hex[:2]}/{blob.digest.hex}"]


@pytest.mark.parametrize("known_digest", [True, False])
def test_nothing_under_the_digest_until_verified(s3: S3BlobStore, known_digest: bool) -> None:
    digest = Digest.of(BIG)
    up = s3.upload(expected_sha256=digest if known_digest else None, expected_size=len(BIG))
    write(up, BIG)
    assert pending(s3)  # parts went up while the bytes arrived...
    assert not any(k.startswith("registry/blobs/") for k in keys(s3))  # ...none visible
    assert up.commit().created
    assert pending(s3) == []
    assert keys(s3) == [f"registry/blobs/sha256/{digest.hex[:2]}/{digest.hex}"]
    with s3.open(digest) as f:
        assert f.read() == BIG


@pytest.mark.parametrize("known_digest", [True, False])
def test_a_wrong_digest_leaves_no_object_and_no_upload(s3: S3BlobStore, known_digest: bool) -> None:
    claimed = Digest.of(b"something else") if known_digest else None
    up = s3.upload(expected_sha256=claimed, expected_size=len(BIG) + 1, label="w.bin")
    write(up, BIG)
    with pytest.raises(IntegrityFailure, match=r"w\.bin: expected"):
        up.commit()
    assert keys(s3) == []
    assert pending(s3) == []


def test_two_writers_of_one_blob_create_it_once(s3: S3BlobStore) -> None:
    """Both stream the whole blob before either commits; both complete their multipart upload
    with If-None-Match: the first creates the object, the second is refused and dropped.
    (Committed in turn: moto checks the condition and completes in two steps, so truly
    simultaneous completes could both pass on moto; S3 itself checks atomically.)"""
    digest = Digest.of(BIG)
    first, second = (s3.upload(expected_sha256=digest) for _ in range(2))
    write(first, BIG)
    write(second, BIG)
    assert [first.commit().created, second.commit().created] == [True, False]
    assert keys(s3) == [f"registry/blobs/sha256/{digest.hex[:2]}/{digest.hex}"]
    assert pending(s3) == []


def test_a_second_upload_of_unknown_digest_copies_nothing(s3: S3BlobStore) -> None:
    created = []
    for _ in range(2):
        with s3.upload() as up:
            write(up, BIG)
            created.append(up.commit().created)
    assert created == [True, False]
    digest = Digest.of(BIG)
    assert keys(s3) == [f"registry/blobs/sha256/{digest.hex[:2]}/{digest.hex}"]
    assert pending(s3) == []


def test_a_conditional_create_never_overwrites(s3: S3BlobStore) -> None:
    """If-None-Match is what protects the key, not a check before the write: an object that
    appears between the check and the write is kept."""
    digest = Digest.of(BIG)
    up = s3.upload(expected_sha256=digest)
    write(up, BIG)
    s3.client.put_object(
        Bucket=s3.location.bucket, Key=s3.location.blob(digest), Body=BIG
    )  # another writer finished first
    assert up.commit().created is False
    assert pending(s3) == []


def test_a_large_partial_resumes_server_side(s3: S3BlobStore) -> None:
    digest = Digest.of(BIG)
    first = s3.upload(expected_sha256=digest, expected_size=len(BIG), resume_key="hf://o/m@c:w")
    write(first, BIG[: PART_SIZE + 3000])
    first.abort(keep_partial=True)
    assert pending(s3) == []  # kept as a readable object, not an open upload
    [kept] = [k for k in keys(s3) if "/tmp/resume-" in k]
    again = s3.upload(expected_sha256=digest, expected_size=len(BIG), resume_key="hf://o/m@c:w")
    assert again.resume_offset == PART_SIZE + 3000
    write(again, BIG[PART_SIZE + 3000 :])
    assert again.commit().created
    assert kept not in keys(s3)
    with s3.open(digest) as f:
        assert f.read() == BIG


def test_ranged_reads_fetch_only_the_range(s3: S3BlobStore) -> None:
    with s3.upload() as up:
        write(up, BIG)
        digest = up.commit().digest
    with s3.open_range(digest, PART_SIZE - 10, PART_SIZE + 9) as f:
        assert f.read() == BIG[PART_SIZE - 10 : PART_SIZE + 10]
    with s3.open_range(digest, len(BIG) - 5, len(BIG) + 100) as f:
        assert f.read() == BIG[-5:]
    with pytest.raises(InputError):
        s3.open_range(digest, 10, 5)


def test_part_sizes_grow_so_ten_thousand_parts_hold_terabytes() -> None:
    total = sum(s3_module.part_size(n) for n in range(1, 10_001))
    assert total > 4 * 1024**4  # twice the largest file the limits allow (2 TiB)
    assert all(s3_module.part_size(n) >= 5 << 20 for n in (1, 1000, 1001, 10_000))


def test_copies_over_five_gib_are_split_in_valid_parts() -> None:
    size = 11 * 1024**3 + 7
    ranges = s3_module._copy_ranges(size)
    assert ranges[0][0] == 0
    assert ranges[-1][1] == size - 1
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
    assert all(5 << 20 <= end - start + 1 <= 5 << 30 for start, end in ranges)


# -- start-up: a misconfigured store is one line, at once -----------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("s3://", "is not a bucket name"),
        ("s3://bad_bucket!/p", "is not a bucket name"),
        ("s3://bucket/a/../b", "empty, . or .. parts"),
    ],
)
def test_a_bad_s3_url_is_an_input_error(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        S3Location.parse(spec)


def test_a_missing_bucket_fails_at_start_up(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    aws_env(monkeypatch, moto_endpoint, tmp_path)
    with pytest.raises(StorageError, match="s3://no-such-bucket-here/p: bucket does not exist"):
        open_blob_store("s3://no-such-bucket-here/p")


def test_an_unreachable_endpoint_fails_at_start_up_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    aws_env(monkeypatch, f"http://127.0.0.1:{port}", tmp_path)
    with pytest.raises(StorageError, match="Could not connect") as info:
        open_blob_store("s3://bucket/p")
    assert "\n" not in str(info.value)


def test_commands_serve_and_worker_say_so_at_start_up(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_cli: object
) -> None:
    aws_env(monkeypatch, moto_endpoint, tmp_path)
    monkeypatch.setenv("MODELCTL_BLOB_STORE", "s3://no-such-bucket-here/p")
    for args in (("models",), ("worker", "--once"), ("serve", "--port", "1")):
        result = run_cli(*args)  # type: ignore[operator]
        assert result.code == 2, args
        assert result.stderr.count("\n") == 1, result.stderr  # one line, before any work
        assert "blob store s3://no-such-bucket-here/p: bucket does not exist" in result.stderr
