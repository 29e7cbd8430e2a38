"""Issue 12 end to end: known-bad bytes are refused at every door, in every environment, by
digest, whatever the name.

A clean model and a malicious one (an `os.system` pickle) are each mirrored under two names.
Every door is then asked for every name in every shipped environment: `modelctl pull`, the
Hugging Face endpoint (`/hf/{env}`, through the real `huggingface_hub` client), the `/v1` byte
reads, the Kubernetes admission webhook, the REST status (`GET /v1/models`) and the web UI's
badges. Then the clean checkpoint is quarantined through ONE of its names: every door closes
for BOTH names; a release opens them again. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from registry.api.app import create_app
from registry.settings import Settings
from tests.api_server import LiveServer, live_server
from tests.fakes.hfhub import FakeHub
from tests.test_hf_endpoint import _chain, model_files, reader_token
from tests.test_k8s_admission import pod, review
from tests.test_policy_cli import CARD
from tests.test_web import csrf_of

ENVIRONMENTS = ("dev", "staging", "prod")
EVIL_PICKLE = (
    Path(__file__).parent / "assets" / "corpus" / "pickle" / "os_system_global_reduce_p0.pkl"
)
CLEAN_NAMES = ("org/clean", "acme/clean-copy")
EVIL_NAMES = ("org/evil", "acme/evil-copy")


@dataclass
class World:
    live: LiveServer
    token: str
    clean: str  # sha256:<hex> of the clean checkpoint (the same under both names)
    evil: str
    clean_files: dict[str, bytes]
    ui: httpx.Client

    def get(self, path: str, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.get(self.live.url + path, params=params, headers=headers, timeout=30)

    def review(self, ref: str, env: str) -> dict[str, Any]:
        body = review(pod({"modelctl.dev/model": ref}), uid=str(uuid.uuid4()))
        answer = httpx.post(
            f"{self.live.url}/k8s/admission/{env}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        response: dict[str, Any] = answer.json()["response"]
        return response


@pytest.fixture
def world(
    run_cli: Any, isolated_env: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
    clean_files = model_files()
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.add_repo("org/clean", clean_files)
        hub.add_repo("org/evil", {"README.md": CARD, "pytorch_model.bin": EVIL_PICKLE.read_bytes()})
        clean = run_cli("mirror", "hf://org/clean", "--json")
        assert clean.code == 0, clean.stderr
        again = run_cli("mirror", "hf://org/clean", "--name", CLEAN_NAMES[1], "--json")
        assert again.json()["digest"] == clean.json()["digest"]  # one identity, two names
        # A malicious mirror is recorded (it is evidence) but exits 1.
        evil = run_cli("mirror", "hf://org/evil", "--json")
        assert evil.code == 1
        assert "pickle" in evil.stderr
        evil_again = run_cli(
            "mirror", "hf://org/evil", "--name", EVIL_NAMES[1], "--fail-on", "never"
        )
        assert evil_again.code == 0, evil_again.stderr
        for name in CLEAN_NAMES:
            assert run_cli("attest", name).code == 0
        for name in EVIL_NAMES:
            assert run_cli("attest", name).code == 1  # refuses known-malicious bytes ...
            assert run_cli("attest", name, "--allow-findings").code == 0  # ... unless told
        token = reader_token(isolated_env)
        with live_server(create_app(Settings.from_env())) as live:
            ui = httpx.Client(base_url=live.url, timeout=30)
            form = ui.get("/ui/login")
            signed = ui.post(
                "/ui/login", data={"csrf": csrf_of(form.text), "token": token, "next": "/"}
            )
            assert signed.status_code == 303
            try:
                yield World(
                    live,
                    token,
                    clean.json()["digest"],
                    evil.json()["digest"],
                    clean_files,
                    ui,
                )
            finally:
                ui.close()


def _ui_badge(html: str, name: str, env: str) -> str:
    row = next(r for r in html.split("<tr>") if f'href="/ui/m/{name}/' in r)
    match = re.search(rf'<td data-env="{env}"><span class="badge b-(\w+)"', row)
    assert match is not None, row
    return match.group(1)


def _rest_status(world: World) -> dict[tuple[str, str], str]:
    models = world.get("/v1/models")
    assert models.status_code == 200, models.text
    return {
        (m["name"], env): cp["environments"][env]["status"]
        for m in models.json()["models"]
        for cp in m["checkpoints"]
        for env in ENVIRONMENTS
    }


def _hf_download(world: World, name: str, path: str, env: str, cache: Path) -> bytes | str:
    """The file's bytes through the real `huggingface_hub` client, or why it was refused."""
    try:
        got = hf_hub_download(
            name, path, endpoint=f"{world.live.url}/hf/{env}", token=world.token, cache_dir=cache
        )
    except (HfHubHTTPError, LocalEntryNotFoundError) as exc:
        return _chain(exc)
    return Path(got).read_bytes()


