"""`modelctl push` to a real OCI registry on loopback, read back with our client and skopeo."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attestations.decision import PREDICATE_TYPE as DECISION_PREDICATE_TYPE
from attestations.identity import PREDICATE_TYPE as IDENTITY_PREDICATE_TYPE
from registry.errors import InputError
from registry.mirror import modelpack
from registry.mirror.oci_client import OciClient, fallback_tag
from registry.mirror.oci_ref import parse_oci_ref
from tests.fakes.hfhub import FakeHub
from tests.oci_registry import RunningRegistry, TokenService, start_registry
from tests.test_pull import FILES


@pytest.fixture
def oci_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    yield from start_registry(tmp_path / "oci")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        yield fake


@pytest.fixture
def admitted(run_cli: Any, hub: FakeHub, tmp_path: Path) -> None:
    """org/tiny mirrored, scanned, attested and admitted to prod; its key in registry.pub."""
    hub.add_repo("org/tiny", FILES)
    assert run_cli("mirror", "hf://org/tiny").code == 0
    pub = tmp_path / "registry.pub"
    assert run_cli("attest", "org/tiny", "--public-key-out", str(pub)).code == 0
    assert run_cli("policy", "check", "org/tiny", "--env", "prod").code == 0


def test_push_publishes_a_modelpack_artifact_with_referrers(
    run_cli: Any, admitted: None, oci_registry: RunningRegistry
) -> None:
    target = oci_registry.ref("team/tiny:v1")
    result = run_cli("push", "org/tiny", target, "--env", "prod", "--json")
    assert result.code == 0, result.stderr
    got = result.json()
    assert got["layers"] == len(FILES)
    assert got["layers_sent"] == len(FILES)
    assert got["bytes_sent"] == sum(len(b) for b in FILES.values())
    predicate_types = [r["predicate_type"] for r in got["referrers"]]
    assert predicate_types[0] == "https://model_signing/signature/v1.0"
    assert len(predicate_types) >= 3  # the signature, the scan attestations, the decision
    assert predicate_types[-1] == DECISION_PREDICATE_TYPE  # --env: prod's signed decision

    with OciClient(parse_oci_ref(target)) as client:
        fetched = client.get_manifest("v1")
        assert fetched.digest == got["oci_digest"]
        manifest = json.loads(fetched.body)
        assert manifest["artifactType"] == modelpack.ARTIFACT_TYPE
        assert manifest["config"]["mediaType"] == modelpack.CONFIG_TYPE
        layers = {layer["annotations"][modelpack.FILEPATH]: layer for layer in manifest["layers"]}
        # One layer per file, its digest the file's sha256: the OMS manifest's own entries.
        assert {p: layer["digest"] for p, layer in layers.items()} == {
            p: "sha256:" + hashlib.sha256(b).hexdigest() for p, b in FILES.items()
        }
        assert layers["model.safetensors"]["mediaType"] == modelpack.WEIGHT_RAW
        assert layers["README.md"]["mediaType"] == modelpack.DOC_RAW
        assert layers["config.json"]["mediaType"] == modelpack.WEIGHT_CONFIG_RAW
        with client.open_blob(manifest["config"]["digest"]) as chunks:
            config = json.loads(b"".join(chunks))
        assert config["descriptor"]["version"] == got["digest"]
        assert manifest["annotations"][modelpack.CHECKPOINT_DIGEST] == got["digest"]
        # Referrers: found through the tag schema (this registry has no referrers API).
        referrers = client.referrers(got["oci_digest"])
        assert {r["digest"] for r in referrers} == {r["digest"] for r in got["referrers"]}
        assert client.get_manifest(fallback_tag(got["oci_digest"])).media_type.endswith(
            "index.v1+json"
        )
        signature = json.loads(client.get_manifest(got["referrers"][0]["digest"]).body)
        assert signature["subject"]["digest"] == got["oci_digest"]

    # Pushing again sends no layer and gives the same manifest digest.
    again = run_cli("push", "org/tiny", target, "--env", "prod", "--json")
    assert again.code == 0, again.stderr
    assert again.json()["layers_sent"] == 0
    assert again.json()["oci_digest"] == got["oci_digest"]


def test_push_refuses_what_the_environment_does_not_admit(
    run_cli: Any, hub: FakeHub, oci_registry: RunningRegistry
) -> None:
    hub.add_repo("org/tiny", FILES)
    assert run_cli("mirror", "hf://org/tiny").code == 0  # not attested: prod denies it
    result = run_cli("push", "org/tiny", oci_registry.ref("team/tiny:v1"), "--env", "prod")
    assert result.code == 1
    assert "not admitted" in result.stderr
    assert not any((oci_registry.root / "docker").rglob("link"))  # nothing was sent


def test_push_refuses_bad_targets(run_cli: Any, admitted: None) -> None:
    for bad in ("oci://host/UPPER:v1", "hf://org/x", "oci://127.0.0.1:1/x@sha256:" + "a" * 64):
        result = run_cli("push", "org/tiny", bad, "--env", "prod")
        assert result.code == 2, (bad, result.stderr)
    result = run_cli(
        "push", "org/tiny", "oci://127.0.0.1:1/x:v1", "--env", "prod"
    )  # nothing listens
    assert result.code == 2
    assert "oci://127.0.0.1:1/x" in result.stderr


def test_skopeo_reads_what_push_wrote(
    run_cli: Any, admitted: None, oci_registry: RunningRegistry, tmp_path: Path
) -> None:
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is missing: `make pytest` installs it (apt-get install skopeo)")
    target = oci_registry.ref("team/tiny:v1")
    got = run_cli("push", "org/tiny", target, "--json", "--env", "prod").json()
    docker_ref = f"docker://{oci_registry.host}/team/tiny:v1"
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", docker_ref],
        check=True,
        capture_output=True,
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == got["oci_digest"]
    layout = tmp_path / "layout"
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", docker_ref, f"oci:{layout}:v1"],
        check=True,
        capture_output=True,
    )
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == got["oci_digest"]
    for path, data in FILES.items():
        blob = layout / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
        assert blob.read_bytes() == data, path


def _blob_file(registry: RunningRegistry, data: bytes) -> Path:
    hex_digest = hashlib.sha256(data).hexdigest()
    blobs = registry.root / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return blobs / hex_digest[:2] / hex_digest / "data"


def test_mirror_from_oci_gives_the_same_checkpoint(
    run_cli: Any, admitted: None, oci_registry: RunningRegistry
) -> None:
    target = oci_registry.ref("team/tiny:v1")
    pushed = run_cli("push", "org/tiny", target, "--json", "--env", "prod").json()
    result = run_cli("mirror", target, "--name", "copy/tiny", "--json")
    assert result.code == 0, result.stderr
    mirrored = run_cli("inspect", "copy/tiny", "--json").json()
    # The same bytes: the same checkpoint identity, computed from the files.
    assert mirrored["digest"] == pushed["digest"]
    assert mirrored["source"]["commit"] == pushed["oci_digest"]  # the tag, pinned
    assert mirrored["source"]["uri"] == oci_registry.ref("team/tiny")
    # Pinned by digest, with the default name from the repository path.
    by_digest = run_cli("mirror", f"{oci_registry.ref('team/tiny')}@{pushed['oci_digest']}")
    assert by_digest.code == 0, by_digest.stderr
    assert run_cli("inspect", "team/tiny", "--json").code == 0


def test_mirror_refuses_a_layer_whose_bytes_do_not_match(
    run_cli: Any,
    admitted: None,
    oci_registry: RunningRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = oci_registry.ref("team/tiny:v1")
    assert run_cli("push", "org/tiny", target, "--env", "prod").code == 0
    data = FILES["config.json"]
    _blob_file(oci_registry, data).write_bytes(b'{"model_type": "evil"}\n')
    # Another registry, whose blob store does not hold the files already.
    monkeypatch.setenv("MODELCTL_HOME", str(tmp_path / "second-home"))
    result = run_cli("mirror", target, "--name", "copy/tiny")
    assert result.code == 1, result.stderr
    assert "config.json" in result.stderr
    assert run_cli("inspect", "copy/tiny").code == 2  # nothing half-registered


def test_mirror_of_a_missing_tag_or_repository_fails_cleanly(
    run_cli: Any, oci_registry: RunningRegistry
) -> None:
    result = run_cli("mirror", oci_registry.ref("team/none:v9"))
    assert result.code == 2
    assert "not found" in result.stderr


def test_mirror_verifies_referrers_and_trusts_only_those_that_verify(
    run_cli: Any,
    admitted: None,
    oci_registry: RunningRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = oci_registry.ref("team/tiny:v1")
    pushed = run_cli("push", "org/tiny", target, "--json", "--env", "prod").json()
    count = len(pushed["referrers"])
    # A second registry that does not trust the first one's key: nothing is trusted.
    monkeypatch.setenv("MODELCTL_HOME", str(tmp_path / "untrusting"))
    result = run_cli("mirror", target, "--name", "copy/tiny", "--json", "--no-scan")
    assert result.code == 0, result.stderr
    checks = result.json()["referrers"]
    assert len(checks) == count
    assert not any(c["verified"] for c in checks)
    assert all(c["reason"] for c in checks)
    stored = run_cli("inspect", "copy/tiny", "--json").json()["attestations"]
    # Only its own identity statement (this registry mirrored these bytes from that manifest).
    assert [a["predicate_type"] for a in stored] == [IDENTITY_PREDICATE_TYPE]
    # One that trusts it: the signature and the scan attestations are stored as evidence.
    monkeypatch.setenv("MODELCTL_HOME", str(tmp_path / "trusting"))
    monkeypatch.setenv("MODELCTL_TRUSTED_KEYS", str(tmp_path / "registry.pub"))
    result = run_cli("mirror", target, "--name", "copy/tiny", "--json", "--no-scan")
    assert result.code == 0, result.stderr
    checks = result.json()["referrers"]
    assert all(c["verified"] for c in checks), checks
    stored = run_cli("inspect", "copy/tiny", "--json").json()["attestations"]
    assert len(stored) == count + 1  # what came with it, and its own identity statement


def test_push_with_token_auth_and_credentials_from_the_auth_file(
    run_cli: Any, admitted: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = TokenService(tmp_path, "alice", "s3cret")
    try:
        for running in start_registry(tmp_path / "oci", tokens.registry_auth_yaml()):
            target = running.ref("team/tiny:v1")
            monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "absent.json"))
            refused = run_cli("push", "org/tiny", target, "--env", "prod")
            assert refused.code == 2
            assert "credentials" in refused.stderr
            auth = tmp_path / "auth.json"
            encoded = base64.b64encode(b"alice:s3cret").decode()
            auth.write_text(json.dumps({"auths": {running.host: {"auth": encoded}}}))
            monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
            result = run_cli("push", "org/tiny", target, "--json", "--env", "prod")
            assert result.code == 0, result.stderr
            assert tokens.issued >= 1
            mirrored = run_cli("mirror", target, "--name", "copy/tiny", "--no-scan")
            assert mirrored.code == 0, mirrored.stderr
    finally:
        tokens.close()


def test_mirror_reads_an_artifact_that_skopeo_copied_in(
    run_cli: Any,
    admitted: None,
    oci_registry: RunningRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pushed = run_cli(
        "push", "org/tiny", oci_registry.ref("team/tiny:v1"), "--json", "--env", "prod"
    ).json()
    layout = f"oci:{tmp_path / 'layout'}:v1"
    source = f"docker://{oci_registry.host}/team/tiny:v1"
    copied = f"docker://{oci_registry.host}/elsewhere/tiny:v2"
    for src, dest in ((source, layout), (layout, copied)):
        subprocess.run(
            ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", src, dest],
            check=True,
            capture_output=True,
        )
    monkeypatch.setenv("MODELCTL_HOME", str(tmp_path / "second-home"))
    result = run_cli("mirror", oci_registry.ref("elsewhere/tiny:v2"), "--json", "--no-scan")
    assert result.code == 0, result.stderr
    assert result.json()["digest"] == pushed["digest"]  # one identity across representations


def test_a_tag_moved_after_pinning_does_not_change_what_is_mirrored(
    run_cli: Any, admitted: None, oci_registry: RunningRegistry
) -> None:
    from registry.mirror.base import parse_source
    from registry.mirror.oci import OciSource
    from registry.settings import Limits

    pushed = run_cli(
        "push", "org/tiny", oci_registry.ref("team/tiny:v1"), "--json", "--env", "prod"
    ).json()
    source = OciSource(parse_source(oci_registry.ref("team/tiny:v1")), limits=Limits())
    try:
        snapshot = source.resolve()
        assert snapshot.commit == pushed["oci_digest"]
        # The tag now names another manifest (the first referrer's): the pinned snapshot's
        # files still come by digest from the manifest we pinned.
        with OciClient(parse_oci_ref(oci_registry.ref("team/tiny:v1")), push=True) as client:
            other = client.get_manifest(pushed["referrers"][0]["digest"])
            client.put_manifest("v1", other.body, other.media_type)
        with pytest.raises(InputError, match="not a ModelPack artifact"):
            source.resolve()  # a fresh resolve sees the moved tag
        for file in snapshot.files:
            sink = _MemorySink()
            source.fetch(snapshot, file, sink)
            assert bytes(sink.data) == FILES[file.path]
    finally:
        source.close()


class _MemorySink:
    """A ByteSink in memory, for reading a source's bytes directly."""

    def __init__(self) -> None:
        self.data = bytearray()

    @property
    def resume_offset(self) -> int:
        return 0

    def write(self, data: bytes | memoryview, /) -> int:
        self.data += data
        return len(data)

    def tell(self) -> int:
        return len(self.data)

    def restart(self) -> None:
        self.data.clear()


def test_a_quarantined_checkpoint_is_not_pushed_with_or_without_env(
    run_cli: Any, admitted: None, oci_registry: RunningRegistry
) -> None:
    assert run_cli("quarantine", "org/tiny", "--reason", "bad weights").code == 0
    for extra in (("--env", "prod"), ("--env", "dev")):
        result = run_cli("push", "org/tiny", oci_registry.ref("team/tiny:v1"), *extra)
        assert result.code == 1, result.stderr
        assert "quarantine" in result.stderr
    assert not any((oci_registry.root / "docker").rglob("link"))  # nothing was sent
