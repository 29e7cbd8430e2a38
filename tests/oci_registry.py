"""A real OCI registry on loopback for the tests: Debian's `docker-registry` (CNCF distribution).

Each test gets its own server with its storage in the test's tmp folder, started with
`docker-registry serve CONFIG` and stopped after. `make pytest` installs the package (apt)
when it is missing; without it these tests fail rather than skip.
"""

from __future__ import annotations

import base64
import datetime
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

BINARY = "docker-registry"


@dataclass(frozen=True, slots=True)
class RunningRegistry:
    host: str  # 127.0.0.1:PORT
    root: Path  # the storage folder

    def ref(self, repo: str) -> str:
        return f"oci://{self.host}/{repo}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_registry(tmp: Path, auth_yaml: str = "") -> Generator[RunningRegistry, None, None]:
    binary = shutil.which(BINARY)
    if binary is None:
        pytest.fail(f"{BINARY} is missing: `make pytest` installs it (apt-get install {BINARY})")
    port = free_port()
    root = tmp / "registry-storage"
    root.mkdir(parents=True)
    config = tmp / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth_yaml
    )
    log = (tmp / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{BINARY} did not start: {(tmp / 'registry.log').read_text()[-500:]}")
            time.sleep(0.05)
        yield RunningRegistry(host=f"127.0.0.1:{port}", root=root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class TokenService:
    """The registry token flow's other half: a loopback token server that signs JWTs (RS256,
    the signing certificate in `x5c`) for one user, which the registry checks against the
    certificate named in its `auth.token.rootcertbundle`."""

    SERVICE = "modelctl-test-registry"
    ISSUER = "modelctl-test-issuer"

    def __init__(self, tmp: Path, username: str, password: str) -> None:

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelctl test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = tmp / "token-signer.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.issued = 0
        expected = "Basic " + _b64(f"{username}:{password}".encode(), url=False)
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return

                query = parse_qs(urlparse(self.path).query)
                body = json.dumps({"token": service.token(query.get("scope", [""])[0])})
                service.issued += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, scope: str) -> str:

        access = []
        if scope:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [_b64(der, url=False)]}
        claims = {
            "iss": self.ISSUER,
            "sub": "alice",
            "aud": self.SERVICE,
            "exp": now + 300,
            "nbf": now - 60,
            "iat": now,
            "jti": str(now),
            "access": access,
        }
        signing_input = (
            _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        ).encode()
        signature = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + _b64(signature)

    def registry_auth_yaml(self) -> str:
        return (
            "auth:\n  token:\n"
            f"    realm: {self.realm}\n    service: {self.SERVICE}\n"
            f"    issuer: {self.ISSUER}\n    rootcertbundle: {self.cert_path}\n"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _b64(data: bytes, *, url: bool = True) -> str:

    if not url:
        return base64.b64encode(data).decode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FaultyProxy:
    """A loopback HTTP proxy in front of a real registry that injects faults on demand:
    `faults` maps a method to a list of faults used up one per matching request, each
    "forward" (no fault), "drop" (read half the body, then close the connection without
    answering) or an HTTP status to answer instead of forwarding."""

    def __init__(self, upstream: str) -> None:
        self.faults: dict[str, list[str | int]] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                pending = proxy.faults.get(self.command) or []
                fault = pending.pop(0) if pending else None
                if fault == "drop":
                    self.rfile.read(length // 2)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                body = self.rfile.read(length) if length else b""
                if isinstance(fault, int):
                    self.send_response(fault)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                response = httpx.request(
                    self.command, upstream + self.path, headers=headers, content=body
                )
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            # The stdlib dispatches on these names.
            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
