"""`/hf/{env}/`: the real `huggingface_hub` client against a real uvicorn server on 127.0.0.1.

Every model is mirrored from the fake Hub with the CLI, attested (or not) and then served by
`create_app`; downloads go through `snapshot_download` / `hf_hub_download` unmodified (here
with `endpoint=`, and in a subprocess with `HF_ENDPOINT`, as users set it).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import httpx2
import pytest
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from registry.api.app import create_app
from registry.db.engine import unit_of_work
from registry.service import tokens
from registry.service.tokens import Role
from registry.settings import Settings
from tests.api_server import LiveServer, live_server
from tests.fakes.hfhub import FakeHub
from tests.test_policy_cli import CARD, _safetensors

BIG = bytes(range(256)) * (5 * 4096 + 11)  # ~5 MiB: several 1 MiB chunks


def _tokenizer_json() -> bytes:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"[UNK]": 0, "[PAD]": 1, "hello": 2, "world": 3, "model": 4, "registry": 5}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    return tok.to_str().encode()


def model_files() -> dict[str, bytes]:
    return {
        "README.md": CARD,
        "config.json": json.dumps(
            {
                "model_type": "bert",
                "vocab_size": 6,
                "hidden_size": 8,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 16,
            }
        ).encode(),
        "tokenizer.json": _tokenizer_json(),
        "tokenizer_config.json": json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "unk_token": "[UNK]",
                "pad_token": "[PAD]",
                "model_max_length": 32,
            }
        ).encode(),
        "model.safetensors": _safetensors(),
        "extra/weights.dat": BIG,
    }


@dataclass
class Served:
    """A running server and what was mirrored into its registry."""

    url: str
    live: LiveServer
    token: str
    files: dict[str, bytes]
    digest: str  # sha256:<hex> of org/tiny's admitted checkpoint
    home: Path

    def endpoint(self, env: str = "prod") -> str:
        return f"{self.url}/hf/{env}"

    @property
    def commit(self) -> str:
        return self.digest.removeprefix("sha256:")[:40]

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.get(self.url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        yield fake


def mirror_and_attest(run_cli: Any, hub: FakeHub, repo: str, files: dict[str, bytes]) -> str:
    """Mirror `repo` (scanned), have the registry attest it; the checkpoint's digest."""
    hub.add_repo(repo, files)
    mirrored = run_cli("mirror", f"hf://{repo}", "--json")
    assert mirrored.code == 0, mirrored.stderr
    digest: str = mirrored.json()["digest"]
    attested = run_cli("attest", f"{repo}@{digest}")
    assert attested.code == 0, attested.stderr
    return digest


def reader_token(home: Path, name: str = "hf-reader") -> str:
    settings = Settings.from_env(home=home)
    from registry.embedded import EmbeddedRegistry

    registry = EmbeddedRegistry(settings)
    try:
        with unit_of_work(registry.sessions) as session:
            return tokens.create(session, name=name, role=Role.READER, actor="test").secret
    finally:
        registry.close()


