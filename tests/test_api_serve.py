"""`modelctl serve` as its own process on 127.0.0.1: starts, answers, logs no token, stops."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


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


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelctl test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_serve_over_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    tls = ("--tls-cert", str(cert), "--tls-key", str(key))
    trust = ssl.create_default_context(cafile=str(cert))
    port = _free_port()
    modelctl = Path(sys.executable).with_name("modelctl")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(modelctl), "serve", "--port", str(port), *tls],
            env={**os.environ, "MODELCTL_SERVE_WORKER": "false"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    answer = httpx.get(f"https://127.0.0.1:{port}/v1/health", verify=trust)
                    break
                except httpx.ConnectError:
                    assert server.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, "serve did not start"
                    time.sleep(0.1)
            assert answer.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP is not served
                httpx.get(f"http://127.0.0.1:{port}/v1/health")
        finally:
            server.send_signal(signal.SIGINT)
            code = server.wait(timeout=30)
    assert code == 0, log.read_text()
    assert f"serving on https://127.0.0.1:{port}/v1" in log.read_text()


def test_serve_refuses_bad_tls_options(run_cli: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    alone = run_cli("serve", "--tls-cert", str(cert))
    assert alone.code == 2
    assert "give both or neither" in alone.stderr
    missing = run_cli("serve", "--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", str(key))
    assert missing.code == 2
    assert "no such file" in missing.stderr
    (tmp_path / "other").mkdir()
    other = _self_signed(tmp_path / "other")
    mismatched = run_cli("serve", "--tls-cert", str(cert), "--tls-key", str(other[1]))
    assert mismatched.code == 2
    assert "cannot be loaded" in mismatched.stderr
