"""Air-gap bundles: `modelctl bundle export` in one home, `bundle import` into an empty one
(SQLite or PostgreSQL) with no network, then `scan`, `pull` and `verify` there. Every refusal
registers nothing: exit 1 for evidence that does not verify, 2 for input that cannot be read."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from attestations.airgap import BundleIndex
from attestations.errors import UnsafePathError
from attestations.intoto import Statement
from registry.blobs.local import LocalBlobStore
from tests.api_server import Seeded, seed
from tests.fakes.hfhub import FakeHub


@dataclass(frozen=True)
class Exported:
    bundle: Path
    seeded: Seeded  # public_key: the exporting registry's key
    target: Path  # the empty home to import into


@pytest.fixture
def exported(
    run_cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    empty_database_url: str,
) -> Exported:
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
    monkeypatch.setenv("MODELCTL_HOME", str(tmp_path / "exporter"))
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        seeded = seed(run_cli, hub, tmp_path)
        assert run_cli("policy", "check", "org/tiny", "--env", "prod").code == 0
        bundle = tmp_path / "tiny.bundle.tar"
        result = run_cli("bundle", "export", "org/tiny", "--out", str(bundle), "--json")
        assert result.code == 0, result.stderr
        assert result.json()["checkpoints"] == [seeded.ref]
    # The other side of the gap: another home and database, no hub, its own registry key.
    monkeypatch.delenv("HF_ENDPOINT")
    target = tmp_path / "importer"
    monkeypatch.setenv("MODELCTL_HOME", str(target))
    monkeypatch.setenv("MODELCTL_DATABASE_URL", empty_database_url)
    return Exported(bundle=bundle, seeded=seeded, target=target)


def _import(run_cli: Any, exported: Exported, bundle: Path | None = None) -> Any:
    path = bundle or exported.bundle
    return run_cli(
        "bundle", "import", str(path), "--trust-key", str(exported.seeded.public_key), "--json"
    )


def _nothing_registered(run_cli: Any) -> None:
    listed = run_cli("models", "--json")
    assert listed.code == 0, listed.stderr
    assert listed.json()["models"] == []


def test_round_trip_import_scan_pull_verify_offline(
    run_cli: Any, exported: Exported, tmp_path: Path
) -> None:
    result = _import(run_cli, exported)
    assert result.code == 0, result.stderr
    body = result.json()
    assert body["checkpoints"] == [exported.seeded.ref]
    assert body["new_bytes"] == body["bytes"] > 0
    view = run_cli("inspect", exported.seeded.ref, "--json").json()
    predicates = {a["predicate_type"] for a in view["attestations"]}
    assert "https://model_signing/signature/v1.0" in predicates
    assert view["source"]["uri"] == "hf://org/tiny"
    # The importing registry scans with its own scanners (offline) and pulls under its policy.
    assert run_cli("scan", exported.seeded.ref).code == 0
    dest = tmp_path / "deploy"
    pulled = run_cli("pull", exported.seeded.ref, "--env", "prod", "--dest", str(dest), "--json")
    assert pulled.code == 0, pulled.stderr
    for path, data in exported.seeded.files.items():
        assert (Path(pulled.json()["model_path"]) / path).read_bytes() == data
    pub = exported.target / "keys" / "registry.pub"
    verified = run_cli(
        "verify",
        pulled.json()["model_path"],
        "--signature",
        pulled.json()["signature"],
        "--public-key",
        str(pub),
    )
    assert verified.code == 0, verified.stderr
    # Importing the same bundle again changes nothing and writes no new bytes.
    again = _import(run_cli, exported)
    assert again.code == 0, again.stderr
    assert again.json()["new_bytes"] == 0


def test_untrusted_signer_is_refused(run_cli: Any, exported: Exported) -> None:
    result = run_cli("bundle", "import", str(exported.bundle), "--json")
    assert result.code == 1
    assert "trusted" in result.stderr
    _nothing_registered(run_cli)


def _rewrite(
    src: Path,
    dest: Path,
    change: Callable[[tarfile.TarInfo, bytes], list[tuple[tarfile.TarInfo, bytes]]],
) -> Path:
    """Copy the bundle member by member, letting `change` replace, drop or add members."""
    with (
        tarfile.open(src, "r") as tar_in,
        tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out,
    ):
        for info in tar_in.getmembers():
            f = tar_in.extractfile(info)
            data = f.read() if f is not None else b""
            for new_info, new_data in change(info, data):
                out.addfile(new_info, io.BytesIO(new_data) if new_info.isreg() else None)
    return dest


def _biggest_blob(bundle: Path) -> str:
    with tarfile.open(bundle, "r") as tar:
        return max((m for m in tar if m.name.startswith("blobs/")), key=lambda m: m.size).name


def test_a_tampered_byte_is_refused_and_nothing_registered(
    run_cli: Any, exported: Exported, tmp_path: Path
) -> None:
    target = _biggest_blob(exported.bundle)

    def flip(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        if info.name == target:
            data = data[:1000] + bytes([data[1000] ^ 1]) + data[1001:]
        return [(info, data)]

    result = _import(run_cli, exported, _rewrite(exported.bundle, tmp_path / "t.tar", flip))
    assert result.code == 1
    assert "sha256 mismatch" in result.stderr
    _nothing_registered(run_cli)


def test_a_missing_member_is_refused(run_cli: Any, exported: Exported, tmp_path: Path) -> None:
    target = _biggest_blob(exported.bundle)
    dropped = _rewrite(
        exported.bundle,
        tmp_path / "m.tar",
        lambda info, data: [] if info.name == target else [(info, data)],
    )
    result = _import(run_cli, exported, dropped)
    assert result.code == 1
    assert "missing" in result.stderr
    _nothing_registered(run_cli)


@pytest.mark.parametrize("kind", ["escape", "absolute", "symlink"])
def test_a_member_outside_the_signed_index_is_refused(
    run_cli: Any, exported: Exported, tmp_path: Path, kind: str
) -> None:
    def add_hostile(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        if info.name != "keys/registry.pub":
            return [(info, data)]
        if kind == "symlink":
            hostile = tarfile.TarInfo(_biggest_blob(exported.bundle))
            hostile.type, hostile.linkname = tarfile.SYMTYPE, "/etc/passwd"
            return [(info, data), (hostile, b"")]
        hostile = tarfile.TarInfo("../../evil.sh" if kind == "escape" else "/tmp/evil.sh")
        hostile.size = 4
        return [(info, data), (hostile, b"boom")]

    result = _import(run_cli, exported, _rewrite(exported.bundle, tmp_path / "h.tar", add_hostile))
    assert result.code == 1, result.stderr
    assert not (tmp_path / "evil.sh").exists()
    _nothing_registered(run_cli)


def test_unreadable_input_exits_2(run_cli: Any, exported: Exported, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar archive at all" * 100)
    assert _import(run_cli, exported, junk).code == 2
    cut = tmp_path / "cut.tar"
    cut.write_bytes(exported.bundle.read_bytes()[: exported.bundle.stat().st_size // 2])
    result = _import(run_cli, exported, cut)
    assert result.code == 2, result.stderr
    assert _import(run_cli, exported, tmp_path / "absent.tar").code == 2
    _nothing_registered(run_cli)


def test_a_bundle_too_large_for_the_disk_is_refused_before_writing(
    run_cli: Any, exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The disk is the environment: a store on a nearly full disk reports 1 MiB free.
    monkeypatch.setattr(LocalBlobStore, "free_space", lambda self: 1 << 20)
    result = _import(run_cli, exported)
    assert result.code == 2
    assert "too large" in result.stderr
    blobs = exported.target / "blobs" / "sha256"
    assert not blobs.exists() or not any(p.is_file() for p in blobs.rglob("*"))
    _nothing_registered(run_cli)


def test_export_refuses_an_unsigned_checkpoint_and_an_existing_file(
    run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w" * 100)
    assert run_cli("mirror", str(folder), "--name", "acme/m", "--no-scan").code == 0
    out = tmp_path / "b.tar"
    unsigned = run_cli("bundle", "export", "acme/m", "--out", str(out))
    assert unsigned.code == 1
    assert "attest" in unsigned.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".b.tar.partial-*"))
    out.write_bytes(b"keep")
    assert run_cli("attest", "acme/m").code == 0
    assert run_cli("bundle", "export", "acme/m", "--out", str(out)).code == 2
    assert out.read_bytes() == b"keep"


def test_export_refuses_a_quarantined_checkpoint(
    run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w" * 100)
    assert run_cli("mirror", str(folder), "--name", "acme/m", "--no-scan").code == 0
    assert run_cli("attest", "acme/m").code == 0
    assert run_cli("quarantine", "acme/m", "--reason", "bad weights").code == 0
    out = tmp_path / "b.tar"
    refused = run_cli("bundle", "export", "acme/m", "--out", str(out))
    assert refused.code == 1
    assert "quarantined" in refused.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".b.tar.partial-*"))


def test_a_signed_index_with_a_hostile_file_path_does_not_parse() -> None:
    statement = Statement.from_payload(
        b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a/b","digest":'
        b'{"sha256":"' + b"0" * 64 + b'"}}],"predicateType":'
        b'"https://modelctl.dev/attestations/airgap-bundle/v1","predicate":{"checkpoints":'
        b'[{"name":"a/b","digest":"sha256:' + b"0" * 64 + b'","source":{"uri":"x","commit":"y"},'
        b'"files":[{"path":"../../etc/passwd","size":1,"sha256":"' + b"1" * 64 + b'"}],'
        b'"attestations":[]}],"createdAt":"2026-01-01T00:00:00Z","publicKey":{"path":'
        b'"keys/registry.pub","sha256":"' + b"2" * 64 + b'","size":1}}}'
    )
    with pytest.raises(UnsafePathError):
        BundleIndex.from_statement(statement)


def test_export_refuses_a_blob_that_no_longer_matches_its_digest(
    run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w" * 100_000)
    assert run_cli("mirror", str(folder), "--name", "acme/m", "--no-scan").code == 0
    assert run_cli("attest", "acme/m").code == 0
    [blob] = [p for p in (isolated_env / "blobs" / "sha256").rglob("*") if p.is_file()]
    data = bytearray(blob.read_bytes())
    data[5000] ^= 1
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    out = tmp_path / "b.tar"
    result = run_cli("bundle", "export", "acme/m", "--out", str(out))
    assert result.code == 1, result.stderr
    assert "does not match its digest" in result.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".b.tar.partial-*"))


def test_bundles_need_a_registry_home_not_a_server(run_cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    result = run_cli(
        "--registry", "http://127.0.0.1:9", "bundle", "export", "a/b", "--out", str(out)
    )
    assert result.code == 2
    assert "registry home" in result.stderr
    assert not out.exists()
