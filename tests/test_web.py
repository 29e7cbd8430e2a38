"""The web UI over real HTTP (uvicorn on 127.0.0.1, httpx): sessions, CSRF, roles, escaping,
exports and the evidence bundle. The browser flows are in tests/test_web_browser.py."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from registry.db.engine import unit_of_work
from registry.db.models import AuditEvent, Checkpoint, Model, Scan
from registry.embedded import EmbeddedRegistry
from registry.progress import NoProgress
from registry.requests import AuditQuery, MirrorRequest
from registry.service import tokens
from registry.service.scan import report_max_severity
from registry.settings import Settings
from registry.web import session as websession
from tests.fakes.hfhub import FakeHub
from tests.web_helpers import XSS_NAME, Scenario, card, safetensors_bytes, seed, serve, ui_path


@dataclass
class Site:
    base: str
    scenario: Scenario
    registry: EmbeddedRegistry
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self) -> httpx.Client:
        client = httpx.Client(base_url=self.base, follow_redirects=False, timeout=30)
        self.clients.append(client)
        return client

    def signed_in(self, role: str) -> httpx.Client:
        client = self.client()
        sign_in(client, self.scenario.tokens[role])
        return client


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        settings = Settings.from_env()
        registry = EmbeddedRegistry(settings)
        try:
            scenario = seed(registry, hub, tmp_path / "work")
            with serve(settings, registry) as base:
                site = Site(base, scenario, registry)
                try:
                    yield site
                finally:
                    for client in site.clients:
                        client.close()
        finally:
            registry.close()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None, "no CSRF field on the page"
    return match.group(1)


def sign_in(client: httpx.Client, token: str) -> httpx.Response:
    form = client.get("/ui/login")
    assert form.status_code == 200
    return client.post(
        "/ui/login", data={"csrf": csrf_of(form.text), "token": token, "next": "/ui/models"}
    )


def test_pages_need_a_session_and_sign_in_sets_a_hardened_cookie(site: Site) -> None:
    client = site.client()
    response = client.get("/ui/models?q=clean")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fmodels%3Fq%3Dclean"
    bad = sign_in(client, "mctl_0000000000000000_" + "A" * 43)
    assert bad.status_code == 401
    assert "unknown, revoked or expired" in bad.text
    assert websession.SESSION_COOKIE not in bad.headers.get("set-cookie", "")
    good = sign_in(client, site.scenario.tokens["reader"])
    assert good.status_code == 303
    assert good.headers["location"] == "/ui/models"
    cookie = next(
        c for c in good.headers.get_list("set-cookie") if c.startswith(websession.SESSION_COOKIE)
    )
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "samesite"} <= attrs
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in attrs  # plain HTTP on 127.0.0.1; HTTPS or the setting adds it
    assert site.scenario.tokens["reader"] not in cookie  # the token never goes in the cookie
    page = client.get("/ui/models")
    assert page.status_code == 200
    assert "acme/clean-llm" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_a_token_sessions_copied_cookie_dies_with_the_sign_out_and_admins_end_sessions(
    site: Site,
) -> None:
    reader = site.signed_in("reader")
    copy = site.client()
    copy.cookies.set(websession.SESSION_COOKIE, reader.cookies[websession.SESSION_COOKIE])
    page = reader.get("/ui/models")
    assert copy.get("/ui/models").status_code == 200
    assert reader.post("/ui/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
    assert copy.get("/ui/models").status_code == 303  # to the sign-in page

    publisher = site.signed_in("publisher")
    assert publisher.get("/ui/models").status_code == 200
    admin = site.signed_in("admin")
    admin_page = admin.get("/ui/admin")
    assert "Browser sessions" in admin_page.text
    ended = admin.post(
        "/ui/admin/sessions/end",
        data={"csrf": csrf_of(admin_page.text), "principal": "token:publisher-token"},
    )
    assert ended.status_code == 303
    assert publisher.get("/ui/models").status_code == 303
    assert admin.get("/ui/models").status_code == 200
    refused = admin.post(
        "/ui/admin/sessions/end", data={"csrf": csrf_of(admin_page.text), "principal": " "}
    )
    assert refused.status_code == 400


def test_secure_cookie_setting(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a TLS-terminating proxy: every cookie is Secure (so plain HTTP cannot sign in)."""
    monkeypatch.setenv("MODELCTL_WEB_SECURE_COOKIES", "1")
    client = site.client()
    form = client.get("/ui/login")
    cookie = form.headers["set-cookie"]
    assert cookie.startswith(websession.PRESESSION_COOKIE)
    assert "secure" in {a.strip().lower() for a in cookie.split(";")}
    # httpx, like a browser, does not send a Secure cookie over http: no sign-in here.
    response = client.post(
        "/ui/login", data={"csrf": csrf_of(form.text), "token": site.scenario.tokens["reader"]}
    )
    assert response.status_code == 403


