"""The model pages (issue 20, items 7 and 8): the model card rendered safely from hostile
Markdown, the file browser and its previews (addressed by digest, size-capped, escaped), the
chat-template analysis next to the template, the base model lineage, and the audit log's
fields and machine-event toggle. Over real HTTP (uvicorn on 127.0.0.1, httpx); the browser
check of the file browser is in tests/test_web_browser.py."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from registry.db.engine import unit_of_work
from registry.db.models import AuditEvent
from registry.embedded import EmbeddedRegistry
from registry.progress import NoProgress
from registry.requests import MirrorRequest
from registry.service.read import card as read_card
from registry.service.read import files as read_files
from registry.settings import Settings
from tests.fakes.hfhub import FakeHub
from tests.web_helpers import Scenario, safetensors_bytes, seed, serve, ui_path

HOSTILE_CARD = b"""---
license: mit
base_model:
  - acme/clean-llm
  - someone/not-mirrored
tags: [chat, "<b>bold</b>"]
evil: "<script>alert('front')</script>"
---
# Hostile <script>alert('h1')</script>

<script>alert('raw')</script>
<img src="https://tracker.example/pixel.png" onerror="alert('img')">
<a href="javascript:alert('raw-link')">raw link</a>
<div onclick="alert('div')" style="background:url(javascript:alert(1))">div</div>
<iframe src="https://evil.example/"></iframe>

