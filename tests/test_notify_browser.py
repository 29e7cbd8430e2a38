"""A notification delivered end to end, driven from headless Chromium: a security person
quarantines a checkpoint in the web UI, the server's own worker signs and delivers the webhook to
a receiver on loopback (whose signature is checked here), and the delivery log page shows it."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from registry.db.engine import unit_of_work
from registry.db.models import NotificationCursor
from registry.service.notify.signing import verify
from tests.test_notify import SECRET, Receiver, configured_hook  # noqa: F401 - fixture
from tests.test_web_browser import UI, playwright, ui  # noqa: F401 - fixtures
from tests.web_helpers import ui_path

pytestmark = pytest.mark.browser


def test_a_quarantine_in_the_browser_is_delivered_signed_and_logged(
    configured_hook: Receiver,  # noqa: F811 - set up first: the server's worker reads it
    ui: UI,  # noqa: F811
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the dispatcher's first round places its cursor
        with unit_of_work(ui.registry.sessions) as s:
            if s.get(NotificationCursor, "audit") is not None:
                break
        time.sleep(0.05)
    page = ui.sign_in("security")
    page.goto(ui.base + ui_path(ui.scenario.clean))
    page.get_by_label("quarantine reason").fill("CVE-2099-7 in the upstream account")
    page.get_by_role("button", name="Quarantine").click()
    expect(page.locator(".notice")).to_contain_text("Quarantined")

    def quarantined() -> list[tuple[dict[str, str], bytes]]:
        return [r for r in configured_hook.requests if json.loads(r[1])["event"] == "quarantined"]

    while time.monotonic() < deadline and not quarantined():
        time.sleep(0.05)
    (headers, raw), *_ = quarantined()
    body = json.loads(raw)
    assert ui.scenario.clean.split("@")[0] in json.dumps(body)
    assert verify(
        SECRET.encode(),
        headers["X-Modelctl-Timestamp"],
        headers["X-Modelctl-Signature"],
        raw,
        now=time.time(),
    )

    page.get_by_role("link", name="Notifications").click()
    row = page.locator("tr[data-state]").filter(has_text="quarantined")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-state", "delivered")
    expect(row).to_contain_text("soc")