def test_sign_in_form_needs_its_csrf_token(site: Site) -> None:
    client = site.client()
    client.get("/ui/login")
    response = client.post(
        "/ui/login", data={"csrf": "forged", "token": site.scenario.tokens["admin"]}
    )
    assert response.status_code == 403
    assert websession.SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_tampered_or_foreign_session_cookie_is_not_a_session(site: Site) -> None:
    client = site.signed_in("reader")
    cookie = client.cookies[websession.SESSION_COOKIE]
    body, mac = cookie.split(".")
    forged = json.loads(websession._unb64(body))
    forged["t"] = forged["t"] + 3  # another token's row id (admin)
    forged_cookie = websession._b64(json.dumps(forged).encode()) + "." + mac
    other = site.client()
    other.cookies.set(websession.SESSION_COOKIE, forged_cookie)
    assert other.get("/ui/models").status_code == 303  # back to sign-in


def test_revoking_the_token_ends_the_session(site: Site) -> None:
    client = site.signed_in("publisher")
    assert client.get("/ui/models").status_code == 200
    with unit_of_work(site.registry.sessions) as session:
        tokens.revoke(session, "publisher-token", actor="test")
    assert client.get("/ui/models").status_code == 303


def test_reader_sees_no_action_buttons_and_forged_posts_are_refused(site: Site) -> None:
    reader = site.signed_in("reader")
    path = ui_path(site.scenario.clean)
    page = reader.get(path)
    assert page.status_code == 200
    for action in ("quarantine", "release", "rescan"):
        assert f'data-action="{action}"' not in page.text
        assert f'action="{path}/{action}"' not in page.text
    # The reader has a valid session and CSRF token: the role check alone must refuse.
    csrf = csrf_of(page.text)
    forged = reader.post(f"{path}/quarantine", data={"csrf": csrf, "reason": "forged"})
    assert forged.status_code == 403
    assert "has role reader" in forged.text
    assert reader.post(f"{path}/rescan", data={"csrf": csrf}).status_code == 403
    assert reader.get("/ui/audit").status_code == 403
    assert reader.get("/ui/audit.csv").status_code == 403
    assert reader.get("/ui/admin").status_code == 403
    view = site.registry.inspect(site.scenario.clean)
    assert view.quarantine is None  # nothing happened


def test_actions_need_the_sessions_csrf_token(site: Site) -> None:
    security = site.signed_in("security")
    path = ui_path(site.scenario.clean)
    missing = security.post(f"{path}/quarantine", data={"reason": "no token"})
    assert missing.status_code == 403
    other = site.signed_in("security2")
    other_csrf = csrf_of(other.get(path).text)
    stolen = security.post(f"{path}/quarantine", data={"csrf": other_csrf, "reason": "x"})
    assert stolen.status_code == 403  # a token from another session is no good here
    as_json = security.post(f"{path}/quarantine", json={"csrf": "x", "reason": "x"})
    assert as_json.status_code == 415
    assert site.registry.inspect(site.scenario.clean).quarantine is None
    ok = security.post(
        f"{path}/quarantine", data={"csrf": csrf_of(security.get(path).text), "reason": "test"}
    )
    assert ok.status_code == 303
    assert site.registry.inspect(site.scenario.clean).quarantine is not None


def test_attacker_controlled_names_render_inert(site: Site) -> None:
    client = site.signed_in("reader")
    page = client.get(ui_path(site.scenario.xss) + "?tab=files")
    assert page.status_code == 200
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in page.text
    assert "<img src=x" not in page.text
    search = client.get("/ui/models", params={"q": '"><script>alert(1)</script>'})
    assert search.status_code == 200
    assert "<script>alert(1)</script>" not in search.text
    assert "&lt;script&gt;" in search.text
    assert XSS_NAME not in page.text


def test_models_search_filters_and_badges(site: Site) -> None:
    client = site.signed_in("reader")
    denied = client.get("/ui/models", params={"env": "prod", "decision": "denied"})
    assert denied.status_code == 200
    assert "acme/pickled-llm" in denied.text
    assert "acme/clean-llm@" not in denied.text
    allowed = client.get("/ui/models", params={"env": "prod", "decision": "allowed"})
    assert "acme/clean-llm" in allowed.text
    assert "acme/pickled-llm" not in allowed.text
    malicious = client.get("/ui/models", params={"verdict": "malicious"})
    assert "acme/pickled-llm" in malicious.text
    assert "1 checkpoint</p>" in malicious.text
    local = client.get("/ui/models", params={"source": "local"})
    assert "acme/xss-llm" in local.text
    assert "acme/clean-llm" not in local.text
    bins = client.get("/ui/models", params={"format": "bin"})
    assert "acme/pickled-llm" in bins.text
    assert "acme/proprietary-llm" not in bins.text
    bad = client.get("/ui/models", params={"sort": "'; drop table"})
    assert bad.status_code == 400
    wildcard = client.get("/ui/models", params={"q": "%"})
    assert "0 checkpoints" in wildcard.text  # LIKE wildcards are literal


