"""The OCI distribution client against a real registry on loopback (tests/oci_registry.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.errors import (
    AuthenticationRequired,
    InputError,
    IntegrityFailure,
    NotFound,
    UpstreamError,
)
from registry.mirror.oci_auth import Credentials, load_credentials
from registry.mirror.oci_client import (
    MANIFEST_TYPE,
    OciClient,
    canonical_json,
    sha256_digest,
)
from registry.mirror.oci_ref import parse_oci_ref
from tests.oci_registry import FaultyProxy, RunningRegistry, TokenService, start_registry

EMPTY = b"{}"


@pytest.fixture
def oci_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    yield from start_registry(tmp_path / "oci")


def _blob(client: OciClient, data: bytes) -> dict[str, object]:
    digest = sha256_digest(data)
    client.upload_blob(digest, len(data), lambda: io.BytesIO(data))
    return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}


def test_parse_refs() -> None:
    ref = parse_oci_ref("oci://127.0.0.1:5000/team/model:v1")
    assert (ref.host, ref.repository, ref.tag, ref.base_url) == (
        "127.0.0.1:5000",
        "team/model",
        "v1",
        "http://127.0.0.1:5000",
    )
    assert parse_oci_ref("oci://registry.example/m").base_url == "https://registry.example"
    pinned = parse_oci_ref("oci://localhost/m@sha256:" + "a" * 64)
    assert pinned.reference == "sha256:" + "a" * 64
    for bad in ("oci://host/Upper", "oci://host", "oci://h/m@sha1:ab", "oci://h/../x", "hf://a/b"):
        with pytest.raises(InputError):
            parse_oci_ref(bad)


def test_credentials_from_auth_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = tmp_path / "auth.json"
    encoded = base64.b64encode(b"alice:s3cret").decode()
    auth.write_text(json.dumps({"auths": {"reg.example:5000": {"auth": encoded}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    assert load_credentials("reg.example:5000") == Credentials("alice", "s3cret")
    assert load_credentials("other.example") is None
    assert "s3cret" not in repr(load_credentials("reg.example:5000"))
    auth.write_text("not json")
    with pytest.raises(InputError):
        load_credentials("reg.example:5000")


def test_blobs_manifests_and_fallback_referrers(oci_registry: RunningRegistry) -> None:
    ref = parse_oci_ref(oci_registry.ref("team/model:v1"))
    with OciClient(ref, push=True, chunked_threshold=1000, chunk_size=300) as client:
        small = _blob(client, b"hello")
        big_bytes = bytes(range(256)) * 10  # 2560 bytes: chunked, 9 PATCHes
        big = _blob(client, big_bytes)
        assert client.blob_exists(str(big["digest"]))
        # Present already: nothing is sent again.
        assert not client.upload_blob(str(small["digest"]), 5, lambda: io.BytesIO(b"hello"))
        config = _blob(client, EMPTY)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": "application/vnd.example+json",
            "config": {**config, "mediaType": "application/vnd.oci.empty.v1+json"},
            "layers": [small, big],
        }
        body = canonical_json(manifest)
        digest, _ = client.put_manifest("v1", body, MANIFEST_TYPE)
        fetched = client.get_manifest("v1")
        assert fetched.body == body
        assert fetched.digest == digest
        with client.open_blob(str(big["digest"])) as chunks:
            assert hashlib.sha256(b"".join(chunks)).hexdigest() == str(big["digest"])[7:]
        with client.open_blob(str(big["digest"]), offset=2000) as chunks:
            assert b"".join(chunks) == big_bytes[2000:]

        assert client.referrers(digest) == []
        referrer = {
            **manifest,
            "artifactType": "application/vnd.example.sig",
            "layers": [small],
            "subject": {"mediaType": MANIFEST_TYPE, "digest": digest, "size": len(body)},
        }
        rbody = canonical_json(referrer)
        rdigest, _ = client.put_manifest(sha256_digest(rbody), rbody, MANIFEST_TYPE)
        descriptor = {
            "mediaType": MANIFEST_TYPE,
            "digest": rdigest,
            "size": len(rbody),
            "artifactType": "application/vnd.example.sig",
        }
        client.add_to_fallback_index(digest, descriptor)
        client.add_to_fallback_index(digest, descriptor)  # idempotent
        assert client.referrers(digest) == [descriptor]

        with pytest.raises(NotFound):
            client.get_manifest("nope")
        bad = sha256_digest(b"x")  # a digest that the bytes do not hash to
        with pytest.raises(IntegrityFailure):
            client.upload_blob(bad, 5, lambda: io.BytesIO(b"hello"))


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[RunningRegistry, TokenService]]:
    tokens = TokenService(tmp_path, "alice", "s3cret")
    try:
        for running in start_registry(tmp_path / "oci", tokens.registry_auth_yaml()):
            yield running, tokens
    finally:
        tokens.close()


def test_bearer_token_flow(token_registry: tuple[RunningRegistry, TokenService]) -> None:
    running, tokens = token_registry
    ref = parse_oci_ref(running.ref("team/model:v1"))
    with OciClient(ref, credentials=Credentials("alice", "s3cret"), push=True) as client:
        layer = _blob(client, b"weights")
        assert tokens.issued >= 1
        config = _blob(client, EMPTY)
        body = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {**config, "mediaType": "application/vnd.oci.empty.v1+json"},
                "layers": [layer],
            }
        )
        digest, _ = client.put_manifest("v1", body, MANIFEST_TYPE)
    with OciClient(ref, credentials=Credentials("alice", "s3cret")) as reader:
        assert reader.get_manifest("v1").digest == digest
    with OciClient(ref) as anonymous, pytest.raises(AuthenticationRequired):
        anonymous.get_manifest("v1")
    with (
        OciClient(ref, credentials=Credentials("alice", "wrong")) as wrong,
        pytest.raises(AuthenticationRequired, match="refused the credentials"),
    ):
        wrong.get_manifest("v1")


@pytest.fixture
def proxy(oci_registry: RunningRegistry) -> Iterator[FaultyProxy]:
    faulty = FaultyProxy(f"http://{oci_registry.host}")
    try:
        yield faulty
    finally:
        faulty.close()


def test_a_dropped_chunk_upload_resumes_where_the_registry_says(proxy: FaultyProxy) -> None:
    ref = parse_oci_ref(f"oci://{proxy.host}/team/model:v1")
    data = bytes(range(256)) * 10
    digest = sha256_digest(data)
    proxy.faults["PATCH"] = ["forward", "drop"]  # the second chunk dies half way
    with OciClient(ref, push=True, chunked_threshold=1000, chunk_size=300) as client:
        assert client.upload_blob(digest, len(data), lambda: io.BytesIO(data))
        with client.open_blob(digest) as chunks:
            assert b"".join(chunks) == data
    assert proxy.faults["PATCH"] == []


def test_server_errors_are_retried_for_reads_then_reported(proxy: FaultyProxy) -> None:
    ref = parse_oci_ref(f"oci://{proxy.host}/team/model:v1")
    with OciClient(ref, push=True) as client:
        proxy.faults["HEAD"] = [503]
        assert client.blob_exists(sha256_digest(b"absent")) is False  # retried, then 404
        proxy.faults["GET"] = [503, 502, 500]
        with pytest.raises(UpstreamError, match="HTTP 500"):
            client.get_manifest("v1")
        proxy.faults["GET"] = [403]
        with pytest.raises(AuthenticationRequired, match="forbidden"):
            client.get_manifest("v1")
        proxy.faults["PUT"] = ["drop"]  # a write is not replayed blindly: a clear error
        with pytest.raises(UpstreamError):
            client.upload_blob(sha256_digest(b"hello"), 5, lambda: io.BytesIO(b"hello"))
        assert client.upload_blob(sha256_digest(b"hello"), 5, lambda: io.BytesIO(b"hello"))
