"""Single sign-on end to end in headless Chromium: the real browser follows the redirects to the
OpenID provider on loopback and back (tests/fakes/oidc_provider.py; the fixtures of
tests/test_web_oidc.py and tests/test_web_browser.py), is signed in as the person the ID token
names, acts under that name, and signs out: a copy of the session cookie taken before the
sign-out is refused after it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Playwright, expect

from registry.web import session as websession
from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS, playwright  # noqa: F401 - fixture
from tests.test_web_oidc import Sso, sso  # noqa: F401 - fixture
from tests.web_helpers import ui_path

pytestmark = pytest.mark.browser


def test_sign_in_through_the_provider_act_and_sign_out(
    playwright: Playwright,  # noqa: F811
    sso: Sso,  # noqa: F811
    tmp_path: Path,
) -> None:
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(sso.base + ui_path(sso.ref))
        expect(page.locator("#sso")).to_be_visible()  # the login page offers the provider
        expect(page.get_by_label("API token")).to_have_count(0)  # and no token paste
        page.locator("#sso").click()
        # Back from the provider, on the page first asked for, as the person the token names.
        expect(page).to_have_url(sso.base + ui_path(sso.ref))
        expect(page.locator("[data-role]")).to_have_text("oidc:alice@example.com · security")
        page.get_by_label("quarantine reason").fill("seen in the browser")
        page.locator('[data-action="quarantine"]').click()
        expect(page.locator("[data-quarantine]")).to_contain_text("oidc:alice@example.com")
        assert [e.actor for e in sso.audit("checkpoint.quarantine")] == ["oidc:alice@example.com"]

        cookie = next(
            c["value"] for c in context.cookies() if c["name"] == websession.SESSION_COOKIE
        )
        page.get_by_role("button", name="sign out", exact=True).click()
        expect(page.locator("#provider-logout")).to_be_visible()
        copy = httpx.get(
            sso.base + "/ui/models", cookies={websession.SESSION_COOKIE: cookie}, timeout=30
        )
        assert copy.status_code == 303  # the server refuses the old cookie: sign in again
    finally:
        context.close()
