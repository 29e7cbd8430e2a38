"""Remote `modelctl` (`--registry URL` / MODELCTL_REGISTRY + MODELCTL_TOKEN) against a real
`modelctl serve` on 127.0.0.1: the same output as embedded, pull verified on the client,
mirror and scan as server jobs. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from attestations.keys import generate_key
from registry.api.app import create_app
from registry.client.remote import RemoteRegistry
from registry.db.engine import unit_of_work
from registry.db.models import Scan
from registry.embedded import EmbeddedRegistry
from registry.errors import IntegrityFailure
from registry.progress import NoProgress
from registry.settings import Settings
from tests.api_server import Seeded, live_server, seed
from tests.fakes.hfhub import FakeHub
from tests.helpers import write_warn_policy


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        yield fake


@dataclass
class Remote:
    url: str
    tokens: dict[str, str]
    seeded: Seeded
    monkeypatch: pytest.MonkeyPatch

    def on(self, role: str | None = "admin") -> None:
        """Point the CLI at the server, with the given role's token (None: no token)."""
        self.monkeypatch.setenv("MODELCTL_REGISTRY", self.url)
        self.monkeypatch.setenv("MODELCTL_REGISTRY_KEY", str(self.seeded.public_key))
        if role is None:
            self.monkeypatch.delenv("MODELCTL_TOKEN", raising=False)
        else:
            self.monkeypatch.setenv("MODELCTL_TOKEN", self.tokens[role])

    def off(self) -> None:
        self.monkeypatch.delenv("MODELCTL_REGISTRY", raising=False)
        self.monkeypatch.delenv("MODELCTL_TOKEN", raising=False)


@pytest.fixture
def remote(
    run_cli: Any,
    hub: FakeHub,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Remote]:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    seeded = seed(run_cli, hub, tmp_path)
    app = create_app(Settings.from_env())
    tokens = {
        role: app.state.registry.token_create(f"cli-{role}", role).secret
        for role in ("reader", "publisher", "security", "admin")
    }
    with live_server(app) as server:
        yield Remote(server.url, tokens, seeded, monkeypatch)


def both(run_cli: Any, remote: Remote, *args: str, role: str = "admin") -> tuple[Any, Any]:
    remote.off()
    embedded = run_cli(*args)
    remote.on(role)
    over_http = run_cli(*args)
    remote.off()
    return embedded, over_http


def test_read_commands_print_the_same(run_cli: Any, remote: Remote) -> None:
    for args in (
        ("models",),
        ("models", "--json"),
        ("inspect", "org/tiny"),
        ("inspect", remote.seeded.ref, "--json"),
        ("inspect", "org/nope"),  # not found: the same one line, exit 2
        ("inspect", "../etc"),  # bad input
        ("inspect", "org/nope", "--json"),
        ("exception", "list", "--json"),
    ):
        embedded, over_http = both(run_cli, remote, *args, role="reader")
        assert (over_http.code, over_http.stdout, over_http.stderr) == (
            embedded.code,
            embedded.stdout,
            embedded.stderr,
        ), args


def _no_times(text: str) -> str:
    return re.sub(r"\d{4}-\d\d-\d\dT[0-9:.]+Z", "TIME", text)


