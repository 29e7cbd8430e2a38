"""The HTTP API (`modelctl serve`) on a real uvicorn on 127.0.0.1, on SQLite and PostgreSQL:
auth, files with Range/ETag re-hashed as they stream, attestation uploads, quarantine,
admission, jobs, and the faults: traversal, oversize, bad signatures, disconnects, DB errors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.intoto import ResourceDescriptor, Statement
from attestations.keys import KeySigner, generate_key, load_private_key
from registry.api.app import create_app
from registry.db.engine import unit_of_work
from registry.db.models import Attestation, AuditEvent, Quarantine
from registry.settings import Settings
from registry.worker import wait_for
from tests.api_server import LiveServer, Seeded, live_server, seed
from tests.fakes.hfhub import FakeHub

PROBLEM = "application/problem+json"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        yield fake


@pytest.fixture
def seeded(
    run_cli: Any,
    hub: FakeHub,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Seeded:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    return seed(run_cli, hub, tmp_path)


class Api:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.url = server.url
        self.registry = server.app.state.registry
        self.tokens = {
            role: self.registry.token_create(f"{role}-token", role).secret
            for role in ("reader", "publisher", "security", "admin")
        }

    def h(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: str = "reader", **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers={**self.h(role), **kw.pop("headers", {})}, **kw)

    def post(self, path: str, role: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, headers={**self.h(role), **kw.pop("headers", {})}, **kw)


@pytest.fixture
def api(seeded: Seeded) -> Iterator[Api]:
    with live_server(create_app(Settings.from_env())) as server:
        yield Api(server)


def _cp(seeded: Seeded) -> str:
    return f"/v1/checkpoints/org/tiny/{seeded.digest}"


def _problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["reason"] == reason, body
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


def _blob_path(seeded: Seeded, sha256: str) -> Path:
    settings = Settings.from_env()
    return settings.blob_root / "sha256" / sha256[:2] / sha256


# -- reads ---------------------------------------------------------------------------------------


def test_reads_match_the_cli_json(api: Api, seeded: Seeded, run_cli: Any) -> None:
    assert api.get("/v1/models").json() == run_cli("models", "--json").json()
    inspect = run_cli("inspect", seeded.ref, "--json").json()
    assert api.get(_cp(seeded)).json() == inspect
    assert api.get("/v1/resolve", params={"ref": "org/tiny"}).json() == inspect
    _problem(api.get("/v1/resolve", params={"ref": "org/nope"}), 404, "not_found")
    _problem(api.get("/v1/resolve", params={"ref": "../etc"}), 400, "input_error")
    scans = api.get(_cp(seeded) + "/scans").json()["scans"]
    assert [s["scanner"] for s in scans] == [s["scanner"] for s in inspect["scans"]]
    openapi = httpx.get(api.url + "/v1/openapi.json").json()
    assert "/v1/admission/check" in openapi["paths"]
    assert "Problem" in openapi["components"]["schemas"]


def test_file_download_whole_range_etag_head(api: Api, seeded: Seeded) -> None:
    big = seeded.files["extra/weights.dat"]
    sha = hashlib.sha256(big).hexdigest()
    path = _cp(seeded) + "/files/extra/weights.dat?env=prod"
    whole = api.get(path)
    assert whole.status_code == 200
    assert whole.content == big
    assert whole.headers["etag"] == f'"{sha}"'
    assert whole.headers["content-length"] == str(len(big))
    assert whole.headers["accept-ranges"] == "bytes"
    part = api.get(path, headers={"Range": "bytes=1000-2999999"})
    assert part.status_code == 206
    assert part.content == big[1000:3000000]
    assert part.headers["content-range"] == f"bytes 1000-2999999/{len(big)}"
    tail = api.get(path, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, big[-10:])
    open_end = api.get(path, headers={"Range": f"bytes={len(big) - 5}-"})
    assert open_end.content == big[-5:]
    unsatisfiable = api.get(path, headers={"Range": f"bytes={len(big)}-"})
    _problem(unsatisfiable, 416, "range_not_satisfiable")
    assert unsatisfiable.headers["content-range"] == f"bytes */{len(big)}"
    multi = api.get(path, headers={"Range": "bytes=0-1,5-6"})  # not supported: whole file
    assert (multi.status_code, len(multi.content)) == (200, len(big))
    cached = api.get(path, headers={"If-None-Match": f'"{sha}"'})
    assert (cached.status_code, cached.content) == (304, b"")
    head = httpx.head(api.url + path, headers=api.h("reader"))
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(big))
    assert head.content == b""
    blob = api.get(
        f"/v1/blobs/sha256:{sha}", params={"env": "prod"}, headers={"Range": "bytes=0-9"}
    )
    assert (blob.status_code, blob.content) == (206, big[:10])
    _problem(api.get(_cp(seeded) + "/files/nope.bin"), 404, "not_found")
    _problem(api.get("/v1/blobs/sha256:" + "0" * 64), 404, "not_found")


def _raw_get(url: str, target: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """A request line sent exactly as written (clients normalise `..` away)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_path_traversal_in_file_routes_is_refused(api: Api, seeded: Seeded) -> None:
    secret = Settings.from_env().home / "registry.db"
    for target in (
        "/files/../../../../etc/passwd",
        "/files/extra/../config.json",
        "/files/%2e%2e/%2e%2e/registry.db",
        "/files//etc/passwd",
        "/files/extra%5c..%5cconfig.json",
        "/files/./config.json",
    ):
        status, body = _raw_get(api.url, _cp(seeded) + target, api.h("reader"))
        assert status in {400, 404}, (target, status, body[:200])
        problem = json.loads(body)
        assert problem["reason"] in {"input_error", "not_found"}
        assert b"root:" not in body
        assert not (secret.exists() and secret.read_bytes()[:16] in body)
    status, _ = _raw_get(api.url, _cp(seeded) + "/files/config.json?env=prod", api.h("reader"))
    assert status == 200