@pytest.fixture
def served(run_cli: Any, hub: FakeHub, isolated_env: Path) -> Iterator[Served]:
    files = model_files()
    digest = mirror_and_attest(run_cli, hub, "org/tiny", files)
    assert run_cli("policy", "check", f"org/tiny@{digest}", "--env", "prod").code == 0
    token = reader_token(isolated_env)
    with live_server(create_app(Settings.from_env())) as live:
        yield Served(live.url, live, token, files, digest, isolated_env)


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _chain(exc: BaseException) -> str:
    """The messages of an exception and its causes (the client wraps the server's reason)."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


# -- the happy path ------------------------------------------------------------------------


def test_snapshot_download_is_byte_identical(served: Served, tmp_path: Path) -> None:
    folder = snapshot_download(
        "org/tiny", endpoint=served.endpoint(), token=served.token, cache_dir=tmp_path / "c"
    )
    assert _tree(Path(folder)) == served.files
    # The snapshot folder is the served commit, and every blob is named by its sha256.
    assert Path(folder).name == served.commit
    blobs = tmp_path / "c" / "models--org--tiny" / "blobs"
    assert sorted(p.name for p in blobs.iterdir()) == sorted(
        hashlib.sha256(b).hexdigest() for b in served.files.values()
    )


def test_hf_hub_download_by_revision_kinds(served: Served, tmp_path: Path) -> None:
    for i, revision in enumerate(["main", served.commit, served.digest]):
        path = hf_hub_download(
            "org/tiny",
            "extra/weights.dat",
            revision=revision,
            endpoint=served.endpoint(),
            token=served.token,
            cache_dir=tmp_path / f"c{i}",
        )
        assert Path(path).read_bytes() == BIG


def test_model_info_tree_and_headers(served: Served) -> None:
    info = served.get("/hf/prod/api/models/org/tiny?blobs=true")
    assert info.status_code == 200
    body = info.json()
    assert body["id"] == "org/tiny"
    assert body["sha"] == served.commit
    siblings = {s["rfilename"]: s for s in body["siblings"]}
    assert set(siblings) == set(served.files)
    big = siblings["extra/weights.dat"]
    assert big["lfs"]["sha256"] == hashlib.sha256(BIG).hexdigest()
    assert big["size"] == len(BIG)
    assert served.get(f"/hf/prod/api/models/org/tiny/revision/{served.commit}").json()["sha"] == (
        served.commit
    )

    tree = served.get("/hf/prod/api/models/org/tiny/tree/main?recursive=true&expand=false")
    assert tree.status_code == 200
    entries = {e["path"]: e for e in tree.json()}
    assert entries["extra"]["type"] == "directory"
    for path, data in served.files.items():
        assert entries[path]["type"] == "file"
        assert entries[path]["size"] == len(data)
        assert entries[path]["lfs"]["oid"] == hashlib.sha256(data).hexdigest()
        assert "xetHash" not in entries[path]
    top = served.get("/hf/prod/api/models/org/tiny/tree/main").json()
    assert "extra/weights.dat" not in {e["path"] for e in top}
    sub = served.get("/hf/prod/api/models/org/tiny/tree/main/extra").json()
    assert [e["path"] for e in sub] == ["extra/weights.dat"]

    head = httpx.head(
        served.url + "/hf/prod/org/tiny/resolve/main/extra/weights.dat",
        headers={"Authorization": f"Bearer {served.token}"},
    )
    assert head.status_code == 200
    sha = hashlib.sha256(BIG).hexdigest()
    assert head.headers["X-Repo-Commit"] == served.commit
    assert head.headers["ETag"] == f'"{sha}"'
    assert head.headers["X-Linked-Etag"] == f'"{sha}"'
    assert head.headers["X-Linked-Size"] == str(len(BIG))
    assert head.headers["Content-Length"] == str(len(BIG))
    assert not [h for h in head.headers if h.lower().startswith("x-xet")]
    assert "xet" not in head.headers.get("Link", "")


def test_paths_info(served: Served) -> None:
    got = httpx.post(
        served.url + "/hf/prod/api/models/org/tiny/paths-info/main",
        data={"paths": ["config.json", "extra", "nope.txt"]},
        headers={"Authorization": f"Bearer {served.token}"},
    )
    assert got.status_code == 200
    assert [e["path"] for e in got.json()] == ["config.json", "extra"]


def test_ranges(served: Served) -> None:
    url = "/hf/prod/org/tiny/resolve/main/extra/weights.dat"
    size = len(BIG)
    for header, (start, end) in {
        "bytes=10-99": (10, 100),
        f"bytes={size - 7}-": (size - 7, size),
        "bytes=-5": (size - 5, size),
        f"bytes=1048570-{size + 100}": (1048570, size),
    }.items():
        got = served.get(url, headers={"Range": header})
        assert got.status_code == 206, header
        assert got.content == BIG[start:end], header
        assert got.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
        assert got.headers["Content-Length"] == str(end - start)
    bad = served.get(url, headers={"Range": f"bytes={size}-"})
    assert bad.status_code == 416
    assert bad.headers["Content-Range"] == f"bytes */{size}"
    multi = served.get(url, headers={"Range": "bytes=0-1,5-6"})  # ignored: the whole file
    assert multi.status_code == 200
    assert multi.content == BIG


@pytest.mark.ml
def test_transformers_and_hf_endpoint_in_a_fresh_process(served: Served, tmp_path: Path) -> None:
    """What users do: HF_ENDPOINT and HF_TOKEN set before anything is imported, hf_xet
    installed and not disabled; transformers loads the config and the tokenizer."""
    script = textwrap.dedent(
        """
        import json, sys
        from huggingface_hub import snapshot_download
        from transformers import AutoConfig, AutoTokenizer
        config = AutoConfig.from_pretrained("org/tiny")
        tok = AutoTokenizer.from_pretrained("org/tiny")
        folder = snapshot_download("org/tiny")
        print(json.dumps({
            "model_type": config.model_type,
            "hidden_size": config.hidden_size,
            "ids": tok("hello registry world")["input_ids"],
            "folder": folder,
        }))
        """
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS", "MODELCTL"))
    }
    env.update(
        HF_ENDPOINT=served.endpoint("prod"),
        HF_TOKEN=served.token,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        TRANSFORMERS_VERBOSITY="error",
        TOKENIZERS_PARALLELISM="false",
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["model_type"] == "bert"
    assert got["hidden_size"] == 8
    assert got["ids"] == [2, 5, 3]
    assert _tree(Path(got["folder"])) == served.files


# -- what is not admitted is not served ------------------------------------------------------


def test_unsigned_checkpoint_is_403_with_the_failing_checks(
    served: Served, run_cli: Any, hub: FakeHub, tmp_path: Path
) -> None:
    hub.add_repo("org/unsigned", {"README.md": CARD, "model.safetensors": _safetensors()})
    assert run_cli("mirror", "hf://org/unsigned").code == 0  # scanned, never attested
    raw = served.get("/hf/prod/org/unsigned/resolve/main/model.safetensors")
    assert raw.status_code == 403
    message = raw.headers["X-Error-Message"]
    assert "not admitted to 'prod'" in message
    assert "https://model_signing/signature/v1.0" in message
    # The client turns a 403 into "cannot find the file locally", caused by our reason.
    with pytest.raises(LocalEntryNotFoundError) as caught:
        hf_hub_download(
            "org/unsigned",
            "model.safetensors",
            endpoint=served.endpoint(),
            token=served.token,
            cache_dir=tmp_path / "c",
        )
    assert "not admitted to 'prod'" in _chain(caught.value)
    with pytest.raises(LocalEntryNotFoundError) as snap:
        snapshot_download(
            "org/unsigned", endpoint=served.endpoint(), token=served.token, cache_dir=tmp_path / "d"
        )
    assert "not admitted to 'prod'" in _chain(snap.value)
    assert not (tmp_path / "d" / "models--org--unsigned" / "snapshots").exists()
    # dev warns only, but serving still needs the registry's signature: refused all the same
    dev = served.get("/hf/dev/org/unsigned/resolve/main/model.safetensors")
    assert dev.status_code == 403
    assert "signature" in dev.headers["X-Error-Message"]
    # an environment no policy is bound to: fail closed
    nowhere = served.get("/hf/qa/org/tiny/resolve/main/config.json")
    assert nowhere.status_code == 403
    assert "no policy is bound" in nowhere.headers["X-Error-Message"]


def test_hf_quarantine_by_digest_holds_the_same_bytes_under_another_name(
    served: Served, run_cli: Any
) -> None:
    """Quarantining org/tiny's digest closes /hf for every name holding those bytes, and a
    file's sha256 closes it for every checkpoint holding that file."""
    assert run_cli("mirror", "hf://org/tiny", "--name", "acme/copy").code == 0
    assert run_cli("attest", "acme/copy").code == 0
    copy = "/hf/prod/acme/copy/resolve/main/config.json"
    assert served.get(copy).status_code == 200
    assert run_cli("quarantine", "org/tiny", "--reason", "CVE-2026-0002").code == 0
    denied = served.get(copy)
    assert denied.status_code == 403
    assert "quarantine" in denied.headers["X-Error-Message"]
    assert run_cli("release", "acme/copy", "--reason", "fixed").code == 0
    assert served.get(copy).status_code == 200
    config = "sha256:" + hashlib.sha256(served.files["config.json"]).hexdigest()
    assert run_cli("quarantine", config, "--reason", "bad config").code == 0
    for path in (copy, "/hf/prod/org/tiny/resolve/main/README.md"):
        assert served.get(path).status_code == 403, path