def test_decisions_quarantine_and_exceptions_print_the_same(run_cli: Any, remote: Remote) -> None:
    args: tuple[str, ...]
    for args in (
        ("policy", "check", "org/tiny", "--env", "prod"),
        ("policy", "check", "org/tiny", "--env", "prod", "--json"),
        ("policy", "check", "org/tiny", "--env", "moon"),  # unbound: denied, exit 1
    ):
        embedded, over_http = both(run_cli, remote, *args, role="reader")
        assert over_http.code == embedded.code, (args, over_http.stderr)
        assert _no_times(over_http.stdout) == _no_times(embedded.stdout), args
        assert over_http.stderr == embedded.stderr
    ref = remote.seeded.ref
    sequence = (
        ("quarantine", ref, "--reason", "CVE-2099-1"),
        ("policy", "check", ref, "--env", "prod"),  # denied while quarantined
        ("release", ref, "--reason", "patched"),
        ("release", ref, "--reason", "again"),  # not quarantined: exit 2
    )
    remote.off()
    embedded_runs = [run_cli(*args) for args in sequence]
    remote.on("security")
    remote_runs = [run_cli(*args) for args in sequence]
    remote.off()
    for args, embedded, over_http in zip(sequence, embedded_runs, remote_runs, strict=True):
        assert over_http.code == embedded.code, (args, over_http.stderr)
        assert _no_times(over_http.stdout) == _no_times(embedded.stdout), args
        assert over_http.stderr == embedded.stderr, args
    request: tuple[str, ...] = ("exception", "request", ref, "--waive", "licenses")
    request += ("--reason", "ok")
    request += ("--expires", "30d")
    embedded, over_http = both(run_cli, remote, *request, role="security")
    assert over_http.code == embedded.code == 0, over_http.stderr
    assert re.sub(r"request \d+ by \S+|approve \d+|TIME", "X", _no_times(over_http.stdout)) == (
        re.sub(r"request \d+ by \S+|approve \d+|TIME", "X", _no_times(embedded.stdout))
    )
    remote.on("security")
    asked = run_cli(*request, "--json").json()
    assert asked["requested_by"] == "token:cli-security"
    own = run_cli("exception", "approve", str(asked["id"]))
    assert own.code == 2
    assert own.stderr.strip() == (
        f"modelctl: error: an exception needs a second person: token:cli-security requested "
        f"request {asked['id']} and may not approve it"
    )
    remote.on("admin")
    granted = run_cli("exception", "approve", str(asked["id"]), "--json")
    assert granted.code == 0, granted.stderr
    assert (granted.json()["requested_by"], granted.json()["approver"]) == (
        "token:cli-security",
        "token:cli-admin",
    )
    remote.on("security")
    assert run_cli("exception", "revoke", str(granted.json()["id"])).code == 0
    events = run_cli("audit", "--action", "exception.", "--json").json()["events"]
    actors = {(e["action"], e["actor"]) for e in events}
    assert ("exception.request", "token:cli-security") in actors
    assert ("exception.approve", "token:cli-admin") in actors
    assert ("exception.revoke", "token:cli-security") in actors


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_remote_pull_is_verified_on_the_client(
    run_cli: Any, remote: Remote, tmp_path: Path
) -> None:
    remote.on("reader")
    dest = tmp_path / "out" / "tiny"
    pulled = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(dest), "--json")
    assert pulled.code == 0, pulled.stderr
    got = pulled.json()
    assert _tree(dest) == remote.seeded.files
    assert got["bytes"] == sum(len(b) for b in remote.seeded.files.values())
    verified = run_cli(
        "verify",
        str(dest),
        "--signature",
        got["signature"],
        "--public-key",
        str(remote.seeded.public_key),
    )
    assert verified.code == 0, verified.stderr
    hf = run_cli(
        "pull", "org/tiny", "--env", "prod", "--dest", str(tmp_path / "hf"), "--layout", "hf-cache"
    )
    assert hf.code == 0, hf.stderr

    # A client that pinned another key trusts nothing the server sends: exit 1, nothing written.
    other = tmp_path / "other.pub"
    other.write_bytes(generate_key(passphrase=None).public_pem)
    remote.monkeypatch.setenv("MODELCTL_REGISTRY_KEY", str(other))
    refused = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(tmp_path / "x"))
    assert refused.code == 1
    assert "no model signature that verifies" in refused.stderr
    assert not (tmp_path / "x").exists()
    remote.monkeypatch.delenv("MODELCTL_REGISTRY_KEY")
    unpinned = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(tmp_path / "y"))
    assert unpinned.code == 2
    assert "MODELCTL_REGISTRY_KEY" in unpinned.stderr
    # Denied: exit 1 naming why, nothing written.
    remote.on("security")
    assert run_cli("quarantine", "org/tiny", "--reason", "bad").code == 0
    denied = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(tmp_path / "z"))
    assert denied.code == 1
    assert "not admitted" in denied.stderr
    assert not (tmp_path / "z").exists()


