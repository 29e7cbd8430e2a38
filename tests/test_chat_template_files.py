"""Chat templates outside GGUF (issue 14, class 2): every place Hugging Face keeps one gets the
analysis GGUF templates get, the catalog runs it by default, and the default policies refuse
its verdicts as they refuse the GGUF ones.

Templates are written as files here and only parsed by the scanner, never rendered.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from policies import evaluate, load_default_policies
from policies.facts import ScanFact
from registry.scanners import catalog
from registry.scanners.base import FileVerdict, ScanLimits, Verdict
from registry.scanners.chat_template_files import ChatTemplateFileScanner
from registry.scanners.runner import LocalFile, local_targets, scan_targets
from tests.test_policies_eval import NOW, SCANNERS, good_facts
from tests.test_structure_safetensors_gguf import (
    BENIGN_TEMPLATES,
    MALICIOUS_TEMPLATES,
    SUSPICIOUS_TEMPLATES,
)

SCANNER = ChatTemplateFileScanner()
LIMITS = ScanLimits()


def _string(template: str) -> tuple[str, bytes]:
    config = {"bos_token": "<s>", "model_max_length": 4096, "chat_template": template}
    return "tokenizer_config.json", json.dumps(config, indent=2).encode()


def _named_list(template: str) -> tuple[str, bytes]:
    templates = [
        {"name": "default", "template": BENIGN_TEMPLATES["chatml"]},
        {"name": "tool_use", "template": template},
    ]
    return "tokenizer_config.json", json.dumps({"chat_template": templates}).encode()


def _chat_template_json(template: str) -> tuple[str, bytes]:
    return "chat_template.json", json.dumps({"chat_template": template}).encode()


def _jinja(template: str) -> tuple[str, bytes]:
    return "chat_template.jinja", template.encode()


def _additional(template: str) -> tuple[str, bytes]:
    return "additional_chat_templates/tool_use.jinja", template.encode()


def _j2(template: str) -> tuple[str, bytes]:
    return "templates/Prompt.J2", template.encode()  # any case of the extension


PLACES: dict[str, Callable[[str], tuple[str, bytes]]] = {
    "tokenizer_config-string": _string,
    "tokenizer_config-named-list": _named_list,
    "chat_template.json": _chat_template_json,
    "chat_template.jinja": _jinja,
    "additional-jinja": _additional,
    "j2": _j2,
}


def _write(root: Path, name: str, data: bytes) -> LocalFile:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return LocalFile(name, path, len(data))


def _scan(root: Path, name: str, data: bytes, limits: ScanLimits = LIMITS) -> FileVerdict:
    target = _write(root, name, data)
    assert SCANNER.applies_to(target)
    return SCANNER.scan(target, limits)


def _rules(result: FileVerdict) -> set[str]:
    return {f.rule for f in result.findings}


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("name", sorted(MALICIOUS_TEMPLATES))
def test_escapes_are_malicious_wherever_the_template_is(
    tmp_path: Path, place: str, name: str
) -> None:
    result = _scan(tmp_path, *PLACES[place](MALICIOUS_TEMPLATES[name]))
    assert result.verdict is Verdict.MALICIOUS, result.findings
    escapes = [f for f in result.findings if f.rule == "chat-template.escape"]
    assert escapes
    assert all(f.scanner == "chat-template" for f in result.findings)
    assert all(f.severity.value == "critical" and f.reference == "CVE-2024-34359" for f in escapes)


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("name", sorted(BENIGN_TEMPLATES))
def test_real_world_templates_are_clean_wherever_they_are(
    tmp_path: Path, place: str, name: str
) -> None:
    result = _scan(tmp_path, *PLACES[place](BENIGN_TEMPLATES[name]))
    assert result.verdict is Verdict.CLEAN, result.findings


@pytest.mark.parametrize("name", sorted(SUSPICIOUS_TEMPLATES))
def test_odd_templates_are_suspicious_in_a_tokenizer_config(tmp_path: Path, name: str) -> None:
    result = _scan(tmp_path, *_string(SUSPICIOUS_TEMPLATES[name]))
    assert result.verdict is Verdict.SUSPICIOUS, result.findings
    assert _rules(result) == {"chat-template.suspicious"}


def test_the_named_variant_is_named_in_the_finding(tmp_path: Path) -> None:
    result = _scan(tmp_path, *_named_list(MALICIOUS_TEMPLATES["attr-filter"]))
    assert {f.evidence["key"] for f in result.findings} == {"chat_template[tool_use]"}


def test_an_object_of_named_templates_is_read_like_transformers_reads_it(tmp_path: Path) -> None:
    value = {"default": BENIGN_TEMPLATES["chatml"], "rag": MALICIOUS_TEMPLATES["cycler-globals"]}
    result = _scan(tmp_path, "tokenizer_config.json", json.dumps({"chat_template": value}).encode())
    assert result.verdict is Verdict.MALICIOUS
    assert {f.evidence["key"] for f in result.findings} == {"chat_template[rag]"}


def test_a_key_spelled_with_json_escapes_is_still_found(tmp_path: Path) -> None:
    # json.loads decodes `chat\u005ftemplate` to `chat_template`: transformers renders it.
    template = json.dumps(MALICIOUS_TEMPLATES["joiner-globals"])
    keys = b'{"chat\\u005fTempl\\u0061te": 1, "\\u0063hat\\u005ftemplate": '
    data = keys + template.encode() + b"}"
    result = _scan(tmp_path, "tokenizer_config.json", data)
    assert result.verdict is Verdict.MALICIOUS


def test_a_key_far_into_a_large_file_is_found(tmp_path: Path) -> None:
    # The key straddles the scanner's 1 MiB read chunk; tokenizer configs put it last.
    filler = "x" * ((1 << 20) - 34)
    doc = '{"added_tokens_decoder": "' + filler + '", "chat_template": '
    data = (doc + json.dumps(MALICIOUS_TEMPLATES["lipsum-globals"]) + "}").encode()
    assert data.index(b'"chat_template"') < (1 << 20) < data.index(b'"chat_template"') + 15
    assert _scan(tmp_path, "tokenizer_config.json", data).verdict is Verdict.MALICIOUS


def test_duplicate_keys_are_suspicious_and_every_copy_is_judged(tmp_path: Path) -> None:
    # json keeps the last copy; a reader that keeps the first renders the other one.
    evil = json.dumps(MALICIOUS_TEMPLATES["mro-subclasses"])
    benign = json.dumps(BENIGN_TEMPLATES["chatml"])
    data = f'{{"chat_template": {evil}, "chat_template": {benign}}}'.encode()
    result = _scan(tmp_path, "tokenizer_config.json", data)
    assert result.verdict is Verdict.MALICIOUS
    assert {"chat-template.duplicate-key", "chat-template.escape"} <= _rules(result)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (["{{ x }}"], "chat-template.type"),
        ([{"name": "a", "template": 3}], "chat-template.type"),
        (42, "chat-template.type"),
        ("{% for m in messages %}", "chat-template.syntax"),
    ],
)
def test_a_template_transformers_cannot_use_is_malformed(
    tmp_path: Path, value: object, rule: str
) -> None:
    result = _scan(tmp_path, "tokenizer_config.json", json.dumps({"chat_template": value}).encode())
    assert result.verdict is Verdict.MALFORMED, result.findings
    assert rule in _rules(result)


def test_null_template_is_no_template(tmp_path: Path) -> None:
    result = _scan(tmp_path, "tokenizer_config.json", b'{"chat_template": null}')
    assert result == FileVerdict(Verdict.CLEAN)


def test_broken_json_that_names_the_key_is_malformed(tmp_path: Path) -> None:
    result = _scan(tmp_path, "tokenizer_config.json", b'{"chat_template": "{{ x }}",')
    assert result.verdict is Verdict.MALFORMED
    assert _rules(result) == {"chat-template.json"}


def test_a_jinja_file_that_is_not_utf8_is_malformed(tmp_path: Path) -> None:
    result = _scan(tmp_path, "chat_template.jinja", b"{{ messages }}\xff\xfe")
    assert result.verdict is Verdict.MALFORMED
    assert _rules(result) == {"chat-template.encoding"}


def test_a_template_over_the_limit_is_malformed(tmp_path: Path) -> None:
    limits = ScanLimits(max_string_bytes=64)
    result = _scan(tmp_path, "chat_template.jinja", b"{{ messages }}" * 10, limits)
    assert result.verdict is Verdict.MALFORMED
    assert _rules(result) == {"chat-template.too-large"}
    data = json.dumps({"chat_template": "{{ messages }}" * 10}).encode()
    result = _scan(tmp_path, "tokenizer_config.json", data, limits)
    assert _rules(result) == {"chat-template.too-large"}


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("config.json", b'{"architectures": ["LlamaForCausalLM"], "hidden_size": 8}'),
        ("tokenizer.json", b'{"model": {"vocab": {"chat": 1, "template": 2}}}'),
        ("README.md", b"# Model\n\nUse {{ messages }} in your chat_template.\n"),
        ("notes.txt", b'"chat_template": "{{ lipsum.__globals__ }}"'),  # not a JSON object
    ],
)
def test_files_without_a_template_are_not_claimed(tmp_path: Path, name: str, data: bytes) -> None:
    assert not SCANNER.applies_to(_write(tmp_path, name, data))


def test_a_folder_scan_runs_it_by_default(tmp_path: Path) -> None:
    _write(tmp_path, "config.json", b'{"model_type": "llama"}')
    _write(tmp_path, *_string(BENIGN_TEMPLATES["llama3"]))
    _write(tmp_path, *_jinja(MALICIOUS_TEMPLATES["cve-2024-34359"]))
    files, folders = catalog.all_scanners()
    targets, _refused = local_targets(tmp_path)
    report = scan_targets(targets, files, folders)
    by_path = {f.path: f for f in report.files}
    assert by_path["chat_template.jinja"].verdict is Verdict.MALICIOUS
    assert by_path["chat_template.jinja"].scanners == ("chat-template",)
    assert by_path["tokenizer_config.json"].verdict is Verdict.CLEAN
    assert "chat-template" in by_path["tokenizer_config.json"].scanners
    assert by_path["config.json"].scanners == ()


def _with_template_scan(verdict: str, severity: str) -> object:
    facts = good_facts()
    scans = tuple(
        ScanFact(s, "1.0.0", verdict, NOW - timedelta(days=1), severity)
        if s in {"gguf", "chat-template"}
        else ScanFact(s, "1.0.0", "clean", NOW - timedelta(days=1), "none")
        for s in SCANNERS
    )
    return dataclasses.replace(facts, scans=scans)


@pytest.mark.parametrize("verdict", ["malicious", "suspicious", "malformed"])
@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_default_policies_treat_both_template_scans_alike(verdict: str, environment: str) -> None:
    policy, mode = load_default_policies().for_environment(environment) or pytest.fail(environment)
    facts = _with_template_scan(verdict, "high")
    decision = evaluate(policy, facts, now=NOW, mode=mode, environment=environment)  # type: ignore[arg-type]
    gguf, template = decision.check("scans.gguf"), decision.check("scans.chat-template")
    assert gguf is not None
    assert template is not None
    assert gguf.status is template.status
    assert gguf.status.value != "pass"
    # Enforced environments deny; dev (warn mode) denies only `malicious`, for both scanners.
    assert decision.allowed is (environment == "dev" and verdict != "malicious")


def test_default_policies_require_a_fresh_template_scan() -> None:
    policy, mode = load_default_policies().for_environment("prod") or pytest.fail("prod")
    facts = good_facts()
    without = dataclasses.replace(
        facts, scans=tuple(s for s in facts.scans if s.scanner != "chat-template")
    )
    decision = evaluate(policy, without, now=NOW, mode=mode, environment="prod")
    assert not decision.allowed
    assert any("no chat-template scan on record" in r for r in decision.reasons)


def test_a_json_object_over_the_limit_is_claimed_and_reported_not_searched(tmp_path: Path) -> None:
    # A template padded past the limit must not pass unseen; the scan fails closed.
    path = tmp_path / "tokenizer_config.json"
    with path.open("wb") as f:
        f.write(b'{"pad": "')
        f.truncate(LIMITS.max_header_bytes + 1)  # sparse: nothing this big is written
    target = LocalFile(path.name, path, path.stat().st_size)
    assert SCANNER.applies_to(target)
    result = SCANNER.scan(target, LIMITS)
    assert result.verdict is Verdict.MALFORMED
    assert _rules(result) == {"chat-template.too-large"}