def _model_names(html: str) -> set[str]:
    return set(re.findall(r'href="/ui/m/(acme/[a-z-]+)/', html))


def test_models_license_and_severity_filters(site: Site, tmp_path: Path) -> None:
    # A model with no card at all: its license is "unknown"; its scans found nothing.
    folder = tmp_path / "nocard"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(safetensors_bytes(9))
    site.registry.mirror(
        MirrorRequest(source=str(folder), name="acme/nocard-llm"), progress=NoProgress()
    )
    with unit_of_work(site.registry.sessions) as s:
        recorded = dict(
            s.execute(
                select(Model.name, Checkpoint.license).join(
                    Checkpoint, Checkpoint.model_id == Model.id
                )
            ).all()
        )
        worst = {
            (name, sev)
            for name, sev in s.execute(
                select(Model.name, Scan.max_severity)
                .join(Checkpoint, Checkpoint.model_id == Model.id)
                .join(Scan, Scan.checkpoint_id == Checkpoint.id)
            )
            if sev is not None
        }
    assert recorded["xss-llm"] == "mit"  # read from README.md when mirrored
    assert recorded["nocard-llm"] == "unknown"
    assert recorded["clean-llm"] == "apache-2.0"
    assert worst == {("pickled-llm", "critical")}  # the os.system pickle; the rest is clean

    client = site.signed_in("reader")
    page = client.get("/ui/models")
    options = re.findall(
        r'<option value="([^"]*)"', page.text.split('name="license"')[1].split("</select>")[0]
    )
    assert options == ["", "apache-2.0", "mit", "proprietary", "unknown"]
    assert "(not recorded)" not in options  # every checkpoint here has its license recorded
    assert '<span class="license">mit</span>' in page.text

    mit = client.get("/ui/models", params={"license": "mit"})
    assert _model_names(mit.text) == {"acme/xss-llm"}
    unknown = client.get("/ui/models", params={"license": "unknown"})
    assert _model_names(unknown.text) == {"acme/nocard-llm"}
    assert '<span class="license unknown"' in unknown.text
    assert "0 checkpoints" in client.get("/ui/models", params={"license": "gpl-3.0"}).text

    high = client.get("/ui/models", params={"severity": "high"})
    assert _model_names(high.text) == {"acme/pickled-llm"}
    assert "1 checkpoint</p>" in high.text
    info = client.get("/ui/models", params={"severity": "info"})
    assert _model_names(info.text) == {"acme/pickled-llm"}
    both = client.get("/ui/models", params={"severity": "high", "license": "unknown"})
    assert "0 checkpoints" in both.text
    bad = client.get("/ui/models", params={"severity": "severe"})
    assert bad.status_code == 400

    # A newer clean scan of the pickled checkpoint by the same scanner closes its findings.
    with unit_of_work(site.registry.sessions) as s:
        newest = s.scalars(
            select(Scan).where(Scan.max_severity == "critical").order_by(Scan.id.desc()).limit(1)
        ).one()
        s.add(
            Scan(
                checkpoint_id=newest.checkpoint_id,
                scanner_id=newest.scanner_id,
                scanner_version=newest.scanner_version,
                ruleset_version=newest.ruleset_version,
                verdict="clean",
                report={"files": []},
                max_severity=None,
                started_at=newest.started_at,
                finished_at=newest.finished_at,
            )
        )
    # ... and a low finding recorded for another is at or above low, not at or above high.
    with unit_of_work(site.registry.sessions) as s:
        proprietary = s.scalars(
            select(Checkpoint.id).join(Model).where(Model.name == "proprietary-llm")
        ).one()
        report = {"files": [{"path": "README.md", "findings": [{"severity": "low"}]}]}
        s.add(
            Scan(
                checkpoint_id=proprietary,
                scanner_id="card-lint",
                scanner_version="1",
                ruleset_version="1",
                verdict="suspicious",
                report=report,
                max_severity=report_max_severity(report),
                started_at=newest.started_at,
                finished_at=newest.finished_at,
            )
        )
    assert "0 checkpoints" in client.get("/ui/models", params={"severity": "high"}).text
    low = client.get("/ui/models", params={"severity": "low"})
    assert _model_names(low.text) == {"acme/proprietary-llm"}

    # A checkpoint recorded before migration 0009 has no license yet: shown and filterable
    # as not recorded, and recorded from its card when it is next decided.
    with unit_of_work(site.registry.sessions) as s:
        s.execute(
            update(Checkpoint)
            .where(
                Checkpoint.model_id
                == select(Model.id).where(Model.name == "xss-llm").scalar_subquery()
            )
            .values(license=None)
        )
    page = client.get("/ui/models", params={"license": "(not recorded)"})
    assert _model_names(page.text) == {"acme/xss-llm"}
    assert "not recorded</span>" in page.text
    site.registry.policy_check(site.scenario.xss, "prod")
    assert _model_names(client.get("/ui/models", params={"license": "mit"}).text) == {
        "acme/xss-llm"
    }
    assert "0 checkpoints" in client.get("/ui/models", params={"license": "(not recorded)"}).text