def test_a_tampered_blob_is_never_served_whole(api: Api, seeded: Seeded) -> None:
    big = seeded.files["extra/weights.dat"]
    sha = hashlib.sha256(big).hexdigest()
    blob = _blob_path(seeded, sha)
    blob.chmod(0o600)
    data = bytearray(blob.read_bytes())
    data[len(data) - 3] ^= 0xFF  # same size, the last chunk differs
    blob.write_bytes(bytes(data))
    for headers in ({}, {"Range": "bytes=0-99"}):
        with pytest.raises(httpx.RemoteProtocolError):  # the body is cut short: never whole
            api.get(_cp(seeded) + "/files/extra/weights.dat?env=prod", headers=headers)
    # The server stays healthy and serves other files.
    assert (
        api.get(_cp(seeded) + "/files/config.json?env=prod").content == seeded.files["config.json"]
    )


def _open_fds() -> list[str]:
    """What this process's file descriptors point at (paths, `socket:[…]`, pipes)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd is gone by now
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found


def _blob_handles() -> list[str]:
    root = str(Settings.from_env().blob_root)
    return [target for target in _open_fds() if target.startswith(root)]


def _server_connections(port: int) -> list[str]:
    """This process's TCP sockets whose local port is the server's (its side of client
    connections), by inode. Database and other outgoing connections are not counted."""
    ours = {t[len("socket:[") : -1] for t in _open_fds() if t.startswith("socket:[")}
    held = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in (line.split() for line in f.read().splitlines()[1:]):
                local_port = int(row[1].rsplit(":", 1)[1], 16)
                state = row[3]
                if local_port == port and state != "0A" and row[9] in ours:  # 0A: LISTEN
                    held.append(row[9])
    return held


def test_client_disconnect_mid_download_leaks_nothing(api: Api, seeded: Seeded) -> None:
    """A client that hangs up mid-body leaves no blob open and no connection behind."""
    path = _cp(seeded) + "/files/extra/weights.dat?env=prod"
    api.get("/v1/health")  # warm up the server's lazy imports and pools
    host, port = api.url.removeprefix("http://").split(":")
    for _ in range(10):
        sock = socket.create_connection((host, int(port)), timeout=10)
        auth = api.h("reader")["Authorization"]
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.close()  # mid-body
    # The server closes its side when it next writes to a dropped connection, and a request
    # whose client already left may still be deciding before it opens the blob: wait until
    # nothing has been held for a while, not just for one look.
    deadline = time.monotonic() + 15
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 0.5:
        if _blob_handles() or _server_connections(int(port)):
            quiet_since = time.monotonic()
        time.sleep(0.05)
    assert _blob_handles() == []
    assert _server_connections(int(port)) == []
    assert api.get("/v1/health").json() == {"status": "ok"}
    assert api.get(path).content == seeded.files["extra/weights.dat"]


# -- bytes leave only through a gate ------------------------------------------------------------

SECRET = b"bytes nobody attested\n"


def _mirror_unsigned(run_cli: Any, hub: FakeHub, seeded: Seeded) -> str:
    """org/unsigned: mirrored, never attested (denied in prod); shares config.json with
    org/tiny and holds one blob of its own (SECRET)."""
    files = {k: v for k, v in seeded.files.items() if k != "extra/weights.dat"}
    hub.add_repo("org/unsigned", {**files, "secret.bin": SECRET})
    mirrored = run_cli("mirror", "hf://org/unsigned", "--json")
    assert mirrored.code == 0, mirrored.stderr
    digest: str = mirrored.json()["digest"]
    return digest


def test_reader_cannot_read_denied_blob(
    api: Api, seeded: Seeded, run_cli: Any, hub: FakeHub
) -> None:
    digest = _mirror_unsigned(run_cli, hub, seeded)
    secret = "sha256:" + hashlib.sha256(SECRET).hexdigest()
    denied = _problem(api.get(f"/v1/blobs/{secret}", params={"env": "prod"}), 403, "not_admitted")
    assert "not admitted to 'prod'" in denied["detail"]
    assert any("model_signing" in r for r in denied["reasons"]), denied
    head = httpx.head(api.url + f"/v1/blobs/{secret}?env=prod", headers=api.h("reader"))
    assert head.status_code == 403
    file = f"/v1/checkpoints/org/unsigned/{digest}/files/secret.bin"
    _problem(api.get(file, params={"env": "prod"}), 403, "not_admitted")
    # No environment: no gate to pass, so no bytes (a reader cannot ask for a forensic read).
    needs_env = _problem(api.get(f"/v1/blobs/{secret}"), 400, "environment_required")
    assert "?env=ENV" in needs_env["detail"]
    _problem(api.get(file), 400, "environment_required")
    _problem(api.get(file, "publisher"), 400, "environment_required")
    # A blob is readable for an environment where some checkpoint holding it is admitted.
    shared = "sha256:" + hashlib.sha256(seeded.files["config.json"]).hexdigest()
    ok = api.get(f"/v1/blobs/{shared}", params={"env": "prod"})
    assert (ok.status_code, ok.content) == (200, seeded.files["config.json"])
    unbound = _problem(api.get(f"/v1/blobs/{shared}", params={"env": "qa"}), 403, "denied")
    assert "no policy is bound" in unbound["detail"]  # fail closed


def test_reader_cannot_read_quarantined_file(api: Api, seeded: Seeded) -> None:
    path = _cp(seeded) + "/files/extra/weights.dat"
    assert api.get(path, params={"env": "prod"}).status_code == 200
    quarantined = api.post(_cp(seeded) + "/quarantine", "security", json={"reason": "CVE-2099-2"})
    assert quarantined.status_code == 200
    for env in ("prod", "dev"):
        body = _problem(api.get(path, params={"env": env}), 403, "not_admitted")
        assert "quarantine" in body["detail"], body
    big = "sha256:" + hashlib.sha256(seeded.files["extra/weights.dat"]).hexdigest()
    _problem(api.get(f"/v1/blobs/{big}", params={"env": "prod"}), 403, "not_admitted")


def test_security_forensic_read_is_audited(api: Api, seeded: Seeded) -> None:
    api.post(_cp(seeded) + "/quarantine", "security", json={"reason": "CVE-2099-3"})
    path = _cp(seeded) + "/files/config.json"
    read = api.get(path, "security", params={"reason": "incident 7"})
    assert (read.status_code, read.content) == (200, seeded.files["config.json"])
    big = "sha256:" + hashlib.sha256(seeded.files["extra/weights.dat"]).hexdigest()
    assert api.get(f"/v1/blobs/{big}", "admin", headers={"Range": "bytes=0-3"}).status_code == 206
    head = httpx.head(api.url + f"/v1/blobs/{big}", headers=api.h("security"))
    assert head.status_code == 200
    events = api.get("/v1/audit", "security", params={"action": "bytes.forensic_read"}).json()
    got = [(e["actor"], e["subject"], e["details"]["reason"]) for e in events["events"]]
    assert got == [  # newest first; the HEAD moved no bytes and is not recorded
        ("token:admin-token", big, "forensic"),
        ("token:security-token", f"{seeded.ref}/config.json", "incident 7"),
    ]


def test_token_scoped_to_prod_cannot_read_bytes_for_dev(api: Api, seeded: Seeded) -> None:
    made = api.post(
        "/v1/tokens", "admin", json={"name": "prod-only", "environments": ["prod"]}
    ).json()
    assert made["environments"] == ["prod"]
    scoped = {"Authorization": f"Bearer {made['token']}"}
    path = api.url + _cp(seeded) + "/files/config.json"
    assert httpx.get(path, params={"env": "prod"}, headers=scoped).status_code == 200
    refused = _problem(
        httpx.get(path, params={"env": "dev"}, headers=scoped), 403, "environment_out_of_scope"
    )
    assert "'prod-only' is scoped to environment(s) prod, not 'dev'" in refused["detail"]
    check = httpx.post(
        api.url + "/v1/admission/check",
        json={"ref": seeded.ref, "environment": "dev"},
        headers=scoped,
    )
    _problem(check, 403, "environment_out_of_scope")
    listed = {t["name"]: t for t in api.get("/v1/tokens", "admin").json()["tokens"]}
    assert listed["prod-only"]["environments"] == ["prod"]
    assert listed["reader-token"]["environments"] is None  # unscoped: every environment


# -- roles ---------------------------------------------------------------------------------------


def test_quarantine_needs_security_and_is_audited_as_the_token(api: Api, seeded: Seeded) -> None:
    path = _cp(seeded) + "/quarantine"
    _problem(httpx.post(api.url + path, json={"reason": "x"}), 401, "token_required")
    body = _problem(api.post(path, "reader", json={"reason": "x"}), 403, "role_insufficient")
    assert "security" in body["detail"]
    _problem(api.post(path, "publisher", json={"reason": "x"}), 403, "role_insufficient")
    done = api.post(path, "security", json={"reason": "CVE-2099-1"})
    assert done.status_code == 200
    assert done.json()["reason"] == "CVE-2099-1"
    assert api.get(_cp(seeded)).json()["quarantine"]["reason"] == "CVE-2099-1"
    decision = api.post(
        "/v1/admission/check", "reader", json={"ref": seeded.ref, "environment": "prod"}
    ).json()
    assert decision["allowed"] is False
    released = api.post(_cp(seeded) + "/release", "security", json={"reason": "fixed"})
    assert released.json()["released_by"] == "token:security-token"
    assert api.get(_cp(seeded)).json()["quarantine"] is None
    events = api.get("/v1/audit", "security", params={"subject": "org/tiny"}).json()["events"]
    mine = [(e["action"], e["actor"]) for e in events if e["action"].startswith("checkpoint.")]
    assert ("checkpoint.quarantine", "token:security-token") in mine
    assert ("checkpoint.release", "token:security-token") in mine
    _problem(api.post(path, "security", json={}), 422, "invalid_request")


def test_admission_check_and_own_policy_needs_security(api: Api, seeded: Seeded) -> None:
    allowed = api.post(
        "/v1/admission/check", "reader", json={"ref": "org/tiny", "environment": "prod"}
    )
    assert allowed.status_code == 200
    assert allowed.json()["allowed"] is True
    assert allowed.json()["digest"] == seeded.digest
    own = api.post(
        "/v1/admission/check",
        "reader",
        json={"ref": "org/tiny", "environment": "prod", "policy": "x: 1"},
    )
    _problem(own, 403, "role_insufficient")
    unbound = api.post(
        "/v1/admission/check", "reader", json={"ref": "org/tiny", "environment": "moon"}
    )
    assert _problem(unbound, 403, "denied")["reasons"]


def test_exceptions_over_the_api(api: Api, seeded: Seeded) -> None:
    body = {
        "ref": seeded.ref,
        "waive": ["licenses"],
        "reason": "legal approved",
        "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
    }
    _problem(api.post("/v1/exception-requests", "reader", json=body), 403, "role_insufficient")
    asked = api.post("/v1/exception-requests", "publisher", json=body)
    assert asked.status_code == 201, asked.text
    assert (asked.json()["status"], asked.json()["requested_by"]) == (
        "pending",
        "token:publisher-token",
    )
    approve = f"/v1/exception-requests/{asked.json()['id']}/approve"
    _problem(api.post(approve, "publisher"), 403, "role_insufficient")
    made = api.post(approve, "security")
    assert made.status_code == 200, made.text
    assert (made.json()["requested_by"], made.json()["approver"]) == (
        "token:publisher-token",
        "token:security-token",
    )
    listed = api.get("/v1/exceptions", params={"ref": seeded.ref}).json()["exceptions"]
    assert [e["id"] for e in listed] == [made.json()["id"]]
    revoked = api.post(f"/v1/exceptions/{made.json()['id']}/revoke", "security")
    assert revoked.json()["revoked_at"] is not None
    naive = {**body, "expires_at": "2099-01-01T00:00:00"}
    _problem(api.post("/v1/exception-requests", "security", json=naive), 422, "invalid_request")


def test_api_exception_requester_cannot_approve_their_own(api: Api, seeded: Seeded) -> None:
    """One security token used to grant exceptions alone (POST /v1/exceptions, free-text
    approver): now a request needs another principal's approval, and the old route is gone."""
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    body = {"ref": seeded.ref, "waive": ["licenses"], "reason": "r", "expires_at": expires}
    old = {**body, "approver": "lee"}
    _problem(api.post("/v1/exceptions", "security", json=old), 410, "gone")
    asked = api.post("/v1/exception-requests", "security", json=body)
    assert asked.status_code == 201, asked.text
    approve = f"/v1/exception-requests/{asked.json()['id']}/approve"
    own = _problem(api.post(approve, "security"), 403, "two_person_rule")
    assert "second person" in own["detail"]
    assert api.get("/v1/exceptions").json() == {"exceptions": []}
    other = api.registry.token_create("security-2", "security").secret
    made = httpx.post(api.url + approve, headers={"Authorization": f"Bearer {other}"})
    assert made.status_code == 200, made.text
    assert made.json()["approver"] == "token:security-2"
    pending = api.get("/v1/exception-requests", params={"status": "approved"}).json()
    assert [r["id"] for r in pending["requests"]] == [asked.json()["id"]]


