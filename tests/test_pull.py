"""`modelctl pull`: decide, stream, re-hash against the *signed* manifest, rename into place."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import registry.client.materialize as materialize
from tests.fakes.hfhub import FakeHub
from tests.helpers import write_warn_policy
from tests.test_policy_cli import CARD, _safetensors

BIG = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: several 1 MiB chunks
FILES = {
    "README.md": CARD,
    "model.safetensors": _safetensors(),
    "config.json": b'{"model_type": "bert"}\n',
    "extra/weights.dat": BIG,
}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        yield fake


@pytest.fixture
def admitted(run_cli: Any, hub: FakeHub, tmp_path: Path) -> Path:
    """org/tiny mirrored, scanned, attested, admitted to prod; returns the registry .pub."""
    hub.add_repo("org/tiny", FILES)
    assert run_cli("mirror", "hf://org/tiny").code == 0
    pub = tmp_path / "registry.pub"
    assert run_cli("attest", "org/tiny", "--public-key-out", str(pub)).code == 0
    assert run_cli("policy", "check", "org/tiny", "--env", "prod").code == 0
    return pub


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty parent folder for destinations (tmp_path also holds the registry home)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".pull-" in p.name]


def test_pull_writes_exactly_the_signed_files_and_verify_passes_offline(
    run_cli: Any, admitted: Path, out: Path
) -> None:
    dest = out / "deploy" / "tiny"
    result = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest), "--json")
    assert result.code == 0, result.stderr
    got = result.json()
    assert got["files"] == len(FILES)
    assert got["bytes"] == sum(len(b) for b in FILES.values())
    assert got["replaced"] is False
    assert got["decision"]["allowed"] is True
    assert _tree(dest) == FILES  # nothing else inside: the folder is exactly the model
    sidecar = Path(got["signature"]).parent
    assert sidecar == dest.with_name("tiny.modelctl")
    decision = json.loads((sidecar / "decision.json").read_text())
    assert decision["allowed"] is True
    assert decision["environment"] == "prod"
    assert decision["digest"] == got["digest"]
    assert _leftovers(dest.parent) == []
    verified = run_cli(
        "verify", str(dest), "--signature", got["signature"], "--public-key", str(admitted)
    )
    assert verified.code == 0, verified.stderr
    text = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(out / "t2"))
    assert text.code == 0
    assert text.stdout.startswith("pulled org/tiny@sha256:")


def test_denied_decision_writes_nothing(run_cli: Any, hub: FakeHub, out: Path) -> None:
    hub.add_repo("org/tiny", FILES)
    assert run_cli("mirror", "hf://org/tiny").code == 0  # never attested: prod says no
    dest = out / "tiny"
    result = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest), "--json")
    assert result.code == 1
    assert result.json()["kind"] == "denied"
    assert any("model_signing" in r for r in result.json()["reasons"])
    assert "not admitted to 'prod'" in result.stderr
    assert list(out.iterdir()) == []


def test_allowed_but_unsigned_is_refused(run_cli: Any, hub: FakeHub, out: Path) -> None:
    hub.add_repo("org/tiny", FILES)
    assert run_cli("mirror", "hf://org/tiny").code == 0
    result = run_cli("pull", "org/tiny", "--env", "dev", "--dest", str(out / "t"))
    assert result.code == 1
    assert "no model signature" in result.stderr
    assert list(out.iterdir()) == []


def test_existing_destination_needs_force(run_cli: Any, admitted: Path, out: Path) -> None:
    dest = out / "tiny"
    dest.mkdir()
    (dest / "old.txt").write_bytes(b"old")
    refused = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest))
    assert refused.code == 2
    assert "already exists" in refused.stderr
    assert _tree(dest) == {"old.txt": b"old"}
    assert not dest.with_name("tiny.modelctl").exists()
    forced = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest), "--force", "--json")
    assert forced.code == 0, forced.stderr
    assert forced.json()["replaced"] is True
    assert _tree(dest) == FILES
    again = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest), "--force")
    assert again.code == 0
    assert _tree(dest) == FILES
    assert _leftovers(out) == []


def test_blob_changed_after_attest_fails_naming_the_file(
    run_cli: Any, admitted: Path, isolated_env: Path, out: Path
) -> None:
    sha = next(
        f["sha256"]
        for f in run_cli("inspect", "org/tiny", "--json").json()["files"]
        if f["path"] == "extra/weights.dat"
    )
    blob = next(p for p in isolated_env.rglob(sha) if p.is_file())
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    blob.write_bytes(bytes(data))
    dest = out / "tiny"
    failed = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest), "--json")
    assert failed.code == 1
    assert failed.json()["kind"] == "integrity_failure"
    assert "extra/weights.dat" in failed.stderr
    assert list(out.iterdir()) == []
    # With --force over an existing deployment, that deployment is left as it was.
    dest.mkdir()
    (dest / "old.txt").write_bytes(b"old")
    forced = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest), "--force")
    assert forced.code == 1
    assert _tree(dest) == {"old.txt": b"old"}
    assert _leftovers(out) == []


class _FailingWriter:
    """A file that accepts one chunk, then fails as a full disk would."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __enter__(self) -> _FailingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.close()