def test_audit_export_csv_and_json_follow_the_filters(site: Site) -> None:
    security = site.signed_in("security")
    path = ui_path(site.scenario.pickled)
    security.post(
        f"{path}/quarantine",
        data={"csrf": csrf_of(security.get(path).text), "reason": "=HYPERLINK(evil)"},
    )
    page = security.get("/ui/audit", params={"action": "checkpoint.quarantine"})
    assert "token:security-token" in page.text
    as_csv = security.get("/ui/audit.csv", params={"action": "checkpoint.quarantine"})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(rows) == 1
    assert rows[0]["actor"] == "token:security-token"
    assert rows[0]["subject"] == site.scenario.pickled
    assert json.loads(rows[0]["details"])["reason"] == "=HYPERLINK(evil)"
    with unit_of_work(site.registry.sessions) as session:
        session.add(
            AuditEvent(actor="=cmd|' /C calc'!A0", action="x.y", subject="-1+1", details={})
        )
    hostile = list(csv.DictReader(io.StringIO(security.get("/ui/audit.csv?action=x.y").text)))
    assert hostile[0]["actor"] == "'=cmd|' /C calc'!A0"  # a formula is defused, kept readable
    assert hostile[0]["subject"] == "'-1+1"
    as_json = security.get("/ui/audit.json")
    events = as_json.json()
    assert {"checkpoint.mirror", "checkpoint.quarantine", "token.create"} <= {
        e["action"] for e in events
    }
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_evidence_bundle_holds_the_manifest_and_every_attestation_verbatim(site: Site) -> None:
    client = site.signed_in("reader")
    response = client.get(ui_path(site.scenario.clean) + "/evidence.zip")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["ref"] == site.scenario.clean
    assert {f["path"] for f in manifest["files"]} == {
        "README.md",
        "model.safetensors",
        "config.json",
    }
    view = site.registry.inspect(site.scenario.clean)
    assert len(manifest["attestations"]) == len(view.attestations) > 0
    import hashlib

    for entry in manifest["attestations"]:
        data = archive.read(entry["file"])
        assert hashlib.sha256(data).hexdigest() == entry["bundle_sha256"]
    single = client.get(ui_path(site.scenario.clean) + f"/attestations/{view.attestations[0].id}")
    assert hashlib.sha256(single.content).hexdigest() == view.attestations[0].bundle_sha256


def _in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%d")


def test_exception_needs_a_second_person_and_never_waives_signatures(site: Site) -> None:
    security = site.signed_in("security")
    path = ui_path(site.scenario.proprietary)
    csrf = csrf_of(security.get(path + "?tab=exceptions").text)
    refused = security.post(
        f"{path}/exception-request",
        data={"csrf": csrf, "waive": "attestations.x", "expires": _in_days(30), "reason": "r"},
    )
    assert refused.status_code == 400
    assert "can never be waived" in refused.text
    no_expiry = security.post(
        f"{path}/exception-request",
        data={"csrf": csrf, "waive": "licenses", "expires": "", "reason": "r"},
    )
    assert no_expiry.status_code == 400
    assert "expiry" in no_expiry.text
    asked = security.post(
        f"{path}/exception-request",
        data={"csrf": csrf, "waive": "licenses", "expires": _in_days(30), "reason": "vendor deal"},
    )
    assert asked.status_code == 303
    queue = security.get("/ui/exceptions")
    request_id = re.search(r'data-request="(\d+)"', queue.text)
    assert request_id is not None
    own = security.post(
        f"/ui/exceptions/requests/{request_id.group(1)}/approve", data={"csrf": csrf}
    )
    assert own.status_code == 403
    assert "second person" in own.text
    assert site.registry.exception_list(site.scenario.proprietary) == []
    other = site.signed_in("security2")
    other_csrf = csrf_of(other.get("/ui/exceptions").text)
    approved = other.post(
        f"/ui/exceptions/requests/{request_id.group(1)}/approve", data={"csrf": other_csrf}
    )
    assert approved.status_code == 303
    (granted,) = site.registry.exception_list(site.scenario.proprietary)
    assert (granted.requested_by, granted.approver) == ("token:security-token", "token:security-2")


