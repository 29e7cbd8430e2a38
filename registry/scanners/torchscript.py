"""TorchScript archives (and torch.package modules): the Python source they carry.

`torch.jit.save` writes a torch zip with `<prefix>/code/**.py`: the scripted module's methods as
TorchScript source, compiled by `torch.jit.load` (and by `torch.load`, which hands TorchScript
zips to it). torch.package archives carry real Python modules that `PackageImporter` imports.
The pickles beside them are the pickle scanner's; this scanner reads the source.

Each `.py` member is parsed with `ast.parse` (which builds a syntax tree and runs nothing) and
judged:

* imports of, or calls through, a dangerous module (`code_names`: `os`, `subprocess`,
  `builtins`, ...) and the builtins `eval`, `exec`, `compile`, `__import__`, `breakpoint`:
  malicious. TorchScript's compiler refuses most of them, but torch.package imports the file
  as Python, and no benign scripted module needs them.
* `torch.ops.<namespace>.<op>` outside PyTorch's own namespaces: suspicious (the op exists only
  once a native custom-op library is loaded).
* file access: `open`, `torch.save`, `aten::from_file`: suspicious.
* other imports (torch.package `extern` modules): info.

A local variable that shadows a module name (`signal`, `code`) is not a module reference: names
bound in the file (assignments, arguments, loop targets) are excluded unless imported.
Source that does not parse is malformed: the loader would refuse it, and a scanner that
skipped it would call the archive clean.

Routing: a zip with a `<prefix>/code/` member or `constants.pkl` (TorchScript), or with `.py`
members beside `.data/` records (torch.package).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

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
from registry.scanners.containers.issues import ContainerError
from registry.scanners.containers.sniff import ZIP_LOCAL
from registry.scanners.containers.zip_reader import ZipEntry, read_zip, read_zip_member
from registry.scanners.pickle_policy import RULE_ALLOWED, GlobalDecision, Use, classify_global

SCANNER_ID = "torchscript"
#: The format of the files this scanner recognises (by content), as policies see it.
FORMAT = "torchscript"
RULESET_VERSION = "2026-12-05"
MAX_EVIDENCE = 20

#: Operator namespaces compiled into PyTorch (and its domain libraries' well-known kernels).
TORCH_OP_NAMESPACES = frozenset(
    {
        "aten", "prim", "quantized", "_quantized", "profiler", "_caffe2", "cuda", "mkldnn",
        "mkldnn_prepacked", "fbgemm", "xnnpack", "_xnnpack", "sparse", "quantized_decomposed",
        "higher_order", "_prims", "prims", "rngprims", "c10d", "_c10d_functional",
        "_dtensor", "torchvision", "torchaudio", "image",
    }
)  # fmt: skip
CALL_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "breakpoint"})
#: Calls that read or write files by path.
FILE_CALLS = frozenset(
    {"open", "torch.save", "torch.from_file", "torch.ops.aten.from_file", "ops.aten.from_file"}
)

#: Globals the TorchScript unpickler resolves itself (compiled classes, list builders) rather
#: than importing: inside a TorchScript archive they are not Python imports.
TORCHSCRIPT_UNPICKLER_GLOBALS = frozenset(
    {
        "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_tensorlist",
        "torch.jit._pickle.build_doublelist", "torch.jit._pickle.build_boollist",
        "torch.jit._pickle.build_complexlist", "torch.jit._pickle.restore_type_tag",
    }
)  # fmt: skip


def is_torchscript_archive(names: set[str] | frozenset[str]) -> bool:
    """A torch zip that `torch.load` hands to `torch.jit.load`: code/ members or constants.pkl."""
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def is_torchscript_global(qualname: str) -> bool:
    """Whether the TorchScript unpickler resolves `qualname` without importing Python."""
    return qualname.startswith("__torch__.") or qualname in TORCHSCRIPT_UNPICKLER_GLOBALS


def classify_torchscript_global(module: str, name: str, *, weights: bool = True) -> GlobalDecision:
    """The pickle policy for pickles inside a TorchScript archive: torch.jit.load's unpickler
    builds `__torch__` classes from the archive's compiled code/ (judged by this scanner) and
    lists with `torch.jit._pickle` builders; everything else is judged as in any pickle."""
    if is_torchscript_global(f"{module}.{name}"):
        return GlobalDecision(
            Verdict.CLEAN,
            Severity.INFO,
            RULE_ALLOWED,
            "resolved by the TorchScript unpickler, not imported",
            use=Use.CALL,
        )
    return classify_global(module, name, weights=weights)


def _code_members(entries: tuple[ZipEntry, ...]) -> list[ZipEntry]:
    names = {e.name for e in entries}
    package = any("/.data/" in f"/{n}" for n in names)
    return [e for e in entries if e.name.endswith(".py") and ("/code/" in f"/{e.name}" or package)]


class _Result(FindingList):
    def __init__(self) -> None:
        super().__init__(SCANNER_ID)


@dataclass
class TorchScriptScanner:
    """TorchScript / torch.package archives, judged by their Python source members."""

    id: str = SCANNER_ID
    version: str = "1.0.0"
    ruleset_version: str = RULESET_VERSION

    def applies_to(self, target: ScanTarget) -> bool:
        if not target.head().startswith(ZIP_LOCAL):
            return False
        try:
            with target.open() as fh:
                entries = read_zip(fh, target.size, ScanLimits()).entries
        except (ContainerError, OSError):
            return False
        return is_torchscript_archive({e.name for e in entries}) or bool(_code_members(entries))

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        result = _Result()
        try:
            with target.open() as fh:
                entries = read_zip(fh, target.size, limits).entries
                members = _code_members(entries)
                sources = [
                    (e.name, read_zip_member(fh, e, limits.max_header_bytes)[0]) for e in members
                ]
        except ContainerError as exc:
            # The pickle scanner reports the container's problems in full; say why we stopped.
            result.add(
                exc.issue.verdict,
                "torchscript.archive.unreadable",
                Severity.HIGH,
                f"archive cannot be read: {exc.issue.message}",
                {"container_rule": exc.issue.rule},
            )
            return result.verdict()
        for name, source in sources:
            _judge_source(name, source, result)
        result.add(
            Verdict.CLEAN,
            "torchscript.code",
            Severity.INFO,
            f"{len(sources)} source members parsed (never compiled or run)",
            {"members": [n for n, _ in sources][:MAX_EVIDENCE], "count": len(sources)},
        )
        return result.verdict()


def _judge_source(member: str, source: bytes, result: _Result) -> None:
    try:
        tree = ast.parse(source.decode("utf-8"), filename=member)
    except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError, MemoryError) as exc:
        result.add(
            Verdict.MALFORMED,
            "torchscript.code.unparsable",
            Severity.HIGH,
            f"{member} is not valid Python/TorchScript source: {exc}"[:300],
            member=member,
        )
        return
    imported: dict[str, str] = {}  # the name bound in the file -> the module it stands for
    for node in ast.walk(tree):
        for local, target, name, line in _imports(node):
            imported[local] = target
            _judge_import(name, line, member, result)
    bound = _bound_names(tree) - set(imported)
    hits: dict[tuple[str, str], list[int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            dotted = _dotted(node.func)
            if dotted is not None:
                for rule in _judge_call(dotted, bound, imported):
                    hits.setdefault((rule, dotted), []).append(node.lineno)
    for (rule, dotted), lines in sorted(hits.items()):
        verdict, severity, why = _CALL_RULES[rule]
        result.add(
            verdict,
            rule,
            severity,
            f"{member} calls {dotted}: {why}",
            {"call": dotted[:200], "lines": lines[:MAX_EVIDENCE]},
            member=member,
        )


_CALL_RULES: dict[str, tuple[Verdict, Severity, str]] = {
    "torchscript.code.dangerous-call": (
        Verdict.MALICIOUS,
        Severity.CRITICAL,
        "code, process, file or network access no scripted model needs",
    ),
    "torchscript.code.custom-op": (
        Verdict.SUSPICIOUS,
        Severity.HIGH,
        "an operator outside PyTorch's namespaces (needs a native custom-op library)",
    ),
    "torchscript.code.file-access": (
        Verdict.SUSPICIOUS,
        Severity.MEDIUM,
        "reads or writes a file by path when the model runs",
    ),
}


def _imports(node: ast.AST) -> Iterator[tuple[str, str, str, int]]:
    """(name bound, what it stands for, dotted name imported, line) of each import:
    `import a.b` binds `a` to `a`, `import a.b as c` binds `c` to `a.b`."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            local = alias.asname or alias.name.split(".", 1)[0]
            target = alias.name if alias.asname else local
            yield local, target, alias.name, node.lineno
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        for alias in node.names:
            name = f"{node.module}.{alias.name}"
            yield alias.asname or alias.name, name, name, node.lineno


