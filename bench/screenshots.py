"""Screenshots of the web UI's main pages for the README (docs/screenshots/*.png).

Seeds the test scenario (tests/web_helpers.py) into a temporary registry, serves it on
127.0.0.1 and photographs each page in headless Debian chromium (Playwright), signed in as a
`security` token so the action buttons show. One pending exception request and one quarantine
are added first so those pages have something to show.

    .venv/bin/python bench/screenshots.py docs/screenshots
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright

from registry.embedded import EmbeddedRegistry
from registry.settings import Settings
from tests.fakes.hfhub import FakeHub
from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS
from tests.web_helpers import seed, serve, ui_path

VIEWPORT = {"width": 1280, "height": 860}


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="modelctl-shots-") as tmp, FakeHub() as hub:
        work = Path(tmp)
        os.environ.update(
            {
                "MODELCTL_HOME": str(work / "home"),
                "MODELCTL_SIGNING_KEY_PASSPHRASE": "screenshots-only",
                "HF_ENDPOINT": hub.url,
            }
        )
        settings = Settings.from_env()
        registry = EmbeddedRegistry(settings)
        try:
            scenario = seed(registry, hub, work / "models")
            with serve(settings, registry) as base, sync_playwright() as p:
                context = p.chromium.launch_persistent_context(
                    str(work / "profile"),
                    executable_path=str(CHROMIUM),
                    headless=True,
                    args=CHROMIUM_ARGS,
                    viewport=VIEWPORT,
                )
                page = context.new_page()

                def sign_in(role: str) -> None:
                    page.context.clear_cookies()
                    page.goto(base + "/ui/login")
                    page.get_by_label("API token").fill(scenario.tokens[role])
                    page.get_by_role("button", name="Sign in").click()

                # A pending request (by a publisher) and a quarantine, for the pages below.
                sign_in("publisher")
                page.goto(base + ui_path(scenario.proprietary) + "?tab=exceptions")
                page.get_by_label("expires (mandatory)").fill("2099-06-30")
                page.get_by_label("reason").fill("vendor contract grants use")
                page.get_by_role("button", name="Request exception").click()
                sign_in("security")
                page.goto(base + ui_path(scenario.xss))
                page.get_by_label("quarantine reason").fill("file names look like an attack")
                page.get_by_role("button", name="Quarantine").click()

                shots = {
                    "overview": "/",
                    "models": "/ui/models",
                    "checkpoint-denied": ui_path(scenario.pickled),
                    "checkpoint-findings": ui_path(scenario.pickled) + "?tab=scans",
                    "checkpoint-attestations": ui_path(scenario.clean) + "?tab=attestations",
                    "diff": ui_path(scenario.clean)
                    + "/diff?against="
                    + scenario.clean_v1.split("sha256:")[1],
                    "exceptions": "/ui/exceptions",
                    "policies": "/ui/policies",
                    "audit": "/ui/audit",
                }
                for name, url in shots.items():
                    page.goto(base + url)
                    target = out / f"{name}.png"
                    page.screenshot(path=str(target), full_page=False)
                    print(f"{target} ({target.stat().st_size // 1024} KiB)")
                context.close()
        finally:
            registry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
