"""The registry's transparency log: what it issues is appended, verified offline, fail closed.

On both databases, through the CLI in-process (quarantine, release, `log verify`, `log
checkpoint`) and the embedded registry (concurrent appends)."""

from __future__ import annotations

import base64
import json
import stat
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from attestations.tlog import (
    Checkpoint,
    InclusionProofError,
    NoteSigner,
    NoteVerifier,
    entries_path,
    leaf_hash,
    open_checkpoint,
    tile_path,
    tiles,
    tree_hash,
    verify_inclusion,
)
from registry.api.app import create_app
from registry.embedded import EmbeddedRegistry
from registry.settings import Settings
from registry.tlog.files import LogWriter
from registry.tlog.key import log_signer, log_verifier
from registry.tlog.verify import verify_log
from tests.api_server import live_server

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    monkeypatch.setenv("MODELCTL_LOG_ORIGIN", "registry.example/log")
    return database_url


def log_entries(run_cli: Any) -> list[dict[str, Any]]:
    out = []
    size = run_cli("log", "checkpoint", "--json").json()["size"]
    for n in range(size):
        result = run_cli("log", "verify", "--entry", str(n), "--json")
        assert result.code == 0, result.stderr
        out.append(json.loads(result.json()["inclusion"]["entry"]))
    return out


def test_quarantine_and_release_are_logged_and_verify(
    run_cli: Any, db: str, isolated_env: Path
) -> None:
    home = isolated_env
    assert run_cli("quarantine", DIGEST, "--reason", "CVE-2026-0001").code == 0
    assert run_cli("release", DIGEST, "--reason", "false alarm").code == 0
    verified = run_cli("log", "verify", "--json")
    assert verified.code == 0, verified.stderr
    assert verified.json()["size"] == 2
    assert verified.json()["origin"] == "registry.example/log"
    entries = log_entries(run_cli)
    assert [(e["kind"], e["subject"]) for e in entries] == [
        ("quarantine", DIGEST),
        ("release", DIGEST),
    ]
    assert "CVE-2026-0001" in entries[0]["detail"]
    key = home / "keys" / "log.ed25519"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    text = run_cli("log", "checkpoint").stdout
    assert text.startswith("registry.example/log\n2\n")
    assert "\u2014 registry.example/log " in text


def test_verify_with_a_foreign_key_fails(run_cli: Any, db: str, tmp_path: Path) -> None:
    assert run_cli("quarantine", DIGEST, "--reason", "r").code == 0
    vkey = run_cli("log", "checkpoint", "--json").json()["key"]
    assert run_cli("log", "verify", "--key", vkey).code == 0
    forged = NoteVerifier("registry.example/log", b"\x07" * 32).vkey()
    result = run_cli("log", "verify", "--key", forged)
    assert result.code == 1
    assert "not signed by" in result.stderr


def test_a_tampered_tile_or_entry_fails_verify_and_blocks_appends(
    run_cli: Any, db: str, isolated_env: Path
) -> None:
    home = isolated_env
    assert run_cli("quarantine", DIGEST, "--reason", "r").code == 0
    assert run_cli("quarantine", OTHER, "--reason", "r").code == 0
    tile = home / "log" / tile_path(0, 0, 2)
    original = tile.read_bytes()
    tile.write_bytes(bytes(32) + original[32:])
    result = run_cli("log", "verify")
    assert result.code == 1
    assert "tile" in result.stderr
    # Fail closed: the registry refuses to act when it cannot log the act.
    refused = run_cli("release", DIGEST, "--reason", "r")
    assert refused.code == 2
    assert "checkpoint" in refused.stderr
    tile.write_bytes(original)
    entries = home / "log" / entries_path(0, 2)
    entries.write_bytes(entries.read_bytes().replace(b"quarantine", b"quarantinX", 1))
    result = run_cli("log", "verify")
    assert result.code == 1
    assert "tile" in result.stderr


def test_a_refused_append_rolls_the_operation_back(
    run_cli: Any, db: str, isolated_env: Path
) -> None:
    home = isolated_env
    assert run_cli("quarantine", DIGEST, "--reason", "r").code == 0
    checkpoint = home / "log" / "checkpoint"
    checkpoint.write_bytes(checkpoint.read_bytes().replace(b"\n1\n", b"\n9\n", 1))
    assert run_cli("release", DIGEST, "--reason", "r").code != 0
    settings = Settings.from_env(home=home)
    registry = EmbeddedRegistry(settings)
    try:
        assert [q.digest for q in registry.quarantine_list()] == [DIGEST]  # still held
    finally:
        registry.close()


