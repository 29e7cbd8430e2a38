"""`make demo` ends with the web UI serving the demo data: a clean checkpoint allowed in prod
and a denied one, reachable with the admin token it prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.web_helpers import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_make_demo_ends_with_the_ui_serving_the_demo_data(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MODELSCOPE_"))}
    env.update({"DEMO_SERVE": "1", "DEMO_UI_PORT": str(port)})
    home = tmp_path / "demo"
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen(
        ["bash", str(ROOT / "bench" / "demo.sh"), str(home)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the server is stopped with it
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        with httpx.Client(base_url=base, timeout=10) as client:
            while True:
                assert proc.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
                try:
                    if client.get("/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the demo's UI never came up"
                time.sleep(0.5)
            output = (tmp_path / "demo.log").read_text()
            assert f"The web UI: http://127.0.0.1:{port} on the demo data" in output
            token = re.search(r"Sign in with the admin token: (mctl_\S+)", output)
            assert token is not None
            form = client.get("/ui/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf is not None
            signed = client.post("/ui/login", data={"csrf": csrf.group(1), "token": token.group(1)})
            assert signed.status_code == 303
            allowed = client.get("/ui/models", params={"env": "prod", "decision": "allowed"})
            assert "acme/clean-llm@" in allowed.text
            denied = client.get("/ui/models", params={"env": "prod", "decision": "denied"})
            assert "acme/pickled-llm@" in denied.text
            assert "demo/tiny-llm@" in client.get("/ui/models").text  # the CLI part's model
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