[js](javascript:alert('md')) [JS upper](JAVASCRIPT:alert('md2')) [entity](&#x6A;avascript:alert(1))
[vb](vbscript:msgbox(1)) [data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
[fine](https://huggingface.co/acme) [mail](mailto:sec@example.com)
[its config](config.json) [up](../../../etc/passwd) [proto](//evil.example/x) [abs](/ui/admin)

![pixel](https://tracker.example/p.png) ![local](assets/diagram.png)
![data](data:image/png;base64,iVBORw0KGgo=)

| column | other |
|---|---|
| **bold** | `code` |
"""

EVIL_TEMPLATE = (
    "{% for m in messages %}{{ m.content }}\n"
    "{{ ''.__class__.__mro__[1].__subclasses__() }}\n"
    "{% endfor %}"
)


@dataclass
class PagesSite:
    base: str
    scenario: Scenario
    registry: EmbeddedRegistry
    hostile: str  # ref of acme/hostile-llm
    big_sha: str
    bin_sha: str
    tokenizer_sha: str
    jinja_sha: str
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, role: str = "reader") -> httpx.Client:
        client = httpx.Client(base_url=self.base, follow_redirects=False, timeout=30)
        self.clients.append(client)
        form = client.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        signed = client.post(
            "/ui/login", data={"csrf": csrf.group(1), "token": self.scenario.tokens[role]}
        )
        assert signed.status_code == 303
        return client


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PagesSite]:
    work = tmp_path_factory.mktemp("pages")
    mp = pytest.MonkeyPatch()
    with FakeHub() as hub:
        mp.setenv("HF_ENDPOINT", hub.url)
        mp.setenv("MODELCTL_HOME", str(work / "home"))
        mp.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        settings = Settings.from_env()
        registry = EmbeddedRegistry(settings)
        try:
            scenario = seed(registry, hub, work / "models")
            folder = work / "hostile"
            folder.mkdir()
            big = b'{"pad": "' + b"x" * (read_files.MAX_PREVIEW_BYTES + 10) + b'"}\n'
            binary = b"\x00\x01PK" * 100
            tokenizer = json.dumps({"chat_template": EVIL_TEMPLATE, "eos": "</s>"}).encode()
            jinja = b"{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}\n"
            files = {
                "README.md": HOSTILE_CARD,
                "model.safetensors": safetensors_bytes(9),
                "config.json": b'{"architectures": ["<script>alert(1)</script>"]}\n',
                "tokenizer_config.json": tokenizer,
                "chat_template.jinja": jinja,
                "big.json": big,
                "blob.txt": binary,
            }
            for name, data in files.items():
                (folder / name).write_bytes(data)
            result = registry.mirror(
                MirrorRequest(source=str(folder), name="acme/hostile-llm"), progress=NoProgress()
            )
            with serve(settings, registry) as base:
                site = PagesSite(
                    base,
                    scenario,
                    registry,
                    result.checkpoint.ref,
                    _sha(big),
                    _sha(binary),
                    _sha(tokenizer),
                    _sha(jinja),
                )
                try:
                    yield site
                finally:
                    for client in site.clients:
                        client.close()
        finally:
            registry.close()
            mp.undo()


# -- the model card ----------------------------------------------------------------------------


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def _tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every start tag of `html` as a browser's tokenizer sees it, with its attributes."""
    collector = _TagCollector()
    collector.feed(html)
    collector.close()
    return collector.tags


def _card_body(html: str) -> str:
    match = re.search(r'<article class="card-body" data-card>(.*?)</article>', html, re.DOTALL)
    assert match is not None, "no rendered card on the page"
    return match.group(1)


def test_a_hostile_card_renders_as_inert_html(pages: PagesSite) -> None:
    client = pages.client()
    page = client.get(ui_path(pages.hostile) + "?tab=card")
    assert page.status_code == 200
    body = _card_body(page.text)
    # Markdown becomes markup: headings, tables, emphasis, safe links.
    assert "<h1>" in body
    assert "<table>" in body
    assert "<strong>bold</strong>" in body
    assert (
        '<a href="https://huggingface.co/acme" rel="nofollow noopener noreferrer">fine</a>' in body
    )
    assert 'href="mailto:sec@example.com"' in body
    # No tag, handler or script URL of the card survives as markup.
    tags = _tags(body)
    assert {t for t, _ in tags} <= read_card.ALLOWED_TAGS
    for tag, attrs in tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert name in {"href", "title", "rel", "class", "start"}, (tag, name)
            if name == "href":
                assert (
                    (value or "")
                    .lower()
                    .startswith(("https://", "mailto:", ui_path(pages.hostile) + "/files/"))
                ), value
    # A relative link to a file of the checkpoint goes to that file's page (by the manifest's
    # own path list); other relative or scheme-less links lose their target.
    config_sha = _sha(b'{"architectures": ["<script>alert(1)</script>"]}\n')
    assert f'<a href="{ui_path(pages.hostile)}/files/{config_sha}"' in body
    for text in ("up", "proto", "abs"):
        assert f'<a rel="nofollow noopener noreferrer">{text}</a>' in body
    # Raw HTML is shown as text, escaped.
    assert "&lt;script&gt;alert(&#x27;raw&#x27;)&lt;/script&gt;" in body or (
        "&lt;script&gt;alert('raw')&lt;/script&gt;" in body
    )
    # Images are never loaded: a remote one is a link with its alt text, the others text.
    assert '<a href="https://tracker.example/p.png" rel="nofollow noopener noreferrer">' in body
    assert "[image: local]" in body
    assert "[image: data]" in body
    assert "data:image" not in body
    # Front matter as fields, escaped.
    fields = re.search(r'<dl class="facts card-fields">(.*?)</dl>', page.text, re.DOTALL)
    assert fields is not None
    assert "<dt>license</dt><dd>mit</dd>" in fields.group(1)
    assert "&lt;script&gt;" in fields.group(1)
    assert "<script" not in fields.group(1)
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_the_card_shows_its_base_model_lineage_linked_when_held(pages: PagesSite) -> None:
    page = pages.client().get(ui_path(pages.hostile) + "?tab=card")
    lineage = re.search(r"<ol class=\"lineage\" data-lineage>(.*?)</ol>", page.text, re.DOTALL)
    assert lineage is not None
    clean_path = ui_path(pages.scenario.clean)
    # the newest checkpoint of acme/clean-llm, linked; the other named but not linked
    assert f'href="{clean_path}"' in lineage.group(1)
    assert "someone/not-mirrored" in lineage.group(1)
    assert "not in this registry" in lineage.group(1)


def test_a_checkpoint_without_a_card_says_so(pages: PagesSite, tmp_path: Path) -> None:
    folder = tmp_path / "nocard"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(safetensors_bytes(11))
    ref = pages.registry.mirror(
        MirrorRequest(source=str(folder), name="acme/no-card"), progress=NoProgress()
    ).checkpoint.ref
    page = pages.client().get(ui_path(ref) + "?tab=card")
    assert page.status_code == 200
    assert "data-no-card" in page.text


def test_card_rendering_is_bounded_and_refuses_alias_bombs() -> None:
    bomb = b'---\na: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nlicense: mit\n---\nhi\n'
    card = read_card.model_card("README.md", "0" * 64, len(bomb), bomb)
    assert card.fields == ()
    assert card.front_matter_error == "YAML aliases are not read"
    assert "<p>hi</p>" in card.html
    huge = b"# big\n\n" + b"word " * (read_card.MAX_CARD_BYTES // 5 + 1000)
    cut = read_card.model_card(
        "README.md", "1" * 64, len(huge), huge[: read_card.MAX_CARD_BYTES + 1]
    )
    assert cut.truncated
    assert len(cut.html) < read_card.MAX_CARD_BYTES + 1024
    nested = b"> " * 5000 + b"deep\n" + b"*[" * 20000
    deep = read_card.model_card("README.md", "2" * 64, len(nested), nested)
    assert deep.html.count("<blockquote>") <= read_card.MAX_NESTING
    not_a_mapping = read_card.model_card("README.md", "3" * 64, 20, b"---\n- a\n- b\n---\nx\n")
    assert not_a_mapping.front_matter_error == "the front matter is not a mapping"


def test_a_quarantined_checkpoint_withholds_its_card_and_previews(
    pages: PagesSite, tmp_path: Path
) -> None:
    folder = tmp_path / "held"
    folder.mkdir()
    (folder / "README.md").write_bytes(b"# held card\nsecret words\n")
    (folder / "config.json").write_bytes(b'{"held": true}\n')
    ref = pages.registry.mirror(
        MirrorRequest(source=str(folder), name="acme/held-llm"), progress=NoProgress()
    ).checkpoint.ref
    pages.registry.quarantine(ref, reason="test")
    client = pages.client()
    card_page = client.get(ui_path(ref) + "?tab=card")
    assert "data-card-withheld" in card_page.text
    assert "secret words" not in card_page.text
    preview = client.get(ui_path(ref) + "/files/" + _sha(b'{"held": true}\n'))
    assert preview.status_code == 200
    assert "data-withheld" in preview.text
    assert "quarantined" in preview.text
    assert "&#34;held&#34;" not in preview.text
    assert '"held"' not in preview.text


# -- the file browser --------------------------------------------------------------------------


def test_the_files_tab_lists_every_file_with_its_digest_and_verdicts(pages: PagesSite) -> None:
    page = pages.client().get(ui_path(pages.hostile) + "?tab=files")
    assert page.status_code == 200
    rows = re.findall(r'<tr data-file="([0-9a-f]{64})">', page.text)
    assert len(rows) == 7
    assert pages.tokenizer_sha in rows
    assert "chat-template: malicious" in page.text
    assert f'href="{ui_path(pages.hostile)}/files/{pages.tokenizer_sha}" data-preview' in page.text


def test_a_preview_shows_the_template_with_its_analysis_inline(pages: PagesSite) -> None:
    page = pages.client().get(ui_path(pages.hostile) + "/files/" + pages.tokenizer_sha)
    assert page.status_code == 200
    section = re.search(
        r'<section class="template" data-template="chat_template">(.*?)</section>',
        page.text,
        re.DOTALL,
    )
    assert section is not None
    flagged = re.findall(r'<tr class="flagged"><td class="ln">(\d+)</td>', section.group(1))
    assert flagged == ["2"]  # the line with the dunder chain
    assert "sandbox escape" in section.group(1)
    assert "__subclasses__" in section.group(1)
    text = re.search(r"<pre class=\"preview\" data-preview-text>(.*?)</pre>", page.text, re.DOTALL)
    assert text is not None
    assert "&#34;eos&#34;" in text.group(1)

    jinja = pages.client().get(ui_path(pages.hostile) + "/files/" + pages.jinja_sha)
    assert 'data-template="chat_template.jinja"' in jinja.text
    assert 'class="flagged"' not in jinja.text


def test_previews_are_escaped_capped_and_only_for_text(pages: PagesSite) -> None:
    client = pages.client()
    config = client.get(
        ui_path(pages.hostile)
        + "/files/"
        + _sha(b'{"architectures": ["<script>alert(1)</script>"]}\n')
    )
    assert config.status_code == 200
    assert "<script>" not in config.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in config.text
    big = client.get(ui_path(pages.hostile) + "/files/" + pages.big_sha)
    assert big.status_code == 200
    assert "data-truncated" in big.text
    shown = re.search(r"<pre class=\"preview\" data-preview-text>(.*?)</pre>", big.text, re.DOTALL)
    assert shown is not None
    assert len(unescape(shown.group(1))) == read_files.MAX_PREVIEW_BYTES
    binary = client.get(ui_path(pages.hostile) + "/files/" + pages.bin_sha)
    assert binary.status_code == 200
    assert "binary" in binary.text
    assert "data-preview-text" not in binary.text
    weights = client.get(ui_path(pages.hostile) + "/files/" + _sha(safetensors_bytes(9)))
    assert "not a text file by its name" in weights.text


@pytest.mark.parametrize(
    "tail",
    [
        "../../../../etc/passwd",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2f%2e%2e%2fconfig.json",
        "config.json",
        "README.md",
        "%EF%BC%8E%EF%BC%8E%EF%BC%8Fconfig.json",  # fullwidth ../
        "sha256:" + "A" * 64,  # upper-case hex is not a digest here
        "0" * 63,
        "0" * 64,  # well formed, but no file of this checkpoint
    ],
)
def test_a_preview_is_found_by_digest_only_never_by_path(pages: PagesSite, tail: str) -> None:
    response = pages.client().get(ui_path(pages.hostile) + "/files/" + tail)
    assert response.status_code == 404
    assert "root:" not in response.text


def test_a_digest_of_another_checkpoint_is_not_previewed_here(pages: PagesSite) -> None:
    # acme/clean-llm's config.json is a real blob in this registry, but not a file of this one
    other = _sha(b'{"layers": 2}\n')
    assert pages.client().get(ui_path(pages.scenario.clean) + "/files/" + other).status_code == 200
    assert pages.client().get(ui_path(pages.hostile) + "/files/" + other).status_code == 404


def test_a_preview_needs_a_reader(pages: PagesSite) -> None:
    with httpx.Client(base_url=pages.base, follow_redirects=False, timeout=30) as anonymous:
        response = anonymous.get(ui_path(pages.hostile) + "/files/" + pages.tokenizer_sha)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login")


# -- the audit log -----------------------------------------------------------------------------


def test_the_audit_log_hides_machine_events_by_default_and_shows_fields(pages: PagesSite) -> None:
    with unit_of_work(pages.registry.sessions) as s:
        s.add(
            AuditEvent(
                actor="system:rescan",
                action="scan.rescan",
                subject="acme/machine-only",
                details={"scanners": ["pickle", "gguf"], "changed": 0},
            )
        )
        s.add(
            AuditEvent(
                actor="token:someone",
                action="quarantine.add",
                subject="acme/person-did-this",
                details={"reason": "<b>because</b>", "digest": "ab" * 32, "nested": {"k": [1, 2]}},
            )
        )
    client = pages.client("security")
    page = client.get("/ui/audit")
    assert page.status_code == 200
    assert "acme/person-did-this" in page.text
    assert "acme/machine-only" not in page.text
    assert "machine events hidden" in page.text
    # details as fields, escaped, not one JSON blob
    row = re.search(r"acme/person-did-this</td><td>(.*?)</td></tr>", page.text, re.DOTALL)
    assert row is not None
    assert "<dt>reason</dt><dd>&lt;b&gt;because&lt;/b&gt;</dd>" in row.group(1)
    assert "<dt>nested</dt>" in row.group(1)
    shown = client.get("/ui/audit?machine=1")
    assert "acme/machine-only" in shown.text
    assert "<dt>scanners</dt><dd>pickle, gguf</dd>" in shown.text
    # naming a machine actor shows its events, toggle or not
    named = client.get("/ui/audit?actor=system:rescan")
    assert "acme/machine-only" in named.text
    assert "acme/person-did-this" not in named.text
    # the export follows the page: hidden by default, there with the toggle
    assert "acme/machine-only" not in client.get("/ui/audit.csv").text
    assert "acme/machine-only" in client.get("/ui/audit.csv?machine=1").text


def test_the_exceptions_table_shows_the_reason(pages: PagesSite) -> None:
    asked = pages.registry.as_actor("token:publisher-token").exception_request(
        pages.scenario.proprietary,
        waive=["licenses"],
        reason="legal approved <for now>",
        expires_at=datetime.now(UTC) + timedelta(days=5),
        environments=None,
    )
    pages.registry.as_actor("token:security-token").exception_approve(asked.id)
    page = pages.client("security").get("/ui/exceptions")
    assert "legal approved &lt;for now&gt;" in page.text


def test_audit_filter_and_lineage_on_sqlite_and_postgres(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machine-event filter (LIKE with `_`, `%` escaped) and the lineage lookup are SQL
    shapes that must agree on both databases."""
    from registry.requests import AuditQuery
    from registry.service.read import audit as read_audit

    monkeypatch.setenv("MODELCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    registry = EmbeddedRegistry(Settings.from_env())
    try:
        folder = tmp_path / "base"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(safetensors_bytes(21))
        ref = registry.mirror(
            MirrorRequest(source=str(folder), name="acme/base_model"), progress=NoProgress()
        ).checkpoint.ref
        with unit_of_work(registry.sessions) as s:
            for actor in ("system:sync", "worker:w1", "systemXsync", "token:alice"):
                s.add(AuditEvent(actor=actor, action="test.event", subject="t", details={}))
        with unit_of_work(registry.sessions) as s:
            query = AuditQuery(action="test.event")

            def actors(**kw: bool) -> list[str]:
                rows, total, _ = read_audit.audit_page(s, query, **kw)
                assert total == len(rows)
                return sorted(r.actor for r in rows)

            assert actors(hide_machine=True) == ["systemXsync", "token:alice"]
            assert len(actors(hide_machine=False)) == 4
            named = read_audit.audit_page(s, AuditQuery(actor="system:sync"), hide_machine=True)[0]
            assert [r.actor for r in named] == ["system:sync"]

            found = read_card.lineage(s, ["acme/base_model", "acme/base%model", "nope", "a/b/c"])
            assert [b.digest for b in found] == [ref.split("sha256:")[1], None, None, None]
            assert (found[0].namespace, found[0].name) == ("acme", "base_model")
    finally:
        registry.close()


def test_the_logo_and_favicon_are_served_and_nothing_else_is(pages: PagesSite) -> None:
    with httpx.Client(base_url=pages.base, timeout=30) as client:
        logo = client.get("/ui/static/logo.svg")
        assert logo.status_code == 200
        assert logo.headers["content-type"].startswith("image/svg+xml")
        assert logo.content.startswith(b"<svg")
        assert b"<script" not in logo.content
        assert client.get("/favicon.ico").content == logo.content
        for name in ("logo.svg.bak", "..%2Fstyle.css", "%2e%2e%2f__init__.py", "LOGO.SVG"):
            assert client.get("/ui/static/" + name).status_code == 404, name
    page = pages.client().get("/")
    assert '<link rel="icon" href="/ui/static/logo.svg"' in page.text
