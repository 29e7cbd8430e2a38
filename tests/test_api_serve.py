"""`modelctl serve` as its own process on 127.0.0.1: starts, answers, logs no token, stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_process_answers_and_never_logs_the_token(
    run_cli: Any, tmp_path: Path, workers: int
) -> None:
    created = run_cli("tokens", "create", "ops", "--role", "security", "--json")
    token = created.json()["token"]
    port = _free_port()
    modelctl = Path(sys.executable).with_name("modelctl")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(modelctl), "serve", "--port", str(port), "--workers", str(workers)],
            env={**os.environ, "MODELCTL_SERVE_WORKER": "false"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
            auth = {"Authorization": f"Bearer {token}"}
            assert httpx.get(f"{url}/v1/whoami", headers=auth).json()["name"] == "ops"
            assert httpx.get(f"{url}/v1/audit", headers=auth).status_code == 200
            assert httpx.get(f"{url}/v1/models").status_code == 401
        finally:
            server.send_signal(signal.SIGINT)
            code = server.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert "GET /v1/whoami" in text  # the access log ran
    assert token not in text
    assert token.split("_", 2)[2] not in text  # the secret (may hold "_")


def test_serve_refuses_a_remote_registry_and_bad_ports(run_cli: Any, monkeypatch: Any) -> None:
    bad = run_cli("serve", "--port", "70000")
    assert bad.code == 2
    assert "--port" in bad.stderr
    too_many = run_cli("serve", "--workers", "0")
    assert too_many.code == 2
    assert "--workers" in too_many.stderr
    monkeypatch.setenv("MODELCTL_REGISTRY", "http://127.0.0.1:9")
    remote = run_cli("serve")
    assert remote.code == 2
    assert "unset --registry" in remote.stderr
