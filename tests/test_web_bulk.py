"""Bulk actions and saved searches over real HTTP (uvicorn on 127.0.0.1, httpx), on the web
scenario of tests/web_helpers.py: filter -> preview -> confirm, the binding of the previewed
digests, roles, CSRF, the audit entries, the /v1 endpoint, and saved searches."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from sqlalchemy import select

from registry.db.engine import unit_of_work
from registry.db.models import AuditEvent, Job
from registry.progress import NoProgress
from registry.requests import MirrorRequest
from tests.test_web import Site, csrf_of, site  # noqa: F401 - `site` is the fixture
from tests.web_helpers import safetensors_bytes

SVG = "{http://www.w3.org/2000/svg}"


def _refs(html: str) -> list[str]:
    match = re.search(r'name="refs" value="([^"]*)"', html)
    assert match is not None, "no confirmation form on the preview"
    return match.group(1).split()


def _audit(where: Site, action: str) -> list[AuditEvent]:
    with unit_of_work(where.registry.sessions) as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        s.expunge_all()
        return rows


def _quarantined(where: Site, ref: str) -> bool:
    return where.registry.inspect(ref).quarantine is not None


def _add_clean(where: Site, tmp_path: Path, name: str) -> str:
    folder = tmp_path / name.replace("/", "_")
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(safetensors_bytes(99))
    result = where.registry.mirror(
        MirrorRequest(source=str(folder), name=name), progress=NoProgress()
    )
    return result.checkpoint.ref


def test_bulk_quarantine_acts_on_exactly_the_previewed_digests(
    site: Site,  # noqa: F811
    tmp_path: Path,
) -> None:
    security = site.signed_in("security")
    query = {"action": "quarantine", "q": "clean-llm"}
    preview = security.get("/ui/bulk", params=query)
    assert preview.status_code == 200
    refs = _refs(preview.text)
    assert sorted(refs) == sorted([site.scenario.clean, site.scenario.clean_v1])
    assert "2 checkpoints selected, 2 would change" in preview.text
    # A checkpoint that the filter selects appears between the preview and the confirmation.
    late = _add_clean(site, tmp_path, "acme/clean-llm-late")
    before = len(_audit(site, "checkpoint.quarantine"))
    done = security.post(
        "/ui/bulk",
        data={
            "csrf": csrf_of(preview.text),
            "action": "quarantine",
            "q": "clean-llm",
            "refs": " ".join(refs),
            "reason": "compromised upstream org",
        },
    )
    assert done.status_code == 200, done.text
    assert done.text.count('data-result="quarantined"') == 2
    assert late in done.text  # reported as left alone
    assert _quarantined(site, site.scenario.clean)
    assert _quarantined(site, site.scenario.clean_v1)
    assert not _quarantined(site, late)  # never shown, never touched
    assert not _quarantined(site, site.scenario.pickled)
    events = _audit(site, "checkpoint.quarantine")[before:]
    assert sorted(e.subject for e in events) == sorted(refs)  # one audit entry per item
    assert {e.actor for e in events} == {"token:security-token"}
    assert {e.details["reason"] for e in events} == {"compromised upstream org"}
    # A second preview says there is nothing left to change for those two.
    again = security.get("/ui/bulk", params=query)
    assert again.text.count("already quarantined: no change") == 2


def test_bulk_actions_need_the_role_and_the_csrf_token(site: Site) -> None:  # noqa: F811
    reader = site.signed_in("reader")
    preview = reader.get("/ui/bulk", params={"action": "quarantine", "verdict": "malicious"})
    assert preview.status_code == 200  # a preview is a read
    assert 'id="bulk-confirm"' not in preview.text
    assert "Your role may not quarantine" in preview.text
    form = {
        "action": "quarantine",
        "verdict": "malicious",
        "refs": site.scenario.pickled,
        "reason": "x",
    }
    csrf = csrf_of(reader.get("/ui/models").text)
    assert reader.post("/ui/bulk", data={**form, "csrf": csrf}).status_code == 403
    publisher = site.signed_in("publisher")
    csrf = csrf_of(publisher.get("/ui/models").text)
    refused = publisher.post("/ui/bulk", data={**form, "csrf": csrf})
    assert refused.status_code == 403
    assert "this needs security" in refused.text
    security = site.signed_in("security")
    missing = security.post("/ui/bulk", data=form)
    assert missing.status_code == 403
    assert "CSRF" in missing.text
    assert not _quarantined(site, site.scenario.pickled)
    empty = security.get("/ui/bulk", params={"action": "quarantine"})
    assert empty.status_code == 400  # never everything in one click
    assert "at least one filter" in empty.text
    unknown = security.get("/ui/bulk", params={"action": "delete", "org": "acme"})
    assert unknown.status_code == 400


def test_bulk_rescan_queues_one_job_per_checkpoint_and_is_idempotent(
    site: Site,  # noqa: F811
) -> None:
    finding = site.registry.finding_list(site.scenario.pickled)[0]
    publisher = site.signed_in("publisher")
    query = {"action": "rescan", "org": "acme", "rule": finding.rule}
    preview = publisher.get("/ui/bulk", params=query)
    assert preview.status_code == 200
    assert _refs(preview.text) == [site.scenario.pickled]  # the rule narrows acme to one
    done = publisher.post(
        "/ui/bulk",
        data={
            **query,
            "csrf": csrf_of(preview.text),
            "refs": site.scenario.pickled,
        },
    )
    assert done.status_code == 200
    assert 'data-result="queued"' in done.text
    with unit_of_work(site.registry.sessions) as s:
        jobs = [j.params for j in s.scalars(select(Job).where(Job.kind == "scan"))]
    assert jobs == [{"ref": site.scenario.pickled}]
    events = _audit(site, "scan.rescan")
    assert [(e.subject, e.details["bulk"]) for e in events] == [(site.scenario.pickled, True)]
    again = publisher.get("/ui/bulk", params=query)
    assert "a scan is already queued: no change" in again.text
    assert 'id="bulk-confirm"' not in again.text  # nothing would change


def test_bulk_decide_records_one_entry_per_checkpoint(site: Site) -> None:  # noqa: F811
    reader = site.signed_in("reader")
    query = {"action": "decide", "env": "prod", "decision": "denied"}
    preview = reader.get("/ui/bulk", params=query)
    refs = _refs(preview.text)
    assert site.scenario.pickled in refs
    assert site.scenario.proprietary in refs
    assert site.scenario.clean not in refs
    done = reader.post(
        "/ui/bulk", data={**query, "csrf": csrf_of(preview.text), "refs": " ".join(refs)}
    )
    assert done.status_code == 200
    events = _audit(site, "checkpoint.redecide")
    assert sorted(e.subject for e in events) == sorted(refs)
    pickled = next(e for e in events if e.subject == site.scenario.pickled)
    assert pickled.details["allowed"]["prod"] is False


def test_bulk_over_the_api_previews_then_binds_refs(site: Site) -> None:  # noqa: F811
    api = site.client()
    auth = {"Authorization": f"Bearer {site.scenario.tokens['security']}"}
    body = {"filter": {"verdict": "malicious"}}
    dry = api.post("/v1/bulk/quarantine", json=body, headers=auth)
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert [i["ref"] for i in dry.json()["items"]] == [site.scenario.pickled]
    assert not _quarantined(site, site.scenario.pickled)
    reader = {"Authorization": f"Bearer {site.scenario.tokens['reader']}"}
    refused = api.post(
        "/v1/bulk/quarantine",
        json={**body, "dry_run": False, "reason": "x", "refs": [site.scenario.pickled]},
        headers=reader,
    )
    assert refused.status_code == 403
    bad = api.post("/v1/bulk/quarantine", json={"filter": {"owner": "x"}}, headers=auth)
    assert bad.status_code == 400
    stale = "acme/pickled-llm@sha256:" + "0" * 64  # bound, but the filter never selects it
    done = api.post(
        "/v1/bulk/quarantine",
        json={
            **body,
            "dry_run": False,
            "reason": "malware",
            "refs": [site.scenario.pickled, stale],
        },
        headers=auth,
    )
    assert done.status_code == 200, done.text
    out = done.json()
    assert [(o["ref"], o["result"]) for o in out["outcomes"]] == [
        (site.scenario.pickled, "quarantined")
    ]
    assert out["gone"] == [stale]
    assert _quarantined(site, site.scenario.pickled)


def test_saved_searches_are_private_listed_and_deleted(site: Site) -> None:  # noqa: F811
    security = site.signed_in("security")
    page = security.get("/ui/models", params={"env": "prod", "decision": "denied"})
    assert 'id="save-search"' in page.text
    saved = security.post(
        "/ui/searches",
        data={
            "csrf": csrf_of(page.text),
            "name": "denied in prod",
            "query": "env=prod&decision=denied&page=3&evil=1",
        },
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/ui/models?decision=denied&env=prod"  # known keys only
    listed = security.get("/ui/models")
    assert 'data-search="denied in prod"' in listed.text
    assert 'href="/ui/models?decision=denied&amp;env=prod"' in listed.text
    # Another principal sees none of it and cannot delete it.
    other = site.signed_in("security2")
    other_page = other.get("/ui/models")
    assert "denied in prod" not in other_page.text
    search_id = re.search(r'action="/ui/searches/(\d+)/delete"', listed.text)
    assert search_id is not None
    url = f"/ui/searches/{search_id.group(1)}/delete"
    assert other.post(url, data={"csrf": csrf_of(other_page.text)}).status_code == 404
    assert security.post(url, data={"csrf": ""}).status_code == 403
    assert "denied in prod" in security.get("/ui/models").text
    gone = security.post(url, data={"csrf": csrf_of(listed.text)})
    assert gone.status_code == 303
    assert "denied in prod" not in security.get("/ui/models").text
    nothing = security.post(
        "/ui/searches", data={"csrf": csrf_of(listed.text), "name": "x", "query": "page=2"}
    )
    assert nothing.status_code == 400


def test_trends_page_draws_parseable_svg_charts(site: Site) -> None:  # noqa: F811
    reader = site.signed_in("reader")
    page = reader.get("/ui/trends")
    assert page.status_code == 200
    assert 'href="/ui/trends" aria-current="page"' in page.text
    svgs = re.findall(r"<svg .*?</svg>", page.text, flags=re.S)
    assert len(svgs) == 3 + 3  # findings, quarantine, exceptions, one per environment
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.find(f"{SVG}title") is not None
    # The scenario's decisions were recorded this week: the prod chart counts them.
    prod = next(s for s in svgs if 'id="chart-decisions-prod"' in s)
    denied = [
        float(r.get("data-value", "0"))
        for r in ET.fromstring(prod).iter(f"{SVG}rect")
        if r.get("data-series") == "denied"
    ]
    assert sum(denied) >= 2  # pickled and proprietary, at least
    assert "<script" not in page.text
    assert reader.get("/ui/trends", params={"weeks": "0"}).status_code == 400
    # The overview carries the small one, findings by severity.
    overview = reader.get("/")
    small = re.findall(r"<svg .*?</svg>", overview.text, flags=re.S)
    assert len(small) == 1
    critical = [
        r.get("data-value")
        for r in ET.fromstring(small[0]).iter(f"{SVG}rect")
        if r.get("data-series") == "critical"
    ]
    assert critical == ["1"]  # the pickle scan, this week