@pytest.fixture
def warn_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MODELCTL_POLICY set before the server starts (name it before `remote`)."""
    path = write_warn_policy(tmp_path)
    monkeypatch.setenv("MODELCTL_POLICY", str(path))
    return path


def test_remote_pull_prints_warn_mode_failures_and_names_its_environment(
    warn_policy: Path, run_cli: Any, remote: Remote, tmp_path: Path
) -> None:
    remote.on("reader")
    pulled = run_cli("pull", "org/tiny", "--env", "lab", "--dest", str(tmp_path / "m"))
    assert pulled.code == 0, pulled.stderr
    assert _tree(tmp_path / "m") == remote.seeded.files
    warnings = [line for line in pulled.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("modelctl: warning: lab: licenses: ")
    # Every byte was read for `lab` (the server's gate), never without an environment.
    events = remote_audit(remote, "bytes.forensic_read")
    assert events == []


def remote_audit(remote: Remote, action: str) -> list[dict[str, Any]]:
    response = httpx.get(
        remote.url + "/v1/audit",
        params={"action": action},
        headers={"Authorization": f"Bearer {remote.tokens['security']}"},
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def test_remote_pull_with_a_token_scoped_elsewhere_is_refused(
    run_cli: Any, remote: Remote, tmp_path: Path
) -> None:
    remote.on("admin")
    made = run_cli("tokens", "create", "staging-ci", "--env", "staging", "--json")
    assert made.code == 0, made.stderr
    assert made.json()["environments"] == ["staging"]
    remote.monkeypatch.setenv("MODELCTL_TOKEN", made.json()["token"])
    refused = run_cli("pull", "org/tiny", "--env", "prod", "--dest", str(tmp_path / "p"))
    assert refused.code == 1, refused.stderr
    assert "scoped to environment(s) staging, not 'prod'" in refused.stderr
    assert not (tmp_path / "p").exists()


class TamperingTransport(httpx.HTTPTransport):
    """A real connection to the real server, with one byte of every blob body flipped on the
    way: a man in the middle (or a lying server) the client must catch by itself."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not request.url.path.startswith("/v1/blobs/"):
            return response
        body = bytearray(response.read())
        if body:
            body[len(body) // 2] ^= 0x01
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(bytes(body)),
            request=request,
        )


def test_remote_pull_catches_bytes_changed_in_transit(remote: Remote, tmp_path: Path) -> None:
    client = RemoteRegistry(
        remote.url,
        token=remote.tokens["reader"],
        registry_key=remote.seeded.public_key,
        transport=TamperingTransport(),
    )
    dest = tmp_path / "out" / "tiny"
    try:
        with pytest.raises(IntegrityFailure, match="signed manifest says"):
            client.pull("org/tiny", "prod", dest, progress=NoProgress())
    finally:
        client.close()
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir()] == []  # no staging left behind


def test_remote_mirror_and_scan_run_as_server_jobs(
    run_cli: Any, remote: Remote, hub: FakeHub
) -> None:
    hub.add_repo("org/other", {"config.json": b'{"a": 1}\n', "README.md": b"# other\n"})
    remote.on("publisher")
    mirrored = run_cli("mirror", "hf://org/other", "--json")
    assert mirrored.code == 0, mirrored.stderr
    assert mirrored.json()["name"] == "org/other"
    assert mirrored.json()["created"] is True
    assert mirrored.json()["verdict"] == "clean"
    text = run_cli("mirror", "hf://org/other")
    assert text.stdout.startswith("already registered org/other@sha256:")
    remote.off()
    embedded_scan = run_cli("scan", "org/tiny", "--json").json()
    remote.on("publisher")
    remote_scan = run_cli("scan", "org/tiny", "--json")
    assert remote_scan.code == 0, remote_scan.stderr
    got = remote_scan.json()
    assert got["verdict"] == embedded_scan["verdict"]
    assert got["files"] == embedded_scan["files"]
    assert [r["scanner"] for r in got["recorded"]] == [
        r["scanner"] for r in embedded_scan["recorded"]
    ]
    missing = run_cli("mirror", "hf://org/missing")
    assert missing.code == 2
    assert "org/missing" in missing.stderr
    remote.on("security")
    events = run_cli("audit", "--subject", "org/other", "--json").json()["events"]
    assert ("checkpoint.mirror", "token:cli-publisher") in {
        (e["action"], e["actor"]) for e in events
    }


