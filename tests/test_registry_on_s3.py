"""The registry end to end on the S3 blob store (moto's S3 server on loopback) and PostgreSQL
or SQLite: mirror from the fake hub, serve whole files re-hashed and ranges by ranged GET,
pull, and a tampered object never served whole."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from attestations.digests import Digest
from registry.api.app import create_app
from registry.blobs.factory import open_blob_store
from registry.blobs.s3 import S3BlobStore
from registry.settings import Settings
from tests.api_server import LiveServer, Seeded, live_server, seed
from tests.fakes.hfhub import FakeHub
from tests.s3_server import moto_endpoint, s3_spec

__all__ = ["moto_endpoint", "s3_spec"]


@pytest.fixture
def seeded(
    run_cli: Any,
    tmp_path: Path,
    database_url: str,
    s3_spec: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Seeded]:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    monkeypatch.setenv("MODELCTL_BLOB_STORE", s3_spec)
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield seed(run_cli, hub, tmp_path)


@pytest.fixture
def server(seeded: Seeded) -> Iterator[LiveServer]:
    with live_server(create_app(Settings.from_env())) as live:
        yield live


def store() -> S3BlobStore:
    blobs = open_blob_store(Settings.from_env().blob_store)
    assert isinstance(blobs, S3BlobStore)
    return blobs


def get(server: LiveServer, path: str, **kw: Any) -> httpx.Response:
    registry = server.app.state.registry
    token = registry.token_create(f"reader-{uuid.uuid4().hex[:8]}", "reader").secret
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    return httpx.get(server.url + path, headers=headers, **kw)


def test_mirrored_files_are_blobs_in_the_bucket(seeded: Seeded) -> None:
    s3 = store()
    stored = {entry.digest.hex for entry in s3.list_blobs()}
    assert {hashlib.sha256(data).hexdigest() for data in seeded.files.values()} <= stored
    assert s3.leftover_uploads() == []


def test_whole_files_and_ranges_are_served_from_s3(server: LiveServer, seeded: Seeded) -> None:
    big = seeded.files["extra/weights.dat"]
    path = f"/v1/checkpoints/org/tiny/{seeded.digest}/files/extra/weights.dat?env=prod"
    whole = get(server, path)
    assert whole.status_code == 200
    assert whole.content == big
    part = get(server, path, headers={"Range": "bytes=1000-2999999"})
    assert part.status_code == 206
    assert part.content == big[1000:3000000]
    tail = get(server, path, headers={"Range": "bytes=-10"})
    assert tail.content == big[-10:]


def test_a_tampered_object_is_never_served_whole(server: LiveServer, seeded: Seeded) -> None:
    big = seeded.files["extra/weights.dat"]
    s3 = store()
    evil = bytearray(big)
    evil[-3] ^= 0xFF
    key = s3.location.blob(Digest.of(big))
    s3.client.put_object(Bucket=s3.location.bucket, Key=key, Body=bytes(evil))
    path = f"/v1/checkpoints/org/tiny/{seeded.digest}/files/extra/weights.dat?env=prod"
    with pytest.raises(httpx.RemoteProtocolError):
        get(server, path)
    # A shortened object cannot serve a range of the length the database promises either.
    s3.client.put_object(Bucket=s3.location.bucket, Key=key, Body=big[:5000])
    with pytest.raises(httpx.RemoteProtocolError):
        get(server, path, headers={"Range": "bytes=1000-9999"})


def test_pull_from_s3_is_verified_and_whole(seeded: Seeded, run_cli: Any, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    result = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest), "--json")
    assert result.code == 0, result.stderr
    for name, data in seeded.files.items():
        assert (dest / name).read_bytes() == data
