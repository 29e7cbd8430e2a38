"""The web UI end to end in headless Chromium (Debian's `chromium`, driven by Playwright).

The server is real (uvicorn on 127.0.0.1, a free port), the registry is real (mirrored from
the local fake Hub, scanned, attested, decided), and each test gets a fresh browser profile.
`make venv` installs Playwright (the `dev` extra) and Debian's chromium when it is missing;
Playwright never downloads a browser of its own here.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import (
    BrowserContext,
    Dialog,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from registry.embedded import EmbeddedRegistry
from registry.requests import AuditQuery
from registry.settings import Settings
from tests.fakes.hfhub import FakeHub
from tests.web_helpers import Scenario, seed, serve, ui_path

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make venv` installs Debian's chromium package")
    with sync_playwright() as p:
        yield p


@dataclass
class UI:
    base: str
    scenario: Scenario
    registry: EmbeddedRegistry
    playwright: Playwright
    profiles: Path
    contexts: list[BrowserContext] = field(default_factory=list)

    def browser(self) -> BrowserContext:
        """A new browser session with its own fresh user-data-dir (its own cookies)."""
        context = self.playwright.chromium.launch_persistent_context(
            str(self.profiles / f"profile-{len(self.contexts)}"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
        )
        self.contexts.append(context)
        return context

    def page(self, context: BrowserContext | None = None) -> Page:
        context = context or (self.contexts[0] if self.contexts else self.browser())
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    def sign_in(self, role: str, page: Page | None = None) -> Page:
        page = page or self.page()
        page.goto(self.base + "/")
        expect(page).to_have_url(self.base + "/ui/login?next=%2F")
        page.get_by_label("API token").fill(self.scenario.tokens[role])
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("h1")).to_have_text("Overview")
        # "security2" is a second token with the security role (tests/web_helpers.py).
        expect(page.locator("[data-role]")).to_have_attribute("data-role", role.rstrip("2"))
        return page


@pytest.fixture
def ui(playwright: Playwright, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[UI]:
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        settings = Settings.from_env()
        registry = EmbeddedRegistry(settings)
        try:
            scenario = seed(registry, hub, tmp_path / "work")
            with serve(settings, registry) as base:
                ui = UI(base, scenario, registry, playwright, tmp_path)
                try:
                    yield ui
                finally:
                    for context in ui.contexts:
                        context.close()
        finally:
            registry.close()


def env_badges(page: Page) -> dict[str, str]:
    badges = {}
    for item in page.locator("ul.envs li").all():
        env = item.get_attribute("data-env")
        assert env is not None
        badges[env] = item.locator(".badge").inner_text()
    return badges


def test_find_a_model_and_read_why_it_is_denied(ui: UI) -> None:
    page = ui.sign_in("reader")
    page.get_by_role("link", name="Models").click()
    page.get_by_label("search").fill("pickled")
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("table.models tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".badge").last).to_have_text("denied")  # prod
    rows.first.get_by_role("link").first.click()
    expect(page.locator("h1.ref")).to_contain_text("acme/pickled-llm")
    assert env_badges(page)["prod"] == "denied"
    prod = page.locator('section.decision[data-env="prod"]')
    # The page opens with the deciding cause in words, per environment.
    expect(page.locator('section.headline p[data-env="prod"]')).to_contain_text(
        'Denied in prod: pytorch_model.bin calls os.system("true") (critical, pickle scanner)'
    )
    failing = prod.locator("tr.c-fail")
    pickle_row = failing.and_(page.locator('[data-check="scans.pickle"]'))
    expect(pickle_row).to_contain_text("pickle scan: verdict malicious")
    expect(pickle_row.locator(".check")).to_have_text("Scanned by pickle")
    expect(pickle_row.locator(".check")).to_have_attribute("title", "scans.pickle")
    expect(failing.and_(page.locator('[data-check="formats.pickle-based"]'))).to_have_count(1)
    expect(prod.locator("details.passing tr.c-pass").first).to_be_hidden()  # folded
    # The evidence behind it: the pickle global that runs a command.
    page.get_by_role("link", name="Scans").click()
    finding = page.locator("article.finding").first
    expect(finding).to_contain_text("critical")
    expect(finding.locator("pre")).to_contain_text("system")


def test_quarantine_denies_every_environment_and_release_restores(ui: UI) -> None:
    page = ui.sign_in("security")
    page.goto(ui.base + ui_path(ui.scenario.clean))
    assert env_badges(page) == {"dev": "allowed", "staging": "allowed", "prod": "allowed"}
    page.get_by_label("quarantine reason").fill("suspicious upstream account")
    page.get_by_role("button", name="Quarantine").click()
    expect(page.locator(".notice")).to_contain_text("Quarantined")
    assert env_badges(page) == dict.fromkeys(("dev", "staging", "prod"), "quarantined")
    for env in ("dev", "staging", "prod"):
        section = page.locator(f'section.decision[data-env="{env}"]')
        expect(section.locator("h2 .badge")).to_have_text("denied")
        expect(section.locator("tr.c-fail").first).to_contain_text("the checkpoint is quarantined")
    # The models list agrees (live statuses), for every environment.
    page.goto(ui.base + "/ui/models?env=prod&decision=quarantined")
    expect(page.locator("table.models tbody tr")).to_have_count(1)
    expect(page.locator("table.models tbody tr .badge")).to_have_text(["quarantined"] * 3)
    page.goto(ui.base + ui_path(ui.scenario.clean))
    page.get_by_label("release reason").fill("account verified")
    page.get_by_role("button", name="Release").click()
    expect(page.locator(".notice")).to_contain_text("Released")
    assert env_badges(page)["prod"] == "allowed"


def test_request_then_approve_an_exception_changes_the_decision(ui: UI) -> None:
    path = ui_path(ui.scenario.proprietary)
    publisher = ui.sign_in("publisher")
    publisher.goto(ui.base + path)
    assert env_badges(publisher)["prod"] == "denied"
    prod = publisher.locator('section.decision[data-env="prod"]')
    expect(prod.locator("tr.c-fail")).to_have_count(1)
    expect(prod.locator("tr.c-fail")).to_contain_text("license proprietary is not in the allowed")
    expect(publisher.locator('[data-action="quarantine"]')).to_have_count(0)  # not a publisher's
    publisher.get_by_role("link", name="Exceptions").last.click()
    expect(publisher.get_by_label("checks to waive")).to_have_value("licenses")
    expires = (datetime.now(UTC) + timedelta(days=60)).date()  # within waivers.maxExpiry
    publisher.get_by_label("expires (mandatory)").fill(expires.isoformat())
    publisher.get_by_label("reason").fill("vendor contract 2026-17 grants use")
    publisher.get_by_role("button", name="Request exception").click()
    expect(publisher.locator(".notice")).to_contain_text("waives nothing until")
    publisher.goto(ui.base + path)
    assert env_badges(publisher)["prod"] == "denied"  # a request alone changes nothing

    # A second person, in a second browser session, approves it.
    security = ui.sign_in("security", ui.page(ui.browser()))
    security.goto(ui.base + "/ui/exceptions")
    row = security.locator("table.pending tbody tr").first
    expect(row).to_contain_text("vendor contract 2026-17")
    expect(row).to_contain_text("token:publisher-token")
    row.get_by_role("button", name="Approve").click()
    expect(security.locator(".notice")).to_contain_text("Exception approved")
    expect(security.locator("h1.ref")).to_contain_text("acme/proprietary-llm")
    assert env_badges(security)["prod"] == "allowed"
    waived = security.locator('section.decision[data-env="prod"] tr[data-check="licenses"]')
    expect(waived.locator(".status")).to_have_text("waived")
    [granted] = ui.registry.exception_list(ui.scenario.proprietary)
    assert granted.approver == "token:security-token"
    assert granted.expires_at.date() == expires
    assert granted.requested_by == "token:publisher-token"


def test_export_the_audit_log(ui: UI, tmp_path: Path) -> None:
    page = ui.sign_in("security")
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("action").select_option("checkpoint.attest")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.audit tbody tr")).to_have_count(5)
    with page.expect_download() as csv_download:
        page.locator('[data-export="csv"]').click()
    rows = list(csv.DictReader(io.StringIO(Path(csv_download.value.path()).read_text())))
    assert len(rows) == 5
    assert {r["action"] for r in rows} == {"checkpoint.attest"}
    with page.expect_download() as json_download:
        page.locator('[data-export="json"]').click()
    events = json.loads(Path(json_download.value.path()).read_text())
    assert [e["id"] for e in events] == [int(r["id"]) for r in rows]


def test_reader_sees_no_actions_and_a_forged_action_is_refused(ui: UI) -> None:
    page = ui.sign_in("reader")
    path = ui_path(ui.scenario.clean)
    page.goto(ui.base + path)
    for action in ("quarantine", "release", "rescan"):
        expect(page.locator(f'[data-action="{action}"]')).to_have_count(0)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    page.get_by_role("link", name="Exceptions").last.click()
    expect(page.locator('[data-action="request-exception"]')).to_have_count(0)
    # Forge the quarantine POST from inside the signed-in browser, CSRF token included.
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    assert csrf
    forged = page.request.post(
        ui.base + path + "/quarantine", form={"csrf": csrf, "reason": "forged"}
    )
    assert forged.status == 403
    assert "has role reader" in forged.text()
    assert ui.registry.inspect(ui.scenario.clean).quarantine is None


def test_xss_payload_in_a_file_name_renders_inert(ui: UI) -> None:
    page = ui.sign_in("reader")
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.goto(ui.base + ui_path(ui.scenario.xss) + "?tab=files")
    cell = page.locator("td.path", has_text="onerror")
    expect(cell).to_have_text("<img src=x onerror=alert(1)>.txt")  # shown as text
    expect(page.locator("img")).to_have_count(0)
    page.goto(ui.base + "/ui/models?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    expect(page.get_by_label("search")).to_have_value("<script>alert(1)</script>")
    assert dialogs == []


def test_models_badges_are_live_and_explain_a_denial(ui: UI) -> None:
    """A what-if check under another policy is no status; a denied badge says why."""
    from policies import default_policies_text

    strict = default_policies_text().replace("apache-2.0, mit,", "mit,", 1)
    assert not ui.registry.policy_check(ui.scenario.clean, "prod", strict, "strict.yaml").allowed
    page = ui.sign_in("reader")
    page.goto(ui.base + "/ui/models?sort=name")
    clean = page.locator("table.models tbody tr").filter(has_text="acme/clean-llm").first
    expect(clean.locator('td[data-env="prod"] .badge')).to_have_text("allowed")
    pickled = page.locator("table.models tbody tr").filter(has_text="acme/pickled-llm")
    badge = pickled.locator('td[data-env="prod"] .badge')
    expect(badge).to_have_text("denied")
    expect(badge).to_have_attribute("title", re.compile(r"scans\.pickle: "))


def test_triage_a_finding_end_to_end(ui: UI) -> None:
    """One security person asks for a false positive, a second approves it (dev is allowed
    again), assigns the finding, then confirms it: confirming ends the false positive and dev
    denies again. The state shows on the checkpoint and findings pages throughout."""
    path = ui_path(ui.scenario.pickled)
    first = ui.sign_in("security")
    first.goto(ui.base + path)
    dev = first.locator('section.headline p[data-env="dev"]')
    expect(dev).to_contain_text("Denied in dev: pytorch_model.bin calls os.system")
    card = first.locator("article.finding").first
    expect(card.locator("[data-triage-state]")).to_have_text("new")
    expect(card.locator("pre")).to_contain_text("os.system")  # the evidence, first screen
    card.get_by_label("false positive reason").fill("vendor's test fixture, never loaded")
    card.get_by_role("button", name="Request false positive").click()
    expect(first.locator(".notice")).to_contain_text("changes nothing until someone else")
    card = first.locator("article.finding").first
    expect(card.locator("[data-triage-state]")).to_contain_text("false positive requested")
    expect(dev).to_contain_text("Denied in dev")  # a request alone changes nothing

    second = ui.sign_in("security2", ui.page(ui.browser()))
    second.goto(ui.base + path)
    card2 = second.locator("article.finding").first
    card2.get_by_role("button", name=re.compile("Approve false positive")).click()
    expect(second.locator(".notice")).to_contain_text("False positive approved")
    card2 = second.locator("article.finding").first
    expect(card2.locator("[data-triage-state]")).to_have_text("false positive")
    expect(second.locator('section.headline p[data-env="dev"]')).to_contain_text(
        "Allowed in dev with"
    )
    card2.get_by_label("assignee").fill("alice@example.org")
    card2.get_by_role("button", name="Assign").click()
    expect(second.locator(".notice")).to_contain_text("Assignment saved")
    second.get_by_role("link", name="Findings").first.click()
    row = second.locator("table.grid tbody tr", has_text="pytorch_model.bin").first
    expect(row.locator("[data-assignee]")).to_have_text("alice@example.org")
    expect(row.locator("[data-triage-state]")).to_have_text("false positive")

    row.get_by_role("link", name="triage").click()
    card2 = second.locator("article.finding").first
    card2.get_by_role("button", name="Confirm").click()
    expect(second.locator(".notice")).to_contain_text("Finding confirmed")
    card2 = second.locator("article.finding").first
    expect(card2.locator("[data-triage-state]")).to_have_text("confirmed")
    expect(card2).to_contain_text("confirmed by token:security-2")
    expect(second.locator('section.headline p[data-env="dev"]')).to_contain_text(
        "Denied in dev: pytorch_model.bin calls os.system"
    )
    actions = [e.action for e in ui.registry.audit_log(AuditQuery(action="finding.", limit=50))]
    assert sorted(actions) == sorted(
        [
            "finding.triage.request",
            "finding.triage.approve",
            "finding.assign",
            "finding.triage.revoke",
            "finding.confirm",
        ]
    )


def test_browse_files_preview_a_config_and_read_the_card(ui: UI) -> None:
    """The file browser: a file's page by digest, its text escaped (a hostile name and body
    stay text, nothing runs), and the model card rendered from Markdown."""
    page = ui.sign_in("reader")
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.goto(ui.base + ui_path(ui.scenario.clean))
    page.get_by_role("link", name="Files", exact=True).click()
    rows = page.locator("table.files tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="model.safetensors")).to_contain_text("safetensors: clean")
    rows.filter(has_text="config.json").get_by_role("link", name="config.json").click()
    expect(page.locator("h1")).to_have_text("config.json")
    expect(page).to_have_url(re.compile(r"/files/[0-9a-f]{64}$"))
    expect(page.locator("pre[data-preview-text]")).to_have_text('{"layers": 2}\n')
    page.get_by_role("link", name="Files", exact=True).click()
    expect(rows).to_have_count(3)

    page.goto(ui.base + ui_path(ui.scenario.xss) + "?tab=files")
    page.get_by_role("link", name="<img src=x onerror=alert(1)>.txt").click()
    expect(page.locator("h1")).to_have_text("<img src=x onerror=alert(1)>.txt")
    expect(page.locator("pre[data-preview-text]")).to_have_text("<script>alert(1)</script>\n")
    expect(page.locator("main img, main script")).to_have_count(0)

    page.goto(ui.base + ui_path(ui.scenario.clean) + "?tab=card")
    expect(page.locator("article[data-card] h1")).to_have_text("clean")
    expect(page.locator("dl.card-fields")).to_contain_text("apache-2.0")
    assert dialogs == []
