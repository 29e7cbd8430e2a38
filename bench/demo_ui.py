"""`make demo`, last part: put the web UI's scenario into the demo registry.

Mirrors four models from a local stand-in for the Hugging Face Hub (the demo is offline; the
stand-in is the test suite's fake Hub on 127.0.0.1) and one local folder: a clean checkpoint
that prod allows, a pickle that runs a command (denied), one under a license prod does not
allow, and one whose file name is an HTML payload. Each is scanned, attested and decided.
Then it makes one API token per role and prints them (demo only: tokens are secrets).

    MODELCTL_HOME=... MODELCTL_SIGNING_KEY_PASSPHRASE=... python bench/demo_ui.py WORKDIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry.embedded import EmbeddedRegistry
from registry.settings import Settings
from tests.fakes.hfhub import FakeHub
from tests.web_helpers import seed


def main() -> int:
    work = Path(sys.argv[1])
    with FakeHub() as hub:
        os.environ["HF_ENDPOINT"] = hub.url
        registry = EmbeddedRegistry(Settings.from_env())
        try:
            scenario = seed(registry, hub, work)
        finally:
            registry.close()
    print(f"clean (allowed in prod): {scenario.clean}")
    print(f"denied (malicious pickle): {scenario.pickled}")
    print(f"denied (license; try an exception): {scenario.proprietary}")
    for role in ("admin", "security", "publisher", "reader"):
        print(f"token {role:10} {scenario.tokens[role]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