def test_ui_exception_request_waives_exact_ids_within_the_policy_expiry(site: Site) -> None:
    security = site.signed_in("security")
    path = ui_path(site.scenario.proprietary)
    csrf = csrf_of(security.get(path + "?tab=exceptions").text)

    def ask(waive: str, expires: str) -> httpx.Response:
        form = {"csrf": csrf, "waive": waive, "expires": expires, "reason": "r"}
        return security.post(f"{path}/exception-request", data=form)

    wrong = ask("license", _in_days(30))
    assert wrong.status_code == 400
    assert "unknown check id &#39;license&#39;" in wrong.text
    assert "licenses" in wrong.text.split("can waive only", 1)[1]
    too_long = ask("licenses", _in_days(120))
    assert too_long.status_code == 400
    assert "at most 90 days" in too_long.text
    assert "data-request=" not in security.get("/ui/exceptions").text
    form = security.get(path + "?tab=exceptions").text
    hint = form.split("data-waivable>", 1)[1].split("</p>", 1)[0]
    assert "licenses" in hint
    assert "At most 90 days" in hint
    assert "attestations." not in hint
    assert "quarantine" not in hint


def test_ui_quarantine_binds_the_digest_and_lists_every_name(site: Site) -> None:
    copy = site.registry.mirror(
        MirrorRequest(source="hf://acme/clean-llm", name="copy/clean-llm"), progress=NoProgress()
    ).checkpoint.ref
    assert copy.split("@")[1] == site.scenario.clean.split("@")[1]
    security = site.signed_in("security")
    path = ui_path(site.scenario.clean)
    done = security.post(
        f"{path}/quarantine", data={"csrf": csrf_of(security.get(path).text), "reason": "CVE"}
    )
    assert done.status_code == 303
    page = security.get(ui_path(copy))  # the other name: quarantined too, and says by what
    assert 'data-quarantine="checkpoint"' in page.text
    assert site.scenario.clean in page.text
    assert copy in page.text
    listing = security.get("/ui/quarantines")
    assert listing.status_code == 200
    assert site.scenario.clean in listing.text
    assert copy in listing.text
    assert site.registry.inspect(copy).quarantine is not None


def test_ui_quarantine_a_file_digest_and_release_exactly_that(site: Site) -> None:
    view = site.registry.inspect(site.scenario.clean)
    config = next(f for f in view.files if f.path == "config.json")
    security = site.signed_in("security")
    csrf = csrf_of(security.get("/ui/quarantines").text)
    digest = f"sha256:{config.sha256}"
    done = security.post("/ui/quarantines", data={"csrf": csrf, "digest": digest, "reason": "bad"})
    assert done.status_code == 303
    listing = security.get("/ui/quarantines").text
    assert digest in listing
    assert site.scenario.clean in listing
    assert "config.json" in listing
    page = security.get(ui_path(site.scenario.clean)).text
    assert 'data-quarantine="file"' in page
    assert 'data-action="release"' not in page  # a file quarantine is released by its digest
    by_name = security.post(
        ui_path(site.scenario.clean) + "/release", data={"csrf": csrf, "reason": "ok"}
    )
    assert by_name.status_code == 400
    assert f"still quarantined by file {digest}" in by_name.text
    released = security.post(
        "/ui/quarantines/release", data={"csrf": csrf, "digest": digest, "reason": "ok"}
    )
    assert released.status_code == 303
    assert site.registry.inspect(site.scenario.clean).quarantine is None
    reader = site.signed_in("reader")
    forged = reader.post(
        "/ui/quarantines",
        data={"csrf": csrf_of(reader.get("/ui/quarantines").text), "digest": digest, "reason": "x"},
    )
    assert forged.status_code == 403


def test_policy_dry_run_shows_what_would_flip(site: Site) -> None:
    client = site.signed_in("reader")
    page = client.get("/ui/policies")
    assert "prod" in page.text
    candidate = page.text.split('aria-label="candidate policy YAML">')[1].split("</textarea>")[0]
    import html

    yaml_text = html.unescape(candidate).replace("apache-2.0, mit,", "mit,", 1)
    result = client.post(
        "/ui/policies/dry-run", data={"csrf": csrf_of(page.text), "policy": yaml_text}
    )
    assert result.status_code == 200
    flips = result.text.split('class="grid dry"')[1]
    assert "acme/clean-llm@" in flips  # apache-2.0 no longer allowed in prod: it flips
    broken = client.post(
        "/ui/policies/dry-run", data={"csrf": csrf_of(page.text), "policy": "kind: [nope"}
    )
    assert broken.status_code == 400