def test_api_exception_waive_ids_and_expiry_are_exact(api: Api, seeded: Seeded) -> None:
    soon = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    base = {"ref": seeded.ref, "reason": "r", "expires_at": soon}
    wrong = _problem(
        api.post("/v1/exception-requests", "security", json={**base, "waive": ["license"]}),
        400,
        "input_error",
    )
    assert "unknown check id 'license'" in wrong["detail"]
    assert "licenses" in wrong["detail"]
    barred = api.post("/v1/exception-requests", "security", json={**base, "waive": ["quarantine"]})
    assert "can never be waived" in _problem(barred, 400, "input_error")["detail"]
    late = (datetime.now(UTC) + timedelta(days=120)).isoformat()
    long = {**base, "waive": ["licenses"], "expires_at": late}
    refused = api.post("/v1/exception-requests", "security", json=long)
    too_long = _problem(refused, 400, "input_error")
    assert "at most 90 days" in too_long["detail"]
    assert api.get("/v1/exception-requests").json() == {"requests": []}


def test_api_quarantine_binds_digest_and_lists_every_name(
    api: Api, seeded: Seeded, run_cli: Any
) -> None:
    assert run_cli("mirror", "hf://org/tiny", "--name", "copy/tiny").code == 0
    done = api.post(_cp(seeded) + "/quarantine", "security", json={"reason": "bad"})
    assert done.status_code == 200, done.text
    assert done.json()["covers"] == [seeded.ref, f"copy/tiny@{seeded.digest}"]
    decision = api.post(
        "/v1/admission/check", "reader", json={"ref": "copy/tiny", "environment": "dev"}
    ).json()
    assert decision["allowed"] is False
    listed = api.get("/v1/quarantines").json()["quarantines"]
    assert [(q["kind"], q["digest"]) for q in listed] == [("checkpoint", seeded.digest)]
    file_sha = api.get(_cp(seeded)).json()["files"][0]["sha256"]
    by_file = api.post(
        "/v1/quarantines", "security", json={"digest": f"sha256:{file_sha}", "reason": "bad file"}
    )
    assert by_file.json()["kind"] == "file"
    assert seeded.ref in by_file.json()["covers"]
    _problem(
        api.post(
            "/v1/quarantines", "publisher", json={"digest": f"sha256:{file_sha}", "reason": "x"}
        ),
        403,
        "role_insufficient",
    )
    released = api.post(_cp(seeded) + "/release", "security", json={"reason": "ok"})
    assert released.json()["still_quarantined_by"] == [
        f"{seeded.ref} by file sha256:{file_sha}",
        f"copy/tiny@{seeded.digest} by file sha256:{file_sha}",
    ]
    lifted = api.post(
        "/v1/quarantines/release", "security", json={"digest": f"sha256:{file_sha}", "reason": "ok"}
    )
    assert lifted.status_code == 200, lifted.text
    assert api.get("/v1/quarantines").json() == {"quarantines": []}


