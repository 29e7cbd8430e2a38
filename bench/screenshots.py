"""Screenshots of every page of the web UI for the README (docs/screenshots/*.png), at
1440x900 (`NAME.png`) and 1024x768 (`NAME-1024.png`).

Seeds the test scenario (tests/web_helpers.py) into a temporary registry, plus one chat model
with a model card, configs and a chat template (for the card, files and preview pages), serves
it on 127.0.0.1 and photographs each page in headless Debian chromium (Playwright), signed in
as an `admin` token so every page and action button shows. One pending exception request and
one quarantine are added first so those pages have something to show.

    .venv/bin/python bench/screenshots.py docs/screenshots [--only NAME ...]

To add a page, append a `Shot` to `SHOTS`: a file name and a function from the seeded
`Shots` context to the page's path (and, optionally, the element to scroll into view).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import Page, sync_playwright

from registry.embedded import EmbeddedRegistry
from registry.progress import NoProgress
from registry.requests import MirrorRequest
from registry.settings import Settings
from tests.fakes.hfhub import FakeHub
from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS
from tests.web_helpers import Scenario, safetensors_bytes, seed, serve, ui_path

#: (suffix of the file name, viewport): every page is taken at each.
VIEWPORTS = (("", {"width": 1440, "height": 900}), ("-1024", {"width": 1024, "height": 768}))

CHAT_CARD = """---
license: apache-2.0
base_model: acme/clean-llm
pipeline_tag: text-generation
language: [en, de]
datasets: [acme/instructions-v2]
tags: [chat, instruct]
---
# acme/chat-llm

An instruction-tuned chat model, fine-tuned from **acme/clean-llm** on
[acme/instructions-v2](https://huggingface.co/datasets/acme/instructions-v2).

## Usage

```python
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained("acme/chat-llm")
```

| benchmark | score |
|---|---|
| MMLU | 61.2 |
| GSM8K | 48.9 |

<script>alert("cards are hostile input: this stays text")</script>

![architecture](https://example.com/architecture.png)
"""

CHAT_TEMPLATE = (
    "{% for message in messages %}\n"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}\n"
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}\n"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class Shots:
    """What the page paths are built from."""

    scenario: Scenario
    chat: str  # ref of acme/chat-llm
    tokenizer_sha: str


@dataclass(frozen=True)
class Shot:
    name: str
    path: Callable[[Shots], str]
    scroll_to: str | None = None  # a CSS selector to bring into view first


SHOTS: list[Shot] = [
    Shot("login", lambda c: "/ui/login"),
    Shot("overview", lambda c: "/"),
    Shot("models", lambda c: "/ui/models"),
    Shot("checkpoint-denied", lambda c: ui_path(c.scenario.pickled)),
    Shot("checkpoint-card", lambda c: ui_path(c.chat) + "?tab=card"),
    Shot("checkpoint-files", lambda c: ui_path(c.chat) + "?tab=files"),
    Shot("file-preview", lambda c: ui_path(c.chat) + "/files/" + c.tokenizer_sha),
    Shot("checkpoint-findings", lambda c: ui_path(c.scenario.pickled) + "?tab=scans"),
    Shot("checkpoint-attestations", lambda c: ui_path(c.scenario.clean) + "?tab=attestations"),
    Shot("checkpoint-provenance", lambda c: ui_path(c.scenario.clean) + "?tab=provenance"),
    Shot(
        "diff",
        lambda c: (
            ui_path(c.scenario.clean) + "/diff?against=" + c.scenario.clean_v1.split("sha256:")[1]
        ),
    ),
    Shot("findings", lambda c: "/ui/findings"),
    Shot("trends", lambda c: "/ui/trends"),
    Shot("bulk-preview", lambda c: "/ui/bulk?action=quarantine&q=acme"),
    Shot("quarantines", lambda c: "/ui/quarantines"),
    Shot("exceptions", lambda c: "/ui/exceptions"),
    Shot("policies", lambda c: "/ui/policies"),
    Shot("audit", lambda c: "/ui/audit"),
    Shot("notifications", lambda c: "/ui/notifications"),
    Shot("admin", lambda c: "/ui/admin"),
]


def seed_chat_model(registry: EmbeddedRegistry, work: Path) -> tuple[str, str]:
    """acme/chat-llm from a local folder: a card, configs and a template with an escape."""
    folder = work / "chat-llm"
    folder.mkdir(parents=True)
    tokenizer = json.dumps(
        {"bos_token": "<s>", "eos_token": "<|end|>", "chat_template": CHAT_TEMPLATE}, indent=2
    ).encode()
    files = {
        "README.md": CHAT_CARD.encode(),
        "model.safetensors": safetensors_bytes(5),
        "config.json": json.dumps(
            {"architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 16},
            indent=2,
        ).encode(),
        "generation_config.json": b'{"temperature": 0.7, "top_p": 0.9}\n',
        "tokenizer_config.json": tokenizer,
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    result = registry.mirror(
        MirrorRequest(source=str(folder), name="acme/chat-llm"), progress=NoProgress()
    )
    ref = result.checkpoint.ref
    registry.attest(ref, allow_findings=True)
    return ref, hashlib.sha256(tokenizer).hexdigest()


def prepare(page: Page, base: str, scenario: Scenario) -> None:
    """A pending request (by a publisher) and a quarantine, for the pages that list them."""

    def sign_in(role: str) -> None:
        page.context.clear_cookies()
        page.goto(base + "/ui/login")
        page.get_by_label("API token").fill(scenario.tokens[role])
        page.get_by_role("button", name="Sign in").click()

    sign_in("publisher")
    page.goto(base + ui_path(scenario.proprietary) + "?tab=exceptions")
    page.get_by_label("expires (mandatory)").fill("2099-06-30")
    page.get_by_label("reason").fill("vendor contract grants use")
    page.get_by_role("button", name="Request exception").click()
    sign_in("security")
    page.goto(base + ui_path(scenario.xss))
    page.get_by_label("quarantine reason").fill("file names look like an attack")
    page.get_by_role("button", name="Quarantine").click()
    sign_in("admin")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="docs/screenshots")
    parser.add_argument("--only", action="append", default=[], help="just these names")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    unknown = set(args.only) - {s.name for s in SHOTS}
    if unknown:
        print(f"screenshots: no page named {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
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
            chat, tokenizer_sha = seed_chat_model(registry, work / "chat")
            ctx = Shots(scenario, chat, tokenizer_sha)
            with serve(settings, registry) as base, sync_playwright() as p:
                browser = p.chromium.launch_persistent_context(
                    str(work / "profile"),
                    executable_path=str(CHROMIUM),
                    headless=True,
                    args=CHROMIUM_ARGS,
                    viewport=dict(VIEWPORTS[0][1]),
                )
                page = browser.new_page()
                prepare(page, base, scenario)
                for suffix, viewport in VIEWPORTS:
                    page.set_viewport_size(dict(viewport))
                    for shot in SHOTS:
                        if args.only and shot.name not in args.only:
                            continue
                        if shot.name == "login":
                            page.context.clear_cookies()
                        page.goto(base + shot.path(ctx))
                        if shot.scroll_to:
                            page.locator(shot.scroll_to).first.scroll_into_view_if_needed()
                        target = out / f"{shot.name}{suffix}.png"
                        page.screenshot(path=str(target), full_page=False)
                        print(f"{target} ({target.stat().st_size // 1024} KiB)")
                        if shot.name == "login":
                            prepare_again = scenario.tokens["admin"]
                            page.get_by_label("API token").fill(prepare_again)
                            page.get_by_role("button", name="Sign in").click()
                browser.close()
        finally:
            registry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
