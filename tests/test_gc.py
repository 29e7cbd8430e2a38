"""`modelctl gc`: unreferenced blobs go only after mark → grace → sweep, in the local folder and
the S3 store; blobs of an upload in flight and blobs a mirror takes again are kept; leftover
uploads (S3 multipart uploads included) are removed; storage usage per model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from attestations.digests import Digest
from registry.blobs.base import BlobEntry, BlobStore, LeftoverUpload
from registry.blobs.s3 import PART_SIZE, S3BlobStore
from registry.embedded import EmbeddedRegistry
from registry.service import gc
from registry.settings import Settings
from tests.helpers import write_tree
from tests.s3_server import moto_endpoint, s3_spec

__all__ = ["moto_endpoint", "s3_spec"]

HOUR = timedelta(hours=1)
MODEL = {"config.json": b'{"a": 1}', "w.safetensors": b"weights" * 1000}


@pytest.fixture(params=["local", "s3"])
def store_spec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "s3":
        spec: str = request.getfixturevalue("s3_spec")
        monkeypatch.setenv("MODELCTL_BLOB_STORE", spec)
        return spec
    return "local"


@pytest.fixture
def registry(store_spec: str) -> Iterator[EmbeddedRegistry]:
    handle = EmbeddedRegistry(Settings.from_env())
    try:
        yield handle
    finally:
        handle.close()


def mirror(run_cli: Any, folder: Path, name: str, files: dict[str, bytes]) -> None:
    result = run_cli("mirror", str(write_tree(folder, files)), "--name", name, "--no-scan")
    assert result.code == 0, result.stderr


def orphan(blobs: BlobStore, data: bytes) -> Digest:
    """Bytes in the store that no checkpoint names (what a failed mirror leaves)."""
    with blobs.upload() as up:
        up.write(data)
        return up.commit().digest


def later(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def test_mark_grace_sweep(registry: EmbeddedRegistry, run_cli: Any, tmp_path: Path) -> None:
    mirror(run_cli, tmp_path / "m", "org/kept", MODEL)
    lost = orphan(registry.blobs, b"left by a failed mirror")

    first = registry.gc(grace=HOUR, dry_run=False, now=later(2))
    assert [b.digest for b in first.marked] == [str(lost)]
    assert first.deleted == ()
    waiting = registry.gc(grace=HOUR, dry_run=False, now=later(2.5))
    assert (waiting.waiting, waiting.deleted) == (1, ())
    swept = registry.gc(grace=HOUR, dry_run=False, now=later(3.5))
    assert [b.digest for b in swept.deleted] == [str(lost)]
    assert swept.bytes_freed == len(b"left by a failed mirror")
    assert not registry.blobs.exists(lost)
    for data in MODEL.values():  # what checkpoints reference is never touched
        assert registry.blobs.exists(Digest.of(data))
    assert registry.gc(grace=HOUR, dry_run=False, now=later(10)).deleted == ()
    audit = run_cli("audit", "--json").json()
    assert any(e["action"] == "blobs.gc" for e in audit["events"])


def test_young_blobs_of_an_upload_in_flight_are_not_even_marked(
    registry: EmbeddedRegistry,
) -> None:
    fresh = orphan(registry.blobs, b"uploaded by a mirror that has not recorded it yet")
    report = registry.gc(grace=HOUR, dry_run=False, now=later(0.5))
    assert (report.young, report.marked, report.deleted) == (1, (), ())
    assert registry.blobs.exists(fresh)


def test_a_mirror_that_takes_the_blob_again_clears_its_mark(
    registry: EmbeddedRegistry, run_cli: Any, tmp_path: Path
) -> None:
    data = b"bytes a failed mirror left, then a new mirror found"
    lost = orphan(registry.blobs, data)
    assert registry.gc(grace=HOUR, dry_run=False, now=later(2)).marked
    mirror(run_cli, tmp_path / "m", "org/again", {"file.bin": data})  # reuses the stored blob
    report = registry.gc(grace=HOUR, dry_run=False, now=later(5))
    assert report.deleted == ()
    assert registry.blobs.exists(lost)


def test_a_mirror_that_found_the_bytes_before_the_sweep_refuses_to_record(
    registry: EmbeddedRegistry, run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the tombstone closes: the mirror sees the blob stored, gc sweeps it, then the
    mirror records. It must fail (one line, "mirror again"), not reference missing bytes; the
    next mirror uploads the bytes afresh and records them."""
    from registry.service import checkpoints

    data = b"bytes a failed mirror left"
    lost = orphan(registry.blobs, data)
    registry.gc(grace=HOUR, dry_run=False, now=later(2))  # marked
    real = checkpoints.record_checkpoint

    def swept_before_the_record(*args: Any, **kwargs: Any) -> Any:
        # The transfer found the bytes stored (the upload deduplicated); gc sweeps them now.
        assert registry.gc(grace=HOUR, dry_run=False, now=later(4)).deleted
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoints, "record_checkpoint", swept_before_the_record)
    folder = write_tree(tmp_path / "m", {"file.bin": data})
    failed = run_cli("mirror", str(folder), "--name", "org/raced", "--no-scan")
    assert failed.code == 2
    assert "garbage-collected while this mirror ran; mirror again" in failed.stderr
    assert run_cli("models", "--json").json()["models"] == []  # nothing half-registered
    monkeypatch.setattr(checkpoints, "record_checkpoint", real)
    again = run_cli("mirror", str(folder), "--name", "org/raced", "--no-scan")
    assert again.code == 0, again.stderr
    assert registry.blobs.exists(lost)
    assert registry.gc(grace=HOUR, dry_run=False, now=later(9)).deleted == ()


