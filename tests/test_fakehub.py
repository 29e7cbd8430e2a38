"""The fake Hub speaks the protocol the real huggingface_hub client expects, faults included.

Every test drives the installed huggingface_hub client (``endpoint=`` set explicitly) against a
``FakeHub`` on 127.0.0.1, except the raw-protocol checks, which use ``http.client`` to look at
exact status codes and headers.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import random
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import (
    HfApi,
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from huggingface_hub.hf_api import RepoFile, RepoFolder

from tests.fakes.hfhub import FakeHub, Fault, RecordedRequest, git_blob_sha1

REPO = "acme/tiny-model"
KIB = 1024


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(autouse=True)
def _hub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # Small read chunks, so that bytes received before a dropped connection count for the resume
    # (with the default 10 MiB chunks a file under 10 MiB restarts from zero, without Range).
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * KIB)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub(page_size=2) as fake:
        yield fake
        assert fake.errors == []


@pytest.fixture
def files() -> dict[str, bytes]:
    return {
        "config.json": b'{"model_type": "tiny"}',
        "README.md": b"# tiny\n",
        "model.safetensors": blob(1024 * KIB, 1),
        "tokenizer/vocab.txt": b"a\nb\nc\n",
        "tokenizer/merges/merges.txt": blob(12 * KIB, 2),
        "onnx/model.onnx": blob(300 * KIB, 3),
    }


@pytest.fixture
def repo_sha(hub: FakeHub, files: dict[str, bytes]) -> str:
    return hub.add_repo(REPO, files)


def resolve_gets(hub: FakeHub, path: str) -> list[RecordedRequest]:
    """The GET requests on ``/resolve/.../path`` recorded so far."""
    return [r for r in hub.iter_requests("GET", "/resolve/") if r.path.endswith("/" + path)]


@contextlib.contextmanager
def raw_connection(hub: FakeHub) -> Iterator[http.client.HTTPConnection]:
    port = int(hub.url.rsplit(":", 1)[1])
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=5)) as conn:
        yield conn


def raw(
    hub: FakeHub, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    with raw_connection(hub) as conn:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body


# -- repository content API -------------------------------------------------------------------


def test_model_info_reports_sha_siblings_and_lfs_metadata(
    hub: FakeHub, files: dict[str, bytes], repo_sha: str
) -> None:
    api = HfApi(endpoint=hub.url)

    info = api.model_info(REPO)
    assert info.id == REPO
    assert info.sha == repo_sha
    assert info.private is False
    assert info.gated is False
    assert info.disabled is False
    assert info.last_modified is not None
    assert sorted(s.rfilename for s in info.siblings or []) == sorted(files)

    detailed = api.model_info(REPO, revision=repo_sha, files_metadata=True)
    by_name = {s.rfilename: s for s in detailed.siblings or []}
    weights = by_name["model.safetensors"]
    assert weights.size == len(files["model.safetensors"])
    assert weights.lfs is not None
    assert weights.lfs.sha256 == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert by_name["config.json"].lfs is None
    assert by_name["config.json"].blob_id == git_blob_sha1(files["config.json"])
    assert any("blobs=true" in r.path for r in hub.requests)


def test_list_repo_tree_paginates_and_lists_nested_folders(
    hub: FakeHub, files: dict[str, bytes], repo_sha: str
) -> None:
    api = HfApi(endpoint=hub.url)

    entries = list(api.list_repo_tree(REPO, recursive=True))

    repo_files = {e.path: e for e in entries if isinstance(e, RepoFile)}
    folders = {e.path for e in entries if isinstance(e, RepoFolder)}
    assert set(repo_files) == set(files)
    assert folders == {"tokenizer", "tokenizer/merges", "onnx"}
    for path, data in files.items():
        entry = repo_files[path]
        assert entry.size == len(data)
        if entry.lfs is None:
            assert entry.blob_id == git_blob_sha1(data)
        else:
            assert entry.lfs.sha256 == hashlib.sha256(data).hexdigest()
            assert entry.lfs.size == len(data)
            assert entry.lfs.pointer_size > 100
    assert {"tokenizer/merges/merges.txt", "onnx/model.onnx", "model.safetensors"} == {
        p for p, e in repo_files.items() if e.lfs is not None
    }
    tree_calls = [r for r in hub.requests if "/tree/" in r.path]
    assert len(tree_calls) == 5  # 9 entries, 2 per page
    assert all("cursor=" in r.path for r in tree_calls[1:])

    top = {e.path for e in api.list_repo_tree(REPO)}
    assert top == {"config.json", "README.md", "model.safetensors", "tokenizer", "onnx"}
    nested = {e.path for e in api.list_repo_tree(REPO, path_in_repo="tokenizer")}
    assert nested == {"tokenizer/vocab.txt", "tokenizer/merges"}
    assert sorted(api.list_repo_files(REPO, revision=repo_sha)) == sorted(files)


def test_get_paths_info_returns_files_and_folders(hub: FakeHub, repo_sha: str) -> None:
    api = HfApi(endpoint=hub.url)

    infos = api.get_paths_info(REPO, ["config.json", "tokenizer", "absent.txt"])

    assert [(type(i).__name__, i.path) for i in infos] == [
        ("RepoFile", "config.json"),
        ("RepoFolder", "tokenizer"),
    ]
    post = next(hub.iter_requests("POST", "/paths-info/"))
    assert b"paths=config.json" in post.body


def test_snapshot_download_is_byte_identical(
    hub: FakeHub, files: dict[str, bytes], repo_sha: str, tmp_path: Path
) -> None:
    for index in range(10):  # enough files to keep 8 download workers busy at once
        files[f"shards/shard-{index:02d}.bin"] = blob(200 * KIB, 100 + index)
    sha = hub.add_commit(REPO, files)

    cached = Path(snapshot_download(REPO, endpoint=hub.url, cache_dir=tmp_path / "cache"))
    local = Path(
        snapshot_download(REPO, revision=sha, endpoint=hub.url, local_dir=tmp_path / "local")
    )

    assert cached.name == sha
    for root in (cached, local):
        for path, data in files.items():
            assert (root / path).read_bytes() == data, path


def test_download_at_tag_and_at_commit(hub: FakeHub, tmp_path: Path) -> None:
    first = hub.add_repo(REPO, {"config.json": b"v1"}, tags=["v1.0"])
    second = hub.add_commit(REPO, {"config.json": b"v2"})
    hub.add_tag(REPO, "v2.0", second)
    assert first != second

    def fetch(revision: str | None) -> bytes:
        path = hf_hub_download(
            REPO, "config.json", revision=revision, endpoint=hub.url, cache_dir=tmp_path
        )
        return Path(path).read_bytes()

    assert fetch("v1.0") == b"v1"
    assert fetch(first) == b"v1"
    assert fetch(None) == b"v2"
    assert fetch("v2.0") == b"v2"
    assert HfApi(endpoint=hub.url).model_info(REPO, revision="v1.0").sha == first
    assert hub.commit(REPO, first).parent is None
    assert hub.commit(REPO).parent == first


def test_file_metadata_headers(hub: FakeHub, files: dict[str, bytes], repo_sha: str) -> None:
    weights = get_hf_file_metadata(hf_hub_url(REPO, "model.safetensors", endpoint=hub.url))
    assert weights.commit_hash == repo_sha
    assert weights.etag == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert weights.size == len(files["model.safetensors"])
    assert weights.xet_file_data is None

    config = get_hf_file_metadata(hf_hub_url(REPO, "config.json", endpoint=hub.url))
    assert config.etag == git_blob_sha1(files["config.json"])
    assert config.size == len(files["config.json"])


def test_raw_protocol_headers_ranges_and_unknown_routes(
    hub: FakeHub, files: dict[str, bytes], repo_sha: str
) -> None:
    data = files["model.safetensors"]
    status, headers, _ = raw(hub, "HEAD", f"/{REPO}/resolve/main/model.safetensors")
    assert status == 200
    assert headers["x-repo-commit"] == repo_sha
    assert headers["etag"] == headers["x-linked-etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert headers["x-linked-size"] == headers["content-length"] == str(len(data))
    assert headers["accept-ranges"] == "bytes"
    assert not [h for h in headers if h.startswith("x-xet")]
    assert "link" not in headers

    status, headers, body = raw(
        hub, "GET", f"/{REPO}/resolve/main/model.safetensors", {"Range": "bytes=10-19"}
    )
    assert (status, body) == (206, data[10:20])
    assert headers["content-range"] == f"bytes 10-19/{len(data)}"

    status, headers, _ = raw(
        hub, "GET", f"/{REPO}/resolve/main/config.json", {"Range": "bytes=9999-"}
    )
    assert status == 416
    assert headers["content-range"] == f"bytes */{len(files['config.json'])}"

    status, headers, _ = raw(hub, "GET", f"/{REPO}/resolve/main/absent.bin")
    assert (status, headers["x-error-code"], headers["x-repo-commit"]) == (
        404,
        "EntryNotFound",
        repo_sha,
    )

    status, headers, body = raw(hub, "GET", "/api/agent-harnesses")
    assert status == 404
    assert "error" in json.loads(body)


def test_http_get_resumes_with_range(hub: FakeHub, files: dict[str, bytes], repo_sha: str) -> None:
    data = files["model.safetensors"]
    already = 100 * KIB
    url = hf_hub_url(REPO, "model.safetensors", revision=repo_sha, endpoint=hub.url)

    with io.BytesIO() as out:
        out.write(data[:already])
        http_get(url, out, resume_size=already, expected_size=len(data))
        assert out.getvalue() == data

    (get,) = resolve_gets(hub, "model.safetensors")
    assert get.header("Range") == f"bytes={already}-"


# -- gating and typed errors ------------------------------------------------------------------


def test_gated_repo_needs_the_right_token(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo(REPO, {"config.json": b"{}"}, gated_token="hf_secret")
    api = HfApi(endpoint=hub.url)

    with pytest.raises(GatedRepoError) as missing:
        api.model_info(REPO, token=False)
    assert missing.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as wrong:
        api.model_info(REPO, token="hf_wrong")
    assert wrong.value.response.status_code == 403
    with pytest.raises(GatedRepoError):
        hf_hub_download(REPO, "config.json", endpoint=hub.url, cache_dir=tmp_path, token=False)
    with pytest.raises(GatedRepoError):
        list(api.list_repo_tree(REPO, token="hf_wrong"))

    assert api.model_info(REPO, token="hf_secret").gated == "manual"
    path = hf_hub_download(
        REPO, "config.json", endpoint=hub.url, cache_dir=tmp_path, token="hf_secret"
    )
    assert Path(path).read_bytes() == b"{}"
    assert hub.requests[-1].header("authorization") == "Bearer hf_secret"


def test_typed_not_found_errors(hub: FakeHub, repo_sha: str, tmp_path: Path) -> None:
    api = HfApi(endpoint=hub.url)

    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/absent")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/absent", "config.json", endpoint=hub.url, cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(
            REPO, "config.json", revision="0" * 40, endpoint=hub.url, cache_dir=tmp_path
        )
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "absent.json", endpoint=hub.url, cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(REPO, path_in_repo="absent"))


def test_hostile_names_are_listed_verbatim(hub: FakeHub) -> None:
    hostile = [
        "../evil.bin",
        "/abs.bin",
        "a//b.bin",
        "a/./b",
        "nul\x00name",
        "ctrl\x1bname",
        "cafe\u0301.txt",
        "crlf\r\nX-Injected: 1",
    ]
    assert unicodedata.normalize("NFC", hostile[6]) != hostile[6]
    hub.add_repo(REPO, dict.fromkeys(hostile, b"payload"))
    api = HfApi(endpoint=hub.url)

    listed = {e.path for e in api.list_repo_tree(REPO, recursive=True) if isinstance(e, RepoFile)}
    siblings = {s.rfilename for s in api.model_info(REPO).siblings or []}

    assert listed == siblings == set(hostile)
    status, headers, _ = raw(hub, "GET", f"/{REPO}/resolve/main/nul%00name")
    assert status == 200
    assert "x-injected" not in headers
    status, _, _ = raw(hub, "GET", f"/{REPO}/resolve/main/crlf%0D%0AX-Injected:%201")
    assert status == 200


# -- fault injection --------------------------------------------------------------------------


def test_truncate_is_resumed_with_a_range_request(
    hub: FakeHub, files: dict[str, bytes], repo_sha: str, tmp_path: Path
) -> None:
    data = files["model.safetensors"]
    hub.inject(REPO, "model.safetensors", "truncate")

    path = hf_hub_download(REPO, "model.safetensors", endpoint=hub.url, cache_dir=tmp_path)

    assert Path(path).read_bytes() == data
    first, resumed = resolve_gets(hub, "model.safetensors")
    assert first.header("range") is None
    resume_range = resumed.header("range") or ""
    assert resume_range.startswith("bytes=")
    assert 0 < int(resume_range.removeprefix("bytes=").rstrip("-")) <= len(data) // 2


def test_corrupt_flips_a_byte_then_service_resumes(
    hub: FakeHub, files: dict[str, bytes], repo_sha: str, tmp_path: Path
) -> None:
    data = files["onnx/model.onnx"]
    hub.inject(REPO, "onnx/model.onnx", "corrupt")

    bad = Path(hf_hub_download(REPO, "onnx/model.onnx", endpoint=hub.url, cache_dir=tmp_path))
    received = bad.read_bytes()  # the client only checks the size, not the digest
    assert len(received) == len(data)
    assert [i for i in range(len(data)) if received[i] != data[i]] == [len(data) // 2]

    good = hf_hub_download(
        REPO, "onnx/model.onnx", endpoint=hub.url, cache_dir=tmp_path, force_download=True
    )
    assert Path(good).read_bytes() == data


@pytest.mark.parametrize("status", [401, 403, 404, 500, 502, 503])
def test_status_faults_reach_head_and_get(
    hub: FakeHub, repo_sha: str, status: int, tmp_path: Path
) -> None:
    url = hf_hub_url(REPO, "config.json", endpoint=hub.url)
    hub.inject(REPO, "config.json", f"status:{status}", times=2)

    with pytest.raises(HfHubHTTPError) as on_head:
        get_hf_file_metadata(url)
    assert on_head.value.response.status_code == status
    with tmp_path.joinpath("out").open("wb") as out, pytest.raises(HfHubHTTPError) as on_get:
        http_get(url, out)
    assert on_get.value.response.status_code == status
    if status == 404:
        assert isinstance(on_get.value, EntryNotFoundError)
        assert on_get.value.response.headers["X-Error-Code"] == "EntryNotFound"

    assert get_hf_file_metadata(url).commit_hash == repo_sha  # the fault is used up


def test_hf_hub_download_retries_a_503_on_head_by_itself(
    hub: FakeHub, repo_sha: str, tmp_path: Path
) -> None:
    hub.inject(REPO, "config.json", "status:503")

    path = hf_hub_download(REPO, "config.json", endpoint=hub.url, cache_dir=tmp_path)

    assert Path(path).read_bytes() == b'{"model_type": "tiny"}'
    assert len(list(hub.iter_requests("HEAD", "config.json"))) == 2


def test_missing_is_listed_but_not_served(hub: FakeHub, repo_sha: str, tmp_path: Path) -> None:
    hub.inject(REPO, "config.json", "missing")
    listed = {e.path for e in HfApi(endpoint=hub.url).list_repo_tree(REPO)}
    assert "config.json" in listed

    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "config.json", endpoint=hub.url, cache_dir=tmp_path)
    assert hf_hub_download(REPO, "config.json", endpoint=hub.url, cache_dir=tmp_path)


def test_ignore_range_sends_the_whole_file_and_the_client_restarts(
    hub: FakeHub, files: dict[str, bytes], repo_sha: str, tmp_path: Path
) -> None:
    data = files["model.safetensors"]
    hub.inject(REPO, "model.safetensors", "ignore_range")
    status, headers, body = raw(
        hub, "GET", f"/{REPO}/resolve/main/model.safetensors", {"Range": "bytes=5-"}
    )
    assert (status, len(body), "content-range" in headers) == (200, len(data), False)

    hub.inject(REPO, "model.safetensors", "ignore_range")
    already = 64 * KIB
    with tmp_path.joinpath("partial").open("wb+") as out:
        out.write(data[:already])
        http_get(hf_hub_url(REPO, "model.safetensors", endpoint=hub.url), out, resume_size=already)
        out.seek(0)
        assert out.read() == data
    assert resolve_gets(hub, "model.safetensors")[-1].header("range") == f"bytes={already}-"


def test_stall_lets_the_client_time_out_and_resume(
    hub: FakeHub,
    files: dict[str, bytes],
    repo_sha: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = files["model.safetensors"]
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.3)
    hub.inject(REPO, "model.safetensors", "stall:30")

    started = time.monotonic()
    path = hf_hub_download(REPO, "model.safetensors", endpoint=hub.url, cache_dir=tmp_path)

    assert Path(path).read_bytes() == data
    assert time.monotonic() - started < 10
    first, resumed = resolve_gets(hub, "model.safetensors")
    assert first.header("range") is None
    assert (resumed.header("range") or "").startswith("bytes=")


def test_faults_queue_up_and_can_be_cleared(hub: FakeHub, repo_sha: str) -> None:
    path = f"/{REPO}/resolve/main/config.json"
    hub.inject(REPO, "config.json", "status:500")
    hub.inject(REPO, "config.json", "status:502")
    assert raw(hub, "HEAD", path)[0] == 500
    assert raw(hub, "GET", path)[0] == 502
    assert raw(hub, "GET", path)[0] == 200

    hub.inject(REPO, "config.json", "truncate")  # a body fault: HEAD neither sees nor uses it
    assert raw(hub, "HEAD", path)[0] == 200
    hub.inject(REPO, "config.json", "status:503", times=5)
    hub.clear_faults()
    assert raw(hub, "GET", path)[0] == 200

    hub.reset_requests()
    assert hub.requests == []
    with pytest.raises(ValueError, match="unknown fault"):
        hub.inject(REPO, "config.json", "explode")
    assert Fault.parse("stall:0.5") == Fault("stall", seconds=0.5)


def test_lifecycle_and_keep_alive_shutdown() -> None:
    fake = FakeHub()
    with pytest.raises(RuntimeError):
        _ = fake.url
    fake.add_repo(REPO, {"config.json": b"{}"})
    with fake:
        with raw_connection(fake) as conn:  # a keep-alive connection left open across stop()
            conn.request("GET", f"/{REPO}/resolve/main/config.json")
            assert conn.getresponse().read() == b"{}"
            started = time.monotonic()
            fake.stop()
            assert time.monotonic() - started < 2
        fake.stop()  # idempotent
    assert fake.errors == []