def test_quarantine_is_403_at_once(served: Served, run_cli: Any, tmp_path: Path) -> None:
    url = "/hf/prod/org/tiny/resolve/main/config.json"
    assert served.get(url).status_code == 200
    q = run_cli("quarantine", f"org/tiny@{served.digest}", "--reason", "CVE-2026-0001")
    assert q.code == 0, q.stderr
    for path in (url, f"/hf/prod/org/tiny/resolve/{served.commit}/config.json"):
        denied = served.get(path)
        assert denied.status_code == 403
        assert "quarantine" in denied.headers["X-Error-Message"]
    with pytest.raises(LocalEntryNotFoundError) as caught:
        snapshot_download(
            "org/tiny", endpoint=served.endpoint(), token=served.token, cache_dir=tmp_path / "c"
        )
    assert "quarantine" in _chain(caught.value)
    assert run_cli("release", f"org/tiny@{served.digest}", "--reason", "fixed").code == 0
    assert served.get(url).status_code == 200


def test_main_is_the_latest_admitted_checkpoint(served: Served, run_cli: Any, hub: FakeHub) -> None:
    newer = {**served.files, "config.json": b'{"model_type": "bert", "hidden_size": 16}'}
    hub.add_repo("org/tiny", newer)
    mirrored = run_cli("mirror", "hf://org/tiny", "--json")
    assert mirrored.code == 0
    new_digest = mirrored.json()["digest"]
    assert new_digest != served.digest
    # not attested yet: main still serves the older, admitted checkpoint
    info = served.get("/hf/prod/api/models/org/tiny").json()
    assert info["sha"] == served.commit
    assert (
        served.get("/hf/prod/org/tiny/resolve/main/config.json").content
        == (served.files["config.json"])
    )
    pinned = served.get(f"/hf/prod/org/tiny/resolve/{new_digest}/config.json")
    assert pinned.status_code == 403
    assert run_cli("attest", f"org/tiny@{new_digest}").code == 0
    assert served.get("/hf/prod/api/models/org/tiny").json()["sha"] == new_digest[7:47]
    assert served.get("/hf/prod/org/tiny/resolve/main/config.json").content == newer["config.json"]
    # the older one is still reachable by its own id, and the source commit names it too
    old = served.get(f"/hf/prod/org/tiny/resolve/{served.commit}/config.json")
    assert old.content == served.files["config.json"]
    hub_commit = hub.commit("org/tiny").sha
    by_source = served.get(f"/hf/prod/org/tiny/resolve/{hub_commit}/config.json")
    assert by_source.content == newer["config.json"]
    assert by_source.headers["X-Repo-Commit"] == hub_commit  # a commit asked for comes back