def _judge_import(name: str, line: int, member: str, result: _Result) -> None:
    evidence: dict[str, JSONValue] = {"import": name[:200], "line": line}
    if code_names.is_dangerous(name):
        result.add(
            Verdict.MALICIOUS,
            "torchscript.code.dangerous-import",
            Severity.CRITICAL,
            f"{member} imports {name} (code, process, file or network access)",
            evidence,
            member=member,
        )
    else:
        result.add(
            Verdict.CLEAN,
            "torchscript.code.import",
            Severity.INFO,
            f"{member} imports {name}",
            evidence,
            member=member,
        )


def _bound_names(tree: ast.AST) -> set[str]:
    """Names the source binds itself (locals, arguments, loop targets, defs)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
    return bound


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _judge_call(dotted: str, bound: set[str], imported: dict[str, str]) -> Iterator[str]:
    root = dotted.split(".", 1)[0]
    if root in bound:
        return
    resolved = dotted
    if root in imported and imported[root] != root:
        resolved = imported[root] + dotted[len(root) :]
    if dotted in CALL_BUILTINS or code_names.is_dangerous(resolved):
        yield "torchscript.code.dangerous-call"
        return
    if dotted in FILE_CALLS or resolved in FILE_CALLS:
        yield "torchscript.code.file-access"
    parts = dotted.split(".")
    ops_at = 1 if parts[0] == "torch" else 0
    if (
        len(parts) > ops_at + 2
        and parts[ops_at] == "ops"
        and parts[ops_at + 1] not in TORCH_OP_NAMESPACES
    ):
        yield "torchscript.code.custom-op"
