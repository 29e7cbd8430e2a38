"""skops `.skops` files: the types `schema.json` asks `skops.io.load` to import.

A `.skops` file is a zip holding `schema.json` (a tree of nodes, each naming a `__module__`,
a `__class__` and the `__loader__` that rebuilds it) and the array / bytes members the nodes
point to by `file`. skops never unpickles, but it imports and calls what the schema names
once the caller trusts it (`trusted=` or `get_untrusted_types` rubber-stamped), and two node
kinds reached attributes its trust check did not see: `MethodNode` (CVE-2025-54413) and
`OperatorFuncNode` (CVE-2025-54412), fixed in skops 0.12.

The scanner never loads: it walks the JSON and judges every type and function the schema
names against an allowlist close to skops' default trusted set (builtins containers and
scalars, NumPy, SciPy sparse matrices, scikit-learn). Dangerous modules (`code_names`) are
malicious; other names suspicious; method nodes on dunder names and operator nodes reaching
dunder attributes are the advisories' gadgets. Members the schema does not need are reported
when they are pickles (skops never writes one) or would extract outside the folder; files the
schema needs but the archive lacks make it malformed.

Routing: a zip whose members include `schema.json`, or a file named `.skops` (bytes that are
not a zip under that name are suspicious).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from registry.scanners import code_names
from registry.scanners.base import (
    SNIFF_BYTES,
    FileVerdict,
    FindingList,
    JSONValue,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
)
from registry.scanners.containers.issues import ContainerError, Issue
from registry.scanners.containers.sniff import ZIP_LOCAL, Kind, sniff
from registry.scanners.containers.zip_reader import (
    ZipEntry,
    read_zip,
    read_zip_member,
    zip_member_head,
)

SCANNER_ID = "skops"
#: The format of the files this scanner recognises (by content), as policies see it.
FORMAT = "skops"
RULESET_VERSION = "2026-12-05"

SCHEMA = "schema.json"
MAX_EVIDENCE = 20

#: Builtins a schema may name: the containers and scalars skops rebuilds itself, and the
#: node classes it writes for functions and methods (their targets are judged separately).
BUILTINS_ALLOWED = frozenset(
    {
        "dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bytes",
        "bytearray", "bool", "complex", "slice", "NoneType", "type", "function", "method",
        "builtin_function_or_method",
    }
)  # fmt: skip
#: Modules whose classes and functions skops trusts by default (or that only hold data).
ALLOWED_PREFIXES = frozenset(
    {"sklearn", "numpy", "scipy.sparse", "collections.OrderedDict", "collections.defaultdict"}
)


class _Malformed(Exception):
    pass


class _Result(FindingList):
    def __init__(self) -> None:
        super().__init__(SCANNER_ID)
        self.allowed: set[str] = set()

    def issue(self, issue: Issue) -> None:
        self.add(
            issue.verdict,
            issue.rule,
            issue.severity,
            issue.message,
            issue.evidence,
            member=issue.member,
        )


def _zip_names(target: ScanTarget, limits: ScanLimits) -> set[str]:
    try:
        with target.open() as fh:
            return {e.name for e in read_zip(fh, target.size, limits).entries}
    except (ContainerError, OSError):
        return set()


@dataclass
class SkopsScanner:
    """`.skops` files, judged by the types their schema names."""

    id: str = SCANNER_ID
    version: str = "1.0.0"
    ruleset_version: str = RULESET_VERSION

    def applies_to(self, target: ScanTarget) -> bool:
        if target.path.lower().endswith(".skops"):
            return True
        if not target.head().startswith(ZIP_LOCAL):
            return False
        return SCHEMA in _zip_names(target, ScanLimits())

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        result = _Result()
        head = target.head()
        if not head.startswith(ZIP_LOCAL):
            # skops' model-card loader once fell back to joblib (pickle) for such files.
            pickled = sniff(head, target.size) is not None
            result.add(
                Verdict.SUSPICIOUS,
                "skops.name-mismatch",
                Severity.HIGH,
                "named .skops but not a zip archive (skops.io opens it by name)"
                + ("; it is a pickle-family file" if pickled else ""),
                reference="CVE-2025-54886" if pickled else None,
            )
            return result.verdict()
        issues: list[Issue] = []
        try:
            with target.open() as fh:
                archive = read_zip(fh, target.size, limits, issues)
                schema = self._schema(fh, archive.entries, limits, issues)
                self._members(fh, archive.entries, result)
        except ContainerError as exc:
            result.add(
                exc.issue.verdict,
                "skops.archive.unreadable",
                Severity.HIGH,
                f"archive cannot be read: {exc.issue.message}",
                {"container_rule": exc.issue.rule},
            )
            return result.verdict()
        except _Malformed as exc:
            for issue in issues:
                result.issue(issue)
            result.add(Verdict.MALFORMED, "skops.schema.malformed", Severity.HIGH, str(exc))
            return result.verdict()
        for issue in issues:
            result.issue(issue)
        names = {e.name for e in archive.entries}
        _Walker(result, limits, names).walk(schema)
        result.add(
            Verdict.CLEAN,
            "skops.schema.types",
            Severity.INFO,
            "types from the default trusted set named by schema.json",
            {"types": sorted(result.allowed)[:MAX_EVIDENCE], "count": len(result.allowed)},
        )
        return result.verdict()

    @staticmethod
    def _schema(
        fh: BinaryIO, entries: tuple[ZipEntry, ...], limits: ScanLimits, issues: list[Issue]
    ) -> dict[str, Any]:
        schemas = [e for e in entries if e.name == SCHEMA]
        if not schemas:
            raise _Malformed("archive has no schema.json (skops.io cannot load it)")
        if len(schemas) > 1:
            raise _Malformed("archive repeats schema.json (readers disagree on which is read)")
        data, member_issues = read_zip_member(fh, schemas[0], limits.max_header_bytes)
        issues.extend(member_issues)
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise _Malformed(f"schema.json is not JSON: {exc}"[:300]) from None
        if not isinstance(document, dict) or "__loader__" not in document:
            raise _Malformed("schema.json is not a skops node tree")
        return document

    @staticmethod
    def _members(fh: BinaryIO, entries: tuple[ZipEntry, ...], result: _Result) -> None:
        for entry in entries:
            parts = entry.name.replace("\\", "/").split("/")
            if entry.name.startswith(("/", "\\")) or ".." in parts:
                result.add(
                    Verdict.SUSPICIOUS,
                    "skops.member-path",
                    Severity.HIGH,
                    f"member {entry.name!r} would be written outside the extraction folder",
                    member=entry.name,
                )
            if entry.name == SCHEMA or entry.name.endswith("/"):
                continue
            head = zip_member_head(fh, entry, SNIFF_BYTES)
            if sniff(head, entry.size) is Kind.PICKLE or entry.name.endswith((".pkl", ".pickle")):
                result.add(
                    Verdict.SUSPICIOUS,
                    "skops.member.pickle",
                    Severity.HIGH,
                    f"member {entry.name!r} is a pickle, which skops never writes",
                    member=entry.name,
                )


class _Walker:
    """Judges every node of the schema tree (each node once; depth bounded)."""

    def __init__(self, result: _Result, limits: ScanLimits, names: set[str]) -> None:
        self.result = result
        self.limits = limits
        self.names = names
        self.nodes = 0

    def walk(self, document: dict[str, Any]) -> None:
        stack: list[tuple[object, str, int]] = [(document, "$", 0)]
        while stack:
            node, path, depth = stack.pop()
            if depth > self.limits.max_nesting * 16:
                self.result.add(
                    Verdict.MALFORMED,
                    "skops.schema.too-deep",
                    Severity.HIGH,
                    f"schema nests deeper than {depth} at {path}",
                )
                return
            if isinstance(node, dict):
                self.nodes += 1
                if self.nodes > self.limits.max_items:
                    self.result.add(
                        Verdict.MALFORMED, "skops.schema.too-large", Severity.HIGH, "too many nodes"
                    )
                    return
                if "__loader__" in node:
                    self._node(node, path)
                stack.extend((v, f"{path}.{k}", depth + 1) for k, v in node.items())
            elif isinstance(node, list):
                stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node))

    def _node(self, node: dict[str, Any], path: str) -> None:
        loader = node.get("__loader__")
        module, cls = node.get("__module__"), node.get("__class__")
        if not isinstance(module, str) or not isinstance(cls, str):
            self._malformed(path, "node without a string __module__ and __class__")
            return
        content = node.get("content")
        if loader == "OperatorFuncNode":
            self._operator(node, path)  # its own type is operator.*: judged by what it reaches
        elif loader != "FunctionNode":  # a function node's type is its target's module
            self._name(f"{module}.{cls}", path, "type")
        if loader == "FunctionNode" and isinstance(content, dict):
            target = f"{content.get('module_path')}.{content.get('function')}"
            self._name(target, path, "function")
        elif loader == "TypeNode" and isinstance(content, dict):
            self._name(f"{content.get('__module__')}.{content.get('__class__')}", path, "type")
        elif loader == "MethodNode":
            self._method(content, path)
        file_name = node.get("file")
        if isinstance(file_name, str) and file_name not in self.names:
            self._malformed(path, f"node names file {file_name!r}, which the archive lacks")

    def _name(self, name: str, path: str, what: str) -> None:
        evidence: dict[str, JSONValue] = {"name": name[:300], "node": path[:300]}
        module, _, short = name.rpartition(".")
        if code_names.is_dangerous(name) and not (
            module == "builtins" and short in BUILTINS_ALLOWED
        ):
            self.result.add(
                Verdict.MALICIOUS,
                "skops.type.dangerous",
                Severity.CRITICAL,
                f"schema names {what} {name}: loading it is code, process or file access",
                evidence,
            )
        elif (module == "builtins" and short in BUILTINS_ALLOWED) or code_names.under(
            name, ALLOWED_PREFIXES
        ):
            self.result.allowed.add(name)
        else:
            self.result.add(
                Verdict.SUSPICIOUS,
                "skops.type.untrusted",
                Severity.HIGH,
                f"schema names {what} {name}, outside skops' default trusted types "
                "(its module runs on import once trusted)",
                evidence,
            )

    def _method(self, content: object, path: str) -> None:
        func = content.get("func") if isinstance(content, dict) else None
        if not isinstance(func, str):
            self._malformed(path, "MethodNode without a method name")
            return
        if func.startswith("_"):
            self.result.add(
                Verdict.SUSPICIOUS,
                "skops.method.private",
                Severity.HIGH,
                f"MethodNode binds the private method {func!r} of the object it rebuilds",
                {"method": func[:200], "node": path[:300]},
                reference="CVE-2025-54413",
            )

    def _operator(self, node: dict[str, Any], path: str) -> None:
        words = list(_strings(node.get("attrs"), self.limits.max_items))
        dunder = sorted({w for w in words if w.startswith("__")})
        self.result.add(
            Verdict.MALICIOUS if dunder else Verdict.SUSPICIOUS,
            "skops.operator-node",
            Severity.CRITICAL if dunder else Severity.HIGH,
            "OperatorFuncNode "
            + (f"reaches {', '.join(dunder[:5])}" if dunder else "rebuilds an operator function"),
            {"node": path[:300], "attributes": dunder[:MAX_EVIDENCE]},
            reference="CVE-2025-54412",
        )

    def _malformed(self, path: str, message: str) -> None:
        self.result.add(
            Verdict.MALFORMED, "skops.schema.malformed", Severity.HIGH, f"{path}: {message}"
        )


def _strings(value: object, limit: int) -> Iterator[str]:
    """Every string inside `value` (JSON), at most `limit` of them."""
    stack = [value]
    count = 0
    while stack and count < limit:
        item = stack.pop()
        if isinstance(item, str):
            count += 1
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
