"""A checkpoint's model card (its README.md) for the model page: the YAML front matter as
fields and the Markdown body as sanitised HTML, plus the base models the card declares.

The card is attacker-controlled text. Two independent layers keep it inert (docs/adr/0027):

1. markdown-it-py renders CommonMark with raw HTML **off** (a `<script>` in the card becomes
   the text `&lt;script&gt;`) and its link validator refuses `javascript:`, `vbscript:`,
   `file:` and `data:` destinations; images are never emitted as `<img>` (a remote image
   would be a request out, a tracking pixel): each becomes its alt text, linked when the
   source is http(s).
2. nh3 (the ammonia sanitiser) then cleans the HTML against an allowlist of tags and
   attributes, with only http, https and mailto URLs, and `rel="nofollow noopener
   noreferrer"` on every link. Whatever the first layer lets through, no tag, attribute or
   URL scheme outside that list reaches the page.

The page's Content-Security-Policy (no script at all, images only from the registry) is a
third layer that does not depend on either. Cards are read up to `MAX_CARD_BYTES`; a longer
card is cut there and says so. YAML aliases are refused (an alias bomb is hostile input).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import nh3
import yaml  # type: ignore[import-untyped]  # no stubs in the dev set
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from attestations.digests import Digest
from attestations.mlbom.modelcard import read_card
from registry.blobs.base import BlobReader
from registry.db.models import Checkpoint, Model

#: How much of a README.md is read and rendered (Hugging Face cards are mostly under 20 KiB).
MAX_CARD_BYTES = 256 * 1024
MAX_FIELDS = 64
MAX_FIELD_CHARS = 400
#: Block nesting markdown-it follows before it stops nesting (quotes in quotes in lists...).
MAX_NESTING = 20
CARD_NAMES = ("readme.md",)
_FRONT_MATTER = re.compile(rb"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_SAFE_IMAGE_LINK = re.compile(r"\Ahttps?://", re.IGNORECASE)

ALLOWED_TAGS = frozenset(
    {
        "a",
        "p",
        "br",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "strong",
        "em",
        "s",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "span",
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "span": {"class"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


@dataclass(frozen=True, slots=True)
class CardField:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What the model page shows of a card. `html` is sanitised (safe to mark safe)."""

    path: str
    sha256: str
    size: int
    fields: tuple[CardField, ...]
    html: str
    base_models: tuple[str, ...]
    truncated: bool  # the card is longer than MAX_CARD_BYTES: only its head is shown
    front_matter_error: str | None = None


def _image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """An image as its alt text, linked when http(s) or a file of the checkpoint: no `<img>`,
    so no request out."""
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    src = str(token.attrGet("src") or "")
    text = f"[image: {_escape(alt)}]"
    local = _local_target(src, env.get("links") or {})
    if local is not None:
        return f'<a href="{_escape(local)}">{text}</a>'
    if _SAFE_IMAGE_LINK.match(src):
        return f'<a href="{_escape(src)}">{text}</a>'
    return f'<span class="card-image">{text}</span>'


def _local_target(url: str, links: Mapping[str, str]) -> str | None:
    """The page of the checkpoint's file a relative link names, by the manifest's own path
    list (never a path built from the link); None when it names none."""
    path = unquote(url.split("#", 1)[0].split("?", 1)[0]).removeprefix("./")
    return links.get(path) if path else None


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _markdown() -> MarkdownIt:
    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False, "maxNesting": MAX_NESTING},
    )
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image)
    return md


_MD = _markdown()


def render_markdown(text: str, links: Mapping[str, str] | None = None) -> str:
    """Markdown to HTML that is safe to put in a page as it is. `links` maps the
    checkpoint's file paths to their pages: a relative link or image naming one of them
    points there; any other relative or scheme-less link loses its target."""
    links = links or {}
    ours = frozenset(links.values())
    raw = _MD.render(text, {"links": links})

    def href(tag: str, attribute: str, value: str) -> str | None:
        if attribute != "href":
            return value
        if value.lower().startswith(("https://", "http://", "mailto:")) or value in ours:
            return value
        return _local_target(value, links)

    return nh3.clean(
        raw,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=href,
        url_schemes=set(URL_SCHEMES),
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
    )


def _text(value: Any) -> str:
    """A front-matter value as one line of text: scalars as they are, lists joined, nested
    mappings as compact JSON; cut at MAX_FIELD_CHARS."""
    if isinstance(value, list) and all(
        isinstance(v, str | int | float | bool) or v is None for v in value
    ):
        text = ", ".join("" if v is None else str(v) for v in value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))
    else:
        text = "" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"


