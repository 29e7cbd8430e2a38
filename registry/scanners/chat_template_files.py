"""Chat templates outside GGUF: where Hugging Face models keep them, judged like GGUF's.

transformers (and every runtime or converter that copies its files) renders the Jinja2 chat
template it finds in one of these places; each template is handed to
`chat_template.analyze_chat_template`, the analysis the `gguf` scanner runs on
``tokenizer.chat_template`` (CVE-2024-34359):

* a JSON object with a top-level ``chat_template`` key: ``tokenizer_config.json``,
  ``chat_template.json``, ``processor_config.json``. The value is a string, a list of
  ``{"name", "template"}`` objects, or an object of name -> template (what transformers builds
  from the list); ``null`` is no template.
* ``chat_template.jinja``, ``additional_chat_templates/*.jinja`` and any other ``.jinja`` /
  ``.j2`` file: the whole text is one template.

Routing: a JSON file is claimed by content (its bytes hold the key ``chat_template``, also when
JSON escapes spell it, e.g. ``"chat\\u005ftemplate"``, which `json` decodes to the same key; a
JSON object over the header limit is claimed unread and reported too large). A
Jinja file has no magic bytes, so it is claimed by its name: claiming every text with ``{{`` in
it would claim model cards. The scanner declares no `FORMAT`: a ``tokenizer_config.json`` stays
a ``json`` file to policies (``formats.allow: [json, safetensors]`` keeps working).

Nothing is rendered or compiled: templates are parsed to an AST (see `chat_template`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from registry.scanners.base import (
    FileVerdict,
    Finding,
    JSONValue,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
    worst,
)
from registry.scanners.claims import JINJA_SUFFIXES

SCANNER_ID = "chat-template"
RULE_PREFIX = "chat-template"
RULESET_VERSION = "2026-12-05"
TEMPLATE_KEY = "chat_template"
_MAX_FINDINGS = 64
_CHUNK = 1 << 20
_OVERLAP = 128  # longer than the longest escaped spelling of the key (13 * 6 + quotes)


def _key_pattern(key: str) -> re.Pattern[bytes]:
    """`"key"` followed by `:`, each character literal or a JSON `\\u00XX` escape."""
    parts = []
    for ch in key:
        code = f"{ord(ch):04x}"
        escaped = "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in code)
        parts.append(f"(?:{re.escape(ch)}|\\\\u{escaped})")
    return re.compile(('"' + "".join(parts) + '"[ \t\r\n]*:').encode())


_KEY = _key_pattern(TEMPLATE_KEY)

_SEVERITY = {
    Verdict.MALFORMED: Severity.HIGH,
    Verdict.SUSPICIOUS: Severity.MEDIUM,
    Verdict.ERROR: Severity.MEDIUM,
}


def _finding(
    verdict: Verdict, rule: str, message: str, **evidence: JSONValue
) -> tuple[Verdict, Finding]:
    return verdict, Finding(
        scanner=SCANNER_ID,
        rule=f"{RULE_PREFIX}.{rule}",
        severity=_SEVERITY[verdict],
        message=message[:300],
        evidence=evidence,
    )


def _verdict(results: Iterable[tuple[Verdict, Finding]]) -> FileVerdict:
    items = list(results)
    if not items:
        return FileVerdict(Verdict.CLEAN)
    kept = items[:_MAX_FINDINGS]
    findings = [f for _, f in kept]
    if len(items) > len(kept):
        findings.append(
            Finding(
                scanner=SCANNER_ID,
                rule=f"{RULE_PREFIX}.findings.truncated",
                severity=Severity.INFO,
                message=f"{len(items) - len(kept)} further findings not listed",
            )
        )
    return FileVerdict(worst([v for v, _ in items]), tuple(findings))


def is_jinja_name(path: str) -> bool:
    return path.casefold().endswith(JINJA_SUFFIXES)


def _looks_like_json_object(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def _names_template_key(target: ScanTarget) -> bool:
    """Whether the file's bytes hold the `chat_template` key, read in overlapping chunks."""
    tail = b""
    with target.open() as fh:
        while chunk := fh.read(_CHUNK):
            if _KEY.search(tail + chunk):
                return True
            tail = chunk[-_OVERLAP:]
    return False


class _Doc(dict[str, Any]):
    """A JSON object that remembers every value given for the template key (duplicates too)."""

    templates: list[Any]


def _object(pairs: list[tuple[str, Any]]) -> _Doc:
    doc = _Doc(pairs)
    doc.templates = [value for key, value in pairs if key == TEMPLATE_KEY]
    return doc


