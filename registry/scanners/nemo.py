"""NVIDIA NeMo `.nemo` archives: the Hydra targets in `model_config.yaml`.

A `.nemo` file is a tar (sometimes gzip-compressed) holding `model_config.yaml`, the weights
(`model_weights.ckpt`, a PyTorch checkpoint) and tokenizer artifacts. `restore_from` reads the
config and instantiates what it names: every `_target_` (Hydra), the legacy `cls` (with
`params`) and the root `target` are dotted paths that are imported and called. Before NeMo
2.3.2 nothing restricted them, so a config naming `builtins.exec` or `os.system` runs code on
load (CVE-2025-23304).

This scanner reads the config (YAML, safe loader: no tags, no objects) and judges each target:
a dangerous module (`code_names`) is malicious, NeMo's own namespace and PyTorch / Lightning
modules, optimizers and callbacks are allowed, anything else is suspicious (third-party code
runs on import). Member paths that would be extracted outside the temporary folder are
suspicious. The weights are not read here: the pickle scanner reads tar members (and
gzip-wrapped tars) and scans the checkpoint inside like any other.

Routing: a tar whose members include `model_config.yaml`, or any file named `.nemo` (a
gzip-compressed archive is only recognised by name); bytes that are neither tar nor gzip under
a `.nemo` name are suspicious.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from registry.scanners import code_names
from registry.scanners.base import (
    FileVerdict,
    FindingList,
    JSONValue,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
)
from registry.scanners.containers.compressed import decompress
from registry.scanners.containers.issues import ContainerError
from registry.scanners.containers.sniff import Kind, is_tar_header, sniff
from registry.scanners.containers.torch_legacy import read_tar
from registry.scanners.hydra_config import hydra_targets, load_config

SCANNER_ID = "nemo"
#: The format of the files this scanner recognises (by content), as policies see it.
FORMAT = "nemo"
RULESET_VERSION = "2026-12-05"
CVE = "CVE-2025-23304"

CONFIG_NAME = "model_config.yaml"
MAX_EVIDENCE = 20
_MAX_SNIFF_MEMBERS = 256

#: Namespaces a NeMo config may instantiate: NeMo itself, PyTorch modules and optimizers, and
#: Lightning (trainer callbacks, loggers). Dangerous names inside them are still caught first.
ALLOWED_PREFIXES = frozenset(
    {"nemo", "torch.nn", "torch.optim", "pytorch_lightning", "lightning.pytorch"}
)


class _Result(FindingList):
    def __init__(self) -> None:
        super().__init__(SCANNER_ID)


def _local_name(name: str) -> str:
    """A tar member name as NeMo's extraction folder sees it (`./model_config.yaml` -> ...)."""
    while name.startswith("./"):
        name = name[2:]
    return name


def _tar_has_config(fh: BinaryIO) -> bool:
    try:
        with tarfile.open(fileobj=fh, mode="r:") as tar:
            for _, info in zip(range(_MAX_SNIFF_MEMBERS), tar, strict=False):
                if _local_name(info.name) == CONFIG_NAME:
                    return True
    except (tarfile.TarError, OSError, EOFError):
        return False
    return False