def _front_matter(head: bytes) -> tuple[tuple[CardField, ...], int, str | None]:
    """(fields, where the body starts, why the front matter was not read)."""
    match = _FRONT_MATTER.match(head)
    if match is None:
        return (), 0, None
    data: object = None
    error: str | None = None
    try:
        text = match.group(1).decode("utf-8")
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=yaml.SafeLoader)):
            error = "YAML aliases are not read"
        else:
            data = yaml.safe_load(text)
    except UnicodeDecodeError:
        error = "the front matter is not UTF-8"
    except yaml.YAMLError:
        error = "the front matter is not valid YAML"
    if data is not None and not isinstance(data, dict):
        error = "the front matter is not a mapping"
    if error is not None or not isinstance(data, dict):
        return (), match.end(), error
    fields = tuple(
        CardField(" ".join(str(k).split())[:100], _text(v))
        for k, v in list(data.items())[:MAX_FIELDS]
    )
    return fields, match.end(), None


def model_card(
    path: str, sha256: str, size: int, head: bytes, links: Mapping[str, str] | None = None
) -> ModelCard:
    """The card from its first bytes (`head`: at most MAX_CARD_BYTES + 1 of them); `links`
    as for `render_markdown`."""
    truncated = len(head) > MAX_CARD_BYTES or size > MAX_CARD_BYTES
    head = head[:MAX_CARD_BYTES]
    fields, body_at, error = _front_matter(head)
    body = head[body_at:].decode("utf-8", errors="replace")
    if truncated:
        body = body.rstrip("\ufffd")  # a character cut in half at the limit
    declared = read_card(head)
    return ModelCard(
        path=path,
        sha256=sha256,
        size=size,
        fields=fields,
        html=render_markdown(body, links),
        base_models=declared.base_models,
        truncated=truncated,
        front_matter_error=error,
    )


#: Rendered cards by blob digest: the bytes behind a digest never change, so neither does
#: the card (the model page renders a card once, not on every view).
_CACHE_SIZE = 128
_cache: OrderedDict[tuple[str, str, str, bool], ModelCard] = OrderedDict()
_cache_lock = threading.Lock()


def checkpoint_card(
    checkpoint: Checkpoint, blobs: BlobReader, file_url: Callable[[str], str] | None = None
) -> ModelCard | None:
    """The checkpoint's README.md (top level) as a card; None when it has none. `file_url`
    gives the page of a file by its sha256: relative links to the checkpoint's files go
    there."""
    row = next((f for f in checkpoint.files if f.path.lower() in CARD_NAMES), None)
    if row is None:
        return None
    key = (row.sha256, row.path, checkpoint.manifest_digest, file_url is not None)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    with blobs.open(Digest(row.sha256)) as fh:
        head = fh.read(MAX_CARD_BYTES + 1)
    links = {f.path: file_url(f.sha256) for f in checkpoint.files} if file_url else None
    card = model_card(row.path, row.sha256, row.size, head, links)
    with _cache_lock:
        _cache[key] = card
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return card


@dataclass(frozen=True, slots=True)
class BaseModel:
    """A base model the card declares, and the registry's newest checkpoint of it, if any."""

    declared: str
    namespace: str | None = None
    name: str | None = None
    digest: str | None = None


def lineage(session: Session, declared: Sequence[str]) -> list[BaseModel]:
    """Each declared base model (a hub id such as `Qwen/Qwen2.5-0.5B`, or an `hf://` URI)
    linked to the newest checkpoint the registry holds under that name or mirrored from
    that repository."""
    out: list[BaseModel] = []
    for text in declared[:16]:
        repo = text.removeprefix("hf://").strip().strip("/")
        ns, _, name = repo.partition("/")
        if not ns or not name or "/" in name:
            out.append(BaseModel(text))
            continue
        found = session.execute(
            select(Model.namespace, Model.name, Checkpoint.manifest_digest)
            .join(Checkpoint, Checkpoint.model_id == Model.id)
            .where(
                or_(
                    (Model.namespace == ns) & (Model.name == name),
                    Checkpoint.source_uri == f"hf://{repo}",
                )
            )
            .order_by(Checkpoint.id.desc())
            .limit(1)
        ).first()
        if found is None:
            out.append(BaseModel(text))
        else:
            out.append(BaseModel(text, found[0], found[1], found[2]))
    return out
