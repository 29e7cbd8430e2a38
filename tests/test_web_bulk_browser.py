"""A bulk quarantine end to end in headless Chromium (the fixtures of tests/test_web_browser.py):
filter the list, preview, confirm, and see every environment deny what was previewed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from registry.service.bulk import QUARANTINE_CHANGE
from tests.test_web_browser import UI, env_badges, playwright, ui  # noqa: F401 - fixtures
from tests.web_helpers import ui_path

pytestmark = pytest.mark.browser


def test_bulk_quarantine_from_the_list(ui: UI) -> None:  # noqa: F811
    page = ui.sign_in("security")
    page.get_by_role("link", name="Models").click()
    page.get_by_label("search").fill("clean-llm")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.models tbody tr")).to_have_count(2)
    page.get_by_label("bulk action").select_option("quarantine")
    page.get_by_role("button", name="Preview bulk action").click()
    expect(page.locator("h1")).to_have_text("Bulk quarantine: preview")
    rows = page.locator("table.bulk tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator("td").last).to_have_text(QUARANTINE_CHANGE)
    page.get_by_label("bulk quarantine reason").fill("compromised upstream org")
    page.get_by_role("button", name="Confirm: quarantine 2 checkpoints").click()
    expect(page.locator("h1")).to_have_text("Bulk quarantine: done")
    expect(page.locator('tr[data-result="quarantined"]')).to_have_count(2)
    for ref in (ui.scenario.clean, ui.scenario.clean_v1):
        page.goto(ui.base + ui_path(ref))
        assert env_badges(page) == dict.fromkeys(("dev", "staging", "prod"), "quarantined")
    page.goto(ui.base + ui_path(ui.scenario.proprietary))
    assert "quarantined" not in env_badges(page).values()
    # The audit log names the person, once per checkpoint.
    page.goto(ui.base + "/ui/audit?action=checkpoint.quarantine")
    expect(page.locator("body")).to_contain_text(ui.scenario.clean)
    expect(page.locator("body")).to_contain_text(ui.scenario.clean_v1)
