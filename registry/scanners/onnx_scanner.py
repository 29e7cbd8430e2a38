"""ONNX models: external-data paths, custom operator domains, local functions.

An ONNX file is a protobuf `ModelProto`. Loading it runs no Python, but two things reach
outside the model: tensors whose bytes live in *external data* files named by a `location`
string (read relative to the model's folder: path traversal reads or maps any file the loader
can open, CVE-2022-25882 / CVE-2024-27318), and nodes in a non-standard operator domain, which
only run if the user registers a native custom-op library (native code by policy).

Routing is by content. `onnx.save` writes `ModelProto` fields in field-number order, so a
model starts with `ir_version` (tag 0x08, a small varint); the sniff walks the protobuf wire
format in the first bytes and accepts only field numbers and wire types that `ModelProto`
defines (1-8, 14, 20, 25, 26), at least one of them `ir_version` or `graph`, with lengths
that fit the file (a length past the end after a valid `ir_version` is a truncated model:
claimed, and then malformed). Pickles (0x80), zips ('PK' = field 10), HDF5, GGUF (wire type 7),
safetensors (field 14 as a varint) and JSON ('{' = wire type 3) all fail it.

The whole file is parsed with `ModelProto.ParseFromString` (never `onnx.load`, never external
data, never onnxruntime). Protobuf cannot hold more than 2 GiB, so files over that (or over
`limits.max_decompressed_bytes`, the most a scanner may hold in memory) are malformed: larger
ONNX models must keep their weights in external data.

This scanner sees one file, so it judges each `location` as a string: absolute paths, drive
letters, UNC paths and `..` that leaves the model folder are malicious; backslashes, colons,
control characters and `..` that stays inside are suspicious; a safe location is reported as
info. Whether the referenced file exists, is a symlink or a hard link is a folder question:
`registry.scanners.folder.ModelFolderScanner` answers it with the helpers below.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
from registry.scanners.claims import ONNX_MODEL_FIELDS, ONNX_SUFFIX, named
from registry.scanners.tensorflow_graph import looks_like_saved_model
from registry.scanners.unsupported_formats import looks_like_coreml

if TYPE_CHECKING:
    from onnx import (
        AttributeProto,
        GraphProto,
        ModelProto,
        NodeProto,
        SparseTensorProto,
        TensorProto,
    )

SCANNER_ID = "onnx"
#: The format of the files this scanner recognises (by content), as policies see it.
FORMAT = "onnx"
RULESET_VERSION = "2026-12-05"  # SavedModels and Core ML specs are no longer claimed

#: Protobuf messages cannot exceed 2 GiB; ONNX models past that must use external data.
ONNX_MAX_BYTES = 2**31 - 1
MAX_EVIDENCE = 20

# ModelProto field number -> wire type (0 varint, 2 length-delimited).
_MODEL_FIELDS = ONNX_MODEL_FIELDS
_MAX_IR_VERSION = 64

STANDARD_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"}
)
# onnxruntime's contrib operators are compiled into onnxruntime itself: no library is loaded
# and optimized transformer exports use them everywhere, so they are reported, not refused.
# The ones that call back into Python (training builds) or into ATen are refused all the same.
CONTRIB_DOMAINS = frozenset({"com.microsoft"})
CONTRIB_REFUSED_OPS = frozenset({"PythonOp", "PythonOpGrad", "ATen", "ATenGrad"})

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class OnnxMalformedError(Exception):
    def __init__(self, rule: str, message: str, evidence: Mapping[str, JSONValue] | None = None):
        super().__init__(message)
        self.rule = rule
        self.evidence: Mapping[str, JSONValue] = evidence or {}


@dataclass(frozen=True, slots=True)
class ExternalRef:
    """One tensor whose bytes live in an external file."""

    tensor: str
    where: str  # e.g. "graph/initializer", "graph/node[3]/attribute value", "function f/..."
    location: str | None
    entries: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class LocationProblem:
    verdict: Verdict
    rule: str
    reason: str
    reference: str | None


# --- sniffing and parsing ---------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            return None
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    return None


def looks_like_onnx(head: bytes, size: int) -> bool:
    """True if the first bytes are a plausible ModelProto (see the module docstring)."""
    pos = 0
    seen: set[int] = set()
    while pos < len(head):
        tag = _varint(head, pos)
        if tag is None:
            break
        key, pos = tag
        number, wire = key >> 3, key & 7
        if _MODEL_FIELDS.get(number) != wire:
            return False
        value = _varint(head, pos)
        if value is None:
            break
        n, pos = value
        if wire == 0:
            if number == 1 and not 1 <= n <= _MAX_IR_VERSION:
                return False
        else:
            if pos + n > size:
                return 1 in seen  # truncated after a valid ir_version: ours to call malformed
            if pos + n > len(head):
                seen.add(number)
                break
            pos += n
        seen.add(number)
    return bool(seen & {1, 7})


def parse_model(target: ScanTarget, limits: ScanLimits) -> ModelProto:
    """Parse the whole file as a ModelProto (no external data). Raises OnnxMalformedError."""
    # onnx is imported only when an .onnx file is met: it costs over a second to import.
    # protobuf ships no stubs here (types-protobuf is not a dependency); DecodeError is all we use
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]  # noqa: PLC0415
    from onnx import ModelProto  # noqa: PLC0415

    bound = min(ONNX_MAX_BYTES, limits.max_decompressed_bytes)
    if target.size > bound:
        raise OnnxMalformedError(
            "onnx.too-large",
            f"{target.size} bytes: over the {bound}-byte protobuf bound (use external data)",
            {"bytes": target.size, "bound": bound},
        )
    with target.open() as fh:
        data = fh.read(bound + 1)
    if len(data) > bound:
        raise OnnxMalformedError("onnx.too-large", f"file grew past {bound} bytes while read")
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OnnxMalformedError(
            "onnx.malformed", f"not a valid ONNX protobuf: {exc}"[:200]
        ) from exc
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise OnnxMalformedError("onnx.malformed", "ModelProto without ir_version or graph")
    return model


# --- walking the model ------------------------------------------------------------------------


@dataclass
class _Walk:
    limits: ScanLimits
    local_functions: frozenset[tuple[str, str]]
    refs: list[ExternalRef] = field(default_factory=list)
    custom_ops: dict[str, set[str]] = field(default_factory=dict)
    contrib_ops: set[str] = field(default_factory=set)
    items: int = 0

    def _count(self) -> None:
        self.items += 1
        if self.items > self.limits.max_items:
            raise OnnxMalformedError("onnx.too-many-items", "too many nodes and tensors")

    def tensor(self, tensor: TensorProto, where: str) -> None:
        from onnx import TensorProto  # noqa: PLC0415 - onnx costs a second (parse_model)

        self._count()
        if tensor.data_location != TensorProto.EXTERNAL and not len(tensor.external_data):
            return
        entries = tuple((e.key, e.value) for e in tensor.external_data)
        locations = [v for k, v in entries if k == "location"]
        if len(locations) > 1:
            raise OnnxMalformedError(
                "onnx.external-data.ambiguous",
                f"tensor {tensor.name!r} names {len(locations)} locations",
                {"tensor": tensor.name, "locations": locations[:MAX_EVIDENCE]},
            )
        for key, value in entries:
            if key in {"offset", "length"} and not value.isdigit():
                raise OnnxMalformedError(
                    "onnx.external-data.malformed",
                    f"tensor {tensor.name!r}: external {key} {value!r} is not a byte count",
                    {"tensor": tensor.name, key: value[:100]},
                )
        if not locations or not locations[0]:
            raise OnnxMalformedError(
                "onnx.external-data.malformed",
                f"tensor {tensor.name!r} is external but names no location",
                {"tensor": tensor.name},
            )
        self.refs.append(ExternalRef(tensor.name, where, locations[0], entries))

    def sparse(self, sparse: SparseTensorProto, where: str) -> None:
        self.tensor(sparse.values, f"{where} (sparse values)")
        self.tensor(sparse.indices, f"{where} (sparse indices)")

    def graph(self, graph: GraphProto, where: str, depth: int) -> None:
        if depth > self.limits.max_nesting:
            raise OnnxMalformedError("onnx.too-deep", f"subgraphs nest deeper than {depth}")
        for tensor in graph.initializer:
            self.tensor(tensor, f"{where}/initializer")
        for sparse in graph.sparse_initializer:
            self.sparse(sparse, f"{where}/sparse_initializer")
        for i, node in enumerate(graph.node):
            self.node(node, f"{where}/node[{i}]", depth)

    def node(self, node: NodeProto, where: str, depth: int) -> None:
        self._count()
        domain = "" if node.domain == "ai.onnx" else node.domain
        if (node.domain, node.op_type) in self.local_functions:
            pass  # a model-local function: its body is walked on its own
        elif domain in CONTRIB_DOMAINS and node.op_type not in CONTRIB_REFUSED_OPS:
            self.contrib_ops.add(node.op_type)
        elif domain not in STANDARD_DOMAINS:
            self.custom_ops.setdefault(node.domain, set()).add(node.op_type)
        for attribute in node.attribute:
            self.attribute(attribute, f"{where}/attribute {attribute.name}", depth)

    def attribute(self, attribute: AttributeProto, where: str, depth: int) -> None:
        if attribute.HasField("t"):
            self.tensor(attribute.t, where)
        for tensor in attribute.tensors:
            self.tensor(tensor, where)
        if attribute.HasField("sparse_tensor"):
            self.sparse(attribute.sparse_tensor, where)
        for sparse in attribute.sparse_tensors:
            self.sparse(sparse, where)
        if attribute.HasField("g"):
            self.graph(attribute.g, f"{where}/g", depth + 1)
        for i, graph in enumerate(attribute.graphs):
            self.graph(graph, f"{where}/graphs[{i}]", depth + 1)


def _walk(model: ModelProto, limits: ScanLimits) -> _Walk:
    functions = frozenset((f.domain, f.name) for f in model.functions)
    walk = _Walk(limits, functions)
    walk.graph(model.graph, "graph", 0)
    for function in model.functions:
        where = f"function {function.domain}:{function.name}"
        for attribute in function.attribute_proto:
            walk.attribute(attribute, f"{where}/attribute {attribute.name}", 1)
        for i, node in enumerate(function.node):
            walk.node(node, f"{where}/node[{i}]", 1)
    for i, info in enumerate(model.training_info):
        walk.graph(info.initialization, f"training_info[{i}]/initialization", 1)
        walk.graph(info.algorithm, f"training_info[{i}]/algorithm", 1)
    return walk


def external_data_refs(model: ModelProto, limits: ScanLimits) -> list[ExternalRef]:
    """Every external-data reference in the model (initializers, attributes, sparse, functions,
    training graphs). Raises OnnxMalformedError."""
    return _walk(model, limits).refs


def location_problem(location: str, model_path: str) -> LocationProblem | None:
    """What is wrong with an external-data `location` of the model at `model_path` (a path
    relative to the model folder), or None if it is a plain relative path inside the folder."""
    normalized = location.replace("\\", "/")
    parts = normalized.split("/")
    if normalized.startswith("/") or _DRIVE.match(location):
        return LocationProblem(
            Verdict.MALICIOUS,
            "onnx.external-data.unsafe-path",
            "absolute path (or drive letter / UNC path)",
            "CVE-2022-25882",
        )
    if ".." in parts:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(model_path), normalized))
        if resolved == ".." or resolved.startswith("../"):
            return LocationProblem(
                Verdict.MALICIOUS,
                "onnx.external-data.unsafe-path",
                "'..' leaves the model folder",
                "CVE-2022-25882" if parts[0] == ".." else "CVE-2024-27318",
            )
    odd = (
        (".." in parts, "'..' component (stays inside the folder, but loaders refuse it)"),
        (bool(_CONTROL.search(location)), "control character"),
        ("\\" in location, "backslash separator"),
        (":" in location, "colon (URL scheme or alternate data stream)"),
    )
    for hit, reason in odd:
        if hit:
            return LocationProblem(Verdict.SUSPICIOUS, "onnx.external-data.odd-path", reason, None)
    return None


# --- the scanner ------------------------------------------------------------------------------


def _finding(
    rule: str,
    severity: Severity,
    message: str,
    evidence: Mapping[str, JSONValue],
    reference: str | None = None,
) -> Finding:
    return Finding(
        scanner=SCANNER_ID,
        rule=rule,
        severity=severity,
        message=message[:300],
        evidence=evidence,
        reference=reference,
    )


def _sorted_capped(values: set[str]) -> list[JSONValue]:
    return list(sorted(values)[:MAX_EVIDENCE])


@dataclass
class OnnxScanner:
    """ONNX ModelProto files: external-data locations and operator domains."""

    id: str = SCANNER_ID
    version: str = "1.0.0"
    ruleset_version: str = RULESET_VERSION

    def applies_to(self, target: ScanTarget) -> bool:
        head = target.head()
        # A TensorFlow SavedModel (`08 01 12 ...`) passes the ModelProto sniff as ir_version 1
        # with a producer_name; it is the tensorflow scanner's (which is strict about it).
        # A Core ML spec (`08 0N 12 <len> 0a ...`) passes it too, as ir_version N with a
        # producer_name that is a message: the unsupported-formats scanner's. A file named
        # `.onnx` is this scanner's whatever its bytes (the runtime opens it by name).
        return named(target, ONNX_SUFFIX) or (
            looks_like_onnx(head, target.size)
            and not looks_like_saved_model(head)
            and not looks_like_coreml(head)
        )

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        try:
            model = parse_model(target, limits)
            walk = _walk(model, limits)
        except OnnxMalformedError as exc:
            finding = _finding(exc.rule, Severity.HIGH, str(exc), exc.evidence)
            return FileVerdict(Verdict.MALFORMED, (finding,))
        items = list(self._judge(walk, target.path))
        return FileVerdict(worst([v for v, _ in items]), tuple(f for _, f in items))

    @staticmethod
    def _judge(walk: _Walk, model_path: str) -> Iterator[tuple[Verdict, Finding]]:
        safe: list[JSONValue] = []
        for ref in walk.refs:
            location = ref.location or ""
            problem = location_problem(location, model_path)
            if problem is None:
                if location not in safe:
                    safe.append(location)
                continue
            severity = Severity.CRITICAL if problem.verdict is Verdict.MALICIOUS else Severity.HIGH
            yield (
                problem.verdict,
                _finding(
                    problem.rule,
                    severity,
                    f"tensor {ref.tensor!r} reads external data from {location!r}: "
                    f"{problem.reason}",
                    {"tensor": ref.tensor, "location": location[:300], "where": ref.where},
                    problem.reference,
                ),
            )
        if safe:
            yield (
                Verdict.CLEAN,
                _finding(
                    "onnx.external-data.location",
                    Severity.INFO,
                    "external data files (checked for links by the model-folder scanner)",
                    {"locations": safe[:MAX_EVIDENCE], "count": len(safe)},
                ),
            )
        for domain, ops in sorted(walk.custom_ops.items()):
            yield (
                Verdict.SUSPICIOUS,
                _finding(
                    "onnx.domain.custom",
                    Severity.HIGH,
                    f"operators in domain {domain!r} need a native custom-op library to run",
                    {"domain": domain, "op_types": _sorted_capped(ops)},
                ),
            )
        if walk.contrib_ops:
            yield (
                Verdict.CLEAN,
                _finding(
                    "onnx.domain.contrib",
                    Severity.INFO,
                    "onnxruntime contrib operators (built into onnxruntime)",
                    {"domain": "com.microsoft", "op_types": _sorted_capped(walk.contrib_ops)},
                ),
            )
        if walk.local_functions:
            shadowing = {f"{d}:{n}" for d, n in walk.local_functions if d in STANDARD_DOMAINS}
            if shadowing:
                yield (
                    Verdict.SUSPICIOUS,
                    _finding(
                        "onnx.function.shadows-standard",
                        Severity.MEDIUM,
                        "model-local functions declared in a standard operator domain",
                        {"functions": _sorted_capped(shadowing)},
                    ),
                )
            yield (
                Verdict.CLEAN,
                _finding(
                    "onnx.function.local",
                    Severity.INFO,
                    "model-local functions (ONNX graphs, no native code; bodies scanned)",
                    {"functions": _sorted_capped({f"{d}:{n}" for d, n in walk.local_functions})},
                ),
            )