# -- bytes only from verified blobs -------------------------------------------------------


def _blob(served: Served, data: bytes) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    return served.home / "blobs" / "sha256" / sha[:2] / sha


def _tamper(path: Path, data: bytes) -> None:
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(data)


def _stream(served: Served, path: str) -> tuple[bytes, Exception | None]:
    """The body bytes that arrived, and the error that ended the transfer (if any)."""
    received = bytearray()
    headers = {"Authorization": f"Bearer {served.token}"}
    try:
        with httpx.stream("GET", served.url + path, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["Content-Length"] == str(len(BIG))
            for chunk in response.iter_bytes():
                received += chunk
    except httpx.TransportError as exc:
        return bytes(received), exc
    return bytes(received), None


def test_tampered_blob_is_an_error_never_bytes(served: Served, tmp_path: Path) -> None:
    evil = bytearray(BIG)
    evil[-3] ^= 0xFF  # same size: only the hash can tell
    _tamper(_blob(served, BIG), bytes(evil))
    with pytest.raises(httpx2.TransportError):  # the body ended short, 5 resumes too
        hf_hub_download(
            "org/tiny",
            "extra/weights.dat",
            endpoint=served.endpoint(),
            token=served.token,
            cache_dir=tmp_path / "c",
        )
    cached = list((tmp_path / "c").rglob("weights.dat"))
    assert all(p.read_bytes() == BIG for p in cached if p.exists())
    assert not any(p.exists() for p in cached)
    # A raw client sees a body that stops short of Content-Length, without the changed bytes.
    received, error = _stream(served, "/hf/prod/org/tiny/resolve/main/extra/weights.dat")
    assert isinstance(error, httpx.RemoteProtocolError)
    assert 0 < len(received) < len(BIG) - 3
    assert received == BIG[: len(received)]
    with pytest.raises(httpx.RemoteProtocolError):
        served.get(
            "/hf/prod/org/tiny/resolve/main/extra/weights.dat",
            headers={"Range": f"bytes={len(BIG) - 10}-"},
        )
    # Other files still serve.
    assert served.get("/hf/prod/org/tiny/resolve/main/config.json").status_code == 200


def test_blob_of_the_wrong_size_is_refused_before_any_byte(served: Served) -> None:
    _tamper(_blob(served, BIG), BIG + b"x")
    got = served.get("/hf/prod/org/tiny/resolve/main/extra/weights.dat")
    assert got.status_code == 500
    assert "integrity" in got.headers["X-Error-Message"]
    assert got.content.startswith(b"{")


# -- bad requests --------------------------------------------------------------------------


def test_unknown_repo_revision_and_file(served: Served, tmp_path: Path) -> None:
    kw: dict[str, Any] = {
        "endpoint": served.endpoint(),
        "token": served.token,
        "cache_dir": tmp_path / "c",
    }
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/nothing", "config.json", **kw)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("org/tiny", "config.json", revision="v9", **kw)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/tiny", "nope.json", **kw)
    missing = served.get("/hf/prod/org/tiny/resolve/main/nope.json")
    assert missing.headers["X-Error-Code"] == "EntryNotFound"
    assert missing.headers["X-Repo-Commit"] == served.commit
    assert served.get("/hf/prod/api/models/org/nothing").headers["X-Error-Code"] == "RepoNotFound"
    assert served.get("/hf/prod/api/models/../x").status_code == 404
    assert served.get("/hf/prod/api/models/org/tiny/tree/main/nope").status_code == 404


