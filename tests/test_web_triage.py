"""The checkpoint page's headline and checks (issue 20 item 2) and triage per finding in the
web UI (item 3, ADR 0025), over real HTTP (uvicorn on 127.0.0.1, httpx) on the web scenario
of tests/web_helpers.py. The browser flow is in tests/test_web_browser.py."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from registry.client.remote import RemoteRegistry
from registry.db.engine import unit_of_work
from registry.db.models import AuditEvent, FindingState, FindingTriage
from registry.errors import InputError, RegistryError
from registry.requests import AuditQuery
from registry.views import FindingView
from tests import test_web
from tests.test_web import Site, csrf_of
from tests.web_helpers import ui_path

site = test_web.site  # the web scenario's fixture, served on 127.0.0.1


def text_of(fragment: str) -> str:
    """The visible text of an HTML fragment (tags dropped, entities decoded, spaces folded)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def headline(page: str, env: str) -> str:
    match = re.search(rf'<p class="h-[a-z]+" data-env="{env}"[^>]*>(.*?)</p>', page, re.S)
    assert match is not None, f"no headline for {env}"
    return text_of(match.group(1))


def section(page: str, env: str) -> str:
    match = re.search(rf'<section class="decision" data-env="{env}">(.*?)</section>', page, re.S)
    assert match is not None
    return match.group(1)


def pickle_finding(site: Site) -> FindingView:
    [finding] = [f for f in site.registry.finding_list(site.scenario.pickled) if f.blocking]
    return finding


def test_every_checkpoint_page_opens_with_the_deciding_cause_per_environment(
    site: Site,
) -> None:
    reader = site.signed_in("reader")
    page = reader.get(ui_path(site.scenario.pickled)).text
    for env in ("dev", "staging", "prod"):
        assert headline(page, env) == (
            f'Denied in {env}: pytorch_model.bin calls os.system("true") '
            "(critical, pickle scanner) evidence"
        ) or headline(page, env).startswith(
            f'Denied in {env}: pytorch_model.bin calls os.system("true") (critical, pickle '
            "scanner); "
        )
    # The evidence is on the first screen (the default tab), before any click.
    fid = pickle_finding(site).id
    assert f'id="{fid}"' in page
    assert "&#34;global&#34;: &#34;os.system&#34;" in page or '"global": "os.system"' in page

    clean = reader.get(ui_path(site.scenario.clean)).text
    decision = site.registry.policy_check(site.scenario.clean, "prod")
    assert headline(clean, "prod") == f"Allowed in prod: all {len(decision.checks)} checks pass"

    proprietary = reader.get(ui_path(site.scenario.proprietary)).text
    assert headline(proprietary, "prod") == (
        "Denied in prod: license proprietary is not in the allowed list (License allowed)"
    )
    site.registry.as_actor("token:security-token").quarantine(site.scenario.proprietary, "leak")
    held = reader.get(ui_path(site.scenario.proprietary)).text
    assert headline(held, "dev") == "Denied in dev: quarantined by token:security-token: leak"
    prod = section(proprietary, "prod")
    failing, folded = prod.split("<details", 1)
    # Failing checks first, by title, the raw id on hover; passing ones folded below.
    assert '<tr class="c-fail" data-check="licenses">' in failing
    assert '<span class="check" title="licenses">License allowed</span>' in failing
    assert "c-pass" not in failing
    assert 'title="scans.pickle">Scanned by pickle</span>' in folded
    assert "c-fail" not in folded


