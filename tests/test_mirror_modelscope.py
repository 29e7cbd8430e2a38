"""The ModelScope source against a fake `/api/v1` hub, with a real local blob store as the sink."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modelscope_hub import HubApi, HubConfig

from attestations.digests import Digest
from registry.blobs.base import StoredBlob
from registry.blobs.local import LocalBlobStore
from registry.errors import (
    AuthenticationRequired,
    InputError,
    IntegrityFailure,
    NotFound,
    UpstreamError,
)
from registry.mirror.base import RemoteFile, Snapshot, parse_source
from registry.mirror.modelscope import ModelScopeSource
from registry.service.transfer import UploadSink
from registry.settings import Limits
from tests.fakes.modelscope import FakeModelScopeHub
from tests.helpers import safetensors_of

REPO = "acme/tiny-model"
BIG = "weights/model-00001-of-00001.safetensors"


def _blob(n: int, seed: bytes = b"ms") -> bytes:
    """Deterministic incompressible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:n])


FILES = {
    "config.json": b'{"model_type": "tiny"}',
    "README.md": b"# tiny\n",
    "tokenizer/vocab.txt": b"a\nb\nc\n",
    BIG: safetensors_of(_blob(3 * 1024 * 1024 + 17)),
    ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only 127.0.0.1 resolves; the client's home and cache live in tmp; retries are instant."""
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", b"127.0.0.1"):
            raise OSError(f"test is offline: refused to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    for name in (
        "MODELSCOPE_API_TOKEN",
        "MODELSCOPE_DOMAIN",
        "MODELSCOPE_PREFER_AI_SITE",
        "MODELSCOPE_DOWNLOAD_INTER_CLOUD_REGIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELSCOPE_HOME", str(tmp_path / "ms-home"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms-cache"))
    monkeypatch.setattr(ModelScopeSource, "retry_backoff_s", 0.0)


@pytest.fixture
def hub() -> Iterator[FakeModelScopeHub]:
    with FakeModelScopeHub() as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def _source(
    hub: FakeModelScopeHub, uri: str = f"ms://{REPO}", *, token: str | None = None, **limits: int
) -> ModelScopeSource:
    return ModelScopeSource(
        parse_source(uri), endpoint=hub.url, token=token, limits=Limits(**limits)
    )


def _file(snapshot: Snapshot, path: str) -> RemoteFile:
    return next(f for f in snapshot.files if f.path == path)


def _mirror(
    source: ModelScopeSource, snapshot: Snapshot, file: RemoteFile, store: LocalBlobStore
) -> StoredBlob:
    assert file.sha256 is not None
    with UploadSink(
        store,
        expected_sha256=Digest(file.sha256),
        expected_size=file.size,
        resume_key=f"{snapshot.commit}/{file.path}",
        label=file.path,
    ) as upload:
        source.fetch(snapshot, file, upload)
        return upload.commit()


# -- resolve ------------------------------------------------------------------------------------


def test_resolve_pins_the_default_branch_to_a_commit_and_lists_nested_files(
    hub: FakeModelScopeHub,
) -> None:
    commit = hub.add_repo(REPO, FILES)

    snapshot = _source(hub).resolve()

    assert snapshot.uri == f"ms://{REPO}"
    assert snapshot.requested_revision is None
    assert snapshot.commit == commit
    expected = {p: d for p, d in FILES.items() if p != ".gitattributes"}
    assert {f.path for f in snapshot.files} == set(expected)
    for f in snapshot.files:
        assert f.size == len(expected[f.path])
        assert f.sha256 == hashlib.sha256(expected[f.path]).hexdigest()
    listings = [r.query["Revision"] for r in hub.requests if r.path.endswith("/repo/files")]
    assert listings == ["master", commit]  # listed at the name, then at the pinned commit
    assert not any("internalAccelerationInfo" in r.path for r in hub.requests)


def test_a_tag_or_a_commit_stays_pinned_while_the_branch_moves(
    hub: FakeModelScopeHub, store: LocalBlobStore
) -> None:
    first = hub.add_repo(REPO, FILES)
    hub.tag(REPO, "v1.0")
    second = hub.add_repo(REPO, {**FILES, "config.json": b'{"model_type": "tiny", "v": 2}'})
    assert first != second

    by_tag = _source(hub, f"ms://{REPO}@v1.0").resolve()
    by_commit = _source(hub, f"ms://{REPO}@{first.upper()}").resolve()
    by_branch = _source(hub, f"ms://{REPO}@master").resolve()

    assert by_tag.commit == by_commit.commit == first
    assert by_tag.requested_revision == "v1.0"
    assert by_commit.files == by_tag.files
    assert by_branch.commit == second
    # The old commit still serves the old bytes: downloads name the commit, not the branch.
    blob = _mirror(_source(hub), by_tag, _file(by_tag, "config.json"), store)
    assert blob.digest == Digest.of(FILES["config.json"])
    assert hub.downloads("config.json")[-1].query["Revision"] == first


def test_a_hub_reporting_per_file_last_change_commits_falls_back_to_the_revisions_entry() -> None:
    with FakeModelScopeHub(file_revision="last_change") as hub:
        hub.add_repo(REPO, FILES)
        head = hub.add_repo(REPO, {**FILES, "README.md": b"# tiny, v2\n"})
        snapshot = _source(hub).resolve()
    assert snapshot.commit == head


def test_no_commit_anywhere_refuses_to_pin_a_branch() -> None:
    with FakeModelScopeHub(file_revision="none", revision_commit_ids=False) as hub:
        commit = hub.add_repo(REPO, FILES)
        with pytest.raises(UpstreamError, match=r"cannot pin revision 'master'.*@<40-hex commit>"):
            _source(hub).resolve()
        assert _source(hub, f"ms://{REPO}@{commit}").resolve().commit == commit


@pytest.mark.parametrize(
    "hostile", ["../x", "/abs", "a//b", "dir/ctrl\x01char", "./x", "back\\slash"]
)
def test_hostile_file_names_refuse_the_whole_mirror(hub: FakeModelScopeHub, hostile: str) -> None:
    hub.add_repo(REPO, {"config.json": b"{}", hostile: b"evil"})
    with pytest.raises(InputError, match="refused unsafe file path"):
        _source(hub).resolve()
    assert not hub.downloads()


def test_listing_limits_are_enforced(hub: FakeModelScopeHub) -> None:
    hub.add_repo(REPO, FILES)
    with pytest.raises(InputError, match="more than 2 files"):
        _source(hub, max_files=2).resolve()
    with pytest.raises(InputError, match=rf"{BIG}: listed size .* out of bounds"):
        _source(hub, max_file_size=1024).resolve()


def test_unknown_repository_is_not_found(hub: FakeModelScopeHub) -> None:
    with pytest.raises(NotFound, match=r"^ms://acme/nope: repository not found"):
        _source(hub, "ms://acme/nope").resolve()


def test_unknown_revision_is_not_found(hub: FakeModelScopeHub) -> None:
    hub.add_repo(REPO, FILES)
    with pytest.raises(NotFound, match=r"unknown revision 'v9'"):
        _source(hub, f"ms://{REPO}@v9").resolve()
    with pytest.raises(NotFound, match=f"ms://{REPO}: .*not found"):
        _source(hub, f"ms://{REPO}@{'ab' * 20}").resolve()


def test_private_repo_wants_the_token(hub: FakeModelScopeHub, store: LocalBlobStore) -> None:
    hub.add_repo(REPO, FILES, token="ms-secret")

    with pytest.raises(AuthenticationRequired, match="HTTP 401: set MODELSCOPE_API_TOKEN") as no:
        _source(hub).resolve()
    with pytest.raises(AuthenticationRequired, match="HTTP 403: the token in MODELSCOPE_API_TOKEN"):
        _source(hub, token="ms-wrong").resolve()
    assert "\n" not in no.value.message

    source = _source(hub, token="ms-secret")
    snapshot = source.resolve()
    blob = _mirror(source, snapshot, _file(snapshot, "config.json"), store)
    assert blob.digest == Digest.of(FILES["config.json"])
    download = hub.downloads("config.json")[-1]
    assert download.header("Authorization") == "Bearer ms-secret"


# -- fetch --------------------------------------------------------------------------------------


def test_fetch_streams_exact_bytes_at_the_commit(
    hub: FakeModelScopeHub, store: LocalBlobStore
) -> None:
    commit = hub.add_repo(REPO, FILES)
    source = _source(hub)
    snapshot = source.resolve()

    for file in snapshot.files:
        blob = _mirror(source, snapshot, file, store)
        assert blob.digest == Digest.of(FILES[file.path])
        assert blob.size == len(FILES[file.path])
    downloads = hub.downloads()
    assert len(downloads) == len(snapshot.files)
    assert {r.query["Revision"] for r in downloads} == {commit}
    assert all(r.header("Range") is None and r.status == 200 for r in downloads)
    assert all(r.header("Accept-Encoding") == "identity" for r in downloads)


def test_corrupt_bytes_fail_the_digest_check(hub: FakeModelScopeHub, store: LocalBlobStore) -> None:
    hub.add_repo(REPO, FILES)
    source = _source(hub)
    snapshot = source.resolve()
    hub.inject(REPO, BIG, "corrupt")

    with pytest.raises(IntegrityFailure, match="sha256 mismatch"):
        _mirror(source, snapshot, _file(snapshot, BIG), store)


def test_a_dropped_connection_resumes_with_range(
    hub: FakeModelScopeHub, store: LocalBlobStore
) -> None:
    hub.add_repo(REPO, FILES)
    source = _source(hub)
    snapshot = source.resolve()
    hub.inject(REPO, BIG, "truncate")

    blob = _mirror(source, snapshot, _file(snapshot, BIG), store)

    assert blob.digest == Digest.of(FILES[BIG])
    first, second = hub.downloads(BIG)
    assert first.header("Range") is None
    resumed = second.header("Range") or ""
    assert resumed.startswith("bytes=")
    assert resumed.endswith("-")
    assert int(resumed[len("bytes=") : -1]) > 0
    assert second.status == 206


def test_a_server_ignoring_range_restarts_from_zero(
    hub: FakeModelScopeHub, store: LocalBlobStore
) -> None:
    hub.add_repo(REPO, FILES)
    source = _source(hub)
    snapshot = source.resolve()
    hub.inject(REPO, BIG, "truncate")
    hub.inject(REPO, BIG, "ignore_range")

    blob = _mirror(source, snapshot, _file(snapshot, BIG), store)

    assert blob.digest == Digest.of(FILES[BIG])
    _, second = hub.downloads(BIG)
    assert second.header("Range") is not None
    assert second.status == 200  # whole body: the sink was rewound, not appended to


def test_an_interrupted_mirror_resumes_from_the_partial_upload(
    hub: FakeModelScopeHub, store: LocalBlobStore
) -> None:
    hub.add_repo(REPO, FILES)
    source = _source(hub)
    snapshot = source.resolve()
    file = _file(snapshot, BIG)
    hub.inject(REPO, BIG, "truncate")  # half the bytes arrive...
    hub.inject(REPO, BIG, "status:500")  # ...then the hub fails for good
    key = f"{snapshot.commit}/{BIG}"

    upload = UploadSink(store, expected_size=file.size, resume_key=key, label=BIG)
    with pytest.raises(UpstreamError, match=rf"^ms://{REPO}: {BIG}: HTTP 500"):
        source.fetch(snapshot, file, upload)
    upload.abort(keep_partial=True)

    assert file.sha256 is not None
    with UploadSink(
        store,
        expected_sha256=Digest(file.sha256),
        expected_size=file.size,
        resume_key=key,
        label=BIG,
    ) as again:
        assert again.resume_offset > 0
        source.fetch(snapshot, file, again)
        assert again.commit().digest == Digest.of(FILES[BIG])
    assert hub.downloads(BIG)[-1].header("Range") == f"bytes={again.resume_offset}-"


@pytest.mark.parametrize("status", [401, 403])
def test_fetch_refused_is_authentication_required(
    hub: FakeModelScopeHub, store: LocalBlobStore, status: int
) -> None:
    hub.add_repo(REPO, FILES)
    source = _source(hub)
    snapshot = source.resolve()
    hub.inject(REPO, "config.json", f"status:{status}")

    with pytest.raises(AuthenticationRequired, match=f"config.json: HTTP {status}: set MODELSCOPE"):
        _mirror(source, snapshot, _file(snapshot, "config.json"), store)


def test_server_error_names_the_file(hub: FakeModelScopeHub, store: LocalBlobStore) -> None:
    hub.add_repo(REPO, FILES)
    source = _source(hub)
    snapshot = source.resolve()
    hub.inject(REPO, "tokenizer/vocab.txt", "status:500")

    with pytest.raises(UpstreamError, match=rf"^ms://{REPO}: tokenizer/vocab.txt: HTTP 500") as e:
        _mirror(source, snapshot, _file(snapshot, "tokenizer/vocab.txt"), store)
    assert "\n" not in e.value.message
    assert len(hub.downloads("tokenizer/vocab.txt")) == 1  # a 500 is final, not retried


def test_a_transient_503_is_retried(hub: FakeModelScopeHub, store: LocalBlobStore) -> None:
    hub.add_repo(REPO, FILES)
    source = _source(hub)
    snapshot = source.resolve()
    hub.inject(REPO, "README.md", "status:503")

    blob = _mirror(source, snapshot, _file(snapshot, "README.md"), store)
    assert blob.digest == Digest.of(FILES["README.md"])


def test_a_listed_file_that_is_not_served_names_the_file(
    hub: FakeModelScopeHub, store: LocalBlobStore
) -> None:
    hub.add_repo(REPO, FILES)
    source = _source(hub)
    snapshot = source.resolve()
    hub.inject(REPO, "README.md", "missing")

    with pytest.raises(UpstreamError, match=r"README.md: listed by the hub but not served"):
        _mirror(source, snapshot, _file(snapshot, "README.md"), store)


def test_a_hub_gone_mid_mirror_is_an_upstream_error(store: LocalBlobStore) -> None:
    with FakeModelScopeHub() as hub:
        hub.add_repo(REPO, FILES)
        source = _source(hub)
        snapshot = source.resolve()
    # The port is closed now: every attempt is refused, then the error names the file.
    with pytest.raises(UpstreamError, match=rf"^ms://{REPO}: README.md: transfer failed after 5"):
        _mirror(source, snapshot, _file(snapshot, "README.md"), store)


# -- the official client against the fake --------------------------------------------------------


def test_the_official_client_speaks_to_the_fake(hub: FakeModelScopeHub, tmp_path: Path) -> None:
    commit = hub.add_repo(REPO, FILES)
    hub.tag(REPO, "v1.0")
    api = HubApi(
        config=HubConfig(
            endpoint=hub.url,
            token="",
            config_dir=tmp_path / "ms-config",
            cache_dir=tmp_path / "ms-cache",
        )
    )

    listed = {f.path: f for f in api.list_repo_files(REPO, "model") if not f.is_dir}
    assert set(listed) == set(FILES)
    assert listed[BIG].size == len(FILES[BIG])
    assert listed[BIG].sha256 == hashlib.sha256(FILES[BIG]).hexdigest()
    assert {"tokenizer", "weights"} <= {
        f.path for f in api.list_repo_files(REPO, "model") if f.is_dir
    }
    assert {r["Revision"] for r in api.list_repo_revisions(REPO, "model")} == {"master", "v1.0"}
    assert api.get_repo(REPO, "model").name == "tiny-model"

    path = api.download_file(
        REPO,
        "model",
        "tokenizer/vocab.txt",
        revision=commit,
        local_dir=tmp_path / "out",
        expected_sha256=hashlib.sha256(FILES["tokenizer/vocab.txt"]).hexdigest(),
        file_size=len(FILES["tokenizer/vocab.txt"]),
    )
    assert Path(path).read_bytes() == FILES["tokenizer/vocab.txt"]
    # The client's download manager probes for "intra-cloud acceleration": the fake says no.
    probes = [r for r in hub.requests if r.path.endswith("/internalAccelerationInfo")]
    assert [r.status for r in probes] == [404]
    assert all(r.path.startswith(("/api/v1/", "/openapi/v1/")) for r in hub.requests)


def test_cli_mirror_of_a_modelscope_repo(
    hub: FakeModelScopeHub, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`modelctl mirror ms://…` end to end: pinned, hashed, registered, inspectable."""
    files = {
        "config.json": b'{"model_type": "qwen2"}',
        "weights/model.safetensors": safetensors_of(_blob(300_000)),
    }
    commit = hub.add_repo("qwen/tiny", files)
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", hub.url)
    result = run_cli("mirror", "ms://qwen/tiny", "--json")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["source"]["uri"] == "ms://qwen/tiny"
    assert out["source"]["commit"] == commit
    assert {f["path"]: f["sha256"] for f in out["files"]} == {
        p: hashlib.sha256(d).hexdigest() for p, d in files.items()
    }
    assert (
        run_cli("inspect", f"qwen/tiny@{commit[:12]}", "--json").json()["digest"] == out["digest"]
    )
    hub.add_repo(
        "qwen/tiny",
        dict(files, **{"weights/model.safetensors": safetensors_of(_blob(300_000, b"v2"))}),
    )
    hub.inject("qwen/tiny", "weights/model.safetensors", "corrupt")
    tampered = run_cli("mirror", "ms://qwen/tiny")
    assert tampered.code == 1
    assert "weights/model.safetensors" in tampered.stderr
    assert len(run_cli("models", "--json").json()["models"][0]["checkpoints"]) == 1
