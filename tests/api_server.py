"""A real `modelctl serve` app on uvicorn, on 127.0.0.1 and a free port, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI


@dataclass(frozen=True)
class LiveServer:
    url: str
    app: FastAPI
    server: uvicorn.Server


@contextmanager
def live_server(app: FastAPI, *, log_level: str = "warning") -> Iterator[LiveServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None: uvicorn's loggers propagate, so tests can read them with caplog.
    config = uvicorn.Config(
        app, log_level=log_level, log_config=None, lifespan="on", server_header=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", app=app, server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


# -- a seeded registry: org/tiny mirrored from the fake hub, scanned, attested -----------------


@dataclass(frozen=True)
class Seeded:
    ref: str  # org/tiny@sha256:...
    digest: str  # sha256:...
    public_key: Path  # the registry's public key (PEM)
    files: dict[str, bytes]


BIG = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: several 1 MiB chunks


def tiny_files() -> dict[str, bytes]:
    from tests.test_policy_cli import CARD, _safetensors

    return {
        "README.md": CARD,
        "model.safetensors": _safetensors(),
        "config.json": b'{"model_type": "bert"}\n',
        "extra/weights.dat": BIG,
    }


def seed(run_cli: Any, hub: Any, folder: Path) -> Seeded:
    files = tiny_files()
    hub.add_repo("org/tiny", files)
    mirrored = run_cli("mirror", "hf://org/tiny", "--json")
    assert mirrored.code == 0, mirrored.stderr
    digest = mirrored.json()["digest"]
    pub = folder / "registry.pub"
    attested = run_cli("attest", "org/tiny", "--public-key-out", str(pub))
    assert attested.code == 0, attested.stderr
    return Seeded(ref=f"org/tiny@{digest}", digest=digest, public_key=pub, files=files)
