"""`Idempotency-Key` on /v1 writes against a real server on 127.0.0.1 (SQLite and PostgreSQL):
a retried POST is answered from the first response and makes no second job or row; the key is
the caller's own; reused for another request it is refused; in flight it is a 409; many
servers' worth of concurrent retries make exactly one job; the remote client sends a key."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from attestations.utc import utc_now
from registry.api.app import create_app
from registry.db.models import IdempotencyKey, Job
from registry.embedded import EmbeddedRegistry
from registry.service import idempotency
from registry.settings import Settings
from tests.api_server import live_server
from tests.helpers import write_tree


@dataclass
class Server:
    url: str
    registry: EmbeddedRegistry
    tokens: dict[str, str]
    source: str

    def post(self, path: str, body: dict[str, Any], *, key: str | None, role: str) -> Any:
        headers = {
            "Authorization": f"Bearer {self.tokens[role]}",
            "Content-Type": "application/json",
        }
        if key is not None:
            headers["Idempotency-Key"] = key
        return httpx.post(self.url + path, content=_encode(body), headers=headers, timeout=30)

    def count(self, model: Any) -> int:
        with self.registry.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


@pytest.fixture
def server(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    folder = write_tree(tmp_path / "models" / "m", {"config.json": b"{}"})
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    monkeypatch.setenv("MODELCTL_MIRROR_ROOTS", str(tmp_path / "models"))
    monkeypatch.setenv("MODELCTL_SERVE_WORKER", "false")  # jobs stay queued: we count them
    app = create_app(Settings.from_env())
    registry: EmbeddedRegistry = app.state.registry
    tokens = {
        role: registry.token_create(f"t-{role}", role).secret
        for role in ("publisher", "security", "admin")
    }
    tokens["publisher2"] = registry.token_create("t-publisher2", "publisher").secret
    with live_server(app) as live:
        yield Server(live.url, registry, tokens, str(folder))


def test_a_retried_post_makes_one_job(server: Server) -> None:
    body = {"source": server.source, "name": "acme/m"}
    first = server.post("/v1/mirrors", body, key="k-1", role="publisher")
    assert first.status_code == 202, first.text
    again = server.post("/v1/mirrors", body, key="k-1", role="publisher")
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert server.count(Job) == 1
    fresh = server.post("/v1/mirrors", body, key="k-2", role="publisher")  # a new key: new work
    assert fresh.json()["id"] != first.json()["id"]
    assert server.count(Job) == 2
    plain = server.post("/v1/mirrors", body, key=None, role="publisher")  # no key: no replay
    assert plain.status_code == 202
    assert "idempotent-replayed" not in plain.headers
    assert server.count(Job) == 3


def test_keys_belong_to_the_caller(server: Server) -> None:
    body = {"source": server.source}
    mine = server.post("/v1/mirrors", body, key="shared", role="publisher")
    theirs = server.post("/v1/mirrors", body, key="shared", role="publisher2")
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


def test_a_key_reused_for_another_request_is_refused(server: Server) -> None:
    first = server.post("/v1/mirrors", {"source": server.source}, key="k", role="publisher")
    assert first.status_code == 202
    other = server.post(
        "/v1/mirrors", {"source": server.source, "name": "x/y"}, key="k", role="publisher"
    )
    assert other.status_code == 422
    assert other.json()["reason"] == "idempotency_key_reused"
    assert server.count(Job) == 1


def test_an_error_answer_is_replayed_too(server: Server) -> None:
    body = {"source": "/etc"}  # outside MODELCTL_MIRROR_ROOTS: refused
    first = server.post("/v1/mirrors", body, key="bad", role="publisher")
    assert first.status_code == 400
    again = server.post("/v1/mirrors", body, key="bad", role="publisher")
    assert again.status_code == 400
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


def test_bad_keys_are_refused(server: Server) -> None:
    for key in ("has space", "x" * 256, "tab\tkey"):
        response = server.post("/v1/mirrors", {"source": server.source}, key=key, role="publisher")
        assert response.status_code == 400, key
    assert server.count(Job) == 0


def _fingerprint(path: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(b"\0".join((b"POST", path.encode(), b"", _encode(body)))).hexdigest()


def test_in_flight_is_409_and_an_abandoned_claim_is_freed(server: Server) -> None:
    body = {"source": server.source}
    caller = hashlib.sha256(f"Bearer {server.tokens['publisher']}".encode()).hexdigest()
    with server.registry.sessions() as session:
        claim = idempotency.begin(session, caller, "busy", _fingerprint("/v1/mirrors", body))
    assert isinstance(claim, idempotency.Proceed)
    busy = server.post("/v1/mirrors", body, key="busy", role="publisher")
    assert busy.status_code == 409
    assert "still in progress" in busy.json()["detail"]
    assert server.count(Job) == 0
    with server.registry.sessions() as session:  # the server that claimed it died long ago
        session.execute(update(IdempotencyKey).values(created_at=utc_now() - timedelta(minutes=11)))
        session.commit()
    freed = server.post("/v1/mirrors", body, key="busy", role="publisher")
    assert freed.status_code == 202
    assert server.count(Job) == 1


def test_concurrent_retries_make_exactly_one_row(server: Server) -> None:
    body = {"source": server.source}
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def send() -> None:
        start.wait()
        response = server.post("/v1/mirrors", body, key="race", role="publisher")
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = sorted(r.status_code for r in answers)
    assert len(statuses) == 8
    assert set(statuses) <= {202, 409}
    assert server.count(Job) == 1
    created = [r for r in answers if r.status_code < 300]
    assert len({json.dumps(r.json(), sort_keys=True) for r in created}) == 1


def test_token_answers_are_never_kept(server: Server) -> None:
    body = {"name": "ci", "role": "reader"}
    first = server.post("/v1/tokens", body, key="tok", role="admin")
    assert first.status_code in (200, 201), first.text
    assert server.count(IdempotencyKey) == 0  # the secret is shown once, stored nowhere


def test_the_remote_client_sends_a_key(
    server: Server, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCTL_REGISTRY", server.url)
    monkeypatch.setenv("MODELCTL_TOKEN", server.tokens["security"])
    result = run_cli("quarantine", "sha256:" + "cd" * 32, "--reason", "known bad")
    assert result.code == 0, result.stderr
    with server.registry.sessions() as session:
        (row,) = session.scalars(select(IdempotencyKey)).all()
        assert row.key.startswith("mctl-")
        assert row.state == "done"
