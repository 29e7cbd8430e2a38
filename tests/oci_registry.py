"""A real OCI registry on loopback for the tests: Debian's `docker-registry` (CNCF distribution).

Each test gets its own server with its storage in the test's tmp folder, started with
`docker-registry serve CONFIG` and stopped after. `make pytest` installs the package (apt)
when it is missing; without it these tests fail rather than skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

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


def start_registry(tmp: Path, auth_yaml: str = "") -> Iterator[RunningRegistry]:
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