def test_write_failing_half_way_leaves_the_destination_untouched(
    run_cli: Any, admitted: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = materialize._open_output

    def failing(path: Path) -> Any:
        return _FailingWriter(real(path)) if path.name == "weights.dat" else real(path)

    monkeypatch.setattr(materialize, "_open_output", failing)
    dest = out / "tiny"
    failed = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest))
    assert failed.code == 2
    assert "No space left on device" in failed.stderr
    assert list(out.iterdir()) == []
    dest.mkdir()
    (dest / "old.txt").write_bytes(b"old")
    forced = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest), "--force")
    assert forced.code == 2
    assert _tree(dest) == {"old.txt": b"old"}
    assert _leftovers(out) == []


def test_hf_cache_layout_loads_offline(
    run_cli: Any, admitted: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = out / "hf-cache"
    result = run_cli(
        "pull", "org/tiny", "--env", "prod", "--dest", str(cache), "--layout", "hf-cache", "--json"
    )
    assert result.code == 0, result.stderr
    got = result.json()
    assert got["destination"] == str(cache / "models--org--tiny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_ENDPOINT")
    from huggingface_hub import hf_hub_download, snapshot_download

    snapshot = snapshot_download("org/tiny", cache_dir=cache, local_files_only=True)
    assert Path(snapshot) == Path(got["model_path"])
    assert _tree(Path(snapshot)) == FILES
    config = hf_hub_download("org/tiny", "config.json", cache_dir=cache, local_files_only=True)
    assert Path(config).read_bytes() == FILES["config.json"]
    assert json.loads(Path(got["decision_file"]).read_text())["allowed"] is True
    # The cache folder may hold other models: only the repo folder is "the destination".
    again = run_cli(
        "pull", "org/tiny", "--env", "prod", "--dest", str(cache), "--layout", "hf-cache"
    )
    assert again.code == 2
    assert "--force" in again.stderr


def test_unknown_layout_is_a_usage_error(run_cli: Any, admitted: Path, out: Path) -> None:
    result = run_cli(
        "pull", "org/tiny", "--env", "prod", "--dest", str(out / "x"), "--layout", "zip"
    )
    assert result.code == 2
    assert not (out / "x").exists()


def test_pull_enforces_the_registry_policy_not_the_shipped_one(
    run_cli: Any, admitted: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MODELCTL_POLICY is the registry's policy: `pull` and `policy check` both apply it."""
    shipped = (Path(__file__).parents[1] / "policies" / "defaults" / "default.yaml").read_text()
    strict = out.parent / "strict.yaml"
    # The organisation's policy runs dev in enforce mode and does not bind staging at all.
    lines = shipped.splitlines(keepends=True)
    dev = [i for i, line in enumerate(lines) if line.strip().startswith("dev: { policy: dev,")]
    staging = [i for i, line in enumerate(lines) if line.strip().startswith("staging: {")]
    assert len(dev) == len(staging) == 1  # the shipped binding's shape, held here
    lines[dev[0]] = "    dev: { policy: prod, mode: enforce }\n"
    del lines[staging[0]]
    strict.write_text("".join(lines))
    assert run_cli("pull", "org/tiny", "--env", "staging", "--dest", str(out / "s")).code == 0
    monkeypatch.setenv("MODELCTL_POLICY", str(strict))
    denied = run_cli("pull", "org/tiny", "--env", "staging", "--dest", str(out / "s2"))
    assert denied.code == 1
    assert "no policy is bound to environment 'staging'" in denied.stderr
    assert not (out / "s2").exists()
    checked = run_cli("policy", "check", "org/tiny", "--env", "dev", "--json")
    assert checked.code == 0, checked.stderr
    assert checked.json()["policy"]["name"] == "prod"
    assert checked.json()["mode"] == "enforce"
    monkeypatch.setenv("MODELCTL_POLICY", str(out.parent / "missing.yaml"))
    unreadable = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(out / "s3"))
    assert unreadable.code == 2
    assert "MODELCTL_POLICY" in unreadable.stderr
    assert not (out / "s3").exists()


def test_pull_is_in_the_audit_log(run_cli: Any, admitted: Path, out: Path, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    dest = out / "tiny"
    assert run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest)).code == 0
    denied = run_cli("pull", "org/tiny", "--env", "qa", "--dest", str(out / "qa"))
    assert denied.code == 1
    engine = create_engine(f"sqlite:///{tmp_path / 'home' / 'registry.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT action, subject, details FROM audit_events WHERE action LIKE '%pull%'")
        ).all()
    engine.dispose()
    assert len(rows) == 1  # only the pull that happened
    action, subject, details = rows[0]
    assert action == "checkpoint.pull"
    assert subject.startswith("org/tiny@sha256:")
    got = json.loads(details)
    assert got["environment"] == "prod"
    assert got["destination"] == str(dest)
    assert got["files"] == len(FILES)


