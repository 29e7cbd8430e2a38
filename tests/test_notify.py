"""Outbound notifications: each kind of event reaches a webhook receiver and an SMTP server on
127.0.0.1, signed (HMAC-SHA256 over `<timestamp>.<body>`) and logged once, however often the
audit log is read; a failing receiver is retried with exponential backoff, then recorded as
failed; the delivery log reads the same from the CLI and `GET /v1/notifications/deliveries`.
On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from attestations.utc import aware, utc_now
from registry.db.engine import unit_of_work
from registry.db.models import NotificationCursor, NotificationDelivery
from registry.embedded import EmbeddedRegistry
from registry.errors import InputError
from registry.service import sync
from registry.service.notify import config as notify_config
from registry.service.notify.signing import signature, verify
from registry.settings import Settings
from registry.worker import Notifier
from tests.helpers import write_tree
from tests.test_remote import Remote, hub, remote  # noqa: F401 - fixtures
from tests.test_web import sign_in

SECRET = "s3cret-for-the-hook-0123456789"
CORPUS = Path(__file__).parent / "assets" / "corpus"


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every request and answers `status`."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers.items()), body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


class SmtpSink(socketserver.ThreadingTCPServer):
    """The few SMTP verbs smtplib sends, on 127.0.0.1; keeps each message."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.messages: list[Message] = []
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.port = self.server_address[1]


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: SmtpSink

    def handle(self) -> None:
        self.wfile.write(b"220 sink\r\n")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                self.server.messages.append(message_from_bytes(data))
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        sink.shutdown()
        sink.server_close()


def _configure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, targets: list[dict[str, Any]], **extra: Any
) -> notify_config.NotifyConfig:
    path = tmp_path / "notify.json"
    path.write_text(json.dumps({"targets": targets, **extra}))
    monkeypatch.setenv("MODELCTL_NOTIFY_CONFIG", str(path))
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    config = notify_config.load(os.environ)
    assert config is not None
    return config


def _drain(notifier: Notifier) -> None:
    for _ in range(20):
        if notifier.tick() == 0:
            return
    raise AssertionError("the dispatcher kept finding work")


def _deliveries(registry: EmbeddedRegistry) -> list[NotificationDelivery]:
    with unit_of_work(registry.sessions) as s:
        rows = list(s.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)))
        s.expunge_all()
        return rows