def test_concurrent_appends_from_two_registries_keep_one_tree(db: str, isolated_env: Path) -> None:
    home = isolated_env
    settings = Settings.from_env(home=home)
    registries = [EmbeddedRegistry(settings) for _ in range(2)]
    errors: list[BaseException] = []

    def work(registry: EmbeddedRegistry, offset: int) -> None:
        try:
            for n in range(6):
                registry.quarantine(f"sha256:{offset + n:064x}", "concurrent")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r, i * 100)) for i, r in enumerate(registries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in registries:
        r.close()
    assert errors == []
    from registry.tlog.verify import verify_log

    verifier = log_verifier(settings)
    assert verifier is not None
    assert verify_log(settings.log_root, verifier).checkpoint.size == 12


def test_verify_without_a_log_is_refused(run_cli: Any, db: str) -> None:
    result = run_cli("log", "verify")
    assert result.code != 0
    assert "log key" in result.stderr


def test_api_serves_checkpoint_and_tiles_to_readers(run_cli: Any, db: str) -> None:

    assert run_cli("quarantine", DIGEST, "--reason", "r").code == 0
    assert run_cli("quarantine", OTHER, "--reason", "r").code == 0
    note = run_cli("log", "checkpoint", "--json").json()["checkpoint"]
    with live_server(create_app(Settings.from_env())) as server:
        secret = server.app.state.registry.token_create("reader-token", "reader").secret
        auth = {"Authorization": f"Bearer {secret}"}
        got = httpx.get(server.url + "/v1/log/checkpoint", headers=auth)
        assert got.status_code == 200
        assert got.text == note
        assert got.headers["content-type"] == "text/plain; charset=utf-8"
        tile = httpx.get(server.url + "/v1/log/tile/0/000.p/2", headers=auth)
        assert tile.status_code == 200
        assert len(tile.content) == 64
        bundle = httpx.get(server.url + "/v1/log/tile/entries/000.p/2", headers=auth)
        assert b'"kind":"quarantine"' in bundle.content
        for hostile in ("0/../../keys/log.ed25519", "0/000.p/0", "64/000", "0/0001"):
            refused = httpx.get(server.url + "/v1/log/tile/" + hostile, headers=auth)
            assert refused.status_code in (404, 400), hostile
        assert httpx.get(server.url + "/v1/log/checkpoint").status_code == 401
        proof = httpx.get(server.url + "/v1/log/proof/0", headers=auth).json()
        pinned = NoteVerifier.parse(run_cli("log", "checkpoint", "--json").json()["key"])
        signed = open_checkpoint(proof["checkpoint"].encode(), pinned)
        leaf = leaf_hash(proof["entry"].encode())
        path = [base64.b64decode(h) for h in proof["proof"]]
        assert (signed.size, len(path)) == (2, 1)
        verify_inclusion(leaf, 0, signed.size, path, signed.root_hash)
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaf_hash(b"forged"), 0, signed.size, path, signed.root_hash)
        missing = httpx.get(server.url + "/v1/log/proof/5", headers=auth)
        assert missing.status_code == 404


def test_proofs_come_from_one_verification_per_checkpoint(
    run_cli: Any, db: str, isolated_env: Path
) -> None:
    """A proof request does not re-read the whole log: the tree verified for a checkpoint
    serves every proof until the checkpoint changes; then the log is verified again."""
    assert run_cli("quarantine", DIGEST, "--reason", "r").code == 0
    assert run_cli("quarantine", OTHER, "--reason", "r").code == 0
    with live_server(create_app(Settings.from_env())) as server:
        secret = server.app.state.registry.token_create("reader-token", "reader").secret
        auth = {"Authorization": f"Bearer {secret}"}
        first = httpx.get(server.url + "/v1/log/proof/1", headers=auth)
        assert first.status_code == 200
        bundle = isolated_env / "log" / "tile" / "entries" / "000.p" / "2"
        bundle.write_bytes(b"gone")  # tampered after the verification the server holds
        again = httpx.get(server.url + "/v1/log/proof/0", headers=auth)
        assert again.status_code == 200  # from the verified tree of the same signed checkpoint
        assert again.json()["checkpoint"] == first.json()["checkpoint"]
        checkpoint = isolated_env / "log" / "checkpoint"
        checkpoint.write_bytes(checkpoint.read_bytes() + b"\n")  # a different note: verify again
        refused = httpx.get(server.url + "/v1/log/proof/0", headers=auth)
        assert refused.status_code >= 400