def test_hf_cache_layout_keeps_the_mirrored_tag(
    run_cli: Any, hub: FakeHub, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = hub.add_repo("org/tagged", FILES, tags=["v1.0"])
    assert run_cli("mirror", "hf://org/tagged@v1.0").code == 0
    assert run_cli("attest", "org/tagged").code == 0
    cache = out / "cache"
    pulled = run_cli(
        "pull", "org/tagged", "--env", "prod", "--dest", str(cache), "--layout", "hf-cache"
    )
    assert pulled.code == 0, pulled.stderr
    refs = cache / "models--org--tagged" / "refs"
    assert (refs / "v1.0").read_text() == commit
    assert (refs / "main").read_text() == commit
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_ENDPOINT")
    from huggingface_hub import snapshot_download

    snapshot = snapshot_download(
        "org/tagged", revision="v1.0", cache_dir=cache, local_files_only=True
    )
    assert _tree(Path(snapshot)) == FILES


def test_hf_refs_never_become_unsafe_paths() -> None:
    signed = materialize.SignedCheckpoint(
        name="org/x",
        digest="sha256:" + "0" * 64,
        commit="a" * 40,
        bundle=b"",
        files=(),
        sizes={},
        revisions=(
            "v1",
            "../../etc/passwd",
            "refs/../x",
            "/abs",
            ".hidden",
            "a" * 40,
            "main",
            "release/2026",
        ),
    )
    assert materialize.hf_refs(signed, "a" * 40) == ["main", "release/2026", "v1"]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_end_to_end_mirror_attest_pull_per_environment(
    run_cli: Any, hub: FakeHub, out: Path, env: str
) -> None:
    """Clean and signed: every environment pulls it. A malicious pickle: denied everywhere,
    dev's warn mode included (issue 12: malicious is a deny in every mode), nothing written."""
    evil = (Path(__file__).parent / "assets" / "corpus" / "pickle").joinpath(
        "os_system_global_reduce_p0.pkl"
    )
    hub.add_repo("org/clean", FILES)
    hub.add_repo("org/evil", {"README.md": CARD, "pytorch_model.bin": evil.read_bytes()})
    assert run_cli("mirror", "hf://org/clean").code == 0
    assert run_cli("attest", "org/clean").code == 0
    # The malicious one is recorded (mirror exits 1 under the default --fail-on high) and
    # signed on purpose (attest refuses open findings by default), so only the scan denies it.
    assert run_cli("mirror", "hf://org/evil").code == 1
    assert run_cli("attest", "org/evil", "--allow-findings").code == 0
    clean = run_cli("pull", "org/clean", "--env", env, "--dest", str(out / "clean"), "--json")
    assert clean.code == 0, clean.stderr
    assert _tree(out / "clean") == FILES
    assert all(c["status"] == "pass" for c in clean.json()["decision"]["checks"]), env
    pulled = run_cli("pull", "org/evil", "--env", env, "--dest", str(out / "evil"), "--json")
    assert pulled.code == 1
    reasons = pulled.json()["reasons"]
    assert any(r.startswith("malicious: pickle: pytorch_model.bin: fnd-") for r in reasons)
    assert any("scans.pickle" in r for r in reasons)  # a warning in dev, a failure elsewhere
    assert not (out / "evil").exists()
    assert _leftovers(out) == []


def test_pull_prints_every_warn_mode_failure_on_stderr(
    run_cli: Any, admitted: Path, out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Warn mode lets the pull through; each failing check is one stderr line all the same."""
    monkeypatch.setenv("MODELCTL_POLICY", str(write_warn_policy(tmp_path)))
    pulled = run_cli("pull", "org/tiny", "--env", "lab", "--dest", str(out / "m"), "--json")
    assert pulled.code == 0, pulled.stderr
    warned = [c for c in pulled.json()["decision"]["checks"] if c["status"] == "warn"]
    assert [c["id"] for c in warned] == ["licenses"]
    lines = [line for line in pulled.stderr.splitlines() if "warning" in line]
    assert lines == [f"modelctl: warning: lab: licenses: {warned[0]['message']}"]
    enforced = run_cli("pull", "org/tiny", "--env", "gate", "--dest", str(out / "g"))
    assert enforced.code == 1  # the same failure, enforced
    assert "licenses" in enforced.stderr
