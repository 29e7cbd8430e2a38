"""TensorFlow graphs: `saved_model.pb` (SavedModel), frozen `GraphDef` `.pb`, `saved_model.pbtxt`.

Loading a SavedModel runs its graph's operators, and a few of them reach outside the tensor
world: `PyFunc`, `PyFuncStateless` and `EagerPyFunc` (what `tf.numpy_function` and
`tf.py_function` compile to) call a Python callable registered in the loading process under a
token; `WriteFile` and `PrintV2` to a `file://` stream write files; `ReadFile`, `MatchingFiles`
and `ImmutableConst` read or map files by path. Every other operator is native TensorFlow.

No TensorFlow is imported: the protobuf wire format is walked by `protobuf_wire` and only the
fields below are read (field numbers from tensorflow/core/protobuf/saved_model.proto,
meta_graph.proto, framework/graph.proto, function.proto, node_def.proto, attr_value.proto):

    SavedModel   1 saved_model_schema_version (varint), 2 meta_graphs (MetaGraphDef)
    MetaGraphDef 2 graph_def (GraphDef)
    GraphDef     1 node (NodeDef), 2 library (FunctionDefLibrary)
    FunctionDefLibrary 1 function (FunctionDef);  FunctionDef 1 signature (OpDef: 1 name),
                                                                3 node_def (NodeDef)
    NodeDef      1 name, 2 op, 5 attr (map entry: 1 key, 2 AttrValue: 2 s)

Routing is by content: a SavedModel starts with schema version 1 followed by a MetaGraphDef; a
frozen GraphDef starts with a NodeDef whose name and op are identifiers. The name adds:
`saved_model.pb` / `saved_model.pbtxt` are claimed whatever their bytes, and bytes that are not
what the name says are suspicious (a loader opens them by name).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from registry.scanners import protobuf_wire as wire
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
from registry.scanners.claims import SAVED_MODEL_NAMES, SAVED_MODEL_TEXT_NAMES

SCANNER_ID = "tensorflow"
#: The format of the files this scanner recognises (by content), as policies see it.
FORMAT = "tensorflow"
RULESET_VERSION = "2026-12-05"

#: Protobuf messages cannot exceed 2 GiB.
PROTOBUF_MAX_BYTES = 2**31 - 1
MAX_EVIDENCE = 20


@dataclass(frozen=True, slots=True)
class OpRule:
    rule: str
    verdict: Verdict
    severity: Severity
    why: str


_PYTHON = OpRule(
    "tensorflow.op.python",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "calls a Python callable registered in the loading process (tf.py_function / "
    "tf.numpy_function); the graph can run any Python the serving code registers",
)
_WRITE = OpRule(
    "tensorflow.op.file-write",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "writes a file at inference time",
)
_READ = OpRule(
    "tensorflow.op.file-read",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "reads or maps a file by path at inference time",
)

#: Operators that reach outside the graph. SaveV2 / RestoreV2 / MergeV2Checkpoints are not
#: here: every SavedModel's saver subgraph uses them on its own variables folder.
OP_RULES: dict[str, OpRule] = {
    "PyFunc": _PYTHON,
    "PyFuncStateless": _PYTHON,
    "EagerPyFunc": _PYTHON,
    "WriteFile": _WRITE,
    "ReadFile": _READ,
    "MatchingFiles": _READ,
    "ImmutableConst": _READ,
}

_IDENTIFIER = re.compile(rb"^[A-Za-z0-9_./:>-]+$")
_TEXT_OP = re.compile(r'\bop\s*:\s*"([A-Za-z0-9_>]+)"')


class TfMalformedError(Exception):
    pass


# --- sniffing ---------------------------------------------------------------------------------


def _len_field(head: bytes, pos: int, tag: int) -> tuple[int, int] | None:
    """(payload start, payload length) of a LEN field with key byte `tag` at `pos`, or None."""
    if pos >= len(head) or head[pos] != tag:
        return None
    try:
        length, start = wire.read_varint(head, pos + 1)
    except wire.WireError:
        return None
    return start, length


def looks_like_saved_model(head: bytes) -> bool:
    """Schema version 1 (`08 01`), then a MetaGraphDef (`12 <len>`) whose first field is
    meta_info_def or graph_def (`0a` / `12`)."""
    if not head.startswith(b"\x08\x01"):
        return False
    meta = _len_field(head, 2, 0x12)
    if meta is None:
        return False
    start, length = meta
    return length > 0 and start < len(head) and head[start] in (0x0A, 0x12)


def looks_like_graph_def(head: bytes) -> bool:
    """A GraphDef whose first NodeDef starts with an identifier name and an identifier op."""
    node = _len_field(head, 0, 0x0A)
    if node is None:
        return False
    name = _len_field(head, node[0], 0x0A)
    if name is None or not 0 < name[1] <= 1024:
        return False
    name_end = name[0] + name[1]
    op = _len_field(head, name_end, 0x12)
    if op is None or not 0 < op[1] <= 256 or op[0] + op[1] > len(head):
        return False
    return bool(
        _IDENTIFIER.match(head[name[0] : name_end])
        and _IDENTIFIER.match(head[op[0] : op[0] + op[1]])
    )


# --- the graph walk ---------------------------------------------------------------------------


@dataclass
class _Hit:
    op: str
    rule: OpRule
    nodes: list[str] = field(default_factory=list)
    details: set[str] = field(default_factory=set)
    count: int = 0


@dataclass
class _Walk:
    limits: ScanLimits
    nodes: int = 0
    functions: int = 0
    ops: set[str] = field(default_factory=set)
    hits: dict[str, _Hit] = field(default_factory=dict)

    def saved_model(self, data: memoryview) -> None:
        metas = 0
        for f in wire.fields(data):
            if f.number == 1 and f.wire == wire.VARINT:
                continue
            if f.number == 2 and f.wire == wire.LEN:
                metas += 1
                self.meta_graph(f.data)
                continue
            raise TfMalformedError(f"SavedModel has an unknown field {f.number} at {f.offset}")
        if not metas:
            raise TfMalformedError("SavedModel holds no MetaGraphDef")

    def meta_graph(self, data: memoryview) -> None:
        for f in wire.fields(data):
            if f.number == 2 and f.wire == wire.LEN:
                self.graph(f.data, "graph")

    def graph(self, data: memoryview, where: str) -> None:
        for f in wire.fields(data):
            if f.number == 1 and f.wire == wire.LEN:
                self.node(f.data, where)
            elif f.number == 2 and f.wire == wire.LEN:
                self.library(f.data)

    def library(self, data: memoryview) -> None:
        for f in wire.fields(data):
            if f.number == 1 and f.wire == wire.LEN:
                self.function(f.data)

    def function(self, data: memoryview) -> None:
        self.functions += 1
        name = "?"
        bodies: list[memoryview] = []
        for f in wire.fields(data):
            if f.number == 1 and f.wire == wire.LEN:
                for g in wire.fields(f.data):
                    if g.number == 1 and g.wire == wire.LEN:
                        name = wire.text(g, 256)
            elif f.number == 3 and f.wire == wire.LEN:
                bodies.append(f.data)
        for body in bodies:
            self.node(body, f"function {name}")

    def node(self, data: memoryview, where: str) -> None:
        self.nodes += 1
        if self.nodes + self.functions > self.limits.max_items:
            raise TfMalformedError(f"more than {self.limits.max_items} nodes and functions")
        name, op = "", ""
        attrs: dict[str, str] = {}
        for f in wire.fields(data):
            if f.wire != wire.LEN:
                continue
            if f.number == 1:
                name = wire.text(f, 512)
            elif f.number == 2:
                op = wire.text(f, 256)
            elif f.number == 5:
                key, value = _string_attr(f.data)
                if key is not None and value is not None:
                    attrs[key] = value
        if not op:
            raise TfMalformedError(f"node {name!r} in {where} names no op")
        self.ops.add(op)
        self._record(op, f"{where}/{name}", attrs)

    def _record(self, op: str, node: str, attrs: dict[str, str]) -> None:
        rule = OP_RULES.get(op)
        detail: str | None = f"token {attrs['token']}" if "token" in attrs else None
        stream = attrs.get("output_stream", "")
        if rule is None and op == "PrintV2" and stream.startswith("file://"):
            rule, detail = _WRITE, stream
        if rule is None:
            return
        hit = self.hits.setdefault(op, _Hit(op, rule))
        hit.count += 1
        if len(hit.nodes) < MAX_EVIDENCE:
            hit.nodes.append(node[:300])
        if detail is not None and len(hit.details) < MAX_EVIDENCE:
            hit.details.add(detail[:300])


def _string_attr(entry: memoryview) -> tuple[str | None, str | None]:
    """A NodeDef attr map entry as (key, string value); value None unless it is `s`."""
    key: str | None = None
    value: str | None = None
    for f in wire.fields(entry):
        if f.number == 1 and f.wire == wire.LEN:
            key = wire.text(f, 256)
        elif f.number == 2 and f.wire == wire.LEN:
            for g in wire.fields(f.data):
                if g.number == 2 and g.wire == wire.LEN:
                    value = wire.text(g, 1024)
    return key, value


# --- the scanner ------------------------------------------------------------------------------


def _finding(
    rule: str, severity: Severity, message: str, evidence: dict[str, JSONValue]
) -> Finding:
    return Finding(SCANNER_ID, rule, severity, message[:300], evidence)


def _basename(path: str) -> str:
    return posixpath.basename(path.replace("\\", "/")).lower()


@dataclass
class TensorFlowGraphScanner:
    """SavedModel and frozen GraphDef files, judged by the operators their graphs run."""

    id: str = SCANNER_ID
    version: str = "1.0.0"
    ruleset_version: str = RULESET_VERSION

    def applies_to(self, target: ScanTarget) -> bool:
        name = _basename(target.path)
        if name in SAVED_MODEL_NAMES or name in SAVED_MODEL_TEXT_NAMES:
            return True
        head = target.head()
        return looks_like_saved_model(head) or looks_like_graph_def(head)

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        bound = min(PROTOBUF_MAX_BYTES, limits.max_decompressed_bytes)
        if target.size > bound:
            return _verdict(
                [
                    (
                        Verdict.MALFORMED,
                        _finding(
                            "tensorflow.too-large",
                            Severity.HIGH,
                            f"{target.size} bytes: over the {bound}-byte protobuf bound",
                            {"bytes": target.size, "bound": bound},
                        ),
                    )
                ]
            )
        with target.open() as fh:
            data = fh.read(bound)
        name = _basename(target.path)
        walk = _Walk(limits)
        try:
            if name in SAVED_MODEL_TEXT_NAMES:
                return _verdict(list(_text_graph(data)))
            if looks_like_saved_model(data[:64]):
                walk.saved_model(memoryview(data))
            elif looks_like_graph_def(data[:4096]):
                walk.graph(memoryview(data), "graph")
            else:
                return _verdict([_name_mismatch(target.path)])
        except (wire.WireError, TfMalformedError) as exc:
            return _verdict(
                [
                    (
                        Verdict.MALFORMED,
                        _finding(
                            "tensorflow.malformed",
                            Severity.HIGH,
                            f"not a readable TensorFlow graph: {exc}",
                            {},
                        ),
                    )
                ]
            )
        return _verdict(list(_judge(walk)))


def _name_mismatch(path: str) -> tuple[Verdict, Finding]:
    return (
        Verdict.SUSPICIOUS,
        _finding(
            "tensorflow.name-mismatch",
            Severity.HIGH,
            f"{_basename(path)} is named as a TensorFlow SavedModel but its bytes are not one "
            "(TensorFlow opens it by name)",
            {"path": path[:300]},
        ),
    )


def _judge(walk: _Walk) -> Iterator[tuple[Verdict, Finding]]:
    for op, hit in sorted(walk.hits.items()):
        evidence: dict[str, JSONValue] = {
            "op": op,
            "count": hit.count,
            "nodes": list(hit.nodes),
        }
        if hit.details:
            evidence["details"] = sorted(hit.details)
        yield (
            hit.rule.verdict,
            _finding(
                hit.rule.rule,
                hit.rule.severity,
                f"{hit.count} {op} node(s): {hit.rule.why}",
                evidence,
            ),
        )
    yield (
        Verdict.CLEAN,
        _finding(
            "tensorflow.graph",
            Severity.INFO,
            f"{walk.nodes} nodes in {walk.functions} functions and the main graph read; "
            "operators outside the Python and file-IO lists are native TensorFlow kernels "
            "(custom-op libraries are not checked)",
            {"nodes": walk.nodes, "functions": walk.functions, "distinct_ops": len(walk.ops)},
        ),
    )


def _text_graph(data: bytes) -> Iterator[tuple[Verdict, Finding]]:
    """`saved_model.pbtxt`: the same operator rules over the text format's `op: "..."` lines."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        yield (
            Verdict.SUSPICIOUS,
            _finding(
                "tensorflow.name-mismatch",
                Severity.HIGH,
                "saved_model.pbtxt is not UTF-8 text (TensorFlow opens it by name)",
                {},
            ),
        )
        return
    if "meta_graphs" not in text and "saved_model_schema_version" not in text:
        yield (
            Verdict.SUSPICIOUS,
            _finding(
                "tensorflow.name-mismatch",
                Severity.HIGH,
                "saved_model.pbtxt holds no SavedModel text (TensorFlow opens it by name)",
                {},
            ),
        )
        return
    counts: dict[str, int] = {}
    for match in _TEXT_OP.finditer(text):
        counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    for op, count in sorted(counts.items()):
        rule = OP_RULES.get(op)
        if rule is not None:
            yield (
                rule.verdict,
                _finding(
                    rule.rule,
                    rule.severity,
                    f"{count} {op} node(s): {rule.why}",
                    {"op": op, "count": count},
                ),
            )
    yield (
        Verdict.CLEAN,
        _finding(
            "tensorflow.graph",
            Severity.INFO,
            f"{sum(counts.values())} nodes read from the text format",
            {"nodes": sum(counts.values()), "distinct_ops": len(counts)},
        ),
    )


def _verdict(items: list[tuple[Verdict, Finding]]) -> FileVerdict:
    return FileVerdict(worst([v for v, _ in items]), tuple(f for _, f in items))
