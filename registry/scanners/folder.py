"""Whole-folder checks: remote code, and what ONNX external data really points at.

* Remote code. transformers imports Python files shipped with a model when the user passes
  `trust_remote_code=True`; `auto_map` (and `custom_pipelines`) in `config.json`,
  `tokenizer_config.json` and friends names them. Every Python file (by name, or by content:
  text with `import` / `def` / `class` lines that parses as Python) and every JSON object
  with `auto_map` is reported as `folder.remote-code` (high, suspicious) on the file, and
  summarised on `.`.
* ONNX external data. The ONNX scanner judges each `location` string; here each safe one is
  resolved against the folder. A location whose file is missing from the folder is
  suspicious. When the target is on disk (it has a `full_path`, see `OnDiskTarget`; the
  runner's `LocalFile` has one) every path component is `lstat`ed without following links: a
  symlink that resolves outside the folder (or nowhere) is malicious, one inside is suspicious,
  a hard link (`st_nlink > 1`, GHSA-cmw6-hcpp-c6jp: the other name may be any file on the same
  file system) or a special file is suspicious. Targets served from the blob store have no
  links: only presence is checked for them.

Everything is reported on the ONNX file that names the location and summarised on `.`.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, runtime_checkable

from registry.scanners.base import (
    FileVerdict,
    Finding,
    JSONValue,
    ModelFolder,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
    worst,
)
from registry.scanners.onnx_scanner import (
    OnnxMalformedError,
    external_data_refs,
    location_problem,
    looks_like_onnx,
    parse_model,
)

SCANNER_ID = "model-folder"
RULESET_VERSION = "2026-11-22"
MAX_EVIDENCE = 20

PYTHON_SUFFIXES = (".py", ".pyw", ".pyi")
_PYTHON_LINE = re.compile(
    rb"^[ \t]*(?:import [A-Za-z_]|from [A-Za-z_.][\w.]* import |"
    rb"(?:async )?def [A-Za-z_]\w*[ \t]*\(|class [A-Za-z_]\w*[ \t]*[(:])",
    re.MULTILINE,
)
REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines")


@runtime_checkable
class OnDiskTarget(Protocol):
    """Optional extension of `ScanTarget`: the file's location on disk, for link checks."""

    @property
    def full_path(self) -> Path: ...


def _full_path(target: ScanTarget) -> Path | None:
    if isinstance(target, OnDiskTarget) and isinstance(target.full_path, Path):
        return target.full_path
    return None


@dataclass
class _Report:
    by_path: dict[str, list[tuple[Verdict, Finding]]] = field(default_factory=dict)

    def add(
        self,
        path: str,
        verdict: Verdict,
        rule: str,
        severity: Severity,
        message: str,
        *,
        evidence: Mapping[str, JSONValue],
        reference: str | None = None,
    ) -> None:
        finding = Finding(
            scanner=SCANNER_ID,
            rule=rule,
            severity=severity,
            message=message[:300],
            evidence=evidence,
            reference=reference,
        )
        self.by_path.setdefault(path, []).append((verdict, finding))

    def verdicts(self) -> dict[str, FileVerdict]:
        out = {
            path: FileVerdict(worst([v for v, _ in items]), tuple(f for _, f in items))
            for path, items in self.by_path.items()
        }
        out["."] = self._summary()
        return out

    def _summary(self) -> FileVerdict:
        by_rule: dict[str, tuple[Verdict, Severity, list[str], str | None]] = {}
        for path, items in sorted(self.by_path.items()):
            for verdict, finding in items:
                seen = by_rule.get(finding.rule)
                if seen is None:
                    by_rule[finding.rule] = (verdict, finding.severity, [path], finding.reference)
                    continue
                old_verdict, old_severity, paths, reference = seen
                if path not in paths:
                    paths.append(path)
                by_rule[finding.rule] = (
                    worst([old_verdict, verdict]),
                    max(old_severity, finding.severity, key=lambda s: s.rank),
                    paths,
                    reference or finding.reference,
                )
        findings = tuple(
            Finding(
                scanner=SCANNER_ID,
                rule=rule,
                severity=severity,
                message=f"{len(paths)} file(s) in the model: {rule}",
                evidence={"files": list(paths[:MAX_EVIDENCE]), "count": len(paths)},
                reference=reference,
            )
            for rule, (verdict, severity, paths, reference) in sorted(by_rule.items())
        )
        verdict = worst([v for v, _, _, _ in by_rule.values()])
        return FileVerdict(verdict, findings)


# --- remote code ------------------------------------------------------------------------------


def _read_text(target: ScanTarget, bound: int) -> str | None:
    if target.size > bound:
        return None
    with target.open() as fh:
        data = fh.read(bound + 1)
    if len(data) > bound or b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def is_python_source(target: ScanTarget, limits: ScanLimits) -> bool:
    """By name (`.py`), or by content: `import`/`def`/`class` lines and it parses as Python."""
    if target.path.lower().endswith(PYTHON_SUFFIXES):
        return True
    head = target.head()
    if b"\x00" in head or not _PYTHON_LINE.search(head):
        return False
    if target.size > limits.max_string_bytes:
        return True  # looks like Python and is too big to parse: fail closed
    text = _read_text(target, limits.max_string_bytes)
    if text is None:
        return False
    try:
        ast.parse(text)  # parses only: nothing is compiled to code objects or run
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _remote_code_entries(target: ScanTarget, limits: ScanLimits) -> dict[str, Any] | None:
    """The `auto_map` / `custom_pipelines` of a JSON object file, if it has any."""
    head = target.head().lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"{"):
        return None
    text = _read_text(target, limits.max_header_bytes)
    if text is None:
        return None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    found = {key: document[key] for key in REMOTE_CODE_KEYS if document.get(key)}
    return found or None