def test_attestations_carry_their_log_entry(
    run_cli: Any, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_bytes(b"{}")
    (model / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    mirrored = run_cli("mirror", str(model), "--name", "acme/m", "--json", "--fail-on", "never")
    assert mirrored.code == 0, mirrored.stderr
    attested = run_cli("attest", "acme/m", "--json")
    assert attested.code == 0, attested.stderr
    issued = attested.json()["issued"]
    assert all(a["log_index"] is not None for a in issued)
    for attestation in run_cli("inspect", "acme/m", "--json").json()["attestations"]:
        index = attestation["log_index"]
        assert index is not None
        proved = run_cli("log", "verify", "--entry", str(index), "--json")
        assert proved.code == 0, proved.stderr
        entry = json.loads(proved.json()["inclusion"]["entry"])
        assert entry["kind"] == "attestation"
        assert entry["digest"] == "sha256:" + attestation["bundle_sha256"]
        assert entry["subject"] == attestation["subject_digest"]
        assert entry["detail"] == attestation["predicate_type"]
    assert run_cli("log", "verify", "--entry", "999").code == 2


def test_an_unsigned_recorded_decision_is_logged(run_cli: Any, db: str, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_bytes(b"{}")
    mirrored = run_cli("mirror", str(model), "--name", "acme/d", "--json", "--fail-on", "never")
    assert mirrored.code == 0, mirrored.stderr
    digest = mirrored.json()["digest"]
    run_cli("policy", "check", "acme/d", "--env", "prod", "--json")
    decisions = [e for e in log_entries(run_cli) if e["kind"] == "decision"]
    assert len(decisions) == 1
    assert decisions[0]["subject"] == digest
    assert decisions[0]["detail"].startswith("prod: ")


def test_appends_in_batches_across_tile_boundaries_build_the_full_tree(tmp_path: Path) -> None:
    # The writer only touches the right edge; `verify_log` recomputes every tile and the root
    # from all entries, so any batch pattern must end in the same tree as one big append.

    signer = NoteSigner("test.local/log", Ed25519PrivateKey.generate())
    writer = LogWriter(tmp_path / "log", lambda: signer)
    appended: list[bytes] = []
    for batch in (1, 254, 1, 1, 300, 65_000, 255, 1, 3):
        entries = [f"entry {len(appended) + i}".encode() for i in range(batch)]
        start, checkpoint = writer.append(entries)
        assert start == len(appended)
        appended.extend(entries)
        hashes = [leaf_hash(e) for e in appended]
        assert checkpoint.root_hash == tree_hash(hashes)
    result = verify_log(tmp_path / "log", signer.verifier, len(appended) - 1)
    assert result.checkpoint.size == len(appended) == 65_816
    assert result.tiles_checked == len(tiles(hashes))
    assert (tmp_path / "log" / "tile" / "2" / "000.p" / "1").is_file()  # 65,536 leaves: level 2


def test_verify_since_an_older_checkpoint_proves_append_only(
    run_cli: Any, db: str, isolated_env: Path, tmp_path: Path
) -> None:

    assert run_cli("quarantine", DIGEST, "--reason", "r").code == 0
    kept = tmp_path / "kept-checkpoint"
    kept.write_bytes((isolated_env / "log" / "checkpoint").read_bytes())
    assert run_cli("release", DIGEST, "--reason", "a").code == 0
    assert run_cli("quarantine", DIGEST, "--reason", "b").code == 0
    result = run_cli("log", "verify", "--since", str(kept), "--json")
    assert result.code == 0, result.stderr
    assert result.json()["extends"] == {"size": 1}
    # The operator signs a different size-1 tree with the real key (a fork): refused.
    signer = log_signer(Settings.from_env(home=isolated_env))
    forked = tmp_path / "forked-checkpoint"
    forked.write_bytes(signer.sign(Checkpoint(signer.name, 1, leaf_hash(b"another history"))))
    refused = run_cli("log", "verify", "--since", str(forked))
    assert refused.code == 1
    assert "rewritten" in refused.stderr
    bigger = tmp_path / "bigger-checkpoint"
    bigger.write_bytes(signer.sign(Checkpoint(signer.name, 99, leaf_hash(b"x"))))
    assert "shrank" in run_cli("log", "verify", "--since", str(bigger)).stderr


def test_log_commands_refuse_remote_mode(run_cli: Any, db: str) -> None:
    result = run_cli("--registry", "http://127.0.0.1:9", "log", "verify")
    assert result.code == 2
    assert "offline" in result.stderr


def test_the_log_folder_and_key_can_be_shared(tmp_path: Path) -> None:
    """Several servers append to one log: its folder and key are settings, not per-host paths."""
    shared = Settings.from_env(
        {
            "MODELCTL_LOG_DIR": str(tmp_path / "nfs" / "log"),
            "MODELCTL_LOG_KEY": str(tmp_path / "k"),
        },
        home=tmp_path / "home",
    )
    assert shared.log_root == tmp_path / "nfs" / "log"
    assert shared.log_key_path == tmp_path / "k"
    default = Settings.from_env({}, home=tmp_path / "home")
    assert default.log_root == (tmp_path / "home").resolve() / "log"