def test_dry_run_writes_and_deletes_nothing(registry: EmbeddedRegistry) -> None:
    lost = orphan(registry.blobs, b"orphan")
    registry.gc(grace=HOUR, dry_run=False, now=later(2))  # marked
    dry = registry.gc(grace=HOUR, dry_run=True, now=later(4))
    assert [b.digest for b in dry.deleted] == [str(lost)]
    assert registry.blobs.exists(lost)
    again = registry.gc(grace=HOUR, dry_run=True, now=later(4))
    assert again.deleted == dry.deleted


def test_the_sweep_rechecks_references(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 4 on both databases: a mark whose blob a checkpoint references by now is dropped,
    and the blob kept, even when the plan said it was due."""
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    registry = EmbeddedRegistry(Settings.from_env())
    try:
        from registry.db.engine import unit_of_work
        from registry.db.models import GcMark

        lost = orphan(registry.blobs, b"orphan")
        registry.gc(grace=HOUR, dry_run=False, now=later(2))
        with unit_of_work(registry.sessions) as session:
            assert session.get(GcMark, lost.hex) is not None
            # too young a mark
            assert gc.release(session, lost.hex, cutoff=later(1), now=later(4)) is False
        with unit_of_work(registry.sessions) as session:
            assert gc.release(session, lost.hex, cutoff=later(4), now=later(4)) is True
        with unit_of_work(registry.sessions) as session:
            tombstone = session.get(GcMark, lost.hex)
            assert tombstone is not None
            assert tombstone.swept_at is not None
    finally:
        registry.close()


def test_stale_multipart_uploads_and_temp_objects_are_removed(s3_spec: str) -> None:
    from registry.blobs.factory import open_blob_store

    store = open_blob_store(s3_spec)
    assert isinstance(store, S3BlobStore)
    crashed = store.upload(label="big")
    crashed.write(os.urandom(PART_SIZE + 10))  # one part up: a multipart upload exists
    kept = store.upload(resume_key="hf://o/m@c:f")
    kept.write(b"partial")
    kept.abort(keep_partial=True)
    leftovers = store.leftover_uploads()
    assert {u.name.split(":")[0] for u in leftovers} == {"multipart", "object"}
    # (moto reports every multipart upload as initiated in 2010, so the grace itself is
    # checked with made-up times below.)
    for u in gc.stale_uploads(leftovers, now=datetime.now(UTC) + timedelta(days=8), grace=HOUR):
        store.remove_upload(u)
    assert store.leftover_uploads() == []


def test_leftover_uploads_wait_out_the_grace_and_partials_a_week() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    upload = LeftoverUpload("multipart:id:key", now - 2 * HOUR, resumable=False)
    young = LeftoverUpload("object:tmp/upload-x", now - HOUR / 2, resumable=False)
    partial = LeftoverUpload("object:tmp/resume-y", now - 2 * HOUR, resumable=True)
    old_partial = LeftoverUpload("object:tmp/resume-z", now - timedelta(days=8), resumable=True)
    assert gc.stale_uploads([upload, young, partial, old_partial], now=now, grace=HOUR) == [
        upload,
        old_partial,
    ]


def test_plan_sorts_every_blob_into_its_step() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)

    def entry(text: str, age: timedelta) -> BlobEntry:
        return BlobEntry(Digest.of(text.encode()), 1, now - age)

    used, young, new, waiting, due = (
        entry("used", 9 * HOUR),
        entry("young", HOUR / 2),
        entry("new", 2 * HOUR),
        entry("waiting", 5 * HOUR),
        entry("due", 5 * HOUR),
    )
    gone = Digest.of(b"gone").hex
    found = gc.plan(
        [used, young, new, waiting, due],
        {used.digest.hex},
        {
            waiting.digest.hex: (now - HOUR / 2).replace(tzinfo=None),  # SQLite: naive UTC
            due.digest.hex: now - 2 * HOUR,
            used.digest.hex: now - 3 * HOUR,
            gone: now - 3 * HOUR,
        },
        now=now,
        grace=HOUR,
    )
    assert (found.stored, found.referenced) == (5, 1)
    assert (found.young, found.to_mark, found.waiting, found.due) == (
        [young],
        [new],
        [waiting],
        [due],
    )
    assert found.stale_marks == sorted([used.digest.hex, gone])


def test_plan_resweeps_swept_bytes_and_expires_tombstones() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    left = BlobEntry(Digest.of(b"delete failed"), 1, now - 9 * HOUR)
    fresh = BlobEntry(Digest.of(b"uploaded again"), 1, now - HOUR / 2)
    old, recent = Digest.of(b"old").hex, Digest.of(b"recent").hex
    found = gc.plan(
        [left, fresh],
        set(),
        {},
        now=now,
        grace=HOUR,
        swept={
            left.digest.hex: now - HOUR / 4,
            fresh.digest.hex: now - HOUR / 4,
            old: now - 2 * HOUR,
            recent: now - HOUR / 2,
        },
    )
    assert (found.due, found.young) == ([left], [fresh])  # a fresh upload is never swept
    assert found.expired_tombstones == [old]


def test_cli_gc_and_storage_per_model(run_cli: Any, tmp_path: Path) -> None:
    mirror(run_cli, tmp_path / "v1", "org/m", MODEL)
    mirror(run_cli, tmp_path / "v2", "org/m", {**MODEL, "extra.bin": b"x" * 100})
    [model] = run_cli("models", "--json").json()["models"]
    assert model["storage_bytes"] == sum(len(d) for d in MODEL.values()) + 100  # shared once
    assert "STORED" in run_cli("models").stdout
    dry = run_cli("gc", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert dry.json()["dry_run"] is True
    assert dry.json()["stored"] == 3
    assert dry.json()["referenced"] == 3
    assert "3 blobs stored, 3 referenced" in run_cli("gc", "--grace", "0s").stdout
    bad = run_cli("gc", "--grace", "soon")
    assert bad.code == 2
    assert "--grace must look like" in bad.stderr
