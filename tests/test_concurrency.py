"""Two mirrors of the same bytes at once: one checkpoint, no error, on both databases."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from registry.embedded import EmbeddedRegistry
from registry.progress import NoProgress
from registry.requests import MirrorRequest
from registry.settings import Settings
from registry.views import MirrorResult
from tests.helpers import write_tree


def test_concurrent_mirrors_of_the_same_model(database_url: str, tmp_path: Path) -> None:
    model = write_tree(
        tmp_path / "model",
        {"config.json": b"{}", **{f"shard-{i}.safetensors": os.urandom(200_000) for i in range(4)}},
    )
    settings = Settings.from_env({"MODELCTL_DATABASE_URL": database_url}, home=tmp_path / "home")
    registries = [EmbeddedRegistry(settings) for _ in range(4)]
    barrier = threading.Barrier(len(registries))
    results: list[MirrorResult] = []
    errors: list[BaseException] = []

    def run(registry: EmbeddedRegistry) -> None:
        barrier.wait()
        try:
            results.append(
                registry.mirror(MirrorRequest(str(model), name="race/model"), progress=NoProgress())
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in registries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len({r.checkpoint.digest for r in results}) == 1
    assert sorted(r.created for r in results) == [False, False, False, True]
    listed = registries[0].models()
    assert [m.name for m in listed] == ["race/model"]
    assert len(listed[0].checkpoints) == 1
    for registry in registries:
        registry.close()