@dataclass
class NemoScanner:
    """`.nemo` archives, judged by the Hydra targets of their model config."""

    id: str = SCANNER_ID
    version: str = "1.0.0"
    ruleset_version: str = RULESET_VERSION

    def applies_to(self, target: ScanTarget) -> bool:
        if target.path.lower().endswith(".nemo"):
            return True
        if not is_tar_header(target.head()):
            return False
        with target.open() as fh:
            return _tar_has_config(fh)

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        result = _Result()
        with target.open() as fh:
            head = fh.read(4096)
            fh.seek(0)
            kind = sniff(head, target.size)
            try:
                if kind is Kind.TAR:
                    self._scan_tar(fh, limits, result)
                elif kind is Kind.GZIP:
                    data = decompress(fh, kind, target.size, limits)
                    if not is_tar_header(data[:512]):
                        _name_mismatch(result, "gzip content is not a tar archive")
                    else:
                        self._scan_tar(io.BytesIO(data), limits, result)
                else:
                    _name_mismatch(result, "bytes are neither a tar nor a gzip archive")
            except ContainerError as exc:
                result.add(
                    exc.issue.verdict,
                    "nemo.archive.unreadable",
                    Severity.HIGH,
                    f"archive cannot be read: {exc.issue.message}",
                    {"container_rule": exc.issue.rule},
                )
        return result.verdict()

    def _scan_tar(self, fh: BinaryIO, limits: ScanLimits, result: _Result) -> None:
        archive = read_tar(fh, limits, lambda name, _first, _n: _local_name(name) == CONFIG_NAME)
        for m in archive.members:
            parts = m.name.replace("\\", "/").split("/")
            if m.name.startswith(("/", "\\")) or ".." in parts:
                result.add(
                    Verdict.SUSPICIOUS,
                    "nemo.member-path",
                    Severity.HIGH,
                    f"member {m.name!r} would be extracted outside the restore folder",
                    {"member": m.name[:300]},
                )
        configs = [m for m in archive.members if _local_name(m.name) == CONFIG_NAME]
        if not configs:
            result.add(
                Verdict.MALFORMED,
                "nemo.config.missing",
                Severity.HIGH,
                f"no {CONFIG_NAME} at the archive root (restore_from cannot read it)",
            )
            return
        if len(configs) > 1:
            result.add(
                Verdict.SUSPICIOUS,
                "nemo.config.duplicate",
                Severity.HIGH,
                f"{len(configs)} {CONFIG_NAME} members: extraction keeps the last, readers differ",
            )
        for config in configs:
            self._judge_config(config.data or b"", config.name, limits, result)

    @staticmethod
    def _judge_config(data: bytes, member: str, limits: ScanLimits, result: _Result) -> None:
        if len(data) > limits.max_header_bytes:
            result.add(
                Verdict.MALFORMED,
                "nemo.config.too-large",
                Severity.HIGH,
                f"{CONFIG_NAME} is {len(data)} bytes, over the limit",
                member=member,
            )
            return
        try:
            document = load_config(data, json_text=False)
        except ValueError as exc:
            result.add(
                Verdict.MALFORMED,
                "nemo.config.malformed",
                Severity.HIGH,
                f"{CONFIG_NAME} is not valid YAML: {exc}"[:300],
                member=member,
            )
            return
        if not isinstance(document, dict):
            result.add(
                Verdict.MALFORMED,
                "nemo.config.malformed",
                Severity.HIGH,
                f"{CONFIG_NAME} is not a mapping",
                member=member,
            )
            return
        targets = list(_targets(document, limits))
        allowed: list[str] = []
        for path, value in targets:
            _judge_target(path, value, member, result, allowed)
        result.add(
            Verdict.CLEAN,
            "nemo.config.targets",
            Severity.INFO,
            f"{len(targets)} instantiation targets read from {CONFIG_NAME}",
            {"allowed": sorted(set(allowed))[:MAX_EVIDENCE], "count": len(targets)},
            member=member,
        )


def _name_mismatch(result: _Result, why: str) -> None:
    result.add(
        Verdict.SUSPICIOUS,
        "nemo.name-mismatch",
        Severity.HIGH,
        f"named .nemo but not a NeMo archive: {why} (NeMo opens it by name)",
    )


def _targets(document: dict[Any, Any], limits: ScanLimits) -> Iterator[tuple[str, object]]:
    """(config path, value) of every key NeMo or Hydra imports: `_target_` anywhere, `cls`
    beside `params` (Hydra < 1.0), and `target` at the root (NeMo's model class)."""
    if "target" in document:
        yield "target", document["target"]
    yield from hydra_targets(document, limits, legacy=True)


def _judge_target(
    path: str, value: object, member: str, result: _Result, allowed: list[str]
) -> None:
    evidence: dict[str, JSONValue] = {"key": path[:300], "target": str(value)[:300]}
    if not isinstance(value, str) or not value:
        result.add(
            Verdict.SUSPICIOUS,
            "nemo.target.not-a-name",
            Severity.MEDIUM,
            f"{path} is not a dotted name",
            evidence,
            member=member,
        )
        return
    if code_names.is_dangerous(value):
        result.add(
            Verdict.MALICIOUS,
            "nemo.target.dangerous",
            Severity.CRITICAL,
            f"{path} instantiates {value} on restore_from (code, process, file or network access)",
            evidence,
            member=member,
            reference=CVE,
        )
    elif code_names.under(value, ALLOWED_PREFIXES):
        allowed.append(value)
    else:
        result.add(
            Verdict.SUSPICIOUS,
            "nemo.target.not-allowed",
            Severity.HIGH,
            f"{path} instantiates {value}, outside NeMo, PyTorch and Lightning (its module's "
            "code runs on import)",
            evidence,
            member=member,
            reference=CVE,
        )