def test_read_side_queries_on_sqlite_and_postgres(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read modules (registry.service.read) are plain SQL shapes that must agree on both
    databases."""
    from datetime import UTC, datetime

    from registry.service import storage
    from registry.service.read import audit as read_audit
    from registry.service.read import checkpoint as read_checkpoint
    from registry.service.read import diff as read_diff
    from registry.service.read import findings as read_findings
    from registry.service.read import models as read_models
    from registry.service.read import overview as read_overview

    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        registry = EmbeddedRegistry(Settings.from_env())
        try:
            scenario = seed(registry, hub, tmp_path / "work")
            registry.quarantine(scenario.xss, "test")
            envs = ["dev", "staging", "prod"]
            now = datetime.now(UTC)
            live = registry.live_statuses()
            with unit_of_work(registry.sessions) as s:
                over = read_overview.overview(s, envs, now=now, live=live)
                assert over.checkpoints == 5
                assert over.quarantined == 1
                assert over.by_environment["prod"]["allowed"] == 2  # clean v1 and v2
                assert over.by_environment["prod"]["denied"] == 2
                # The malicious pickle: denied in dev's warn mode too (issue 12).
                assert over.by_environment["dev"]["denied"] >= 1
                assert over.findings_by_severity["critical"] >= 1

                def names(**kw: str) -> list[str]:
                    page = read_models.search_checkpoints(
                        s,
                        read_models.ModelQuery(**kw),  # type: ignore[arg-type]
                        envs,
                        now=now,
                        live=live,
                    )
                    return sorted(r.ref.split("@")[0] for r in page.rows)

                assert names(env="prod", decision="denied") == [
                    "acme/pickled-llm",
                    "acme/proprietary-llm",
                ]
                assert names(env="prod", decision="quarantined") == ["acme/xss-llm"]
                assert names(verdict="malicious") == ["acme/pickled-llm"]
                assert names(q="CLEAN") == ["acme/clean-llm", "acme/clean-llm"]
                assert names(q="%") == []  # LIKE wildcards are literal
                assert names(format="bin", sort="size") == ["acme/pickled-llm"]
                assert names(severity="high") == ["acme/pickled-llm"]
                assert names(severity="info", license="apache-2.0") == ["acme/pickled-llm"]
                assert names(license="mit") == ["acme/xss-llm"]
                assert names(license="unknown") == []
                rows, total = read_findings.findings(s, read_findings.FindingQuery(severity="high"))
                assert total == len(rows) >= 1
                assert {r.ref for r in rows} == {scenario.pickled}
                name, digest = scenario.clean.split("@sha256:")
                ns, model = name.split("/")
                new = read_checkpoint.get_checkpoint(s, ns, model, digest)
                old_hex = scenario.clean_v1.split("sha256:")[1]
                old = read_checkpoint.get_checkpoint(s, ns, model, old_hex)
                d = read_diff.diff(s, old, new, envs, now, live=live)
                assert [f.path for f in d.added] == ["config.json"]
                assert [f.path for f in d.changed] == ["model.safetensors"]
                exported = "".join(
                    read_audit.audit_export(
                        s, AuditQuery(action="checkpoint.quarantine"), "json", batch=2
                    )
                )
                assert [e["subject"] for e in json.loads(exported)] == [scenario.xss]
            # Storage per model: the sort and the shared part, the same SQL on both databases.
            copy = tmp_path / "copy"
            copy.mkdir()
            (copy / "model.safetensors").write_bytes(safetensors_bytes(3))  # proprietary's blob
            registry.mirror(
                MirrorRequest(source=str(copy), name="acme/copy-llm"), progress=NoProgress()
            )
            with unit_of_work(registry.sessions) as s:
                page = read_models.search_checkpoints(
                    s, read_models.ModelQuery(sort="storage"), envs, now=now, live=live
                )
                sizes = [(r.model_storage, r.namespace + "/" + r.name) for r in page.rows]
                assert [n for _, n in sizes] == [n for _, n in sorted(sizes, key=lambda x: -x[0])]
                api = {m.name: m.storage_bytes for m in registry.models()}
                assert {n: b for b, n in sizes} == api
                clean_files = [card("apache-2.0", "clean"), safetensors_bytes(1)]
                clean_files += [safetensors_bytes(2), b'{"layers": 2}\n']
                clean_id, proprietary_id = (
                    s.scalars(select(Model.id).where(Model.name == n)).one()
                    for n in ("clean-llm", "proprietary-llm")
                )
                assert storage.model_storage(s, clean_id) == storage.ModelStorage(
                    stored_bytes=sum(map(len, clean_files)), blobs=4, shared_bytes=0, shared_blobs=0
                )
                held = storage.model_storage(s, proprietary_id)
                assert (held.blobs, held.shared_blobs) == (2, 1)
                assert held.shared_bytes == len(safetensors_bytes(3))
        finally:
            registry.close()


def test_session_cookie_is_signed_and_expires() -> None:
    key = b"k" * 32
    web = websession.new_session(7)
    cookie = websession.encode_session(key, web)
    assert websession.decode_session(key, cookie) == web
    assert websession.decode_session(b"x" * 32, cookie) is None  # another server's key
    body, mac = cookie.split(".")
    assert websession.decode_session(key, body + "." + mac[:-2] + "AA") is None
    assert websession.decode_session(key, cookie + "." + mac) is None
    assert websession.decode_session(key, "") is None
    assert websession.decode_session(key, "x" * 5000) is None
    late = web.issued + websession.SESSION_SECONDS + 1
    assert websession.decode_session(key, cookie, now=late) is None
    assert web.csrf(key) != websession.new_session(7).csrf(key)  # per sign-in


def test_session_key_is_made_once_private(tmp_path: Path) -> None:
    first = websession.session_key(tmp_path)
    path = tmp_path / "keys" / "web-session.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert websession.session_key(tmp_path) == first
    assert len(first) == 32


def test_the_servers_policy_file_is_the_one_shown_and_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from policies import default_policies_text

    strict = tmp_path / "policy.yaml"
    strict.write_text(default_policies_text().replace("apache-2.0, mit,", "mit,", 1))
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        registry = EmbeddedRegistry(Settings.from_env())
        try:
            scenario = seed(registry, hub, tmp_path / "work")
            # The server's registry is configured with the policy (same home and database).
            monkeypatch.setenv("MODELCTL_POLICY", str(strict))
            served = EmbeddedRegistry(Settings.from_env())
            with serve(served.settings, served) as base:
                site = Site(base, scenario, served)
                try:
                    client = site.signed_in("reader")
                    policies = client.get("/ui/policies")
                    assert str(strict) in policies.text
                    path = ui_path(scenario.clean)
                    page = client.get(path)
                    prod = page.text.split('data-env="prod"')[-1]
                    assert "license apache-2.0 is not in the allowed list" in prod
                    recorded = client.post(f"{path}/decide", data={"csrf": csrf_of(page.text)})
                    assert recorded.status_code == 303
                    listed = client.get("/ui/models", params={"env": "prod", "decision": "denied"})
                    assert "acme/clean-llm@" in listed.text
                finally:
                    for c in site.clients:
                        c.close()
            served.close()
        finally:
            registry.close()


def _prod_badge(html: str, model: str) -> str:
    row = next(r for r in html.split("<tr>") if f'href="/ui/m/{model}/' in r)
    match = re.search(r'<td data-env="prod"><span class="badge b-(\w+)"', row)
    assert match is not None, row
    return match.group(1)


def test_models_page_badges_are_the_policy_in_force_now(site: Site, tmp_path: Path) -> None:
    """Not the newest recorded decision: a what-if is no status, a checkpoint never checked
    has one, and a quarantine made without re-deciding shows at once (and so does the
    release)."""
    from policies import default_policies_text

    client = site.signed_in("reader")
    assert _prod_badge(client.get("/ui/models").text, "acme/clean-llm") == "allowed"
    strict = default_policies_text().replace("apache-2.0, mit,", "mit,", 1)
    what_if = site.registry.policy_check(site.scenario.clean, "prod", strict, "strict.yaml")
    assert not what_if.allowed
    assert what_if.what_if
    page = client.get("/ui/models").text
    assert _prod_badge(page, "acme/clean-llm") == "allowed"
    assert "undecided" not in page
    # Mirrored, never checked: a live status all the same (attested? no: denied in prod).
    folder = tmp_path / "fresh"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(safetensors_bytes(7))
    site.registry.mirror(
        MirrorRequest(source=str(folder), name="acme/fresh-llm"), progress=NoProgress()
    )
    fresh = site.registry.models()
    shown = next(m for m in fresh if m.name == "acme/fresh-llm").checkpoints[0].environments
    page = client.get("/ui/models").text
    assert _prod_badge(page, "acme/fresh-llm") == shown["prod"]["status"] == "denied"
    assert "undecided" not in page
    # Quarantine and release through the registry (no decision recorded in between).
    site.registry.quarantine(site.scenario.clean, "test")
    assert _prod_badge(client.get("/ui/models").text, "acme/clean-llm") == "quarantined"
    overview = client.get("/").text
    assert "No checkpoint is denied now." not in overview  # pickled, proprietary, fresh
    site.registry.release(site.scenario.clean, "test")
    assert _prod_badge(client.get("/ui/models").text, "acme/clean-llm") == "allowed"
    allowed = client.get("/ui/models", params={"env": "prod", "decision": "allowed"})
    # The local folder is pinned by its digest (issue 12): clean, signed, MIT, so admitted.
    assert _model_names(allowed.text) == {"acme/clean-llm", "acme/xss-llm"}
    assert (
        client.get("/ui/models", params={"decision": "undecided", "env": "prod"}).status_code == 400
    )


def test_dry_run_evaluates_both_policies_now(site: Site) -> None:
    """The policy in force and the candidate, both evaluated now: the same document changes
    nothing, even where the newest recorded decision is out of date."""
    site.registry.quarantine(site.scenario.clean, "recorded decisions say allowed")
    client = site.signed_in("reader")
    page = client.get("/ui/policies")
    candidate = page.text.split('aria-label="candidate policy YAML">')[1].split("</textarea>")[0]
    import html

    same = client.post(
        "/ui/policies/dry-run",
        data={"csrf": csrf_of(page.text), "policy": html.unescape(candidate)},
    )
    assert same.status_code == 200
    assert "0 decisions would change" in same.text
    site.registry.release(site.scenario.clean, "done")
    stricter = html.unescape(candidate).replace("apache-2.0, mit,", "mit,", 1)
    flips = client.post(
        "/ui/policies/dry-run", data={"csrf": csrf_of(page.text), "policy": stricter}
    ).text.split('class="grid dry"')[1]
    assert "acme/clean-llm@" in flips
    assert "acme/pickled-llm@" not in flips  # denied now and with the candidate


def _storage_cells(html: str) -> list[tuple[str, int, str]]:
    """(model, exact bytes in the title, human units shown) for each row of the models list."""
    rows = re.findall(
        r'href="/ui/m/(acme/[a-z-]+)/.*?<td class="num nowrap" data-storage="\d+">'
        r'<span title="(\d+) bytes">([^<]+)</span>',
        html,
        flags=re.S,
    )
    return [(name, int(exact), shown) for name, exact, shown in rows]


def test_storage_used_per_model_on_the_list_and_the_checkpoint_page(
    site: Site, tmp_path: Path
) -> None:
    shared = safetensors_bytes(102)  # one blob in both models
    big = b"x" * 5000
    refs = {}
    for name, folder, files in [
        ("acme/twin-a", "a1", {"a.safetensors": safetensors_bytes(101), "c.safetensors": shared}),
        # A second checkpoint: its unchanged files are the same blobs, stored (and counted) once.
        (
            "acme/twin-a",
            "a2",
            {
                "a.safetensors": safetensors_bytes(101),
                "b.safetensors": safetensors_bytes(103),
                "c.safetensors": shared,
            },
        ),
        ("acme/twin-b", "b1", {"c.safetensors": shared, "big.txt": big}),
    ]:
        root = tmp_path / folder
        root.mkdir()
        for path, data in files.items():
            (root / path).write_bytes(data)
        result = site.registry.mirror(
            MirrorRequest(source=str(root), name=name), progress=NoProgress()
        )
        refs[folder] = result.checkpoint.ref
    unit = len(shared)
    want = {"acme/twin-a": 3 * unit, "acme/twin-b": unit + len(big)}
    # The API's and `modelctl models`'s figure is the one the page shows.
    api = {m.name: m.storage_bytes for m in site.registry.models()}
    assert {k: api[k] for k in want} == want

    client = site.signed_in("reader")
    page = client.get("/ui/models", params={"q": "twin"})
    assert page.status_code == 200
    cells = _storage_cells(page.text)
    assert sorted(cells) == sorted(
        [
            ("acme/twin-a", want["acme/twin-a"], f"{want['acme/twin-a']} B"),
            ("acme/twin-a", want["acme/twin-a"], f"{want['acme/twin-a']} B"),
            ("acme/twin-b", want["acme/twin-b"], "5.0 KiB"),
        ]
    )
    assert ">model storage</a>" in page.text
    by_storage = client.get("/ui/models", params={"q": "twin", "sort": "storage"})
    assert by_storage.status_code == 200
    assert [c[0] for c in _storage_cells(by_storage.text)] == [
        "acme/twin-b",
        "acme/twin-a",
        "acme/twin-a",
    ]
    by_name = client.get("/ui/models", params={"q": "twin", "sort": "name"})
    assert next(c[0] for c in _storage_cells(by_name.text)) == "acme/twin-a"

    a = client.get(ui_path(refs["a2"]))
    assert a.status_code == 200
    assert f'data-storage="{want["acme/twin-a"]}" data-shared="{unit}"' in a.text
    assert (
        f'<span title="{want["acme/twin-a"]} bytes">{want["acme/twin-a"]} B</span> in 3 blobs'
        in a.text
    )
    assert f'<span title="{unit} bytes">{unit} B</span> shared with other models (1 blob)' in a.text
    b = client.get(ui_path(refs["b1"]))
    assert f'data-storage="{want["acme/twin-b"]}" data-shared="{unit}"' in b.text
    assert "5.0 KiB</span> in 2 blobs" in b.text
    # A model that shares nothing says so.
    clean = client.get(ui_path(site.scenario.proprietary))
    assert "0 B</span> shared with other models (0 blobs)" in clean.text