def _raw_get(served: Served, path: str) -> tuple[int, bytes]:
    """A request line sent exactly as written (no client-side dot-segment cleanup)."""
    host, port = served.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {served.token}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_path_traversal_never_leaves_the_checkpoint(served: Served) -> None:
    secret = served.home / "secret.txt"
    secret.write_bytes(b"TOP-SECRET-CONTENT")
    db = (served.home / "registry.db").read_bytes()[:16]
    for path in (
        "/hf/prod/org/tiny/resolve/main/../../../../secret.txt",
        "/hf/prod/org/tiny/resolve/main/%2e%2e/%2e%2e/secret.txt",
        "/hf/prod/org/tiny/resolve/main/..%2f..%2f..%2fregistry.db",
        "/hf/prod/org/tiny/resolve/main/%2Fetc%2Fpasswd",
        "/hf/prod/org/tiny/resolve/main/extra/../config.json",
        "/hf/prod/org/tiny/resolve/main/extra%5c..%5cconfig.json",
        "/hf/prod/org/tiny/resolve/main/config.json%00.txt",
        "/hf/prod/org/tiny/resolve/..%2f..%2f/config.json",
        "/hf/prod/org/tiny/resolve/main/",
        "/hf/prod/api/models/org/tiny/tree/main/..%2f..",
    ):
        status, body = _raw_get(served, path)
        assert status in (400, 404), (path, status)
        assert b"TOP-SECRET" not in body
        assert db not in body
        assert b"root:" not in body


def test_token_is_required_unless_reads_are_public(served: Served, tmp_path: Path) -> None:
    url = served.url + "/hf/prod/org/tiny/resolve/main/config.json"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert "token" in anonymous.headers["X-Error-Message"]
    wrong = httpx.get(url, headers={"Authorization": "Bearer mctl_0000000000000000_" + "x" * 43})
    assert wrong.status_code == 401
    assert "unknown, revoked or expired" in wrong.headers["X-Error-Message"]
    with pytest.raises(HfHubHTTPError):
        hf_hub_download(
            "org/tiny", "config.json", endpoint=served.endpoint(), cache_dir=tmp_path / "c"
        )