def _assert_every_door(
    world: World, run_cli: Any, tmp_path: Path, names: tuple[str, ...], digest: str, open_: bool
) -> None:
    """Every door for every name in every environment: open (the clean bytes, verified) or
    shut (nothing written, nothing served)."""
    statuses = _rest_status(world)
    page = world.ui.get("/ui/models")
    assert page.status_code == 200
    path = "model.safetensors" if open_ or digest == world.clean else "pytorch_model.bin"
    for env in ENVIRONMENTS:
        for name in names:
            where = f"{name} in {env}"
            ref = f"{name}@{digest}"
            dest = tmp_path / f"pull-{uuid.uuid4().hex[:8]}"
            pulled = run_cli("pull", ref, "--env", env, "--dest", str(dest))
            reader = world.get(f"/v1/checkpoints/{name}/{digest}/files/{path}", env=env)
            admission = world.review(ref, env)
            served = _hf_download(world, name, path, env, dest.with_name(dest.name + "-hf"))
            if open_:
                assert pulled.code == 0, (where, pulled.stderr)
                assert (dest / path).read_bytes() == world.clean_files[path]
                assert reader.status_code == 200, (where, reader.text[:300])
                assert reader.content == world.clean_files[path]
                assert admission["allowed"] is True, (where, admission)
                assert served == world.clean_files[path], where
                assert statuses[(name, env)] == "allowed", where
                assert _ui_badge(page.text, name, env) == "allowed", where
            else:
                assert pulled.code == 1, (where, pulled.stderr)
                assert not dest.exists(), where
                assert reader.status_code == 403, (where, reader.text[:300])
                assert admission["allowed"] is False, (where, admission)
                assert isinstance(served, str), where
                assert "403 Forbidden" in served, (where, served)
                assert statuses[(name, env)] in ("denied", "quarantined"), where
                assert _ui_badge(page.text, name, env) in ("denied", "quarantined"), where


def test_every_door_in_every_environment_by_digest_whatever_the_name(
    world: World, run_cli: Any, tmp_path: Path
) -> None:
    _assert_every_door(world, run_cli, tmp_path, CLEAN_NAMES, world.clean, open_=True)
    _assert_every_door(world, run_cli, tmp_path, EVIL_NAMES, world.evil, open_=False)
    # The reason is the bytes, named the same way at every door.
    denied = run_cli("policy", "check", f"{EVIL_NAMES[1]}@{world.evil}", "--env", "dev", "--json")
    assert denied.code == 1
    assert any(
        r.startswith("malicious: pickle: pytorch_model.bin: fnd-") for r in denied.json()["reasons"]
    )

    # Quarantine through one name binds the bytes: both names shut at every door, at once.
    quarantined = run_cli("quarantine", f"{CLEAN_NAMES[1]}@{world.clean}", "--reason", "e2e")
    assert quarantined.code == 0, quarantined.stderr
    assert all(f"{n}@{world.clean}" in quarantined.stdout for n in CLEAN_NAMES)
    _assert_every_door(world, run_cli, tmp_path, CLEAN_NAMES, world.clean, open_=False)
    assert {_rest_status(world)[(n, e)] for n in CLEAN_NAMES for e in ENVIRONMENTS} == {
        "quarantined"
    }
    # A name added later holds the same bytes: quarantined on arrival.
    later = run_cli("mirror", "hf://org/clean", "--name", "late/clean")
    assert later.code == 0, later.stderr
    assert "QUARANTINED" in later.stderr + later.stdout
    assert run_cli("attest", "late/clean").code == 0
    _assert_every_door(world, run_cli, tmp_path, ("late/clean",), world.clean, open_=False)

    released = run_cli("release", f"{CLEAN_NAMES[0]}@{world.clean}", "--reason", "cleared")
    assert released.code == 0, released.stderr
    _assert_every_door(
        world, run_cli, tmp_path, (*CLEAN_NAMES, "late/clean"), world.clean, open_=True
    )