# -- attestations --------------------------------------------------------------------------------


def _statement(subject_hex: str) -> Statement:
    return Statement(
        subjects=(ResourceDescriptor(name="org/tiny", digest={"sha256": subject_hex}),),
        predicate_type="https://example.com/eval/v1",
        predicate={"accuracy": 0.91},
    )


def _registry_signer() -> KeySigner:
    settings = Settings.from_env()
    pem = settings.signing_key_path.read_bytes()
    return KeySigner(load_private_key(pem, b"pw"))


def test_attestation_upload_is_verified_before_it_is_stored(api: Api, seeded: Seeded) -> None:
    hexd = seeded.digest.removeprefix("sha256:")
    listing = _cp(seeded) + "/attestations"
    before = api.get(listing).json()["attestations"]
    good = _registry_signer().sign(INTOTO_PAYLOAD_TYPE, _statement(hexd).to_payload()).to_bytes()
    _problem(api.post(listing, "reader", content=good), 403, "role_insufficient")
    stored = api.post(listing, "publisher", content=good)
    assert stored.status_code == 201, stored.text
    assert stored.json()["predicate_type"] == "https://example.com/eval/v1"
    verbatim = api.get(f"{listing}/{stored.json()['id']}")
    assert verbatim.content == good
    assert stored.json()["bundle_sha256"] == hashlib.sha256(good).hexdigest()

    # A bad signature: the payload changed after signing.
    tampered = json.loads(good)
    other = _statement("0" * 64).to_payload()
    import base64

    tampered["dsseEnvelope"]["payload"] = base64.b64encode(other).decode()
    bad = api.post(listing, "publisher", content=json.dumps(tampered).encode())
    assert "signature" in _problem(bad, 422, "signature_verification_error")["detail"]
    # Signed by a key the registry does not trust.
    stranger = KeySigner(load_private_key(generate_key(passphrase=None).private_pem, None))
    untrusted = stranger.sign(INTOTO_PAYLOAD_TYPE, _statement(hexd).to_payload()).to_bytes()
    _problem(api.post(listing, "publisher", content=untrusted), 422, "signature_verification_error")
    # Properly signed, about another checkpoint.
    elsewhere = _registry_signer().sign(INTOTO_PAYLOAD_TYPE, _statement("1" * 64).to_payload())
    _problem(api.post(listing, "publisher", content=elsewhere.to_bytes()), 422, "integrity_failure")
    # Not a bundle at all.
    bad_json = api.post(listing, "publisher", content=b"{not json")
    assert bad_json.status_code == 400
    after = api.get(listing).json()["attestations"]
    assert len(after) == len(before) + 1  # only the good one was stored