def test_every_event_is_delivered_signed_and_logged_once(
    remote: Remote,  # noqa: F811
    run_cli: Any,
    smtp: SmtpSink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = remote.seeded.ref
    with Receiver() as hook, Receiver() as chat:
        monkeypatch.setenv("MODELCTL_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("MODELCTL_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("MODELCTL_SMTP_FROM", "modelctl@example.test")
        monkeypatch.setenv("MODELCTL_SMTP_TO", "security@example.test")
        monkeypatch.setenv("MODELCTL_SMTP_EVENTS", "quarantined")
        config = _configure(
            monkeypatch,
            tmp_path,
            [
                {"name": "security", "url": hook.url, "secret_env": "HOOK_SECRET"},
                {
                    "name": "chat",
                    "url": chat.url,
                    "secret_env": "HOOK_SECRET",
                    "events": ["quarantined"],
                    "format": "slack",
                },
            ],
        )
        registry = EmbeddedRegistry(Settings.from_env())
        try:
            notifier = Notifier(registry, config)
            assert notifier.tick() == 0  # the first round only places the cursor: no history
            # 1. allowed in prod, then quarantined, then denied in prod: a denial.
            assert run_cli("policy", "check", ref, "--env", "prod").code == 0
            assert run_cli("quarantine", ref, "--reason", "CVE-2099-1").code == 0
            assert run_cli("policy", "check", ref, "--env", "prod").code == 1
            # 2. a scan that finds a critical pickle.
            evil = (CORPUS / "pickle" / "os_system_global_reduce_p0.pkl").read_bytes()
            folder = write_tree(tmp_path / "evil", {"config.json": b"{}", "x.pkl": evil})
            mirrored = run_cli("mirror", str(folder), "--name", "org/evil", "--json")
            assert mirrored.code == 1  # mirrored and recorded; --fail-on high says so
            # 3. a new upstream commit, queued by the sync.
            with unit_of_work(registry.sessions) as s:
                sync.queue(s, "hf://org/tiny", "c" * 40, "org/tiny")
            # 4. an exception that expires within the configured 7 days.
            monkeypatch.setenv("USER", "alice")
            monkeypatch.setenv("LOGNAME", "alice")
            requested = run_cli(
                "exception", "request", ref, "--waive", "licenses", "--reason", "vendor deal",
                "--expires", "2d", "--json",
            )  # fmt: skip
            assert requested.code == 0, requested.stderr
            monkeypatch.setenv("USER", "legal")
            monkeypatch.setenv("LOGNAME", "legal")
            approved = run_cli("exception", "approve", str(requested.json()["id"]))
            assert approved.code == 0, approved.stderr

            _drain(notifier)

            kinds = sorted(b["event"] for b in hook.bodies())
            assert kinds == [
                "denied", "exception_expiring", "findings", "quarantined", "upstream_commit",
            ]  # fmt: skip
            now = time.time()
            for headers, body in hook.requests:
                stamp = headers["X-Modelctl-Timestamp"]
                signed = headers["X-Modelctl-Signature"]
                assert signed == signature(SECRET.encode(), int(stamp), body)
                assert verify(SECRET.encode(), stamp, signed, body, now=now)
                assert not verify(b"another secret, 16+ chars", stamp, signed, body, now=now)
                assert not verify(SECRET.encode(), stamp, signed, body + b" ", now=now)
                assert not verify(SECRET.encode(), stamp, signed, body, now=now + 3600)
            by_kind = {b["event"]: b for b in hook.bodies()}
            assert by_kind["findings"]["subject"].startswith("org/evil@sha256:")
            assert by_kind["findings"]["details"]["severities"]["critical"] >= 1
            assert by_kind["denied"]["details"]["environment"] == "prod"
            assert by_kind["quarantined"]["details"]["reason"] == "CVE-2099-1"
            assert by_kind["upstream_commit"]["subject"] == f"hf://org/tiny@{'c' * 40}"
            (slack,) = chat.bodies()
            assert list(slack) == ["text"]
            assert "quarantined" in slack["text"]
            (mail,) = smtp.messages
            assert "quarantined" in mail["Subject"]
            assert mail["To"] == "security@example.test"

            logged = _deliveries(registry)
            assert len(logged) == 7  # 5 to the hook, 1 to chat, 1 email
            assert {(d.state, d.attempts) for d in logged} == {("delivered", 1)}
            assert {d.channel for d in logged} == {"webhook", "email"}

            # At-least-once, delivered once: the cursor lost (a crash before it was stored)
            # reads the same events again, and nothing is sent or logged twice.
            with unit_of_work(registry.sessions) as s:
                s.execute(update(NotificationCursor).values(audit_id=0))
            notifier = Notifier(registry, config)  # a restarted worker: it remembers nothing
            # The same findings again (a re-scan) are not news.
            registry.scan(f"org/evil@{mirrored.json()['digest']}")
            _drain(notifier)
            assert len(hook.requests) == 5
            assert len(_deliveries(registry)) == 7

            listed = run_cli("notify", "deliveries", "--json")
            assert listed.code == 0, listed.stderr
            assert len(listed.json()["deliveries"]) == 7
            assert run_cli("notify", "deliveries", "--state", "failed", "--json").json() == {
                "deliveries": []
            }
            text = run_cli("notify", "deliveries")
            assert "quarantined" in text.stdout
            # Over HTTP: the security role reads the log; a reader may not.
            url = remote.url + "/v1/notifications/deliveries"
            security = {"Authorization": f"Bearer {remote.tokens['security']}"}
            reader = {"Authorization": f"Bearer {remote.tokens['reader']}"}
            response = httpx.get(url, headers=security, params={"state": "delivered"})
            assert response.status_code == 200
            assert len(response.json()["deliveries"]) == 7
            assert httpx.get(url, headers=reader).status_code == 403
            remote.on("security")
            over_http = run_cli("notify", "deliveries", "--limit", "2", "--json")
            remote.off()
            assert over_http.code == 0, over_http.stderr
            assert over_http.json()["deliveries"] == listed.json()["deliveries"][:2]
            # The web UI shows the log to the security role, and refuses a reader.
            with httpx.Client(base_url=remote.url, follow_redirects=False) as web:
                sign_in(web, remote.tokens["security"])
                shown = web.get("/ui/notifications", params={"state": "delivered"})
                assert shown.status_code == 200
                assert shown.text.count('data-state="delivered"') == 7
                assert 'href="/ui/notifications"' in web.get("/ui/audit").text
            with httpx.Client(base_url=remote.url, follow_redirects=False) as web:
                sign_in(web, remote.tokens["reader"])
                assert web.get("/ui/notifications").status_code == 403
        finally:
            registry.close()


def test_a_failing_receiver_is_retried_with_backoff_then_recorded_failed(
    remote: Remote,  # noqa: F811
    run_cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Receiver(status=500) as hook:
        config = _configure(
            monkeypatch,
            tmp_path,
            [{"name": "down", "url": hook.url, "secret_env": "HOOK_SECRET"}],
            max_attempts=3,
            backoff_seconds=30,
        )
        registry = EmbeddedRegistry(Settings.from_env())
        try:
            notifier = Notifier(registry, config)
            notifier.tick()
            assert run_cli("quarantine", remote.seeded.ref, "--reason", "bad").code == 0
            waits = []
            for attempt in (1, 2, 3):
                assert notifier.tick() == 1
                assert notifier.tick() == 0  # not due yet: the backoff holds it back
                (row,) = _deliveries(registry)
                assert row.attempts == attempt
                assert row.last_error == "HTTP 500 from the receiver"
                if attempt < 3:
                    assert row.state == "pending"
                    waits.append(aware(row.next_attempt_at) - utc_now())
                    with unit_of_work(registry.sessions) as s:  # time passes
                        s.execute(
                            update(NotificationDelivery).values(
                                next_attempt_at=utc_now() - timedelta(seconds=1)
                            )
                        )
            assert row.state == "failed"
            assert len(hook.requests) == 3
            # Exponential: about 30 s after the first failure, about 60 s after the second.
            assert timedelta(seconds=25) < waits[0] <= timedelta(seconds=30)
            assert timedelta(seconds=55) < waits[1] <= timedelta(seconds=60)
            failed = run_cli("notify", "deliveries", "--state", "failed", "--json")
            (shown,) = failed.json()["deliveries"]
            assert shown["attempts"] == 3
            assert shown["next_attempt_at"] is None
            assert shown["last_error"] == "HTTP 500 from the receiver"
        finally:
            registry.close()


def test_a_receiver_that_is_not_there_is_a_failed_attempt(
    remote: Remote,  # noqa: F811
    run_cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Receiver() as gone:
        url = gone.url
    config = _configure(
        monkeypatch,
        tmp_path,
        [{"name": "gone", "url": url, "secret_env": "HOOK_SECRET"}],
        max_attempts=1,
    )
    registry = EmbeddedRegistry(Settings.from_env())
    try:
        notifier = Notifier(registry, config)
        notifier.tick()
        assert run_cli("quarantine", remote.seeded.ref, "--reason", "bad").code == 0
        _drain(notifier)
        (row,) = _deliveries(registry)
        assert (row.state, row.attempts) == ("failed", 1)
        assert row.last_error is not None
        assert row.last_error.startswith("ConnectError")
    finally:
        registry.close()


def test_signature_recipe_matches_a_hand_computed_hmac() -> None:
    import hashlib
    import hmac

    body = b'{"event":"quarantined"}'
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(b"k" * 16, 1700000000, body) == f"v1={expected}"
    assert verify(b"k" * 16, "1700000000", f"v1={expected}", body, now=1700000100)
    assert not verify(b"k" * 16, "17e8", f"v1={expected}", body, now=1700000100)


@pytest.mark.parametrize(
    ("document", "env", "message"),
    [
        ({"targets": [{"name": "a", "url": "http://127.0.0.1/", "secret_env": "NOPE"}]}, {},
         "$NOPE must hold a secret"),
        ({"targets": [{"name": "a", "url": "ftp://x/", "secret_env": "S"}]}, {"S": SECRET},
         "url must be"),
        ({"targets": [{"name": "a", "url": "http://x/", "secret_env": "S", "events": ["nope"]}]},
         {"S": SECRET}, "unknown event"),
        ({"targets": [{"name": "a", "url": "http://x/", "secret_env": "S", "format": "xml"}]},
         {"S": SECRET}, "format must be"),
        ({"targets": [], "retries": 3}, {}, "unknown field 'retries'"),
        ({"targets": [], "max_attempts": 0}, {}, "max_attempts must be"),
        ({"targets": [{"name": "a", "url": "http://x/", "secret_env": "S"}] * 2},
         {"S": SECRET}, "unique"),
        ({}, {"MODELCTL_SMTP_HOST": "127.0.0.1"}, "MODELCTL_SMTP_FROM"),
    ],
)  # fmt: skip
def test_a_broken_configuration_is_refused(
    tmp_path: Path, document: dict[str, Any], env: dict[str, str], message: str
) -> None:
    path = tmp_path / "notify.json"
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match=message.replace("$", r"\$")):
        notify_config.load({"MODELCTL_NOTIFY_CONFIG": str(path), **env})


def test_nothing_configured_is_no_dispatcher(tmp_path: Path) -> None:
    assert notify_config.load({}) is None
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="not JSON"):
        notify_config.load({"MODELCTL_NOTIFY_CONFIG": str(tmp_path / "bad.json")})


@pytest.fixture
def configured_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A receiver and the configuration naming it, in force before the server starts."""
    with Receiver() as hook:
        _configure(
            monkeypatch, tmp_path, [{"name": "soc", "url": hook.url, "secret_env": "HOOK_SECRET"}]
        )
        yield hook


def test_the_servers_worker_delivers_without_being_asked(
    configured_hook: Receiver,
    remote: Remote,  # noqa: F811 - started after configured_hook: its worker reads the config
    run_cli: Any,
) -> None:
    """`modelctl serve` runs the dispatcher in its worker: a quarantine made by another process
    reaches the receiver with no request waiting on it."""
    hook = configured_hook
    registry = EmbeddedRegistry(Settings.from_env())
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the dispatcher's first round places its cursor
            with unit_of_work(registry.sessions) as s:
                if s.get(NotificationCursor, "audit") is not None:
                    break
            time.sleep(0.05)
        assert run_cli("quarantine", remote.seeded.ref, "--reason", "CVE-2099-2").code == 0
        while time.monotonic() < deadline and not hook.requests:
            time.sleep(0.05)
        (body,) = hook.bodies()
        assert body["event"] == "quarantined"
        headers, raw = hook.requests[0]
        assert verify(
            SECRET.encode(),
            headers["X-Modelctl-Timestamp"],
            headers["X-Modelctl-Signature"],
            raw,
            now=time.time(),
        )
    finally:
        registry.close()


def test_worker_and_serve_refuse_a_broken_configuration(
    run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.json"
    path.write_text(json.dumps({"targets": [{"name": "a", "url": "http://127.0.0.1/"}]}))
    monkeypatch.setenv("MODELCTL_NOTIFY_CONFIG", str(path))
    for command in (("worker", "--once"), ("serve", "--port", "1")):
        result = run_cli(*command)
        assert result.code != 0
        (line,) = result.stderr.strip().splitlines()
        assert "MODELCTL_NOTIFY_CONFIG: targets[0]: secret_env" in line


def test_worker_once_sends_what_is_due(
    remote: Remote,  # noqa: F811
    run_cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Receiver() as hook:
        _configure(
            monkeypatch, tmp_path, [{"name": "soc", "url": hook.url, "secret_env": "HOOK_SECRET"}]
        )
        assert run_cli("worker", "--once").code == 0  # places the cursor
        assert run_cli("quarantine", remote.seeded.ref, "--reason", "CVE-2099-3").code == 0
        ran = run_cli("worker", "--once")
        assert ran.code == 0, ran.stderr
        assert "1 notification attempts" in ran.stderr
        assert [b["event"] for b in hook.bodies()] == ["quarantined"]


def test_two_workers_deliver_each_notification_once(
    remote: Remote,  # noqa: F811
    run_cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Receiver() as hook:
        config = _configure(
            monkeypatch, tmp_path, [{"name": "soc", "url": hook.url, "secret_env": "HOOK_SECRET"}]
        )
        registries = [EmbeddedRegistry(Settings.from_env()) for _ in range(2)]
        try:
            workers = [Notifier(r, config) for r in registries]
            workers[0].tick()
            for n in range(3):
                assert run_cli("quarantine", remote.seeded.ref, "--reason", f"r{n}").code == 0
                assert run_cli("release", remote.seeded.ref, "--reason", f"r{n}").code == 0
            barrier = threading.Barrier(2)
            errors: list[BaseException] = []

            def work(notifier: Notifier) -> None:
                try:
                    barrier.wait()
                    for _ in range(5):
                        notifier.tick()
                except BaseException as exc:  # surfaced below
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(w,)) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
            assert sorted(b["details"]["reason"] for b in hook.bodies()) == ["r0", "r1", "r2"]
            assert [d.state for d in _deliveries(registries[0])] == ["delivered"] * 3
        finally:
            for w in workers:
                w.close()
            for r in registries:
                r.close()
