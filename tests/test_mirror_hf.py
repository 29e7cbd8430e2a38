"""`modelctl mirror hf://…` through the real huggingface_hub client, against a local fake Hub."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.hfhub import FakeHub
from tests.helpers import safetensors_of

CONFIG = b'{"architectures": ["LlamaForCausalLM"], "hidden_size": 64}'
FILES: dict[str, bytes] = {
    ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
    "config.json": CONFIG,
    "model-00001-of-00002.safetensors": safetensors_of(os.urandom(400_000)),
    "model-00002-of-00002.safetensors": safetensors_of(os.urandom(300_000)),
    "tokenizer/tokenizer.json": b'{"model": {"type": "BPE", "vocab": {}}}',
    "README.md": b"---\nlicense: apache-2.0\n---\n# m\n",
}
MIRRORED = sorted((p for p in FILES if p != ".gitattributes"), key=lambda p: tuple(p.split("/")))


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub(page_size=2) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


@pytest.fixture
def commit(hub: FakeHub) -> str:
    return hub.add_repo("org/llama", FILES, tags=["v1.0"])


def models(run_cli: Any) -> list[Any]:
    listed: list[Any] = run_cli("models", "--json").json()["models"]
    return listed


def assert_nothing_registered(run_cli: Any, home: Path) -> None:
    assert models(run_cli) == []
    tmp = home / "blobs" / "tmp"
    # Only resumable partials (named after the transfer) may remain, never a published blob
    # of wrong bytes and never an anonymous temp file.
    assert all(p.name.startswith("resume-") for p in tmp.iterdir())


def test_mirror_pins_the_commit_and_hashes_every_file(
    run_cli: Any, hub: FakeHub, commit: str, isolated_env: Path
) -> None:
    result = run_cli("mirror", "hf://org/llama", "--json")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["name"] == "org/llama"
    assert out["source"] == {
        "uri": "hf://org/llama",
        "commit": commit,
        "revisions": [],
        "include": [],
        "exclude": [],
        "complete": True,  # every file of the commit (git metadata is never part of a model)
    }
    assert [f["path"] for f in out["files"]] == MIRRORED
    for f in out["files"]:
        assert f["sha256"] == hashlib.sha256(FILES[f["path"]]).hexdigest()
        assert f["size"] == len(FILES[f["path"]])
        blob = isolated_env / "blobs" / "sha256" / f["sha256"][:2] / f["sha256"]
        assert blob.read_bytes() == FILES[f["path"]]
    raw = b"".join(hashlib.sha256(FILES[p]).digest() for p in MIRRORED)
    assert out["digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    # Every download named the pinned commit, never the branch.
    gets = [r.path for r in hub.requests if r.method == "GET" and "/resolve/" in r.path]
    assert len(gets) == len(MIRRORED)
    assert all(f"/resolve/{commit}/" in p for p in gets)


def test_revision_tag_and_commit_resolve_to_the_same_checkpoint(
    run_cli: Any, hub: FakeHub, commit: str
) -> None:
    first = run_cli("mirror", "hf://org/llama@v1.0", "--json").json()
    again = run_cli("mirror", "hf://org/llama", "--revision", commit, "--json").json()
    assert first["source"]["commit"] == commit
    assert again["digest"] == first["digest"]
    assert again["created"] is False
    assert again["source"]["revisions"] == ["v1.0", commit]
    for ref in ("org/llama@v1.0", f"org/llama@{commit[:10]}", f"org/llama@{first['digest']}"):
        shown = run_cli("inspect", ref, "--json")
        assert shown.code == 0, shown.stderr
        assert shown.json()["digest"] == first["digest"]


def test_remirror_fetches_only_what_it_cannot_prove_it_has(
    run_cli: Any, hub: FakeHub, commit: str
) -> None:
    run_cli("mirror", "hf://org/llama")
    hub.reset_requests()
    again = run_cli("mirror", "hf://org/llama", "--json").json()
    assert again["created"] is False
    gets = [r.path for r in hub.requests if r.method == "GET" and "/resolve/" in r.path]
    # LFS files are known by sha256 and already stored; git files are known only by sha1.
    assert not any(".safetensors" in p for p in gets)
    assert again["stats"]["bytes_transferred"] == sum(
        len(FILES[p]) for p in MIRRORED if not p.endswith(".safetensors")
    )


def test_a_new_commit_is_a_new_checkpoint(run_cli: Any, hub: FakeHub, commit: str) -> None:
    first = run_cli("mirror", "hf://org/llama", "--json").json()
    changed = dict(FILES, **{"config.json": b'{"hidden_size": 128}'})
    second_commit = hub.add_repo("org/llama", changed)
    second = run_cli("mirror", "hf://org/llama", "--json").json()
    assert second["source"]["commit"] == second_commit != commit
    assert second["digest"] != first["digest"]
    assert run_cli("inspect", f"org/llama@{commit}").code == 0
    assert run_cli("inspect", f"org/llama@{second_commit}").code == 0


def test_include_exclude_and_name(run_cli: Any, hub: FakeHub, commit: str) -> None:
    out = run_cli(
        "mirror",
        "hf://org/llama",
        "--name",
        "mirror/llama-weights",
        "--include",
        "*.safetensors",
        "--include",
        "config.json",
        "--exclude",
        "model-00002*",
        "--json",
    ).json()
    assert out["name"] == "mirror/llama-weights"
    assert [f["path"] for f in out["files"]] == ["config.json", "model-00001-of-00002.safetensors"]
    # The filter is recorded, and the checkpoint is known not to be the whole commit.
    assert out["source"]["include"] == ["*.safetensors", "config.json"]
    assert out["source"]["exclude"] == ["model-00002*"]
    assert out["source"]["complete"] is False


@pytest.mark.parametrize("path", ["model-00002-of-00002.safetensors", "config.json"])
def test_wrong_bytes_are_refused_and_a_retry_succeeds(
    run_cli: Any, hub: FakeHub, commit: str, isolated_env: Path, path: str
) -> None:
    hub.inject("org/llama", path, "corrupt")
    result = run_cli("mirror", "hf://org/llama", "--json")
    assert result.code == 1, result.stderr
    assert path in result.stderr
    assert "mismatch" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert_nothing_registered(run_cli, isolated_env)
    corrupted = bytearray(FILES[path])
    corrupted[len(corrupted) // 2] ^= 0xFF
    assert not (
        isolated_env / "blobs" / "sha256" / hashlib.sha256(corrupted).hexdigest()[:2]
    ).exists()
    retry = run_cli("mirror", "hf://org/llama", "--json")
    assert retry.code == 0, retry.stderr


def test_a_dropped_connection_is_resumed(run_cli: Any, hub: FakeHub, commit: str) -> None:
    hub.inject("org/llama", "model-00001-of-00002.safetensors", "truncate")
    result = run_cli("mirror", "hf://org/llama", "--json")
    assert result.code == 0, result.stderr
    gets = [r for r in hub.requests if r.method == "GET" and "model-00001" in r.path]
    assert len(gets) == 2


@pytest.mark.parametrize("fault", ["status:500", "status:503", "status:404", "missing"])
def test_server_errors_name_the_file_and_register_nothing(
    run_cli: Any, hub: FakeHub, commit: str, isolated_env: Path, fault: str
) -> None:
    hub.inject("org/llama", "tokenizer/tokenizer.json", fault, times=10)
    result = run_cli("mirror", "hf://org/llama", "--json")
    assert result.code == 2, result.stderr
    assert "tokenizer/tokenizer.json" in result.stderr
    assert result.json()["kind"] == "upstream_error"
    assert_nothing_registered(run_cli, isolated_env)
    hub.clear_faults()
    assert run_cli("mirror", "hf://org/llama").code == 0


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_on_a_file(run_cli: Any, hub: FakeHub, commit: str, status: int) -> None:
    hub.inject("org/llama", "config.json", f"status:{status}", times=10)
    result = run_cli("mirror", "hf://org/llama")
    assert result.code == 2
    assert "config.json" in result.stderr
    assert "HF_TOKEN" in result.stderr


def test_gated_repo_needs_a_token(
    run_cli: Any, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("org/gated", {"config.json": CONFIG}, gated_token="hf_secret")
    denied = run_cli("mirror", "hf://org/gated")
    assert denied.code == 2
    assert "gated" in denied.stderr
    assert "HF_TOKEN" in denied.stderr
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert run_cli("mirror", "hf://org/gated").code == 2
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    allowed = run_cli("mirror", "hf://org/gated", "--json")
    assert allowed.code == 0, allowed.stderr
    assert "hf_secret" not in allowed.stdout + allowed.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("hf://org/nope", "repository not found"),
        ("hf://org/llama@no-such-branch", "unknown revision"),
        ("hf://org", "bad source"),
        ("hf://org/llama@../main", "bad revision"),
        ("hf:///abs/path", "bad source"),
        ("s3://bucket/model", "unsupported source"),
    ],
)
def test_bad_sources_exit_2_with_one_line(
    run_cli: Any, hub: FakeHub, commit: str, source: str, message: str
) -> None:
    result = run_cli("mirror", source)
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


@pytest.mark.parametrize(
    "hostile",
    [
        "../escape.bin",
        "/etc/cron.d/evil",
        "a//b.bin",
        "dir/./x.bin",
        "ctl\x1b.bin",
        "cafe\u0301.bin",
    ],
)
def test_hostile_names_in_a_listing_are_refused(
    run_cli: Any, hub: FakeHub, isolated_env: Path, tmp_path: Path, hostile: str
) -> None:
    hub.add_repo("org/evil", {"config.json": CONFIG, hostile: b"payload"})
    result = run_cli("mirror", "hf://org/evil")
    assert result.code == 2
    assert "unsafe file path" in result.stderr
    assert models(run_cli) == []
    assert not (isolated_env / "blobs" / "sha256").exists() or not any(
        p.is_file() for p in (isolated_env / "blobs" / "sha256").rglob("*")
    )
    assert not any(r.method == "GET" and "/resolve/" in r.path for r in hub.requests)


@pytest.mark.slow
def test_killed_mirror_leaves_the_registry_consistent_and_resumes(
    run_cli: Any, hub: FakeHub, isolated_env: Path, tmp_path: Path
) -> None:
    # Larger than the client's 10 MiB write chunks.
    big = safetensors_of(os.urandom(24 * 1024 * 1024))
    hub.add_repo("org/big", {"config.json": CONFIG, "model.safetensors": big})
    hub.inject("org/big", "model.safetensors", "stall:30")
    env = dict(os.environ, HF_ENDPOINT=hub.url, MODELCTL_HOME=str(isolated_env))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "mirror", "hf://org/big"],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial_dir = isolated_env / "blobs" / "tmp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        partials = list(partial_dir.glob("resume-*")) if partial_dir.exists() else []
        if partials and partials[0].stat().st_size >= 10 * 1024 * 1024:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the mirror never started writing the large file")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    assert models(run_cli) == []  # old state: nothing half-registered
    hub.clear_faults()
    hub.reset_requests()
    result = run_cli("mirror", "hf://org/big", "--json")
    assert result.code == 0, result.stderr
    resumed = [r for r in hub.requests if r.method == "GET" and "model.safetensors" in r.path]
    assert resumed
    assert (resumed[0].header("range") or "").startswith("bytes=")
    assert result.json()["stats"]["bytes_transferred"] < len(big)
    stored = next(f for f in result.json()["files"] if f["path"] == "model.safetensors")
    assert stored["sha256"] == hashlib.sha256(big).hexdigest()
    assert not list(partial_dir.iterdir())


def test_not_enough_disk_space_is_refused_before_any_download(
    run_cli: Any, hub: FakeHub, commit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.blobs.local import LocalBlobStore

    monkeypatch.setattr(LocalBlobStore, "free_space", lambda self: 100 * 1024 * 1024)
    result = run_cli("mirror", "hf://org/llama", "--json")
    assert result.code == 0, result.stderr  # 700 kB fit in 100 MiB
    monkeypatch.setattr(LocalBlobStore, "free_space", lambda self: 1024)
    hub.add_repo("org/other", {"w.safetensors": safetensors_of(os.urandom(50_000))})
    hub.reset_requests()
    refused = run_cli("mirror", "hf://org/other", "--json")
    assert refused.code == 2
    assert refused.json()["kind"] == "storage_error"
    assert "not enough space" in refused.stderr
    assert not any(r.method == "GET" and "/resolve/" in r.path for r in hub.requests)
    assert [m["name"] for m in models(run_cli)] == ["org/llama"]


def test_a_hub_that_ignores_range_restarts_the_append_only_upload(
    hub: FakeHub, commit: str, tmp_path: Path
) -> None:
    """http_get rewinds with seek()+truncate(); the upload only appends, so the sink aborts
    the kept partial and begins again from byte 0 instead."""
    from attestations.digests import Digest
    from registry.blobs.memory import MemoryBlobStore
    from registry.mirror.base import parse_source
    from registry.mirror.hf import HuggingFaceSource
    from registry.service.transfer import UploadSink
    from registry.settings import Limits

    path = "model-00001-of-00002.safetensors"
    data = FILES[path]
    source = HuggingFaceSource(
        parse_source("hf://org/llama"), endpoint=hub.url, token=None, limits=Limits()
    )
    snapshot = source.resolve()
    file = next(f for f in snapshot.files if f.path == path)
    store = MemoryBlobStore()
    first = store.upload(expected_size=len(data), resume_key="k")
    first.write(data[:100_000])
    first.abort(keep_partial=True)

    hub.inject("org/llama", path, "ignore_range")
    hub.reset_requests()
    with UploadSink(
        store, expected_sha256=Digest.of(data), expected_size=len(data), resume_key="k"
    ) as sink:
        assert sink.resume_offset == 100_000
        source.fetch(snapshot, file, sink)
        blob = sink.commit()
    assert blob.digest == Digest.of(data)
    assert store.in_flight() == []
    gets = [r for r in hub.requests if r.method == "GET" and path in r.path]
    assert gets[0].header("range") == "bytes=100000-"