def test_oversized_uploads_are_413(api: Api, seeded: Seeded) -> None:
    listing = _cp(seeded) + "/attestations"
    limit = Settings.from_env().max_upload_bytes
    declared = api.post(listing, "publisher", content=b"x" * (limit + 1))
    _problem(declared, 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    streamed = api.post(listing, "publisher", content=chunks())
    _problem(streamed, 413, "payload_too_large")
    assert api.get("/v1/health").status_code == 200


# -- jobs ----------------------------------------------------------------------------------------


def test_scan_and_mirror_run_as_jobs(api: Api, seeded: Seeded, hub: FakeHub) -> None:
    _problem(api.post("/v1/scans", "reader", json={"ref": seeded.ref}), 403, "role_insufficient")
    _problem(api.post("/v1/scans", "publisher", json={"ref": "org/none"}), 404, "not_found")
    queued = api.post("/v1/scans", "publisher", json={"ref": seeded.ref})
    assert queued.status_code == 202
    job = wait_for(api.registry, queued.json()["id"], timeout=60)
    assert job.state == "succeeded", job.error
    assert job.result is not None
    assert job.result["digest"] == seeded.digest
    assert job.result["verdict"] == "clean"
    hub.add_repo("org/other", {"config.json": b"{}\n"})
    mirror = api.post("/v1/mirrors", "publisher", json={"source": "hf://org/other"})
    done = wait_for(api.registry, mirror.json()["id"], timeout=60)
    assert done.state == "succeeded", done.error
    assert done.result is not None
    assert done.result["mirror"]["name"] == "org/other"
    assert api.get(f"/v1/jobs/{done.id}").json()["state"] == "succeeded"
    # A folder on the server's disk is refused unless it is under MODELCTL_MIRROR_ROOTS.
    local = api.post("/v1/mirrors", "publisher", json={"source": "/etc"})
    assert "MODELCTL_MIRROR_ROOTS" in _problem(local, 400, "input_error")["detail"]
    failing = api.post("/v1/mirrors", "publisher", json={"source": "hf://org/missing"})
    failed = wait_for(api.registry, failing.json()["id"], timeout=60)
    assert failed.state == "failed"
    assert failed.error is not None
    assert failed.error["kind"] in {"not_found", "upstream_error"}


# -- a database error during a request -----------------------------------------------------------


def test_database_error_is_a_500_problem_and_nothing_is_half_written(
    api: Api, seeded: Seeded
) -> None:
    engine = api.registry.engine

    def fail_on_audit(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"):
            raise OperationalError(statement, {}, Exception("disk I/O error (injected)"))

    event.listen(engine, "before_cursor_execute", fail_on_audit)
    try:
        response = api.post(_cp(seeded) + "/quarantine", "security", json={"reason": "x"})
    finally:
        event.remove(engine, "before_cursor_execute", fail_on_audit)
    body = _problem(response, 500, "internal_error")
    assert "INSERT" not in response.text
    assert "injected" not in response.text
    assert "sqlite" not in body["detail"].lower()
    with unit_of_work(api.registry.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Quarantine)) == 0
        actions = list(session.scalars(select(AuditEvent.action)))
        assert "checkpoint.quarantine" not in actions
        assert (session.scalar(select(func.count()).select_from(Attestation)) or 0) > 0
    assert api.get("/v1/health").json() == {"status": "ok"}
    retry = api.post(_cp(seeded) + "/quarantine", "security", json={"reason": "x"})
    assert retry.status_code == 200


# -- hostile input: deep JSON, ids past 32 bits (issue 12) ---------------------------------------


def test_deeply_nested_json_in_an_attestation_upload_is_a_400_not_a_500(
    api: Api, seeded: Seeded
) -> None:
    listing = _cp(seeded) + "/attestations"
    bombs = [b"[" * 100_000, b"[" * 70 + b"]" * 70, b'{"a":' * 100 + b"1" + b"}" * 100]
    for body in bombs:
        problem = _problem(
            api.post(listing, "publisher", content=body), 400, "malformed_document_error"
        )
        assert "nests deeper than" in problem["detail"]
    # Signed by the registry's own key, a deeply nested Statement is refused just the same.
    deep = (
        b'{"_type": "https://in-toto.io/Statement/v1", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    )
    signed = _registry_signer().sign(INTOTO_PAYLOAD_TYPE, deep).to_bytes()
    _problem(api.post(listing, "publisher", content=signed), 400, "malformed_document_error")
    # JSON bodies of the other routes (FastAPI parses them): a client error, never a 500.
    for path, role in (("/v1/exceptions", "security"), ("/v1/scans", "publisher")):
        response = api.post(
            path, role, content=b"[" * 100_000, headers={"content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500, response.text[:300]
    assert api.get(listing).json()["attestations"] == api.get(listing).json()["attestations"]
    assert api.get("/v1/health").status_code == 200


def _ui_session(api: Api, role: str) -> tuple[httpx.Client, str]:
    """A signed-in web UI client and its CSRF token."""
    client = httpx.Client(base_url=api.url, follow_redirects=False, timeout=30)
    form = client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    signed = client.post(
        "/ui/login", data={"csrf": csrf.group(1), "token": api.tokens[role], "next": "/ui/models"}
    )
    assert signed.status_code == 303, signed.text[:300]
    page = client.get("/ui/admin" if role == "admin" else "/ui/exceptions")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None, page.text[:300]
    return client, csrf.group(1)


@pytest.mark.parametrize("big", [2**31, 2**32 + 1, 2**62, 10**30])
def test_ids_past_32_bits_are_refused_not_a_database_error(
    api: Api, seeded: Seeded, big: int
) -> None:
    # PostgreSQL's INTEGER ids end at 2**31 - 1: comparing with more was a DataError (500).
    _problem(api.get(f"/v1/jobs/{big}"), 422, "invalid_request")
    _problem(api.get(f"{_cp(seeded)}/attestations/{big}"), 422, "invalid_request")
    _problem(api.post(f"/v1/exceptions/{big}/revoke", "security"), 422, "invalid_request")
    _problem(api.post(f"/v1/tokens/{big}/revoke", "admin"), 404, "not_found")
    security, csrf = _ui_session(api, "security")
    admin, admin_csrf = _ui_session(api, "admin")
    try:
        for path in (
            f"/ui/exceptions/requests/{big}/approve",
            f"/ui/exceptions/requests/{big}/reject",
            f"/ui/exceptions/{big}/revoke",
        ):
            assert security.post(path, data={"csrf": csrf}).status_code == 422, path
        assert (
            admin.post(f"/ui/admin/tokens/{big}/revoke", data={"csrf": admin_csrf}).status_code
            == 422
        )
        assert security.get(f"/ui/m/org/tiny/{seeded.digest}/attestations/{big}").status_code == 422
    finally:
        security.close()
        admin.close()
    # The largest id there can be is simply not there.
    _problem(api.get(f"/v1/jobs/{2**31 - 1}"), 404, "not_found")
    assert api.get("/v1/health").status_code == 200


def test_token_revoke_with_a_non_ascii_digit_is_not_found(api: Api, seeded: Seeded) -> None:
    # '²'.isdigit() is True but int('²') raises: it was a 500 here and a crash in the CLI.
    for key in ("²", "\u0661\u0662", "9" * 40):
        _problem(api.post(f"/v1/tokens/{key}/revoke", "admin"), 404, "not_found")


def test_docs_page_runs_no_third_party_script_and_html_has_security_headers(
    api: Api, seeded: Seeded
) -> None:
    docs = httpx.get(api.url + "/v1/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    page = docs.text.lower()
    assert "<script" not in page
    assert "cdn" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing off-origin
    assert "/v1/checkpoints/{namespace}/{name}/{digest}/attestations" in docs.text
    assert 'href="/v1/openapi.json"' in docs.text
    assert httpx.get(api.url + "/v1/openapi.json").json()["openapi"].startswith("3.")
    for path in ("/v1/docs", "/ui/login", "/ui/models"):
        response = httpx.get(api.url + path, follow_redirects=True)
        assert response.headers["content-type"].startswith("text/html"), path
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, path
        assert "'unsafe-inline'" not in csp, path
        assert "'unsafe-eval'" not in csp, path
        assert "default-src 'none'" in csp, path  # and no script-src: no script at all
        assert "script-src" not in csp, path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"], path
    assert api.get("/v1/models").headers["x-content-type-options"] == "nosniff"
    assert httpx.get(api.url + "/v1/nothing").headers["x-content-type-options"] == "nosniff"