def test_triage_state_is_shown_on_the_checkpoint_and_findings_pages_and_over_v1(
    site: Site,
) -> None:
    finding = pickle_finding(site)
    security = site.signed_in("security")
    path = ui_path(site.scenario.pickled)
    page = security.get(path)
    assert f'data-finding="{finding.id}" data-state="new"' in page.text
    assigned = security.post(
        f"/ui/findings/{finding.id}/assign",
        data={"csrf": csrf_of(page.text), "assignee": "alice@example.org", "next": path},
    )
    assert assigned.status_code == 303
    assert assigned.headers["location"] == f"{path}?done=finding-assigned"
    confirmed = security.post(
        f"/ui/findings/{finding.id}/confirm", data={"csrf": csrf_of(page.text), "next": path}
    )
    assert confirmed.status_code == 303

    page = security.get(path + "?tab=scans")
    assert f'data-finding="{finding.id}" data-state="confirmed"' in page.text
    assert "confirmed by token:security-token" in page.text
    assert "<span data-assignee>alice@example.org</span>" in page.text
    listing = security.get("/ui/findings", params={"scanner": "pickle"}).text
    row = listing.split(f'<tr data-finding="{finding.id}">', 1)[1].split("</tr>", 1)[0]
    assert 'data-triage-state="confirmed"' in row
    assert "alice@example.org" in row
    token = site.scenario.tokens["reader"]
    digest = site.scenario.pickled.split("@")[1]
    api = httpx.get(
        f"{site.base}/v1/checkpoints/acme/pickled-llm/{digest}/findings",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 200, api.text
    [shown] = [f for f in api.json()["findings"] if f["id"] == finding.id]
    assert shown["state"] == "confirmed"
    assert shown["confirmed_by"] == "token:security-token"
    assert shown["assignee"] == "alice@example.org"
    actions = [
        e.action
        for e in site.registry.audit_log(AuditQuery(action="finding.", limit=1000))
        if e.subject == f"finding {finding.id}"
    ]
    assert actions.count("finding.assign") == 1
    assert actions.count("finding.confirm") == 1


def _actions(fid: str) -> list[tuple[str, dict[str, str]]]:
    expires = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    return [
        (f"/ui/findings/{fid}/confirm", {}),
        (f"/ui/findings/{fid}/confirm", {"withdraw": "1"}),
        (f"/ui/findings/{fid}/false-positive", {"reason": "r", "expires": expires}),
        ("/ui/findings/triage/{request}/approve", {}),
        (f"/ui/findings/{fid}/assign", {"assignee": "mallory"}),
    ]


def _triage_rows(site: Site) -> tuple[int, int, int]:
    with unit_of_work(site.registry.sessions) as s:
        return (
            s.scalar(select(func.count()).select_from(FindingTriage)) or 0,
            s.scalar(select(func.count()).select_from(FindingState)) or 0,
            s.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action.like("finding.%"))
            )
            or 0,
        )


@pytest.mark.parametrize("role", ["reader", "publisher"])
def test_every_triage_action_is_refused_for_a_role_that_may_not_and_without_csrf(
    site: Site, role: str
) -> None:
    fid = pickle_finding(site).id
    # A pending request to approve, made by a security token through the service.
    pending = site.registry.as_actor("token:security-2").finding_triage(
        fid,
        decision="false-positive",
        reason="the pickle is a test fixture",
        expires_at=datetime.now(UTC) + timedelta(days=5),
    )
    before = _triage_rows(site)
    path = ui_path(site.scenario.pickled)
    weak = site.signed_in(role)
    weak_page = weak.get(path).text
    assert 'data-action="confirm"' not in weak_page  # a courtesy; the 403 is the control
    assert 'data-action="assign"' not in weak_page
    security = site.signed_in("security")
    strong_page = security.get(path).text
    assert 'data-action="confirm"' in strong_page
    assert f"/ui/findings/triage/{pending.id}/approve" in strong_page
    for template, fields in _actions(fid):
        url = template.replace("{request}", str(pending.id))
        forged = weak.post(url, data={"csrf": csrf_of(weak_page), "next": path, **fields})
        assert forged.status_code == 403, url
        assert f"has role {role}" in forged.text
        for csrf in ("", "0" * 43, csrf_of(weak_page)):  # none, wrong, another session's
            no_csrf = security.post(url, data={"csrf": csrf, "next": path, **fields})
            assert no_csrf.status_code == 403, url
            assert "CSRF token is missing or wrong" in no_csrf.text
    assert _triage_rows(site) == before
    [row] = site.registry.triage_list(finding_id=fid)
    assert row.status == "pending"