class ChatTemplateFileScanner:
    """Chat templates in Hugging Face JSON configs and Jinja files."""

    id = SCANNER_ID
    version = "1.0.0"
    ruleset_version = RULESET_VERSION

    def applies_to(self, target: ScanTarget) -> bool:
        if is_jinja_name(target.path):
            return True
        if not _looks_like_json_object(target.head()):
            return False
        if target.size > ScanLimits().max_header_bytes:
            # Too large to search cheaply, and a template could sit at its end: claimed, and
            # the scan says it is over the limit (fail closed) rather than read gigabytes here.
            return True
        return _names_template_key(target)

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        # A `.jinja` file is template text whatever it starts with (templates start with `{`).
        if is_jinja_name(target.path):
            return _verdict(self._scan_jinja(target, limits))
        return _verdict(self._scan_json(target, limits))

    # -- Jinja files ---------------------------------------------------------------------------

    def _scan_jinja(self, target: ScanTarget, limits: ScanLimits) -> list[tuple[Verdict, Finding]]:
        text = _read_text(target, limits.max_string_bytes)
        if isinstance(text, tuple):
            return [text]
        return _analyze(text, key=target.path)

    # -- JSON configs --------------------------------------------------------------------------

    def _scan_json(self, target: ScanTarget, limits: ScanLimits) -> list[tuple[Verdict, Finding]]:
        text = _read_text(target, limits.max_header_bytes)
        if isinstance(text, tuple):
            return [text]
        try:
            document = json.loads(text, object_pairs_hook=_object)
        except (ValueError, RecursionError) as exc:
            return [
                _finding(
                    Verdict.MALFORMED,
                    "json",
                    f"not valid JSON, so the chat template in it cannot be read: {exc}",
                )
            ]
        if not isinstance(document, _Doc):
            return []  # `"chat_template":` inside a string of a non-object document
        results: list[tuple[Verdict, Finding]] = []
        values = document.templates
        if len(values) > 1:
            results.append(
                _finding(
                    Verdict.SUSPICIOUS,
                    "duplicate-key",
                    f"{TEMPLATE_KEY!r} is given {len(values)} times: JSON readers disagree on "
                    "which one is rendered (every one is checked)",
                    count=len(values),
                )
            )
        for value in values:
            results.extend(_templates_of(value, limits))
        return results


def _read_text(target: ScanTarget, bound: int) -> str | tuple[Verdict, Finding]:
    if target.size > bound:
        return _finding(
            Verdict.MALFORMED,
            "too-large",
            f"{target.size} bytes, over the {bound}-byte limit for a template file",
            bytes=target.size,
            limit=bound,
        )
    with target.open() as fh:
        data = fh.read(bound + 1)
    if len(data) > bound:
        return _finding(Verdict.MALFORMED, "too-large", f"over the {bound}-byte limit")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _finding(
            Verdict.MALFORMED, "encoding", f"not UTF-8 text (at byte {exc.start})", offset=exc.start
        )


def _templates_of(value: object, limits: ScanLimits) -> list[tuple[Verdict, Finding]]:
    """Every template a `chat_template` value holds, analysed; a shape transformers cannot
    read is malformed."""
    if value is None:
        return []
    named: list[tuple[str, object]]
    if isinstance(value, str):
        named = [(TEMPLATE_KEY, value)]
    elif isinstance(value, list):
        named = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                return [_shape(f"{TEMPLATE_KEY}[{i}] is not a {{name, template}} object")]
            named.append((f"{TEMPLATE_KEY}[{item['name']}]", item.get("template")))
    elif isinstance(value, dict):
        named = [(f"{TEMPLATE_KEY}[{name}]", template) for name, template in value.items()]
    else:
        return [_shape(f"{TEMPLATE_KEY} is a {type(value).__name__}, not a template")]
    results: list[tuple[Verdict, Finding]] = []
    for key, template in named:
        if not isinstance(template, str):
            results.append(_shape(f"{key} is a {type(template).__name__}, not a string"))
        elif len(template.encode("utf-8", "surrogatepass")) > limits.max_string_bytes:
            results.append(
                _finding(
                    Verdict.MALFORMED,
                    "too-large",
                    f"{key} is over the {limits.max_string_bytes}-byte template limit",
                    key=key[:200],
                )
            )
        else:
            results.extend(_analyze(template, key=key))
    return results


def _shape(message: str) -> tuple[Verdict, Finding]:
    return _finding(Verdict.MALFORMED, "type", message)


def _analyze(source: str, *, key: str) -> list[tuple[Verdict, Finding]]:
    # Imported here, as in gguf: the template checks load jinja2 (~45 ms of CPU at start-up for
    # every `modelctl scan`); only a file that carries a template needs them.
    from registry.scanners.chat_template import analyze_chat_template  # noqa: PLC0415

    return analyze_chat_template(source, key=key, scanner=SCANNER_ID, rule_prefix=RULE_PREFIX)
