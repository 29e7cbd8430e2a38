"""`modelctl mirror DIR`: a local folder, end to end through the CLI."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import safetensors_of, write_tree

FILES = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
    "model-00001-of-00002.safetensors": safetensors_of(os.urandom(300_000)),
    "model-00002-of-00002.safetensors": safetensors_of(os.urandom(200_000)),
    "tokenizer.json": b'{"model": {"type": "BPE"}}',
    "extra/x": b"x",
    "extra-notes.txt": b"notes",
    "empty": b"",
}


def blob_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "blobs" / "sha256").rglob("*") if p.is_file())


def expected_digest(files: dict[str, bytes]) -> str:
    ordered = sorted(files, key=lambda p: tuple(p.split("/")))
    raw = b"".join(hashlib.sha256(files[p]).digest() for p in ordered)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "model", FILES)


def test_mirror_stores_every_file_by_digest(run_cli: Any, model: Path, isolated_env: Path) -> None:
    result = run_cli("mirror", str(model), "--name", "acme/llama", "--json")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["name"] == "acme/llama"
    assert out["digest"] == expected_digest(FILES)
    assert out["source"]["uri"] == model.resolve().as_uri()
    assert out["created"] is True
    assert [f["path"] for f in out["files"]] == [
        "config.json",
        "empty",
        "extra/x",
        "extra-notes.txt",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "tokenizer.json",
    ]
    for f in out["files"]:
        data = FILES[f["path"]]
        assert f["size"] == len(data)
        assert f["sha256"] == hashlib.sha256(data).hexdigest()
        blob = isolated_env / "blobs" / "sha256" / f["sha256"][:2] / f["sha256"]
        assert blob.read_bytes() == data
    assert not list((isolated_env / "blobs" / "tmp").iterdir())


def test_inspect_prints_what_mirror_stored(run_cli: Any, model: Path) -> None:
    mirrored = run_cli("mirror", str(model), "--name", "acme/llama", "--json").json()
    for ref in ("acme/llama", f"acme/llama@{mirrored['digest']}"):
        shown = run_cli("inspect", ref, "--json")
        assert shown.code == 0, (ref, shown.stderr)
        data = shown.json()
        for key in ("name", "digest", "source", "files", "scans", "attestations", "decisions"):
            assert data[key] == mirrored[key]
    text = run_cli("inspect", "acme/llama")
    assert mirrored["digest"] in text.stdout
    assert "model-00001-of-00002.safetensors" in text.stdout


def test_same_bytes_twice_is_the_same_checkpoint(
    run_cli: Any, model: Path, isolated_env: Path
) -> None:
    first = run_cli("mirror", str(model), "--name", "acme/llama", "--json").json()
    blobs_before = blob_files(isolated_env)
    second = run_cli("mirror", str(model), "--name", "acme/llama", "--json").json()
    assert second["digest"] == first["digest"]
    assert second["created"] is False
    assert second["stats"]["blobs_created"] == 0
    assert blob_files(isolated_env) == blobs_before
    listed = run_cli("models", "--json").json()["models"]
    assert len(listed) == 1
    assert len(listed[0]["checkpoints"]) == 1


def test_changed_bytes_make_a_new_checkpoint_and_share_blobs(
    run_cli: Any, model: Path, isolated_env: Path
) -> None:
    first = run_cli("mirror", str(model), "--name", "acme/llama", "--json").json()
    (model / "config.json").write_bytes(b'{"changed": true}')
    second = run_cli("mirror", str(model), "--name", "acme/llama", "--json").json()
    assert second["digest"] != first["digest"]
    assert second["stats"]["blobs_created"] == 1
    assert len(blob_files(isolated_env)) == len(FILES) + 1
    # Two checkpoints under one name: a bare name no longer picks one silently.
    ambiguous = run_cli("inspect", "acme/llama")
    assert ambiguous.code == 2
    assert "names 2 checkpoints" in ambiguous.stderr
    assert run_cli("inspect", f"acme/llama@{first['digest']}").code == 0


def test_git_metadata_is_not_mirrored(run_cli: Any, model: Path) -> None:
    write_tree(
        model, {".gitattributes": b"*.safetensors lfs", ".git/HEAD": b"ref", "sub/.gitignore": b"x"}
    )
    out = run_cli("mirror", str(model), "--name", "acme/llama", "--json").json()
    paths = [f["path"] for f in out["files"]]
    assert ".gitattributes" not in paths
    assert not any(p.startswith(".git/") for p in paths)
    assert "sub/.gitignore" in paths  # model_signing ignores root git metadata only


def test_include_and_exclude_globs(run_cli: Any, model: Path) -> None:
    out = run_cli(
        "mirror",
        str(model),
        "--name",
        "acme/w",
        "--include",
        "*.safetensors",
        "--include",
        "*.json",
        "--exclude",
        "tokenizer*",
        "--json",
    ).json()
    assert [f["path"] for f in out["files"]] == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    nothing = run_cli("mirror", str(model), "--include", "*.gguf")
    assert nothing.code == 2
    assert "no files to mirror" in nothing.stderr


@pytest.mark.slow
def test_default_name_comes_from_the_folder(run_cli: Any, model: Path) -> None:
    out = run_cli("mirror", str(model), "--json").json()
    assert out["name"] == "local/model"


@pytest.mark.parametrize("kind", ["file-symlink", "dir-symlink", "fifo"])
def test_links_and_special_files_are_refused(
    run_cli: Any, model: Path, tmp_path: Path, isolated_env: Path, kind: str
) -> None:
    outside = write_tree(tmp_path / "outside", {"secret.txt": b"top secret"})
    if kind == "file-symlink":
        (model / "leak.txt").symlink_to(outside / "secret.txt")
    elif kind == "dir-symlink":
        (model / "sub").symlink_to(outside)
    else:
        os.mkfifo(model / "pipe")
    result = run_cli("mirror", str(model), "--name", "acme/llama")
    assert result.code == 2
    assert "refused" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert run_cli("models", "--json").json() == {"models": []}
    assert not blob_files(isolated_env)


@pytest.mark.parametrize(
    "bad_name", ["cafe\u0301.bin", "esc\x1bname", "zero\u200bwidth", "back\\slash", "line\nbreak"]
)
def test_hostile_file_names_are_refused(run_cli: Any, model: Path, bad_name: str) -> None:
    (model / bad_name).write_bytes(b"x")
    result = run_cli("mirror", str(model), "--name", "acme/llama", "--json")
    assert result.code == 2
    assert "unsafe file path" in result.json()["error"]
    assert run_cli("models", "--json").json() == {"models": []}


def test_non_utf8_file_name_is_refused(run_cli: Any, model: Path) -> None:
    with open(os.path.join(os.fsencode(model), b"bad\xffname"), "wb") as f:
        f.write(b"x")
    result = run_cli("mirror", str(model), "--name", "acme/llama")
    assert result.code == 2
    assert "unsafe file path" in result.stderr


def test_registry_digest_equals_model_signing_subject_digest(run_cli: Any, model: Path) -> None:
    """DESIGN §3: the checkpoint identity is model_signing v1.0's subject digest."""
    from model_signing import hashing
    from model_signing._signing.signing import Payload

    write_tree(model, {".gitattributes": b"*.bin lfs"})
    ours = run_cli("mirror", str(model), "--name", "acme/llama", "--json").json()["digest"]
    statement = Payload(hashing.Config().hash(model)).statement
    theirs = statement.pb.subject[0].digest["sha256"]
    assert ours == f"sha256:{theirs}"