def test_ui_false_positive_needs_a_second_person_and_confirming_ends_it(site: Site) -> None:
    fid = pickle_finding(site).id
    path = ui_path(site.scenario.pickled)
    first = site.signed_in("security")
    page = first.get(path).text
    assert headline(page, "dev").startswith("Denied in dev: pytorch_model.bin calls")
    expires = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    asked = first.post(
        f"/ui/findings/{fid}/false-positive",
        data={
            "csrf": csrf_of(page),
            "reason": "vendor test pickle",
            "expires": expires,
            "next": path + "?tab=scans",
        },
    )
    assert asked.status_code == 303
    assert asked.headers["location"] == f"{path}?tab=scans&done=finding-fp-requested"
    [pending] = site.registry.triage_list(finding_id=fid)
    own = first.post(
        f"/ui/findings/triage/{pending.id}/approve", data={"csrf": csrf_of(page), "next": path}
    )
    assert own.status_code == 403  # the requester may not approve it
    assert "a second person must approve it" in own.text

    second = site.signed_in("security2")
    page2 = second.get(path).text
    assert 'data-state="false-positive-requested"' in page2
    approved = second.post(
        f"/ui/findings/triage/{pending.id}/approve", data={"csrf": csrf_of(page2), "next": path}
    )
    assert approved.status_code == 303
    page2 = second.get(path).text
    assert 'data-state="false-positive"' in page2
    assert headline(page2, "dev").startswith("Allowed in dev with")  # warn mode: warnings
    assert headline(page2, "prod").startswith("Denied in prod: ")  # other checks still fail
    # The pickle scan's verdict still fails scans.pickle there: said so, not the triaged finding.
    assert headline(page2, "prod") == (
        "Denied in prod: pickle scan: verdict malicious (Scanned by pickle); 1 more failing check"
    )

    # Confirming loosens nothing: it ends the approved false positive, and none can be asked.
    confirmed = second.post(
        f"/ui/findings/{fid}/confirm", data={"csrf": csrf_of(page2), "next": path}
    )
    assert confirmed.status_code == 303
    page3 = second.get(path).text
    assert headline(page3, "dev").startswith("Denied in dev: pytorch_model.bin calls")
    [ended] = site.registry.triage_list(finding_id=fid)
    assert ended.status == "revoked"
    assert ended.revoked_by == "token:security-2"
    again = second.post(
        f"/ui/findings/{fid}/false-positive",
        data={"csrf": csrf_of(page3), "reason": "r", "expires": expires, "next": path},
    )
    assert again.status_code == 400
    assert "withdraw the confirmation first" in again.text


def test_ui_assign_refuses_a_name_that_is_not_a_user(site: Site) -> None:
    fid = pickle_finding(site).id
    security = site.signed_in("security")
    path = ui_path(site.scenario.pickled)
    page = security.get(path).text
    bad = security.post(
        f"/ui/findings/{fid}/assign",
        data={"csrf": csrf_of(page), "assignee": "<script>x</script>", "next": path},
    )
    assert bad.status_code == 400
    assert "is not a user name" in bad.text
    assert "<script>x</script>" not in bad.text
    off_site = security.post(
        f"/ui/findings/{fid}/assign",
        data={"csrf": csrf_of(page), "assignee": "bob", "next": "https://evil.example/"},
    )
    assert off_site.status_code == 303
    assert off_site.headers["location"] == "/?done=finding-assigned"  # never another origin


def test_confirm_and_assign_over_v1_and_the_remote_client_need_the_security_role(
    site: Site,
) -> None:
    fid = pickle_finding(site).id
    reader = RemoteRegistry(site.base, token=site.scenario.tokens["reader"])
    security = RemoteRegistry(site.base, token=site.scenario.tokens["security"])
    try:
        for attempt in (
            lambda: reader.finding_confirm(fid),
            lambda: reader.finding_assign(fid, "bob"),
        ):
            with pytest.raises(RegistryError) as refused:
                attempt()
            assert "security" in str(refused.value)
        with pytest.raises(InputError):  # checked before any request, as embedded does
            security.finding_assign("fnd-nothex", "bob")
        view = security.finding_assign(fid, "bob@example.org")
        assert (view.finding_id, view.assignee, view.state) == (fid, "bob@example.org", "new")
        assert view.assigned_by == "token:security-token"
        view = security.finding_confirm(fid, reason="seen it run")
        assert (view.state, view.confirmed_by) == ("confirmed", "token:security-token")
        [listed] = [f for f in reader.finding_list(site.scenario.pickled) if f.id == fid]
        assert (listed.state, listed.assignee) == ("confirmed", "bob@example.org")
        view = security.finding_confirm(fid, withdraw=True)
        assert view.state == "new"
        assert security.finding_assign(fid, None).assignee is None
    finally:
        reader.close()
        security.close()