def test_tree_pages_follow_link(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import HfApi

    from registry.service import hf_view

    monkeypatch.setattr(hf_view, "TREE_PAGE", 2)
    first = served.get("/hf/prod/api/models/org/tiny/tree/main?recursive=true")
    assert len(first.json()) == 2
    assert 'rel="next"' in first.headers["Link"]
    api = HfApi(endpoint=served.endpoint(), token=served.token)
    assert sorted(api.list_repo_files("org/tiny")) == sorted(served.files)


def _open_blob_handles(path: Path) -> int:
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if os.readlink(fd) == str(path):
                count += 1
        except OSError:
            continue
    return count


def test_client_that_disconnects_mid_download(served: Served) -> None:
    blob = _blob(served, BIG)
    url = served.url + "/hf/prod/org/tiny/resolve/main/extra/weights.dat"
    headers = {"Authorization": f"Bearer {served.token}"}
    for _ in range(3):
        with httpx.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            first = next(response.iter_raw(65536))
            assert first == BIG[: len(first)]
        # the connection is closed with most of the body unread
    deadline = 50
    while _open_blob_handles(blob) and deadline:
        time.sleep(0.1)
        deadline -= 1
    assert _open_blob_handles(blob) == 0  # the server closed the blob behind every stream
    assert served.get(url.removeprefix(served.url)).content == BIG  # and still serves


def test_on_postgresql(
    run_cli: Any,
    hub: FakeHub,
    isolated_env: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", postgres_url)
    files = model_files()
    digest = mirror_and_attest(run_cli, hub, "org/tiny", files)
    token = reader_token(isolated_env)
    with live_server(create_app(Settings.from_env())) as live:
        folder = snapshot_download(
            "org/tiny", endpoint=f"{live.url}/hf/prod", token=token, cache_dir=tmp_path / "c"
        )
        assert _tree(Path(folder)) == files
        assert Path(folder).name == digest[7:47]
        assert run_cli("quarantine", f"org/tiny@{digest}", "--reason", "bad").code == 0
        denied = httpx.get(
            f"{live.url}/hf/prod/org/tiny/resolve/main/config.json",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert denied.status_code == 403
        assert "quarantine" in denied.headers["X-Error-Message"]


LAB_POLICY = """\
apiVersion: modelctl.dev/v1
kind: ModelPolicy
metadata: {name: lab}
spec:
  signers:
    - { name: registry, kind: registry }
  attestations:
    - { predicateType: "https://model_signing/signature/v1.0", signers: [registry] }
---
apiVersion: modelctl.dev/v1
kind: ModelPolicyBinding
metadata: {name: lab}
spec:
  environments:
    lab: { policy: lab, mode: enforce }
"""


def test_the_servers_policy_file_decides(
    served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    policy = tmp_path / "lab.yaml"
    policy.write_text(LAB_POLICY)
    monkeypatch.setenv("MODELCTL_POLICY", str(policy))
    headers = {"Authorization": f"Bearer {served.token}"}
    with live_server(create_app(Settings.from_env())) as live:
        lab = httpx.get(f"{live.url}/hf/lab/org/tiny/resolve/main/config.json", headers=headers)
        assert lab.status_code == 200
        assert lab.content == served.files["config.json"]
        prod = httpx.get(f"{live.url}/hf/prod/org/tiny/resolve/main/config.json", headers=headers)
        assert prod.status_code == 403  # this policy file binds no prod: fail closed
        assert "no policy is bound to environment 'prod'" in prod.headers["X-Error-Message"]


@pytest.mark.slow
def test_snapshot_by_source_commit(
    served: Served, hub: FakeHub, run_cli: Any, tmp_path: Path
) -> None:
    """A user may pin the upstream commit they know: the client files the snapshot under the
    commit it asked for, so that id comes back (not the checkpoint's)."""
    source = hub.commit("org/tiny").sha
    # A second checkpoint from the same commit (a subset, newer, not attested): same bytes per
    # path, so the commit stays usable, and the admitted full checkpoint is what is served.
    subset = run_cli("mirror", "hf://org/tiny", "--include", "config.json", "--json")
    assert subset.code == 0
    assert subset.json()["digest"] != served.digest
    folder = snapshot_download(
        "org/tiny",
        revision=source,
        endpoint=served.endpoint(),
        token=served.token,
        cache_dir=tmp_path / "c",
    )
    assert Path(folder).name == source
    assert _tree(Path(folder)) == served.files
    info = served.get(f"/hf/prod/api/models/org/tiny/revision/{source}").json()
    assert info["sha"] == source
    assert info["modelctl"]["digest"] == served.digest


def test_a_source_commit_with_two_versions_of_a_file_is_refused() -> None:
    from registry.db.models import Checkpoint
    from registry.service.gate import NotAdmitted
    from registry.service.hf_view import _check_same_bytes

    def checkpoint(**files: str) -> Checkpoint:
        rows = [SimpleNamespace(path=p, sha256=h) for p, h in files.items()]
        return cast(Checkpoint, SimpleNamespace(files=rows))

    _check_same_bytes("o/m", "c" * 40, [checkpoint(a="1", b="2"), checkpoint(a="1")])
    with pytest.raises(NotAdmitted, match="different bytes for a"):
        _check_same_bytes("o/m", "c" * 40, [checkpoint(a="1"), checkpoint(a="9", b="2")])


def test_public_reads_need_no_token_but_a_bad_one_is_refused(
    served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELCTL_PUBLIC_READS", "true")
    with live_server(create_app(Settings.from_env())) as live:
        folder = snapshot_download(
            "org/tiny", endpoint=f"{live.url}/hf/prod", cache_dir=tmp_path / "c"
        )
        assert _tree(Path(folder)) == served.files
        bad = httpx.get(
            f"{live.url}/hf/prod/org/tiny/resolve/main/config.json",
            headers={"Authorization": "Bearer mctl_0000000000000000_" + "x" * 43},
        )
        assert bad.status_code == 401
        # the webhook is not a public read: it always wants a token
        hook = httpx.post(f"{live.url}/k8s/admission", json={"apiVersion": "admission.k8s.io/v1"})
        assert hook.status_code == 401


# -- token scopes and warnings (on both databases) -----------------------------------------------


def test_hf_refuses_an_environment_outside_the_tokens_scope_and_shows_warnings(
    run_cli: Any,
    hub: FakeHub,
    isolated_env: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A token scoped to `lab` cannot pick another environment (here `gate`, bound to the same
    policy enforced: a scope refusal, not a policy one). In `lab` (warn mode) the failing
    license check is served with an `X-Modelctl-Warning` header on every response."""
    from tests.helpers import write_warn_policy

    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    monkeypatch.setenv("MODELCTL_POLICY", str(write_warn_policy(tmp_path)))
    files = model_files()
    mirror_and_attest(run_cli, hub, "org/tiny", files)
    settings = Settings.from_env(home=isolated_env)
    from registry.embedded import EmbeddedRegistry

    registry = EmbeddedRegistry(settings)
    with unit_of_work(registry.sessions) as session:
        lab_only = tokens.create(
            session, name="lab-only", role=Role.READER, actor="t", environments=["lab"]
        ).secret
    registry.close()
    headers = {"Authorization": f"Bearer {lab_only}"}
    with live_server(create_app(Settings.from_env())) as live:
        out = httpx.get(f"{live.url}/hf/gate/org/tiny/resolve/main/config.json", headers=headers)
        assert out.status_code == 403
        assert "scoped to environment(s) lab, not 'gate'" in out.headers["X-Error-Message"]
        with pytest.raises(LocalEntryNotFoundError) as caught:  # the client's wrapper
            snapshot_download(
                "org/tiny",
                endpoint=f"{live.url}/hf/gate",
                token=lab_only,
                cache_dir=tmp_path / "refused",
            )
        assert "scoped to environment(s) lab" in _chain(caught.value)
        # In scope, warn mode: served, and the failures are in a header on every response.
        for path in (
            "/api/models/org/tiny",
            "/api/models/org/tiny/tree/main",
            "/org/tiny/resolve/main/config.json",
        ):
            got = httpx.get(f"{live.url}/hf/lab{path}", headers=headers)
            assert got.status_code == 200, path
            warning = got.headers["X-Modelctl-Warning"]
            assert warning.startswith("1 check(s) failed in warn mode for 'lab'"), warning
            assert "licenses:" in warning
            assert len(warning) <= 1024
            assert warning.isascii()
        head = httpx.head(f"{live.url}/hf/lab/org/tiny/resolve/main/config.json", headers=headers)
        assert "licenses:" in head.headers["X-Modelctl-Warning"]
        folder = snapshot_download(
            "org/tiny", endpoint=f"{live.url}/hf/lab", token=lab_only, cache_dir=tmp_path / "c"
        )
        assert _tree(Path(folder)) == files
