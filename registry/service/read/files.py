"""The model page's file browser: one row per file of a checkpoint (path, size, digest,
format, each scanner's verdict) and the preview of one small text file, with the chat-template
analysis next to the template it judges.

A file is addressed by its sha256, and only a digest that the checkpoint's own file list holds
names anything: no request path is ever joined to a folder or looked up as a path, so `../`,
encoded or look-alike Unicode paths have nothing to reach. The preview reads at most
`MAX_PREVIEW_BYTES` from the blob store (which re-hashes what it streams), only for names that
are text by convention (configs, templates, cards, code), and only UTF-8 without NUL bytes;
the text goes to the page escaped by the template engine, and nothing is parsed beyond JSON
(to find a `chat_template` value; the text itself is never rendered or run).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from attestations.digests import Digest
from registry.blobs.base import BlobReader
from registry.db.models import Checkpoint, CheckpointFile
from registry.errors import NotFound
from registry.scanners.chat_template_files import TEMPLATE_KEY
from registry.scanners.claims import JINJA_SUFFIXES
from registry.service.read.checkpoint import checkpoint_findings, file_verdicts

#: The most of one file the preview reads and shows.
MAX_PREVIEW_BYTES = 256 * 1024
#: Names previewed whatever their suffix (lower-cased base names).
PREVIEW_NAMES = frozenset({"license", "notice", "vocab.txt", "merges.txt"})
#: Suffixes that are text by convention in model repositories.
PREVIEW_SUFFIXES = (
    ".json",
    ".jinja",
    ".j2",
    ".txt",
    ".md",
    ".yaml",
    ".yml",
    ".py",
    ".cfg",
    ".ini",
    ".toml",
)
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class FileRow:
    path: str
    size: int
    sha256: str
    format: str
    verdicts: dict[str, str]  # scanner -> verdict (newest scan of each scanner)
    previewable: bool


@dataclass(frozen=True, slots=True)
class TemplateLine:
    number: int
    text: str
    findings: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Template:
    """One chat template found in the file, line by line, with the findings on each line."""

    key: str
    lines: tuple[TemplateLine, ...]
    findings: tuple[dict[str, Any], ...]  # this template's findings without a line


@dataclass(frozen=True, slots=True)
class Preview:
    paths: tuple[str, ...]  # every path of the checkpoint holding these bytes
    sha256: str
    size: int
    text: str | None  # None: not shown (see `withheld`)
    truncated: bool
    withheld: str | None  # why there is no text
    templates: tuple[Template, ...] = ()
    findings: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # every scanner's

    @property
    def other_findings(self) -> tuple[dict[str, Any], ...]:
        """The findings not shown next to a template line."""
        placed = {id(f) for t in self.templates for line in t.lines for f in line.findings}
        return tuple(f for f in self.findings if id(f) not in placed)


def _format(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else "data"


def previewable(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return name in PREVIEW_NAMES or name.endswith(PREVIEW_SUFFIXES)


def file_rows(checkpoint: Checkpoint) -> list[FileRow]:
    verdicts = file_verdicts(checkpoint)
    return [
        FileRow(
            path=f.path,
            size=f.size,
            sha256=f.sha256,
            format=_format(f.path),
            verdicts=verdicts.get(f.path, {}),
            previewable=previewable(f.path),
        )
        for f in sorted(checkpoint.files, key=lambda f: f.path.split("/"))
    ]


def checked_digest(text: str) -> str:
    """A file digest from a URL: 64 lowercase hex digits (an optional `sha256:`), else
    NotFound; nothing else is ever taken from the request to find a file."""
    digest = text.removeprefix("sha256:")
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise NotFound("no such file (a file is named by its sha256: 64 lowercase hex digits)")
    return digest


def files_with(checkpoint: Checkpoint, sha256: str) -> list[CheckpointFile]:
    """The checkpoint's files holding these bytes (by its own list); NotFound when none."""
    found = [f for f in checkpoint.files if f.sha256 == sha256]
    if not found:
        raise NotFound(f"this checkpoint holds no file sha256:{sha256}")
    return sorted(found, key=lambda f: f.path.split("/"))


def preview(
    checkpoint: Checkpoint, sha256: str, blobs: BlobReader, *, quarantined: bool
) -> Preview:
    """The preview of the checkpoint's file with these bytes (see the module docstring)."""
    files = files_with(checkpoint, checked_digest(sha256))
    paths = tuple(f.path for f in files)
    size = files[0].size
    findings = tuple(f for f in checkpoint_findings(checkpoint) if f.get("path") in paths)

    def withheld(why: str) -> Preview:
        return Preview(paths, sha256, size, None, False, why, (), findings)

    if quarantined:
        return withheld("quarantined: its bytes leave by no door, a preview included")
    if not any(previewable(p) for p in paths):
        return withheld("not a text file by its name: no preview")
    with blobs.open(Digest(sha256)) as fh:
        data = fh.read(MAX_PREVIEW_BYTES + 1)
    truncated = len(data) > MAX_PREVIEW_BYTES or size > MAX_PREVIEW_BYTES
    data = data[:MAX_PREVIEW_BYTES]
    if b"\x00" in data:
        return withheld("binary (it holds NUL bytes): no preview")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if not truncated or exc.start < len(data) - 4:
            return withheld(f"not UTF-8 text (at byte {exc.start}): no preview")
        text = data[: exc.start].decode("utf-8-sig")  # a character cut at the limit
    templates = () if truncated else _templates(paths, text, findings)
    return Preview(paths, sha256, size, text, truncated, None, templates, findings)


def _templates(
    paths: Iterable[str], text: str, findings: tuple[dict[str, Any], ...]
) -> tuple[Template, ...]:
    """The chat templates in the file, as the chat-template scanner names them (a `.jinja`
    file: its path; a JSON config: `chat_template` or `chat_template[NAME]`)."""
    named: list[tuple[str, str]] = []
    jinja = [p for p in paths if p.casefold().endswith(JINJA_SUFFIXES)]
    if jinja:
        named = [(jinja[0], text)]
    elif any(p.lower().endswith(".json") for p in paths):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            document = None
        value = document.get(TEMPLATE_KEY) if isinstance(document, dict) else None
        if isinstance(value, str):
            named = [(TEMPLATE_KEY, value)]
        elif isinstance(value, list):
            named = [
                (f"{TEMPLATE_KEY}[{item['name']}]", item["template"])
                for item in value
                if isinstance(item, dict)
                and isinstance(item.get("name"), str)
                and isinstance(item.get("template"), str)
            ]
        elif isinstance(value, dict):
            named = [(f"{TEMPLATE_KEY}[{k}]", v) for k, v in value.items() if isinstance(v, str)]
    out = []
    for key, source in named:
        mine = [
            f
            for f in findings
            if f.get("scanner") == "chat-template"
            and isinstance(f.get("evidence"), dict)
            and f["evidence"].get("key") == key
        ]
        by_line: dict[int, list[dict[str, Any]]] = {}
        loose: list[dict[str, Any]] = []
        for f in mine:
            line = f["evidence"].get("line")
            if isinstance(line, int) and not isinstance(line, bool):
                by_line.setdefault(line, []).append(f)
            else:
                loose.append(f)
        rows = source.splitlines() or [""]
        lines = tuple(
            TemplateLine(n, line, tuple(by_line.get(n, ()))) for n, line in enumerate(rows, 1)
        )
        loose += [f for n, fs in sorted(by_line.items()) if not 1 <= n <= len(rows) for f in fs]
        out.append(Template(key, lines, tuple(loose)))
    return tuple(out)
