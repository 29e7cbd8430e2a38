"""`modelctl report --env ENV`: a self-contained HTML report an auditor can read offline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.api_server import seed
from tests.fakes.hfhub import FakeHub


class _Links(HTMLParser):
    """Every attribute that could load something from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.external.append(value)


@pytest.fixture
def seeded_home(
    run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> str:
    """org/tiny mirrored, scanned, attested, decided in prod, quarantined and released."""
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        seeded = seed(run_cli, hub, tmp_path)
    assert run_cli("policy", "check", seeded.ref, "--env", "prod").code == 0
    hostile = "<script>alert(1)</script> incident 42"
    assert run_cli("quarantine", seeded.ref, "--reason", hostile).code == 0
    assert run_cli("release", seeded.ref, "--reason", "false alarm").code == 0
    return seeded.ref


@pytest.fixture
def reported(run_cli: Any, tmp_path: Path, seeded_home: str) -> str:
    out = tmp_path / "prod.html"
    result = run_cli("report", "--env", "prod", "--out", str(out))
    assert result.code == 0, result.stderr
    assert "1 admitted" in result.stdout
    return out.read_text(encoding="utf-8")


def test_report_lists_admitted_checkpoints_with_their_evidence(reported: str) -> None:
    assert re.search(r"Admitted checkpoints \(1\)", reported)
    assert "org/tiny@sha256:" in reported
    assert "https://model_signing/signature/v1.0" in reported  # who signed what
    assert "key sha256:" in reported
    for scanner in ("safetensors", "pickle"):  # which scanner, version, verdict
        assert f"<td>{scanner}</td>" in reported
    assert "Policies seen in recorded decisions" in reported
    assert "<td>prod</td>" in reported
    # Quarantine and release are both there, and the hostile reason is text, not markup.
    assert "quarantine</td>" in reported
    assert "release</td>" in reported
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in reported
    assert "Art. 15(5)" in reported
    assert "MEASURE" in reported
    assert "not legal advice" in reported


def test_report_is_self_contained(reported: str) -> None:
    links = _Links()
    links.feed(reported)
    assert links.external == []
    assert links.scripts == 0


def test_since_and_format_are_checked(run_cli: Any) -> None:
    assert run_cli("report", "--env", "prod", "--format", "docx").code == 2
    assert run_cli("report", "--env", "prod", "--since", "yesterday").code == 2
    empty = run_cli("report", "--env", "prod", "--since", "2026-01-01")
    assert empty.code == 0, empty.stderr
    assert "Admitted checkpoints (0)" in empty.stdout


def test_the_web_ui_serves_the_same_report(reported: str, tmp_path: Path) -> None:
    import httpx

    from registry.api.app import create_app
    from registry.settings import Settings
    from tests.api_server import live_server
    from tests.test_web import sign_in

    with live_server(create_app(Settings.from_env())) as server:
        registry = server.app.state.registry
        security = registry.token_create("s", "security").secret
        reader = registry.token_create("r", "reader").secret
        with httpx.Client(base_url=server.url) as client:
            sign_in(client, security)
            audit = client.get("/ui/audit")
            assert audit.status_code == 200
            assert 'action="/ui/report"' in audit.text  # the audit page links the report
            page = client.get("/ui/report", params={"env": "prod"})
            assert page.status_code == 200, page.text[:300]
            assert "script-src" not in page.headers["content-security-policy"]
            # The same document as the CLI wrote, but for its generation time.
            strip = re.compile(r"Generated [^ ]+ by")
            assert strip.sub("", page.text).strip() == strip.sub("", reported).strip()
        with httpx.Client(base_url=server.url) as client:
            sign_in(client, reader)
            denied = client.get("/ui/report", params={"env": "prod"})
            assert denied.status_code == 403


def test_pdf_pages_render_and_read_as_the_report(
    run_cli: Any, tmp_path: Path, seeded_home: str
) -> None:
    """The PDF is the same report: every page renders to a PNG with ink on it, and the text
    PDFium reads off the pages says what the HTML says."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no stubs

    out = tmp_path / "prod.pdf"
    result = run_cli("report", "--env", "prod", "--format", "pdf", "--out", str(out))
    assert result.code == 0, result.stderr
    assert out.read_bytes().startswith(b"%PDF-")
    document = pdfium.PdfDocument(str(out))
    text = ""
    try:
        assert len(document) >= 1
        for index in range(len(document)):
            page = document[index]
            image = page.render(scale=1).to_pil()
            png = tmp_path / f"page-{index}.png"
            image.save(png)
            assert png.read_bytes().startswith(b"\x89PNG")
            lo, hi = image.convert("L").getextrema()
            assert lo < 128 < hi  # ink on paper, not a blank page
            text += page.get_textpage().get_text_range() + "\n"
    finally:
        document.close()
    flat = " ".join(text.split())
    assert "Admitted checkpoints (1)" in flat
    assert seeded_home.split("@", maxsplit=1)[0] in flat
    assert "not legal advice" in flat
    assert "alert(1)" in flat  # the hostile reason is shown as text
    assert "incident 42" in flat