def test_remote_roles_and_tokens(run_cli: Any, remote: Remote) -> None:
    remote.on(None)
    anonymous = run_cli("models")
    assert anonymous.code == 2
    assert "needs an API token" in anonymous.stderr
    remote.on("reader")
    refused = run_cli("quarantine", "org/tiny", "--reason", "x")
    assert refused.code == 2
    assert "needs security or higher" in refused.stderr
    remote.on("admin")
    created = run_cli("tokens", "create", "ci-bot", "--role", "publisher", "--json")
    assert created.code == 0, created.stderr
    secret = created.json()["token"]
    names = [t["name"] for t in run_cli("tokens", "list", "--json").json()["tokens"]]
    assert "ci-bot" in names
    assert run_cli("tokens", "revoke", "ci-bot").code == 0
    remote.monkeypatch.setenv("MODELCTL_TOKEN", secret)
    revoked = run_cli("models")
    assert revoked.code == 2
    assert "unknown, revoked or expired" in revoked.stderr
    remote.monkeypatch.setenv("MODELCTL_REGISTRY", "http://10.0.0.1:8080")
    plain = run_cli("models")
    assert plain.code == 2
    assert "plain HTTP" in plain.stderr


def test_remote_backdoor_scan_options_reach_the_server(
    run_cli: Any, remote: Remote, hub: FakeHub
) -> None:
    """`--backdoor-max-params` travels with the scan job: the server's scanner applies it."""
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [64], "data_offsets": [0, 256]}}).encode()
    header += b" " * (-len(header) % 8)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    hub.add_repo(
        "org/llm",
        {
            "config.json": json.dumps(config).encode(),
            "tokenizer.json": b"{}",
            "model.safetensors": struct.pack("<Q", len(header)) + header + bytes(256),
        },
    )
    remote.on("publisher")
    assert run_cli("mirror", "hf://org/llm", "--no-scan").code == 0
    scanned = run_cli(
        "scan", "org/llm", "--scanner", "backdoor", "--backdoor-max-params", "10", "--json"
    )
    assert scanned.code == 0, scanned.stderr
    folder = next(f for f in scanned.json()["files"] if f["path"] == ".")
    assert folder["verdict"] == "unsupported"
    assert "64 parameters exceed the backdoor scanner's limit of 10" in json.dumps(folder)
    refused = httpx.post(
        f"{remote.url}/v1/scans",
        headers={"Authorization": f"Bearer {remote.tokens['publisher']}"},
        json={"ref": "org/llm", "scanners": ["backdoor"], "backdoor": {"device": "tpu"}},
    )
    assert refused.status_code == 422


def test_remote_quarantine_of_a_bare_digest_prints_the_same(run_cli: Any, remote: Remote) -> None:
    """Quarantine by a file's sha256 and by name through the remote CLI: the same output and
    exit codes as embedded; release undoes exactly what was quarantined."""
    shown = run_cli("inspect", remote.seeded.ref, "--json").json()
    file_digest = f"sha256:{shown['files'][0]['sha256']}"
    for args in (
        ("quarantine", file_digest, "--reason", "bad file"),  # the second run keeps the first
        ("quarantine", "list"),
        ("quarantine", "list", "--json"),
    ):
        embedded, over_http = both(run_cli, remote, *args, role="security")
        assert over_http.code == embedded.code == 0, (args, over_http.stderr)
        assert over_http.stdout == embedded.stdout, args
    remote.on("security")
    by_name = run_cli("release", "org/tiny", "--reason", "ok")
    assert by_name.code == 2
    assert f"still quarantined by file {file_digest}" in by_name.stderr
    released = run_cli("release", file_digest, "--reason", "false alarm", "--json")
    assert released.code == 0, released.stderr
    assert released.json()["released_by"] == "token:cli-security"
    again = run_cli("release", file_digest, "--reason", "twice")
    remote.off()
    assert again.stderr == run_cli("release", file_digest, "--reason", "twice").stderr
    assert again.code == 2


def test_remote_rescan_needs_publisher_and_queues_on_the_server(
    run_cli: Any, remote: Remote
) -> None:
    registry = EmbeddedRegistry(Settings.from_env())
    try:
        with unit_of_work(registry.sessions) as session:
            session.execute(
                update(Scan)
                .where(Scan.scanner_id == "pickle")
                .values(scanner_version="0.0.1", ruleset_version="2020-01-01")
            )
    finally:
        registry.close()
    remote.on("reader")
    refused = run_cli("rescan", "--dry-run")
    assert refused.code == 2
    assert "needs publisher or higher" in refused.stderr
    remote.on("publisher")
    dry = run_cli("rescan", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert [c["ref"] for c in dry.json()["checkpoints"]] == [remote.seeded.ref]
    queued = run_cli("rescan", "--json")
    assert queued.code == 0, queued.stderr
    (item,) = queued.json()["checkpoints"]
    assert item["job_id"] is not None or item["already_queued"]