def _class_refs(value: Any) -> list[str]:
    """The `module.Class` (or `repo--module.Class`) strings in an auto_map value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [ref for item in value for ref in _class_refs(item)]
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in _class_refs(item)]
    return []


def _check_remote_code(target: ScanTarget, limits: ScanLimits, report: _Report) -> None:
    if is_python_source(target, limits):
        report.add(
            target.path,
            Verdict.SUSPICIOUS,
            "folder.remote-code",
            Severity.HIGH,
            "Python source in the model: trust_remote_code=True imports and runs it",
            evidence={"kind": "python"},
        )
        return
    entries = _remote_code_entries(target, limits)
    if entries is None:
        return
    refs = sorted(set(_class_refs(entries)))
    other_repos = sorted({ref.split("--", 1)[0] for ref in refs if "--" in ref})
    evidence: dict[str, JSONValue] = {
        "kind": "auto_map",
        "keys": sorted(entries),
        "classes": [r[:200] for r in refs[:MAX_EVIDENCE]],
    }
    message = f"{', '.join(sorted(entries))} loads model code (needs trust_remote_code=True)"
    if other_repos:
        evidence["other_repos"] = [r[:200] for r in other_repos[:MAX_EVIDENCE]]
        message += f", some of it from other repositories ({', '.join(other_repos)})"
    report.add(
        target.path,
        Verdict.SUSPICIOUS,
        "folder.remote-code",
        Severity.HIGH,
        message,
        evidence=evidence,
    )


# --- ONNX external data -----------------------------------------------------------------------


def _folder_root(model: ScanTarget, full: Path) -> Path:
    depth = len(PurePosixPath(model.path).parts)
    return full.parents[depth - 1] if depth > 0 else full.parent


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _check_on_disk(model: ScanTarget, full: Path, rel: str, location: str, report: _Report) -> None:
    root = _folder_root(model, full)
    evidence: dict[str, JSONValue] = {"location": location[:300], "resolved": rel}
    current = root
    parts = PurePosixPath(rel).parts
    for i, part in enumerate(parts):
        current = current / part
        try:
            st = os.lstat(current)
        except OSError:
            report.add(
                model.path,
                Verdict.SUSPICIOUS,
                "folder.onnx-external-data.missing",
                Severity.MEDIUM,
                f"external data {location!r} is not in the model folder",
                evidence=evidence,
            )
            return
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(current)
            escapes = not os.path.exists(real) or not _inside(real, os.path.realpath(root))
            link_evidence: dict[str, JSONValue] = {**evidence, "link": os.readlink(current)[:300]}
            report.add(
                model.path,
                Verdict.MALICIOUS if escapes else Verdict.SUSPICIOUS,
                "folder.onnx-external-data.symlink",
                Severity.CRITICAL if escapes else Severity.HIGH,
                f"external data {location!r} goes through a symlink"
                + (" that leaves the model folder" if escapes else ""),
                evidence=link_evidence,
            )
            return
        last = i == len(parts) - 1
        if not last and not stat.S_ISDIR(st.st_mode):
            break
        if last and not stat.S_ISREG(st.st_mode):
            report.add(
                model.path,
                Verdict.SUSPICIOUS,
                "folder.onnx-external-data.special-file",
                Severity.HIGH,
                f"external data {location!r} is not a regular file",
                evidence=evidence,
            )
            return
        if last and st.st_nlink > 1:
            report.add(
                model.path,
                Verdict.SUSPICIOUS,
                "folder.onnx-external-data.hardlink",
                Severity.HIGH,
                f"external data {location!r} is a hard link ({st.st_nlink} names): "
                "its other name may be any file",
                evidence={**evidence, "links": st.st_nlink},
                reference="GHSA-cmw6-hcpp-c6jp",
            )


def _check_onnx(model: ScanTarget, paths: set[str], limits: ScanLimits, report: _Report) -> None:
    if not looks_like_onnx(model.head(), model.size):
        return
    try:
        refs = external_data_refs(parse_model(model, limits), limits)
    except OnnxMalformedError:
        return  # the ONNX file scanner reports it
    full = _full_path(model)
    done: set[str] = set()
    for ref in refs:
        location = ref.location or ""
        if location in done or location_problem(location, model.path) is not None:
            continue  # unsafe strings are the ONNX file scanner's findings
        done.add(location)
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(model.path), location))
        if full is not None:
            _check_on_disk(model, full, rel, location, report)
        elif rel not in paths:
            report.add(
                model.path,
                Verdict.SUSPICIOUS,
                "folder.onnx-external-data.missing",
                Severity.MEDIUM,
                f"external data {location!r} is not in the model folder",
                evidence={"location": location[:300], "resolved": rel},
            )


# --- the scanner ------------------------------------------------------------------------------


@dataclass
class ModelFolderScanner:
    """Remote code and ONNX external-data links, over the whole model folder."""

    id: str = SCANNER_ID
    version: str = "1.0.0"
    ruleset_version: str = RULESET_VERSION

    def scan_folder(self, folder: ModelFolder, limits: ScanLimits) -> Mapping[str, FileVerdict]:
        files: Sequence[ScanTarget] = folder.files
        paths = {f.path for f in files}
        report = _Report()
        for target in files:
            _check_remote_code(target, limits, report)
            _check_onnx(target, paths, limits, report)
        return report.verdicts()
