"""Hydra-style configs beside the weights: `_target_` values a library instantiates on load.

NeMo 2 checkpoints (`context/model.yaml`), Salesforce uni2ts and Apple FlexTok read model
configs from the repository and hand them to `hydra.utils.instantiate`, which imports and calls
every `_target_` (CVE-2025-23304 in NeMo, CVE-2026-22584 in uni2ts). The weights may be
safetensors; the config is the code path. This scanner reads YAML and JSON files that contain
`_target_` (safe YAML loader, plain JSON) and judges each target with `code_names`: a dangerous
module or loader is malicious; anything else is reported as info, since which third-party
namespaces a config may name is the library's business (the `.nemo` archive scanner, which
knows NeMo, is stricter).

Routing: `.yaml`, `.yml` and `.json` files (by name: these are plain text) whose bytes contain
`_target_`. A file that contains it but does not parse is malformed: the loader would fail, or
read it differently from us.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from registry.scanners import code_names
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
from registry.scanners.claims import CONFIG_SUFFIXES

SCANNER_ID = "hydra-config"
RULESET_VERSION = "2026-12-05"
MARKER = b"_target_"
SUFFIXES = CONFIG_SUFFIXES
MAX_EVIDENCE = 20


def hydra_targets(
    document: object, limits: ScanLimits, *, legacy: bool = False
) -> Iterator[tuple[str, object]]:
    """(config path, value) of every `_target_` in `document`; with `legacy`, also `cls` beside
    `params` (Hydra < 1.0). Shared nodes (YAML aliases) are visited once: no expansion bombs."""
    seen: set[int] = set()
    stack: list[tuple[str, object, int]] = [("", document, 0)]
    while stack:
        path, node, depth = stack.pop()
        if id(node) in seen or depth > limits.max_nesting * 8:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            for key, value in node.items():
                child = f"{path}.{key}" if path else str(key)
                if key == "_target_" or (legacy and key == "cls" and "params" in node):
                    yield child, value
                if isinstance(value, dict | list):
                    stack.append((child, value, depth + 1))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, dict | list):
                    stack.append((f"{path}[{i}]", value, depth + 1))


def _contains(target: ScanTarget, marker: bytes, chunk: int = 1 << 20) -> bool:
    """Whether the file holds `marker`, read in bounded chunks (a large vocabulary JSON is
    searched, never held whole)."""
    tail = b""
    with target.open() as fh:
        while block := fh.read(chunk):
            if marker in tail + block:
                return True
            tail = block[-(len(marker) - 1) :]
    return False


def load_config(data: bytes, json_text: bool) -> Any:
    """YAML (safe loader: no tags, no objects) or JSON. Raises ValueError when it does not
    parse or nests deeper than the parser can go."""
    if json_text:
        try:
            return json.loads(data)
        except (UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(str(exc)) from None
    # Imported here: PyYAML costs ~13 ms at start-up, which every `modelctl scan` paid for;
    # only a YAML config needs it.
    import yaml  # type: ignore[import-untyped]  # noqa: PLC0415

    try:
        return yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None


def _finding(verdict: Verdict, rule: str, severity: Severity, message: str,
             evidence: dict[str, JSONValue]) -> tuple[Verdict, Finding]:  # fmt: skip
    return verdict, Finding(SCANNER_ID, rule, severity, message[:300], evidence)


@dataclass
class HydraConfigScanner:
    """YAML / JSON configs with Hydra `_target_` keys, judged by what they instantiate."""

    id: str = SCANNER_ID
    version: str = "1.0.0"
    ruleset_version: str = RULESET_VERSION

    def applies_to(self, target: ScanTarget) -> bool:
        if not target.path.lower().endswith(SUFFIXES):
            return False
        return _contains(target, MARKER)

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        items: list[tuple[Verdict, Finding]] = []
        if target.size > limits.max_header_bytes:
            items.append(
                _finding(
                    Verdict.MALFORMED,
                    "hydra.config.too-large",
                    Severity.HIGH,
                    f"{target.size} bytes: over the {limits.max_header_bytes}-byte config bound",
                    {"bytes": target.size},
                )
            )
            return _verdict(items)
        with target.open() as fh:
            data = fh.read(limits.max_header_bytes)
        try:
            document = load_config(data, target.path.lower().endswith(".json"))
        except ValueError as exc:
            items.append(
                _finding(
                    Verdict.MALFORMED,
                    "hydra.config.malformed",
                    Severity.HIGH,
                    f"config with _target_ keys does not parse: {exc}",
                    {},
                )
            )
            return _verdict(items)
        names: list[str] = []
        for path, value in hydra_targets(document, limits):
            name = value if isinstance(value, str) else repr(value)
            if isinstance(value, str) and code_names.is_dangerous(value):
                items.append(
                    _finding(
                        Verdict.MALICIOUS,
                        "hydra.target.dangerous",
                        Severity.CRITICAL,
                        f"{path} instantiates {value} when a library hands this config to "
                        "hydra.utils.instantiate (code, process, file or network access)",
                        {"key": path[:300], "target": value[:300]},
                    )
                )
            elif name not in names:
                names.append(name)
        items.append(
            _finding(
                Verdict.CLEAN,
                "hydra.config.targets",
                Severity.INFO,
                "instantiation targets (imported and called by hydra.utils.instantiate)",
                {"targets": [n[:200] for n in names[:MAX_EVIDENCE]], "count": len(names)},
            )
        )
        return _verdict(items)


def _verdict(items: list[tuple[Verdict, Finding]]) -> FileVerdict:
    return FileVerdict(worst([v for v, _ in items]), tuple(f for _, f in items))
