"""The web UI's test scenario: a real registry with real scans, keys and tokens, served by
uvicorn on 127.0.0.1. Shared by tests/test_web*.py, bench/screenshots.py and bench/demo.sh.

Scenario (each checkpoint mirrored from a local folder, scanned, attested by the registry key,
decided in every environment):

- `acme/clean-llm`: safetensors, Apache-2.0: allowed in prod.
- `acme/pickled-llm`: a pickle that runs `os.system` when loaded: denied (scans.pickle).
- `acme/proprietary-llm`: safetensors under a license prod does not allow: denied on
  `licenses` only, which an exception may waive.
- `acme/xss-llm`: a file named like an HTML payload (must render inert).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from registry.api.app import create_app
from registry.db.engine import unit_of_work
from registry.embedded import EmbeddedRegistry
from registry.progress import NoProgress
from registry.requests import MirrorRequest
from registry.service import tokens
from registry.service.tokens import Role
from registry.settings import Settings
from tests.fakes.hfhub import FakeHub

CORPUS = Path(__file__).parent / "assets" / "corpus"
XSS_NAME = "<img src=x onerror=alert(1)>.txt"
ENVIRONMENTS = ("dev", "staging", "prod")


def safetensors_bytes(seed: int = 0) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + struct.pack("<2f", seed, seed + 1)


def card(license_id: str, title: str) -> bytes:
    return f"---\nlicense: {license_id}\n---\n# {title}\n".encode()


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


@dataclass(frozen=True)
class Scenario:
    clean: str  # refs NS/NAME@sha256:HEX
    pickled: str
    proprietary: str
    xss: str
    clean_v1: str  # an older checkpoint of acme/clean-llm (for the diff)
    tokens: dict[str, str]  # role label -> bearer token


def seed(registry: EmbeddedRegistry, hub: FakeHub, work: Path) -> Scenario:
    """Mirror (from `hub`, the local fake of the Hugging Face Hub, and one local folder), scan,
    attest and decide the scenario's checkpoints; make one token per role."""
    evil = (CORPUS / "pickle" / "os_system_global_reduce_p0.pkl").read_bytes()
    repos: list[tuple[str, str, dict[str, bytes]]] = [
        (
            "acme/clean-llm@v1",
            "hf",
            {"README.md": card("apache-2.0", "clean"), "model.safetensors": safetensors_bytes(1)},
        ),
        (
            "acme/clean-llm",
            "hf",
            {
                "README.md": card("apache-2.0", "clean"),
                "model.safetensors": safetensors_bytes(2),
                "config.json": b'{"layers": 2}\n',
            },
        ),
        (
            "acme/pickled-llm",
            "hf",
            {"README.md": card("apache-2.0", "pickled"), "pytorch_model.bin": evil},
        ),
        (
            "acme/proprietary-llm",
            "hf",
            {
                "README.md": card("proprietary", "proprietary"),
                "model.safetensors": safetensors_bytes(3),
            },
        ),
        (
            "acme/xss-llm",
            "local",
            {
                "README.md": card("mit", "xss"),
                "model.safetensors": safetensors_bytes(4),
                XSS_NAME: b"<script>alert(1)</script>\n",
            },
        ),
    ]
    refs: dict[str, str] = {}
    for i, (key, kind, files) in enumerate(repos):
        name = key.split("@")[0]
        if kind == "hf":
            hub.add_repo(name, files)
            source = f"hf://{name}"
        else:
            source = str(_folder(work / f"m{i}", files))
        result = registry.mirror(MirrorRequest(source=source, name=name), progress=NoProgress())
        ref = result.checkpoint.ref
        registry.attest(ref, allow_findings=True)  # the denied ones are signed on purpose
        for env in ENVIRONMENTS:
            registry.policy_check(ref, env)
        refs[key] = ref
    made: dict[str, str] = {}
    with unit_of_work(registry.sessions) as session:
        for role in Role:
            made[role.label] = tokens.create(
                session, name=f"{role.label}-token", role=role, actor="test"
            ).secret
        made["security2"] = tokens.create(
            session, name="security-2", role=Role.SECURITY, actor="test"
        ).secret
    return Scenario(
        clean=refs["acme/clean-llm"],
        pickled=refs["acme/pickled-llm"],
        proprietary=refs["acme/proprietary-llm"],
        xss=refs["acme/xss-llm"],
        clean_v1=refs["acme/clean-llm@v1"],
        tokens=made,
    )


def ui_path(ref: str) -> str:
    name, digest = ref.split("@sha256:")
    return f"/ui/m/{name}/{digest}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(settings: Settings, registry: EmbeddedRegistry | None = None) -> Iterator[str]:
    """`create_app` on uvicorn in a thread on 127.0.0.1; yields the base URL."""
    app = create_app(settings, registry=registry)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
