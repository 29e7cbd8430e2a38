"""A symbolic pickle machine: runs every opcode of a pickle stream without unpickling it.

Nothing here imports, calls or unpickles what it reads. Each opcode (protocols 0-5) acts on a
model of the unpickler's state that follows CPython's `Lib/pickle.py` / `Modules/_pickle.c`:

* a stack split by a mark stack, with the same "fence": an opcode may not pop below the last
  MARK (both unpicklers raise there), and POP on a mark pops the mark;
* an exact memo: PUT/BINPUT/LONG_BINPUT store the *stack top* (not the previous opcode's
  argument) under an integer key (`p01` and `p1` are the same key), MEMOIZE stores it under
  `len(memo)`, GET variants push the stored value itself, so DUP/GET/memo aliasing resolves
  the same way the real loader resolves it;
* literals become Python values; globals become `GlobalRef`s decided by `pickle_policy`;
  calls (REDUCE, INST, OBJ, NEWOBJ, NEWOBJ_EX) become `CallResult`s recorded with their
  arguments; persistent ids, extension codes and out-of-band buffers become opaque refs.

A STACK_GLOBAL whose operands are not literal strings, a call of a value computed at load time,
and BUILD on a global or with dunder keys are what evasions look like; they fail closed.
All concatenated pickles in a stream are scanned; bytes after the last STOP that do not form a
pickle are `pickle.trailing-data`. A stream that breaks is `malformed`, and worse if a
non-allowlisted call ran before the break (the nullifAI pattern). Every `ScanLimits` bound
that applies ends the scan with a finding and a verdict that is never clean.

Runs of plain-data opcodes go to the optional C extension `_pickle_fast` when it is built
(same effects, stops before anything else; `MODELCTL_PICKLE_PURE=1` turns it off).

The public entry points are `scan_pickle_bytes` (a verdict for the container layer) and
`analyze_pickle` (the same plus the call graph and the offsets of each pickle).

Why this module is over 600 lines: it is the machine itself, one opcode dispatch loop and the
checks it runs per opcode, kept whole on purpose so that each opcode's effect reads in one place
beside its C twin (`_pickle_fast.c`). The symbolic values live in `pickle_values`, numpy dtypes
in `pickle_numpy`, joblib's array layout in `pickle_joblib`.
"""

from __future__ import annotations

import codecs
import os
import struct
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from registry.scanners.base import (
    FileVerdict,
    Finding,
    JSONValue,
    ScanLimits,
    Severity,
    Verdict,
    worst,
)
from registry.scanners.containers.opcodes import escape_decode
from registry.scanners.pickle_embedded import (
    CARRIER_FIRST_BYTES,
    CARRIER_FIRST_TEXT,
    MAX_EMBEDDED,
    MIN_CARRIER_BYTES,
    decode_stream,
    may_carry,
)
from registry.scanners.pickle_joblib import (
    JOBLIB_WRAPPER,
    WRAPPER_KEYS,
    WRAPPER_METHODS,
    WRAPPER_SUBCLASSES,
    JoblibArray,
    wrapper_layout,
)
from registry.scanners.pickle_numpy import BadLayout
from registry.scanners.pickle_policy import (
    COMPUTED_GLOBAL,
    RULE_HARMLESS,
    RULE_NOT_ALLOWED,
    ArgCheck,
    GlobalDecision,
    Use,
    classify_global,
    normalize,
)
from registry.scanners.pickle_values import (
    COMPUTED,
    PLAIN_KEYS,
    BigInt,
    BufferRef,
    CallResult,
    ExtRef,
    GlobalRef,
    PDict,
    PersistentRef,
    PSet,
    qualname_of,
    render,
    render_arg,
    shared_expansion,
    unhashable,
)


class GlobalClassifier(Protocol):
    """The policy that decides a pickle's globals: `classify_global`, or a loader's own (the
    TorchScript unpickler resolves its classes from the archive, `torchscript.py`)."""

    def __call__(self, module: str, name: str, *, weights: bool = True) -> GlobalDecision: ...


__all__ = [
    "BufferRef",
    "CallRecord",
    "CallResult",
    "ExtRef",
    "GlobalRef",
    "PersistentRef",
    "PickleAnalysis",
    "analyze_pickle",
    "scan_pickle_bytes",
]

#: Findings kept per scanned stream; the verdict still counts every finding.
MAX_FINDINGS = 1000
#: Opcodes run between checks of the stack, memo and time bounds (each opcode adds at most
#: one stack entry and one memo entry, so a bound is overshot by at most this much).
_CHUNK = 4096
_HIGHEST_PROTOCOL = 5

#: The optional C accelerator (`_pickle_fast.c`): runs of plain-data opcodes, executed with
#: exactly the effects of the loop in `_Machine.run`, stopping before anything else. None when
#: the extension is not built or `MODELCTL_PICKLE_PURE=1` (read at import) asks for pure Python.
_FastRun = Callable[
    [bytes, int, int, list[object], list[int], list[object] | None, type, int, type, list[object]],
    tuple[int, int, int],
]
_FAST: _FastRun | None = None
if os.environ.get("MODELCTL_PICKLE_PURE") != "1":
    try:
        from registry.scanners import _pickle_fast

        _FAST = _pickle_fast.run_data
    except ImportError:  # not built (no compiler at install time): the pure-Python loop
        _FAST = None

#: `frame_end` when no FRAME is open. The C twin uses PY_SSIZE_T_MAX, the same number.
_NO_FRAME = sys.maxsize

#: A loaded object is a reference-expansion bomb when a walk that follows every reference
#: visits at least this many objects, and this many times more than the stream has bytes (an
#: honest pickle spends at least one opcode byte per object it makes).
_BOMB_VISITS = 1_000_000
_BOMB_FACTOR = 100
#: Expansion counts beyond this are reported as this (they can have hundreds of digits).
_BOMB_CAP = 10**15

#: Values a memo GET or DUP may share without any expansion: plain scalars and globals (a
#: protocol-2 checkpoint fetches its rebuild function from the memo for every tensor).
_LEAVES = PLAIN_KEYS | {GlobalRef}

#: Dict factories whose results SETITEM(S) fills, and set factories ADDITEMS fills: their keys
#: are hashed by the loader like a literal dict's or set's.
_DICT_FACTORIES = frozenset({"collections.OrderedDict", "collections.Counter", "builtins.dict"})
_SET_FACTORIES = frozenset({"builtins.set", "builtins.frozenset"})

#: BINPUT's one-byte memo indices: any of them costs the real unpickler at most 4 KiB.
_BINPUT_KEYS = 256

#: LONG1/LONG4 values longer than this are kept as their size only.
_MAX_LONG_BYTES = 64

_U16 = struct.Struct("<H").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_F64 = struct.Struct(">d").unpack_from

#: Dunder attribute names a BUILD may set that are merely data; any other dunder is treated as
#: an attempt to plant a special method (`__setstate__`, `__reduce__`, `__getattr__`, ...).
_BENIGN_DUNDERS = frozenset(
    {"__doc__", "__module__", "__annotations__", "__qualname__", "__name__", "__version__"}
)

# Where torch's rebuild functions take backward hooks and Python state.
_TORCH_HOOKS_ARG = {
    "torch._utils._rebuild_tensor_v2": 5,
    "torch._utils._rebuild_tensor_v3": 5,
    "torch._utils._rebuild_qtensor": 6,
    "torch._utils._rebuild_parameter": 2,
    "torch._utils._rebuild_parameter_with_state": 2,
}
_TORCH_FROM_TYPE_NEW_TYPES = frozenset({"torch.Tensor", "torch.nn.parameter.Parameter"})


OPCODE_NAMES: Mapping[int, str] = {
    0x28: "MARK", 0x2E: "STOP", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x46: "FLOAT",
    0x49: "INT", 0x4A: "BININT", 0x4B: "BININT1", 0x4C: "LONG", 0x4D: "BININT2", 0x4E: "NONE",
    0x50: "PERSID", 0x51: "BINPERSID", 0x52: "REDUCE", 0x53: "STRING", 0x54: "BINSTRING",
    0x55: "SHORT_BINSTRING", 0x56: "UNICODE", 0x58: "BINUNICODE", 0x61: "APPEND",
    0x62: "BUILD", 0x63: "GLOBAL", 0x64: "DICT", 0x7D: "EMPTY_DICT", 0x65: "APPENDS",
    0x67: "GET", 0x68: "BINGET", 0x69: "INST", 0x6A: "LONG_BINGET", 0x6C: "LIST",
    0x5D: "EMPTY_LIST", 0x6F: "OBJ", 0x70: "PUT", 0x71: "BINPUT", 0x72: "LONG_BINPUT",
    0x73: "SETITEM", 0x74: "TUPLE", 0x29: "EMPTY_TUPLE", 0x75: "SETITEMS", 0x47: "BINFLOAT",
    0x80: "PROTO", 0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x85: "TUPLE1",
    0x86: "TUPLE2", 0x87: "TUPLE3", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x8A: "LONG1",
    0x8B: "LONG4", 0x42: "BINBYTES", 0x43: "SHORT_BINBYTES", 0x8C: "SHORT_BINUNICODE",
    0x8D: "BINUNICODE8", 0x8E: "BINBYTES8", 0x8F: "EMPTY_SET", 0x90: "ADDITEMS",
    0x91: "FROZENSET", 0x92: "NEWOBJ_EX", 0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME",
    0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}  # fmt: skip


#: Callables whose results the container opcodes (APPEND(S), SETITEM(S), ADDITEMS) may fill.
_CONTAINER_FACTORIES = frozenset(
    {
        "collections.OrderedDict",
        "collections.Counter",
        "builtins.set",
        "builtins.frozenset",
        "builtins.dict",
        "builtins.list",
        "collections.deque",
    }
)


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call the pickle makes of something not allowlisted (the call graph's edges)."""

    callee: str  # qualified name, or "<computed>"
    args: tuple[str, ...]
    offset: int
    opcode: str
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class StorageRef:
    """A torch storage the pickle refers to by persistent id."""

    key: str
    storage_type: str  # qualname, e.g. torch.FloatStorage
    numel: int
    offset: int


@dataclass(frozen=True, slots=True)
class PickleAnalysis:
    verdict: Verdict
    findings: tuple[Finding, ...]
    pickles: tuple[tuple[int, int], ...]  # [start, end) of each complete pickle in the stream
    trailing_offset: int | None  # where bytes that form no pickle begin, if any
    calls: tuple[CallRecord, ...]
    allowed_calls: Mapping[str, int]  # allowlisted callee -> number of calls
    persistent_ids: int
    opcodes: int
    storages: tuple[StorageRef, ...] = ()

    def to_file_verdict(self) -> FileVerdict:
        return FileVerdict(self.verdict, self.findings)


class _Malformed(Exception):
    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


class _Unscannable(Exception):
    """The rest of the stream cannot be delimited before loading (a computed joblib wrapper)."""


class _LimitHit(Exception):
    def __init__(self, rule: str, message: str, verdict: Verdict, offset: int) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.verdict = verdict
        self.offset = offset


# --- text-opcode helpers (protocol 0) ----------------------------------------------------

# --- the machine -------------------------------------------------------------------------


class _Segment:
    """Findings of one pickle in the stream (kept apart so trailing garbage can be judged)."""

    __slots__ = ("findings", "flagged_call", "pending", "suppressed", "verdicts")

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.verdicts: list[Verdict] = []
        self.pending: dict[str, GlobalRef] = {}  # refused globals not (yet) called
        self.flagged_call = False
        self.suppressed = 0


class _Machine:
    def __init__(
        self,
        data: bytes,
        limits: ScanLimits,
        scanner_id: str,
        member: str | None,
        depth: int,
        *,
        joblib: bool = True,
        weights: bool = True,
        classify: GlobalClassifier = classify_global,
    ) -> None:
        self.data = data
        self.classify = classify  # the loader's global policy (TorchScript resolves its own)
        self.joblib = joblib  # BUILD of a NumpyArrayWrapper is followed by array data
        # A weights file (a torch checkpoint) gets the checkpoint allowlist alone; any other
        # pickle also accepts the policy's harmless builtins.
        self.weights = weights
        self.harmless_seen: set[str] = set()
        # Where the open FRAME ends (`_NO_FRAME` when none is open). `pickle.load(file)` reads
        # a frame into a buffer and its opcodes from that buffer, so an opcode that crosses the
        # frame's end reads other bytes there than `pickle.loads` reads: malformed.
        self.frame_end = _NO_FRAME
        self.wrappers: dict[int, tuple[CallResult, dict[str, object]]] = {}
        self.limits = limits
        self.scanner_id = scanner_id
        self.member = member
        self.depth = depth
        self.opcodes_left = limits.max_opcodes
        self.deadline = time.monotonic() + limits.seconds_per_file
        self.calls: list[CallRecord] = []
        self.allowed_calls: dict[str, int] = {}
        self.persistent_ids = 0
        self.pid_samples: list[str] = []
        self.storages: list[StorageRef] = []
        self.decisions: dict[tuple[str, str], GlobalDecision] = {}
        self.seg = _Segment()
        # What memo GETs and DUPs of the current pickle pushed, but plain scalars and globals:
        # only these can be reached twice, so only they are sized for reference expansion.
        self.shared: list[object] = []
        self.loaded_payloads: set[bytes] = set()  # scanned as a loader's argument already
        # (opcode offset, value) of the current pickle's literals that may carry a pickle.
        self.carried: list[tuple[int, object]] = []

    # -- findings --

    def add(
        self,
        rule: str,
        verdict: Verdict,
        severity: Severity,
        message: str,
        offset: int | None,
        *,
        evidence: Mapping[str, JSONValue] | None = None,
        reference: str | None = None,
    ) -> None:
        seg = self.seg
        seg.verdicts.append(verdict)
        if len(seg.findings) >= MAX_FINDINGS:
            seg.suppressed += 1
            return
        seg.findings.append(
            Finding(
                scanner=self.scanner_id,
                rule=rule,
                severity=severity,
                message=message,
                evidence=evidence or {},
                offset=offset,
                member=self.member,
                reference=reference,
            )
        )

    # -- globals and calls --

    def global_ref(self, module: str, name: str, offset: int) -> GlobalRef:
        key = (module, name)
        decision = self.decisions.get(key)
        if decision is None:
            decision = self.decisions[key] = self.classify(module, name, weights=self.weights)
        norm_module, norm_name = normalize(module, name)
        ref = GlobalRef(f"{norm_module}.{norm_name}", f"{module}.{name}", decision, offset)
        if not decision.allowed:
            self.seg.pending.setdefault(ref.qualname, ref)
        elif decision.rule == RULE_HARMLESS and ref.qualname not in self.harmless_seen:
            self.harmless_seen.add(ref.qualname)
            self.add(
                RULE_HARMLESS,
                Verdict.CLEAN,
                Severity.INFO,
                f"imports {ref.qualname} ({decision.label})",
                offset,
                evidence={"global": ref.qualname, "label": decision.label},
            )
        return ref

    def computed_global(self, module: object, name: object, offset: int) -> GlobalRef:
        shown = f"{render(module, 80)}.{render(name, 80)}"
        ref = GlobalRef("<computed>", shown, COMPUTED_GLOBAL, offset)
        self.add(
            COMPUTED_GLOBAL.rule,
            COMPUTED_GLOBAL.verdict,
            COMPUTED_GLOBAL.severity,
            "STACK_GLOBAL operands are computed at load time, so the imported name cannot be "
            "known before loading",
            offset,
            evidence={"module": render(module), "name": render(name)},
        )
        return ref

    def call(
        self, func: object, args: object, kwargs: object, opcode: str, offset: int
    ) -> CallResult:
        result = CallResult(func, args, kwargs, offset)
        if type(func) is GlobalRef:
            decision = func.decision
            if decision.allowed:
                if decision.use is Use.REFERENCE:
                    self.flag_call(
                        func,
                        args,
                        kwargs,
                        opcode,
                        offset,
                        decision=GlobalDecision(
                            Verdict.SUSPICIOUS,
                            Severity.HIGH,
                            RULE_NOT_ALLOWED,
                            f"{decision.label} global is allowed only as a reference, "
                            "not as a call",
                        ),
                    )
                else:
                    if decision.check is not None:
                        self.check_args(func, decision.check, args, offset, kwargs)
                    counts = self.allowed_calls
                    counts[func.qualname] = counts.get(func.qualname, 0) + 1
                return result
            self.flag_call(func, args, kwargs, opcode, offset, decision=decision)
            return result
        if isinstance(func, COMPUTED):
            self.flag_call(
                func,
                args,
                kwargs,
                opcode,
                offset,
                decision=GlobalDecision(
                    Verdict.MALICIOUS,
                    Severity.CRITICAL,
                    "pickle.call.indirect",
                    "calls a value computed at load time (a call result, persistent or "
                    "extension object); legitimate checkpoints never do",
                ),
            )
            return result
        raise _Malformed(f"{opcode} calls a non-callable value {render(func, 60)}", offset)

    def flag_call(
        self,
        func: object,
        args: object,
        kwargs: object,
        opcode: str,
        offset: int,
        *,
        decision: GlobalDecision,
    ) -> None:
        callee = qualname_of(func)
        if isinstance(func, GlobalRef):
            self.seg.pending.pop(func.qualname, None)
        arg_list = _as_sequence(args)
        rendered = tuple(render_arg(a) for a in arg_list) if arg_list is not None else ()
        evidence: dict[str, JSONValue] = {
            "global": callee,
            "args": list(rendered) if arg_list is not None else render(args),
            "opcode": opcode,
            "label": decision.label,
        }
        if isinstance(func, GlobalRef) and func.raw != func.qualname:
            evidence["raw_global"] = func.raw
        if not isinstance(func, GlobalRef):
            evidence["callee"] = render(func)
        if isinstance(kwargs, PDict):
            evidence["kwargs"] = {render_arg(k): render_arg(v) for k, v in kwargs.items[:32]}
        self.seg.flagged_call = True
        self.calls.append(CallRecord(callee, rendered, offset, opcode, decision.verdict))
        self.add(
            decision.rule,
            decision.verdict,
            decision.severity,
            f"{opcode} calls {callee} ({decision.label})",
            offset,
            evidence=evidence,
        )
        self.scan_nested(func, decision, args, kwargs, offset)

    def check_args(
        self, func: GlobalRef, check: ArgCheck, args: object, offset: int, kwargs: object = None
    ) -> None:
        seq = _as_sequence(args)
        problem: str | None = None
        verdict = Verdict.SUSPICIOUS
        if seq is None:
            problem = "arguments are computed at load time"
        elif check is ArgCheck.NO_ARGUMENTS:
            if seq or not _empty_mapping(kwargs):
                problem = "only the empty construction cls() that pickle writes is allowed"
        elif check is ArgCheck.LATIN1_ENCODE:
            if not (len(seq) == 2 and isinstance(seq[0], str) and seq[1] in ("latin1", "latin-1")):
                problem = "only _codecs.encode(<text>, 'latin1') is how pickle writes bytes"
        elif check is ArgCheck.BYTES_LITERAL:
            if not _bytes_literal_args(seq):
                problem = "only literal contents are allowed (a size would allocate memory)"
        elif check is ArgCheck.TORCH_FROM_TYPE:
            problem, verdict = self.check_from_type(seq, offset)
        else:
            pos = _TORCH_HOOKS_ARG.get(func.qualname)
            if pos is not None and len(seq) > pos and not _empty_mapping(seq[pos]):
                problem = "backward hooks are not empty (hooks are callables run at backward)"
            if check is ArgCheck.TORCH_STATE and len(seq) > 3:
                self.check_state(seq[3], f"{func.qualname} state", offset)
        if problem is not None:
            self.add(
                "pickle.call.unsafe-arguments",
                verdict,
                Severity.CRITICAL if verdict is Verdict.MALICIOUS else Severity.HIGH,
                f"{func.qualname} called with arguments outside its allowed form: {problem}",
                offset,
                evidence={"global": func.qualname, "args": [render_arg(a) for a in (seq or ())]},
            )

    def check_from_type(self, seq: tuple[object, ...], offset: int) -> tuple[str | None, Verdict]:
        if len(seq) != 4:
            return "expects (func, new_type, args, state)", Verdict.SUSPICIOUS
        func, new_type, inner_args, state = seq
        # It calls func(*args): model that call like any other, so it is vetted the same way.
        self.call(func, inner_args, None, "REDUCE via _rebuild_from_type_v2", offset)
        self.check_state(state, "_rebuild_from_type_v2 state", offset)
        if isinstance(func, GlobalRef) and func.decision.label != "torch-rebuild":
            return f"func {func.qualname} is not a torch rebuild function", Verdict.SUSPICIOUS
        if not (
            isinstance(new_type, GlobalRef) and new_type.qualname in _TORCH_FROM_TYPE_NEW_TYPES
        ):
            return f"new_type {render(new_type, 80)} is not Tensor/Parameter", Verdict.SUSPICIOUS
        return None, Verdict.CLEAN

    def check_state(self, state: object, what: str, offset: int) -> None:
        """Flag a state (dict, or (dict, slotstate)) that sets dunder or computed attributes."""
        for key in _state_keys(state):
            if not isinstance(key, str):
                self.add(
                    "pickle.build.computed-attribute",
                    Verdict.SUSPICIOUS,
                    Severity.HIGH,
                    f"{what} sets an attribute whose name is not a literal string",
                    offset,
                    evidence={"key": render(key)},
                )
            elif key.startswith("__") and key.endswith("__") and len(key) > 4:
                bad = key not in _BENIGN_DUNDERS
                self.add(
                    "pickle.build.dunder",
                    Verdict.MALICIOUS if bad else Verdict.SUSPICIOUS,
                    Severity.CRITICAL if bad else Severity.MEDIUM,
                    f"{what} sets the dunder attribute {key}"
                    + (" (plants a special method, e.g. the __setstate__ gadget)" if bad else ""),
                    offset,
                    evidence={"attribute": key},
                )

    def build(self, inst: object, state: object, offset: int) -> None:
        if isinstance(inst, GlobalRef):
            self.add(
                "pickle.build.on-global",
                Verdict.MALICIOUS,
                Severity.CRITICAL,
                f"BUILD sets attributes on the global {inst.qualname} itself (monkey-patching "
                "a class or module at load time)",
                offset,
                evidence={"global": inst.qualname, "state": render(state)},
            )
        if isinstance(state, COMPUTED) and not _dict_like_result(state):
            self.add(
                "pickle.build.computed-state",
                Verdict.SUSPICIOUS,
                Severity.HIGH,
                "BUILD state is computed at load time, so the attributes it sets are unknown",
                offset,
                evidence={"state": render(state)},
            )
        self.check_state(state, "BUILD", offset)
        if isinstance(inst, CallResult):
            inst.state = state
        elif not isinstance(inst, (*COMPUTED, GlobalRef)) and _truthy_state(state):
            raise _Malformed(f"BUILD on a {type(inst).__name__} literal", offset)

    def check_key(self, key: object, opcode: str, offset: int) -> None:
        """A dict key or set item the loader cannot hash: it raises TypeError there."""
        if unhashable(key):
            kind = {list: "list", PDict: "dict", PSet: "set", bytearray: "bytearray"}.get(
                type(key), "tuple holding a list, dict or set"
            )
            raise _Malformed(
                f"{opcode} needs the hash of a {kind} (a dict key or set item), which the loader "
                "cannot compute (an unhashable cycle such as a dict used as its own key)",
                offset,
            )

    def check_expansion(self, nbytes: int, offset: int) -> None:
        """Report memo/DUP references that expand the loaded object far beyond the stream."""
        containers, visits = shared_expansion(self.shared)
        if visits < _BOMB_VISITS or visits < _BOMB_FACTOR * nbytes:
            return
        factor = visits // max(nbytes, 1)
        self.add(
            "pickle.expansion-bomb",
            Verdict.SUSPICIOUS,
            Severity.HIGH,
            f"{containers} objects are referenced again through the memo or DUP so that a walk "
            f"following every reference (repr, copy, JSON, comparison) visits "
            f"{min(visits, _BOMB_CAP)}{'+' if visits > _BOMB_CAP else ''} more objects: "
            f"{min(factor, _BOMB_CAP)}x the {nbytes} bytes of the stream (reference expansion)",
            offset,
            evidence={
                "shared_objects": containers,
                "expanded_objects": min(visits, _BOMB_CAP),
                "stream_bytes": nbytes,
                "expansion_factor": min(factor, _BOMB_CAP),
                "capped": visits > _BOMB_CAP,
            },
            reference="billion laughs (CWE-776); fickling expansion-attack analysis",
        )

    def note_carrier(self, offset: int, value: object) -> None:
        """Keep a literal (of at least MIN_CARRIER_BYTES in the stream) that may carry a pickle.

        The C twin hands every literal that starts like one to Python, so both paths note the
        same literals."""
        if may_carry(value) and len(self.carried) < MAX_EMBEDDED:
            self.carried.append((offset, value))

    def check_embedded(self) -> None:
        """Name what each pickle carried as data by the pickle now stopping would import."""
        carried, self.carried = self.carried, []
        for offset, value in carried:
            assert isinstance(value, str | bytes | bytearray)
            decoded = decode_stream(value, self.limits.max_pickle_bytes)
            if decoded is None:
                continue
            raw, encoding = decoded
            if raw in self.loaded_payloads:
                continue  # a loader's argument: already scanned as a nested pickle
            if self.depth + 1 > self.limits.max_nesting:
                self.add(
                    "pickle.limit.nesting",
                    Verdict.ERROR,
                    Severity.HIGH,
                    f"pickle carried as data nests deeper than max_nesting "
                    f"({self.limits.max_nesting}); not scanned",
                    offset,
                )
                return
            inner = analyze_pickle(
                raw,
                limits=self.limits,
                scanner_id=self.scanner_id,
                member=self.member,
                depth=self.depth + 1,
                joblib=False,
                weights=self.weights,
            )
            if not inner.pickles:
                continue  # starts like a pickle, but is none
            names = sorted(
                {g for f in inner.findings if isinstance(g := f.evidence.get("global"), str)}
                | set(inner.allowed_calls)
            )
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            self.add(
                "pickle.embedded",
                Verdict.CLEAN,
                Severity.INFO,
                f"carries a pickle as data ({encoding}, {len(raw)} bytes) that this pickle does "
                f"not load; loading it would import {shown or 'nothing'} "
                f"({inner.verdict.value} on its own)",
                offset,
                evidence={
                    "encoding": encoding,
                    "bytes": len(raw),
                    "globals": list(names[:64]),
                    "embedded_verdict": inner.verdict.value,
                    "depth": self.depth + 1,
                },
                reference="multistage pickle payloads (issue 14, class 6)",
            )
            for f in inner.findings:
                # The next stage of a multistage payload, or where the stages stopped being
                # scanned (which leaves this scan incomplete: an error, never clean).
                if f.rule in ("pickle.embedded", "pickle.limit.nesting"):
                    self.add(
                        f.rule,
                        Verdict.CLEAN if f.rule == "pickle.embedded" else Verdict.ERROR,
                        f.severity,
                        f"in the pickle carried as data: {f.message}",
                        offset,
                        evidence=f.evidence,
                        reference=f.reference,
                    )

    def mutate(self, target: object, items: list[object], opcode: str, offset: int) -> None:
        """APPEND(S)/SETITEM(S)/ADDITEMS on something other than a literal container."""
        if isinstance(target, CallResult):
            func = target.func
            callee = func.qualname if isinstance(func, GlobalRef) else ""
            keys: list[object] = []
            if callee in _DICT_FACTORIES and opcode.startswith("SETITEM"):
                keys = items[0::2]
            elif callee in _SET_FACTORIES and opcode == "ADDITEMS":
                keys = items
            for key in keys:
                if type(key) not in PLAIN_KEYS:
                    self.check_key(key, opcode, offset)
            if isinstance(func, GlobalRef) and func.qualname not in _CONTAINER_FACTORIES:
                # __setitem__ / append / extend / add on a tensor or other object: code a
                # container-only loader never runs (the weights_only heap-corruption class).
                self.add(
                    "pickle.mutate.non-container",
                    Verdict.SUSPICIOUS,
                    Severity.HIGH,
                    f"{opcode} applied to the result of {func.qualname}, not a container",
                    offset,
                    evidence={"callee": func.qualname},
                    reference="CVE-2026-24747",
                )
            if target.items is None:
                target.items = []
            target.items.extend(items)
        elif isinstance(target, GlobalRef):
            self.add(
                "pickle.mutate.global",
                Verdict.MALICIOUS,
                Severity.CRITICAL,
                f"{opcode} mutates the global {target.qualname} (module-level state)",
                offset,
                evidence={"global": target.qualname, "items": render(items)},
            )
        elif not isinstance(target, COMPUTED):
            raise _Malformed(f"{opcode} on a {type(target).__name__}", offset)

    def scan_nested(
        self, func: object, decision: GlobalDecision, args: object, kwargs: object, offset: int
    ) -> None:
        payloads: list[bytes] = []
        values: list[object] = list(_as_sequence(args) or ())
        if isinstance(kwargs, PDict):
            values.extend(v for _, v in kwargs.items)
        for value in list(values):  # one level into wrappers such as io.BytesIO(b"...")
            if isinstance(value, CallResult):
                values.extend(_as_sequence(value.args) or ())
        for value in values:
            if isinstance(value, bytes | bytearray) and (
                decision.loader or _looks_like_pickle(value)
            ):
                payloads.append(bytes(value))
                self.loaded_payloads.add(payloads[-1])
        for payload in payloads:
            self.nested(payload, qualname_of(func), offset)

    def nested(self, payload: bytes, callee: str, offset: int) -> None:
        if self.depth + 1 > self.limits.max_nesting:
            self.add(
                "pickle.limit.nesting",
                Verdict.ERROR,
                Severity.HIGH,
                f"nested pickle passed to {callee} exceeds max_nesting "
                f"({self.limits.max_nesting}); not scanned",
                offset,
                evidence={"global": callee, "depth": self.depth + 1},
            )
            return
        inner = analyze_pickle(
            payload,
            limits=self.limits,
            scanner_id=self.scanner_id,
            member=self.member,
            depth=self.depth + 1,
            joblib=False,  # handed to a plain loader (pickle.loads and the like)
            weights=self.weights,
        )
        self.add(
            "pickle.nested",
            inner.verdict,
            Severity.INFO if inner.verdict is Verdict.CLEAN else Severity.HIGH,
            f"nested pickle ({len(payload)} bytes) passed to {callee} is {inner.verdict.value}",
            offset,
            evidence={"global": callee, "depth": self.depth + 1, "bytes": len(payload)},
        )
        for f in inner.findings:
            evidence = dict(f.evidence)
            evidence["nested_depth"] = self.depth + 1
            evidence["inner_offset"] = f.offset
            self.seg.verdicts.append(inner.verdict)
            if len(self.seg.findings) < MAX_FINDINGS:
                self.seg.findings.append(
                    replace(
                        f,
                        message=f"nested pickle in {callee}: {f.message}",
                        evidence=evidence,
                        offset=offset,
                    )
                )

    # -- joblib arrays --

    def joblib_array(
        self, inst: CallResult, state: object, pos: int, offset: int
    ) -> tuple[JoblibArray, int]:
        """Delimit the array joblib's NumpyUnpickler reads after BUILD of a NumpyArrayWrapper.

        Returns the array and the offset where opcodes resume. Attributes accumulate over
        BUILDs (the loader updates the instance `__dict__`) and each BUILD reads an array.
        """
        entry = self.wrappers.get(id(inst))
        attrs = entry[1] if entry is not None else {}
        self.wrappers[id(inst)] = (inst, attrs)
        try:
            if type(state) is not PDict:
                raise BadLayout("state is not a literal dict", computed=True)
            for key, value in state.items:
                if type(key) is not str:
                    raise BadLayout("state has a computed attribute name", computed=True)
                attrs[key] = value
            self.check_wrapper_attributes(attrs, offset)
            subclass = attrs.get("subclass")
            if isinstance(subclass, GlobalRef) and subclass.qualname not in WRAPPER_SUBCLASSES:
                # numpy 1.x loaders rebuild other subclasses: _reconstruct(subclass, (0,), "b").
                self.call(subclass, ((0,), "b"), None, "joblib array subclass", offset)
            count, itemsize, hasobject, align, typestr = wrapper_layout(attrs)
        except BadLayout as bad:
            if bad.computed:
                # Not malformed: the loader may well accept it, but only loading tells how many
                # bytes it reads as array data, so opcodes could hide after them.
                self.add(
                    "pickle.joblib.computed-wrapper",
                    Verdict.SUSPICIOUS,
                    Severity.HIGH,
                    f"joblib NumpyArrayWrapper {bad.reason}: how many bytes the loader reads as "
                    f"array data is decided at load time; the {len(self.data) - pos} bytes "
                    "after it were not scanned",
                    offset,
                    evidence={"state": render(state), "unscanned_bytes": len(self.data) - pos},
                )
                raise _Unscannable(bad.reason) from None
            raise _Malformed(
                f"joblib NumpyArrayWrapper {bad.reason}; the array data after it cannot be "
                "delimited",
                offset,
            ) from None
        shape = attrs["shape"]
        assert isinstance(shape, tuple)
        if self.frame_end != _NO_FRAME:
            if pos < self.frame_end:
                # The loader reads the array after the buffered frame but resumes opcodes
                # inside it.
                raise _Malformed("joblib array data starts inside a pickle frame", offset)
            self.frame_end = _NO_FRAME  # BUILD ended the frame; the array bytes follow it
        if hasobject:
            return JoblibArray(typestr, shape, None, offset), self.joblib_nested(pos, offset)
        n = len(self.data)
        if align is not None:
            pos = self.skip_padding(pos, align, offset)
        if count > n - pos or count * itemsize > n - pos:
            raise _Malformed(
                f"joblib array {typestr} {shape} needs more bytes than remain ({n - pos})", offset
            )
        nbytes = count * itemsize
        return JoblibArray(typestr, shape, nbytes, offset), pos + nbytes

    def skip_padding(self, pos: int, align: int, offset: int) -> int:
        """One byte giving the padding length, then that many b"\\xff" (joblib >= 1.2)."""
        data = self.data
        if pos >= len(data):
            raise _Malformed("joblib array padding byte missing", offset)
        pad = data[pos]
        if pad > align:
            raise _Malformed(
                f"joblib array padding of {pad} bytes exceeds the alignment {align}", pos
            )
        if data[pos + 1 : pos + 1 + pad] != b"\xff" * pad:
            raise _Malformed("joblib array padding is not joblib's b'\\xff' bytes", pos)
        return pos + 1 + pad

    def check_wrapper_attributes(self, attrs: dict[str, object], offset: int) -> None:
        for key in sorted(k for k in attrs if k not in WRAPPER_KEYS):
            method = key in WRAPPER_METHODS
            self.add(
                "pickle.joblib.wrapper-attribute",
                Verdict.MALICIOUS if method else Verdict.SUSPICIOUS,
                Severity.CRITICAL if method else Severity.MEDIUM,
                f"NumpyArrayWrapper state sets {key!r}"
                + (", replacing a method the loader calls" if method else ""),
                offset,
                evidence={"attribute": key, "value": render(attrs[key])},
            )
            if method:
                raise BadLayout(f"state replaces the method {key}")

    def joblib_nested(self, pos: int, offset: int) -> int:
        """Run the nested pickle of a joblib object array in place; return where it ends."""
        if self.depth + 1 > self.limits.max_nesting:
            raise _LimitHit(
                "pickle.limit.nesting",
                f"joblib object array nests deeper than max_nesting ({self.limits.max_nesting})",
                Verdict.ERROR,
                offset,
            )
        # joblib reads it with a plain Unpickler: no array data after wrappers in there.
        inner = _Machine(
            self.data,
            self.limits,
            self.scanner_id,
            self.member,
            self.depth + 1,
            joblib=False,
            weights=self.weights,
        )
        inner.deadline = self.deadline
        inner.opcodes_left = self.opcodes_left
        inner.decisions = self.decisions
        failure: _Malformed | None = None
        try:
            end = inner.run(pos)
            if inner.frame_end != _NO_FRAME:
                failure = _Malformed("nested pickle's frame continues after its STOP", end)
        except _Malformed as bad:
            failure = bad
        finally:
            self.opcodes_left = inner.opcodes_left
            self.absorb(inner)
        if failure is not None:
            raise _Malformed(
                f"nested pickle of a joblib object array is broken: {failure.reason}",
                failure.offset,
            )
        return end

    def absorb(self, inner: _Machine) -> None:
        """Take over the findings and call graph of a machine run on the same bytes."""
        seg = inner.close_segment()
        mine = self.seg
        mine.verdicts.extend(seg.verdicts)
        room = max(0, MAX_FINDINGS - len(mine.findings))
        mine.findings.extend(seg.findings[:room])
        mine.suppressed += seg.suppressed + max(0, len(seg.findings) - room)
        mine.flagged_call = mine.flagged_call or seg.flagged_call
        self.calls.extend(inner.calls)
        for callee, count in inner.allowed_calls.items():
            self.allowed_calls[callee] = self.allowed_calls.get(callee, 0) + count
        self.persistent_ids += inner.persistent_ids
        self.pid_samples.extend(inner.pid_samples[: max(0, 3 - len(self.pid_samples))])

    # -- one pickle --

    def run(self, pos: int) -> int:  # noqa: PLR0912, PLR0915 - one dispatch loop on purpose
        """Run one pickle from `pos` to its STOP; return the offset after the STOP."""
        data = self.data
        n = len(data)
        stack: list[object] = []
        marks: list[int] = []
        # The memo is a list while its keys are 0..len-1 (what picklers write); the first
        # other key turns it into the dict `sparse` for good. MEMOIZE's key is len(memo).
        memo: list[object] = []
        sparse: dict[int, object] | None = None
        memo_append = memo.append
        append = stack.append
        pop = stack.pop
        fence = 0
        limits = self.limits
        max_stack = limits.max_stack_depth
        max_memo = limits.max_memo_entries
        u32, i32, f64 = _U32, _I32, _F64
        fast = _FAST if type(data) is bytes else None
        plain = PLAIN_KEYS
        leaf = _LEAVES
        carrier_min = MIN_CARRIER_BYTES
        first_text, first_bytes = CARRIER_FIRST_TEXT, CARRIER_FIRST_BYTES
        begin = pos
        self.shared = []
        shared = self.shared
        self.carried = []
        op = 0
        frame_end = self.frame_end
        if frame_end != _NO_FRAME:
            # The previous pickle's frame goes on after its STOP: `pickle.load(file)` has read
            # these bytes into that frame's buffer, `pickle.loads` reads them as a new pickle.
            raise _Malformed("pickle starts inside the previous pickle's frame", pos)
        try:
            while True:
                budget = self.opcodes_left
                if budget <= 0:
                    raise _LimitHit(
                        "pickle.limit.opcodes",
                        f"more than max_opcodes ({limits.max_opcodes}) opcodes",
                        Verdict.ERROR,
                        pos,
                    )
                chunk = _CHUNK if budget > _CHUNK else budget
                stopped = False
                executed = chunk
                done = 0  # opcodes of this chunk run so far
                while done < chunk:
                    if fast is not None:
                        # Plain-data opcodes in C; it stops before anything else (or anything
                        # irregular), which the loop below then runs: one opcode, then C again.
                        pos, ran, frame_end = fast(
                            data,
                            pos,
                            chunk - done,
                            stack,
                            marks,
                            memo if sparse is None else None,
                            PDict,
                            frame_end,
                            GlobalRef,
                            shared,
                        )
                        fence = marks[-1] if marks else 0
                        done += ran
                        if done >= chunk:
                            break
                        upto = done + 1
                    else:
                        upto = chunk
                    for i in range(done, upto):
                        op = data[pos]
                        pos += 1
                        # Ordered by frequency in checkpoints and large pickles; `pos - 1` is the
                        # opcode's offset until a branch advances `pos` (always its last step).
                        if op == 0x71:  # BINPUT
                            if len(stack) <= fence:
                                raise _Malformed("PUT with an empty stack", pos - 1)
                            key = data[pos]
                            pos += 1
                            if sparse is None and key == len(memo):
                                memo_append(stack[-1])
                            else:
                                sparse = self.memo_put(memo, sparse, key, stack[-1], pos - 2)
                        elif op == 0x72:  # LONG_BINPUT
                            if len(stack) <= fence:
                                raise _Malformed("PUT with an empty stack", pos - 1)
                            key = u32(data, pos)[0]
                            pos += 4
                            if sparse is None and key == len(memo):
                                memo_append(stack[-1])
                            else:
                                sparse = self.memo_put(memo, sparse, key, stack[-1], pos - 5)
                        elif op == 0x94:  # MEMOIZE: the key is the number of memo entries
                            if len(stack) <= fence:
                                raise _Malformed("MEMOIZE with an empty stack", pos - 1)
                            if sparse is None:
                                memo_append(stack[-1])
                            else:
                                sparse[len(sparse)] = stack[-1]
                        elif op == 0x4A:  # BININT
                            append(i32(data, pos)[0])
                            pos += 4
                        elif op == 0x4B:  # BININT1
                            append(data[pos])
                            pos += 1
                        elif op == 0x8C:  # SHORT_BINUNICODE
                            end = pos + 1 + data[pos]
                            if end > n:
                                raise _Malformed("truncated string", pos - 1)
                            try:
                                append(data[pos + 1 : end].decode())
                            except UnicodeDecodeError:  # lone surrogates are valid in pickles
                                append(data[pos + 1 : end].decode("utf-8", "surrogatepass"))
                            if end - pos >= carrier_min + 1 and data[pos + 1] in first_text:
                                self.note_carrier(pos - 1, stack[-1])
                            pos = end
                        elif op == 0x58:  # BINUNICODE
                            end = pos + 4 + u32(data, pos)[0]
                            if end > n:
                                raise _Malformed("truncated string", pos - 1)
                            try:
                                append(data[pos + 4 : end].decode())
                            except UnicodeDecodeError:  # lone surrogates are valid in pickles
                                append(data[pos + 4 : end].decode("utf-8", "surrogatepass"))
                            if end - pos >= carrier_min + 4 and data[pos + 4] in first_text:
                                self.note_carrier(pos - 1, stack[-1])
                            pos = end
                        elif op == 0x47:  # BINFLOAT
                            append(f64(data, pos)[0])
                            pos += 8
                        elif op == 0x4D:  # BININT2
                            append(data[pos] | data[pos + 1] << 8)
                            pos += 2
                        elif op == 0x68:  # BINGET
                            key = data[pos]
                            value = memo[key] if sparse is None else sparse[key]
                            append(value)
                            if type(value) not in leaf:
                                shared.append(value)
                            pos += 1
                        elif op == 0x6A:  # LONG_BINGET
                            key = u32(data, pos)[0]
                            value = memo[key] if sparse is None else sparse[key]
                            append(value)
                            if type(value) not in leaf:
                                shared.append(value)
                            pos += 4
                        elif op == 0x87:  # TUPLE3
                            if len(stack) - 3 < fence:
                                raise _Malformed("TUPLE3 stack underflow", pos - 1)
                            c = pop()
                            b = pop()
                            stack[-1] = (stack[-1], b, c)
                        elif op == 0x86:  # TUPLE2
                            if len(stack) - 2 < fence:
                                raise _Malformed("TUPLE2 stack underflow", pos - 1)
                            b = pop()
                            stack[-1] = (stack[-1], b)
                        elif op == 0x85:  # TUPLE1
                            if len(stack) <= fence:
                                raise _Malformed("TUPLE1 stack underflow", pos - 1)
                            stack[-1] = (stack[-1],)
                        elif op == 0x28:  # MARK
                            fence = len(stack)
                            marks.append(fence)
                        elif op == 0x65:  # APPENDS
                            if not marks:
                                raise _Malformed("APPENDS without MARK", pos - 1)
                            m = marks.pop()
                            fence = marks[-1] if marks else 0
                            if m <= fence:
                                raise _Malformed("APPENDS with no list below its MARK", pos - 1)
                            target = stack[m - 1]
                            if type(target) is list:
                                target.extend(stack[m:])
                            else:
                                self.mutate(target, stack[m:], "APPENDS", pos - 1)
                            del stack[m:]
                        elif op == 0x75:  # SETITEMS
                            if not marks:
                                raise _Malformed("SETITEMS without MARK", pos - 1)
                            m = marks.pop()
                            fence = marks[-1] if marks else 0
                            if m <= fence:
                                raise _Malformed("SETITEMS with no dict below its MARK", pos - 1)
                            if (len(stack) - m) & 1:
                                raise _Malformed("odd number of items for SETITEMS", pos - 1)
                            target = stack[m - 1]
                            if type(target) is PDict:
                                for item in stack[m::2]:
                                    if type(item) not in plain:
                                        self.check_key(item, "SETITEMS", pos - 1)
                                it = iter(stack[m:])
                                target.items.extend(zip(it, it, strict=True))
                            elif type(target) is not list:  # list[i] = v is valid
                                self.mutate(target, stack[m:], "SETITEMS", pos - 1)
                            del stack[m:]
                        elif op == 0x52:  # REDUCE
                            if len(stack) - 2 < fence:
                                raise _Malformed("REDUCE stack underflow", pos - 1)
                            args = pop()
                            stack[-1] = self.call(stack[-1], args, None, "REDUCE", pos - 1)
                        elif op == 0x74:  # TUPLE
                            if not marks:
                                raise _Malformed("TUPLE without MARK", pos - 1)
                            m = marks.pop()
                            fence = marks[-1] if marks else 0
                            t = tuple(stack[m:])
                            del stack[m:]
                            append(t)
                        elif op == 0x7D:  # EMPTY_DICT
                            append(PDict())
                        elif op == 0x5D:  # EMPTY_LIST
                            append([])
                        elif op == 0x29:  # EMPTY_TUPLE
                            append(())
                        elif op == 0x4E:  # NONE
                            append(None)
                        elif op == 0x89:  # NEWFALSE
                            append(False)
                        elif op == 0x88:  # NEWTRUE
                            append(True)
                        elif op == 0x51:  # BINPERSID
                            if len(stack) <= fence:
                                raise _Malformed("BINPERSID stack underflow", pos - 1)
                            stack[-1] = self.persistent(stack[-1], pos - 1)
                        elif op == 0x95:  # FRAME
                            if frame_end != _NO_FRAME:
                                raise _Malformed("FRAME opens inside another frame", pos - 1)
                            size = _U64(data, pos)[0]
                            if pos + 8 + size > n:
                                raise _Malformed("FRAME longer than the data", pos - 1)
                            pos += 8
                            frame_end = pos + size
                        elif op == 0x61:  # APPEND
                            if len(stack) - 2 < fence:
                                raise _Malformed("APPEND stack underflow", pos - 1)
                            item = pop()
                            target = stack[-1]
                            if type(target) is list:
                                target.append(item)
                            else:
                                self.mutate(target, [item], "APPEND", pos - 1)
                        elif op == 0x73:  # SETITEM
                            if len(stack) - 3 < fence:
                                raise _Malformed("SETITEM stack underflow", pos - 1)
                            v = pop()
                            k = pop()
                            target = stack[-1]
                            if type(target) is PDict:
                                if type(k) not in plain:
                                    self.check_key(k, "SETITEM", pos - 1)
                                target.items.append((k, v))
                            elif type(target) is not list:  # list[i] = v is valid
                                self.mutate(target, [k, v], "SETITEM", pos - 1)
                        elif op == 0x43:  # SHORT_BINBYTES
                            end = pos + 1 + data[pos]
                            if end > n:
                                raise _Malformed("truncated bytes", pos - 1)
                            append(data[pos + 1 : end])
                            if end - pos >= carrier_min + 1 and data[pos + 1] in first_bytes:
                                self.note_carrier(pos - 1, stack[-1])
                            pos = end
                        elif op == 0x42:  # BINBYTES
                            end = pos + 4 + u32(data, pos)[0]
                            if end > n:
                                raise _Malformed("truncated bytes", pos - 1)
                            append(data[pos + 4 : end])
                            if end - pos >= carrier_min + 4 and data[pos + 4] in first_bytes:
                                self.note_carrier(pos - 1, stack[-1])
                            pos = end
                        elif op == 0x2E:  # STOP
                            if len(stack) <= fence:
                                raise _Malformed("STOP with an empty stack", pos - 1)
                            stopped = True
                            executed = i + 1
                            if shared:
                                self.check_expansion(pos - begin, pos - 1)
                            if self.carried:
                                self.check_embedded()
                            if pos == frame_end:
                                frame_end = _NO_FRAME
                            break
                        elif op in (0x67, 0x70):  # GET, PUT: a text index read with int()
                            nl = data.find(b"\n", pos)
                            if nl < 0:
                                raise _Malformed("memo index has no newline", pos - 1)
                            try:
                                key = int(data[pos:nl])
                            except ValueError:
                                raise _Malformed("memo index is not an integer", pos - 1) from None
                            if op == 0x67:
                                if key < 0:
                                    raise KeyError(key)
                                value = memo[key] if sparse is None else sparse[key]
                                append(value)
                                if type(value) not in leaf:
                                    shared.append(value)
                            else:
                                if key < 0:
                                    raise _Malformed("negative PUT argument", pos - 1)
                                if len(stack) <= fence:
                                    raise _Malformed("PUT with an empty stack", pos - 1)
                                sparse = self.memo_put(memo, sparse, key, stack[-1], pos - 1)
                            pos = nl + 1
                        else:
                            self.frame_end = frame_end
                            pos = self.slow(op, pos - 1, pos, stack, marks)
                            frame_end = self.frame_end
                            fence = marks[-1] if marks else 0
                        if pos >= frame_end:
                            # The opcode (with its argument) ends at or after its frame's end:
                            # exactly at it leaves the frame, past it reads outside the frame.
                            if pos > frame_end:
                                raise _Malformed(
                                    f"{_opname(op)} crosses the end of its FRAME at offset "
                                    f"{frame_end}",
                                    frame_end,
                                )
                            frame_end = _NO_FRAME
                    if stopped:
                        break
                    done = upto
                self.opcodes_left -= executed
                if len(stack) + len(marks) > max_stack:
                    raise _LimitHit(
                        "pickle.limit.stack",
                        f"stack deeper than max_stack_depth ({max_stack})",
                        Verdict.MALFORMED,
                        pos,
                    )
                if (len(memo) if sparse is None else len(sparse)) > max_memo:
                    raise _LimitHit(
                        "pickle.limit.memo",
                        f"memo larger than max_memo_entries ({max_memo})",
                        Verdict.MALFORMED,
                        pos,
                    )
                if time.monotonic() > self.deadline:
                    raise _LimitHit(
                        "pickle.limit.time",
                        f"scan took longer than seconds_per_file ({limits.seconds_per_file})",
                        Verdict.ERROR,
                        pos,
                    )
                if stopped:
                    self.frame_end = frame_end
                    return pos
        except KeyError as exc:
            raise _Malformed(f"memo key {exc.args[0]!r} not found", pos - 1) from None
        except IndexError:
            if op in (0x67, 0x68, 0x6A) and pos < n:
                raise _Malformed("memo key not found", pos - 1) from None
            if pos >= n:
                raise _Malformed("data ends before STOP", pos) from None
            raise _Malformed(
                f"{_opname(op)} argument runs past the end of the data", pos - 1
            ) from None
        except struct.error:
            raise _Malformed(f"{_opname(op)} argument truncated", pos - 1) from None
        except UnicodeDecodeError:
            raise _Malformed(f"{_opname(op)} string is not valid UTF-8", pos - 1) from None

    def persistent(self, pid: object, offset: int) -> PersistentRef:
        self.persistent_ids += 1
        if len(self.pid_samples) < 3:
            self.pid_samples.append(render(pid, 120))
        # torch's zip format: ('storage', <storage type>, key, location, numel). The container
        # layer checks each against its archive/data/<key> record (see StorageRef).
        if (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], GlobalRef)
            and isinstance(pid[2], str)
            and isinstance(pid[4], int)
            and not isinstance(pid[4], bool)
        ):
            self.storages.append(StorageRef(pid[2], pid[1].qualname, pid[4], offset))
        return PersistentRef(pid, offset)

    def memo_put(
        self,
        memo: list[object],
        sparse: dict[int, object] | None,
        key: int,
        value: object,
        offset: int,
    ) -> dict[int, object] | None:
        """Store under `key`; return the dict memo once the keys stop being 0..len-1.

        Only keys past the dense run come here, so this is where a memo bomb is stopped."""
        self.check_memo_key(key, offset)
        if sparse is None:
            if key < len(memo):
                memo[key] = value
                return None
            if key == len(memo):
                memo.append(value)
                return None
            sparse = dict(enumerate(memo))
            memo.clear()
        sparse[key] = value
        return sparse

    def check_memo_key(self, key: int, offset: int) -> None:
        """Refuse a PUT index no pickler writes, before the real loader would allocate for it.

        CPython's C unpickler keeps its memo in an array and grows it to twice the largest
        index PUT so far, whatever the number of entries: `\x80\x02]r\xf0\xff\xff\x7f.` (9 bytes)
        makes `pickle.load` allocate 32 GiB. Picklers number memo entries densely (the next
        index is the number of entries), one entry per PUT/MEMOIZE of an object that an opcode
        of the stream made, so an honest index is below the stream's length in bytes (BINPUT's
        one-byte indices, 4 KiB at most, always pass); it must also stay below
        `max_memo_entries`, the memo size the scan accepts. This machine keeps a sparse memo in
        a dict and never allocates by index itself."""
        bound = min(max(len(self.data), _BINPUT_KEYS), self.limits.max_memo_entries)
        if key >= bound:
            raise _LimitHit(
                "pickle.limit.memo-index",
                f"memo index {key} is larger than this stream can hold (limit {bound}): "
                f"loading it would allocate about {16 * key} bytes (memory exhaustion)",
                Verdict.MALFORMED,
                offset,
            )

    def slow(  # noqa: PLR0911, PLR0912, PLR0915 - the rare opcodes, one branch each
        self,
        op: int,
        start: int,
        pos: int,
        stack: list[object],
        marks: list[int],
    ) -> int:
        """Run a less frequent opcode; return the new position."""
        data = self.data
        n = len(data)
        fence = marks[-1] if marks else 0
        name = _opname(op)

        def need(k: int) -> None:
            if len(stack) - k < fence:
                raise _Malformed(f"{name} stack underflow", start)

        def pop_mark() -> list[object]:
            if not marks:
                raise _Malformed(f"{name} without MARK", start)
            m = marks.pop()
            items = stack[m:]
            del stack[m:]
            return items

        def line() -> tuple[bytes, int]:
            nl = data.find(b"\n", pos)
            if nl < 0:
                raise _Malformed(f"{name} argument has no newline", start)
            return data[pos:nl], nl + 1

        def carrier(size: int) -> None:  # a literal the C twin never runs: no byte check
            if size >= MIN_CARRIER_BYTES:
                self.note_carrier(start, stack[-1])

        def sized(width: int) -> tuple[bytes, int]:
            if width == 1:
                size, at = data[pos], pos + 1
            elif width == 4:
                size, at = _U32(data, pos)[0], pos + 4
            else:
                size, at = _U64(data, pos)[0], pos + 8
            if at + size > n:
                raise _Malformed(f"{name} argument longer than the data", start)
            return data[at : at + size], at + size

        if op == 0x80:  # PROTO
            proto = data[pos]
            if proto > _HIGHEST_PROTOCOL:
                raise _Malformed(f"unsupported pickle protocol {proto}", start)
            return pos + 1
        if op in (0x63, 0x69):  # GLOBAL, INST
            raw_module, pos = line()
            nl = data.find(b"\n", pos)
            if nl < 0:
                raise _Malformed(f"{name} argument has no newline", start)
            module, qual = raw_module.decode("utf-8"), data[pos:nl].decode("utf-8")
            ref = self.global_ref(module, qual, start)
            if op == 0x63:
                stack.append(ref)
            else:
                inst_args = tuple(pop_mark())
                stack.append(self.call(ref, inst_args, None, "INST", start))
            return nl + 1
        if op == 0x93:  # STACK_GLOBAL
            need(2)
            qual_v = stack.pop()
            module_v = stack.pop()
            if type(module_v) is str and type(qual_v) is str:
                stack.append(self.global_ref(module_v, qual_v, start))
            elif isinstance(module_v, COMPUTED) or isinstance(qual_v, COMPUTED):
                stack.append(self.computed_global(module_v, qual_v, start))
            else:
                raise _Malformed("STACK_GLOBAL requires str operands", start)
            return pos
        if op == 0x62:  # BUILD
            need(2)
            state = stack.pop()
            inst = stack[-1]
            self.build(inst, state, start)
            if (
                self.joblib
                and type(inst) is CallResult
                and type(inst.func) is GlobalRef
                and inst.func.qualname == JOBLIB_WRAPPER
            ):
                array, pos = self.joblib_array(inst, state, pos, start)
                stack[-1] = array
            return pos
        if op == 0x81:  # NEWOBJ
            need(2)
            args = stack.pop()
            cls = stack.pop()
            stack.append(self.call(cls, args, None, "NEWOBJ", start))
            return pos
        if op == 0x92:  # NEWOBJ_EX
            need(3)
            kwargs = stack.pop()
            args = stack.pop()
            cls = stack.pop()
            stack.append(self.call(cls, args, kwargs, "NEWOBJ_EX", start))
            return pos
        if op == 0x6F:  # OBJ
            items = pop_mark()
            if not items:
                raise _Malformed("OBJ without a class", start)
            stack.append(self.call(items[0], tuple(items[1:]), None, "OBJ", start))
            return pos
        if op == 0x30:  # POP: pops the mark itself when the top is a mark
            if marks and marks[-1] == len(stack):
                marks.pop()
            else:
                need(1)
                stack.pop()
            return pos
        if op == 0x31:  # POP_MARK
            pop_mark()
            return pos
        if op == 0x32:  # DUP
            need(1)
            stack.append(stack[-1])
            if type(stack[-1]) not in _LEAVES:
                self.shared.append(stack[-1])
            return pos
        if op == 0x64:  # DICT
            items = pop_mark()
            if len(items) & 1:
                raise _Malformed("odd number of items for DICT", start)
            for key in items[0::2]:
                self.check_key(key, "DICT", start)
            it = iter(items)
            stack.append(PDict(list(zip(it, it, strict=True))))
            return pos
        if op == 0x6C:  # LIST
            stack.append(pop_mark())
            return pos
        if op == 0x8F:  # EMPTY_SET
            stack.append(PSet([], frozen=False))
            return pos
        if op == 0x91:  # FROZENSET
            items = pop_mark()
            for key in items:
                self.check_key(key, "FROZENSET", start)
            stack.append(PSet(items, frozen=True))
            return pos
        if op == 0x90:  # ADDITEMS
            items = pop_mark()
            fence = marks[-1] if marks else 0
            if len(stack) <= fence:
                raise _Malformed("ADDITEMS with no set below its MARK", start)
            target = stack[-1]
            if type(target) is PSet and not target.frozen:
                for key in items:
                    self.check_key(key, "ADDITEMS", start)
                target.items.extend(items)
            else:
                self.mutate(target, items, "ADDITEMS", start)
            return pos
        if op in (0x8A, 0x8B):  # LONG1, LONG4
            if op == 0x8A:
                size, at = data[pos], pos + 1
            else:
                size, at = _I32(data, pos)[0], pos + 4
                if size < 0:
                    raise _Malformed("LONG pickle has negative byte count", start)
            if at + size > n:
                raise _Malformed(f"{name} argument longer than the data", start)
            if size <= _MAX_LONG_BYTES:
                stack.append(int.from_bytes(data[at : at + size], "little", signed=True))
            else:
                stack.append(BigInt(size))
            return at + size
        if op == 0x8D:  # BINUNICODE8
            raw, after = sized(8)
            stack.append(raw.decode("utf-8", "surrogatepass"))
            carrier(len(raw))
            return after
        if op == 0x8E:  # BINBYTES8
            raw, after = sized(8)
            stack.append(raw)
            carrier(len(raw))
            return after
        if op == 0x96:  # BYTEARRAY8
            raw, after = sized(8)
            stack.append(bytearray(raw))
            carrier(len(raw))
            return after
        if op in (0x54, 0x55):  # BINSTRING, SHORT_BINSTRING
            if op == 0x54:
                size, at = _I32(data, pos)[0], pos + 4
                if size < 0:
                    raise _Malformed("BINSTRING pickle has negative byte count", start)
            else:
                size, at = data[pos], pos + 1
            if at + size > n:
                raise _Malformed(f"{name} argument longer than the data", start)
            # Python 2 str: the unpickler's `encoding` decides; latin-1 keeps every byte and
            # yields a str, the reading under which it can feed STACK_GLOBAL (fail closed).
            stack.append(data[at : at + size].decode("latin-1"))
            carrier(size)
            return at + size
        if op == 0x53:  # STRING
            text, after = line()
            if len(text) < 2 or text[0] != text[-1] or text[:1] not in (b"'", b'"'):
                raise _Malformed("STRING argument is not quoted", start)
            try:
                stack.append(escape_decode(text[1:-1]).decode("latin-1"))
            except ValueError:
                raise _Malformed("STRING has a bad escape", start) from None
            carrier(len(text))
            return after
        if op == 0x56:  # UNICODE
            text, after = line()
            try:
                stack.append(codecs.raw_unicode_escape_decode(text)[0])
            except UnicodeDecodeError:
                raise _Malformed("UNICODE has a bad escape", start) from None
            carrier(len(text))
            return after
        if op in (0x49, 0x4C):  # INT, LONG
            text, after = line()
            if op == 0x49 and text in (b"00", b"01"):
                stack.append(text == b"01")
                return after
            if op == 0x4C and text.endswith(b"L"):
                text = text[:-1]
            if len(text) > 4300:  # CPython's int_max_str_digits: the loader fails too
                raise _Malformed(f"{name} literal too long", start)
            try:
                stack.append(int(text, 0))
            except ValueError:
                raise _Malformed(f"{name} argument is not an integer", start) from None
            return after
        if op == 0x46:  # FLOAT
            text, after = line()
            try:
                stack.append(float(text))
            except ValueError:
                raise _Malformed("FLOAT argument is not a float", start) from None
            return after
        if op == 0x50:  # PERSID
            text, after = line()
            try:
                pid = text.decode("ascii")
            except UnicodeDecodeError:
                raise _Malformed("persistent IDs in protocol 0 must be ASCII", start) from None
            stack.append(self.persistent(pid, start))
            return after
        if op in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4
            if op == 0x82:
                code, after = data[pos], pos + 1
            elif op == 0x83:
                code, after = _U16(data, pos)[0], pos + 2
            else:
                code, after = _I32(data, pos)[0], pos + 4
            if code <= 0:
                raise _Malformed("EXT specifies code <= 0", start)
            self.add(
                "pickle.ext-code",
                Verdict.SUSPICIOUS,
                Severity.HIGH,
                f"{name} loads object {code} from the copyreg extension registry, whose "
                "contents depend on the loading process",
                start,
                evidence={"code": code},
            )
            stack.append(ExtRef(code, start))
            return after
        if op == 0x97:  # NEXT_BUFFER
            self.add(
                "pickle.out-of-band-buffer",
                Verdict.SUSPICIOUS,
                Severity.LOW,
                "NEXT_BUFFER refers to an out-of-band buffer the stream does not carry",
                start,
            )
            stack.append(BufferRef(start))
            return pos
        if op == 0x98:  # READONLY_BUFFER
            need(1)
            return pos
        raise _Malformed(f"unknown opcode 0x{op:02x}", start)

    def broken(self, bad: _Malformed, *, first: bool, pos: int) -> None:
        """The pickle starting at `pos` does not parse: malformed, or trailing data."""
        n = len(self.data)
        if not first:
            self.add(
                "pickle.trailing-data",
                Verdict.SUSPICIOUS,
                Severity.MEDIUM,
                f"{n - pos} bytes after the last STOP do not form a pickle",
                pos,
                evidence={"bytes": n - pos, "reason": bad.reason, "reason_offset": bad.offset},
            )
            return
        self.add(
            "pickle.malformed",
            Verdict.MALFORMED,
            Severity.HIGH,
            f"pickle stream is broken: {bad.reason}",
            bad.offset,
            evidence={"reason": bad.reason},
        )
        if self.seg.flagged_call:
            self.add(
                "pickle.broken-after-call",
                Verdict.MALICIOUS,
                Severity.CRITICAL,
                "a non-allowlisted call runs before the stream breaks (the loader executes "
                "it, then fails; scanners that stop on errors miss it)",
                bad.offset,
                evidence={"reason": bad.reason},
                reference="nullifAI (ReversingLabs, 2025)",
            )

    def close_segment(self) -> _Segment:
        seg = self.seg
        for ref in seg.pending.values():
            decision = ref.decision
            evidence: dict[str, JSONValue] = {
                "global": ref.qualname,
                "called": False,
                "label": decision.label,
            }
            if ref.raw != ref.qualname:
                evidence["raw_global"] = ref.raw
            self.add(
                decision.rule,
                decision.verdict,
                decision.severity,
                f"imports {ref.qualname} ({decision.label})",
                ref.offset,
                evidence=evidence,
            )
        seg.pending = {}
        self.seg = _Segment()
        return seg


def _opname(op: int) -> str:
    return OPCODE_NAMES.get(op, f"0x{op:02x}")


def _as_sequence(args: object) -> tuple[object, ...] | None:
    if isinstance(args, tuple):
        return args
    if isinstance(args, list):
        return tuple(args)
    return None


def _empty_mapping(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, PDict):
        return not value.items
    if isinstance(value, CallResult) and isinstance(value.func, GlobalRef):
        return (
            value.func.qualname == "collections.OrderedDict"
            and not value.items
            and value.args in ((), ([],), ((),))
        )
    return False


def _dict_like_result(value: object) -> bool:
    return (
        isinstance(value, CallResult)
        and isinstance(value.func, GlobalRef)
        and value.func.qualname in ("collections.OrderedDict", "collections.Counter")
    )


def _state_keys(state: object) -> list[object]:
    """Attribute names a BUILD / torch `_set_obj_state` state would set."""
    parts = list(state) if isinstance(state, tuple) and len(state) == 2 else [state]
    keys: list[object] = []
    for part in parts:
        if isinstance(part, PDict):
            keys.extend(k for k, _ in part.items)
        elif _dict_like_result(part):
            assert isinstance(part, CallResult)
            items = part.items or []
            keys.extend(items[0::2])
    return keys


def _truthy_state(state: object) -> bool:
    if isinstance(state, PDict):
        return bool(state.items)
    return state is not None and state not in ((), [])


def _bytes_literal_args(seq: tuple[object, ...]) -> bool:
    if not seq:
        return True
    if len(seq) == 1:
        arg = seq[0]
        if isinstance(arg, bytes | bytearray):
            return True
        return (
            isinstance(arg, CallResult)
            and isinstance(arg.func, GlobalRef)
            and arg.func.qualname == "_codecs.encode"
        )
    return len(seq) == 2 and isinstance(seq[0], str) and seq[1] in ("latin1", "latin-1")


def _looks_like_pickle(value: bytes | bytearray) -> bool:
    return len(value) >= 4 and value[0] == 0x80 and value[1] <= _HIGHEST_PROTOCOL


# --- entry points ------------------------------------------------------------------------


def analyze_pickle(
    data: bytes | memoryview,
    *,
    limits: ScanLimits,
    scanner_id: str = "pickle",
    member: str | None = None,
    depth: int = 0,
    joblib: bool = True,
    weights: bool = True,
    classify: GlobalClassifier = classify_global,
) -> PickleAnalysis:
    """Run the symbolic machine over every pickle in `data` and explain what loading would do.

    With `joblib` (the default: a raw pickle may be a joblib file) the array data joblib writes
    after each NumpyArrayWrapper's BUILD is delimited and skipped (or, for object arrays, scanned
    as the nested pickle it is) exactly as joblib's NumpyUnpickler reads it. With `weights`
    (the default) the stream is a weights file and only the checkpoint allowlist applies;
    `weights=False` also accepts the policy's harmless builtins (`HARMLESS_OUTSIDE_WEIGHTS`).
    """
    buf = data if isinstance(data, bytes) else bytes(data)
    machine = _Machine(
        buf, limits, scanner_id, member, depth, joblib=joblib, weights=weights, classify=classify
    )
    n = len(buf)
    findings: list[Finding] = []
    verdicts: list[Verdict] = []
    pickles: list[tuple[int, int]] = []
    trailing: int | None = None
    suppressed = 0

    def merge(seg: _Segment, drop_rules: tuple[str, ...] = ()) -> None:
        nonlocal suppressed
        findings.extend(f for f in seg.findings if f.rule not in drop_rules)
        verdicts.extend(seg.verdicts)
        suppressed += seg.suppressed

    if n > limits.max_pickle_bytes:
        machine.add(
            "pickle.limit.bytes",
            Verdict.ERROR,
            Severity.HIGH,
            f"pickle stream of {n} bytes exceeds max_pickle_bytes ({limits.max_pickle_bytes})",
            0,
        )
        merge(machine.close_segment())
    elif n == 0:
        machine.add("pickle.malformed", Verdict.MALFORMED, Severity.HIGH, "empty pickle", 0)
        merge(machine.close_segment())
    pos = 0 if 0 < n <= limits.max_pickle_bytes else n
    while pos < n:
        try:
            end = machine.run(pos)
        except _LimitHit as hit:
            machine.add(hit.rule, hit.verdict, Severity.HIGH, hit.message, hit.offset)
            merge(machine.close_segment())
            break
        except _Unscannable:  # its finding is in the segment
            merge(machine.close_segment())
            break
        except _Malformed as bad:
            if pickles:
                trailing = pos
            machine.broken(bad, first=not pickles, pos=pos)
            merge(machine.close_segment())
            break
        merge(machine.close_segment())
        pickles.append((pos, end))
        pos = end
    if len(pickles) > 1:
        machine.add(
            "pickle.stacked",
            Verdict.CLEAN,
            Severity.INFO,
            f"{len(pickles)} pickles are concatenated; pickle.load reads only the first, "
            "other consumers (torch legacy format, joblib) read more; all were scanned",
            pickles[1][0],
            evidence={"pickles": len(pickles), "offsets": [s for s, _ in pickles[:16]]},
        )
    if machine.persistent_ids:
        machine.add(
            "pickle.persistent-id",
            Verdict.CLEAN,
            Severity.INFO,
            f"{machine.persistent_ids} persistent ids (resolved by the consumer, e.g. torch "
            "storages)",
            None,
            evidence={"count": machine.persistent_ids, "examples": list(machine.pid_samples)},
        )
    merge(machine.close_segment())
    if suppressed:
        findings.append(
            Finding(
                scanner=scanner_id,
                rule="pickle.findings.truncated",
                severity=Severity.INFO,
                message=f"{suppressed} further findings were not listed",
                evidence={"suppressed": suppressed},
                member=member,
            )
        )
    findings.sort(key=lambda f: -1 if f.offset is None else f.offset)
    return PickleAnalysis(
        verdict=worst(verdicts),
        findings=tuple(findings),
        pickles=tuple(pickles),
        trailing_offset=trailing,
        calls=tuple(machine.calls),
        allowed_calls=dict(machine.allowed_calls),
        persistent_ids=machine.persistent_ids,
        opcodes=limits.max_opcodes - machine.opcodes_left,
        storages=tuple(machine.storages),
    )


def scan_pickle_bytes(
    data: bytes | memoryview,
    *,
    limits: ScanLimits,
    scanner_id: str = "pickle",
    member: str | None = None,
    depth: int = 0,
    weights: bool = True,
    classify: GlobalClassifier = classify_global,
) -> FileVerdict:
    """The verdict for one pickle stream (every pickle concatenated in it), with findings.

    Findings carry `member` when given and `offset` = the byte offset of the opcode in
    `data`. Nested pickles are scanned at `depth + 1` up to `limits.max_nesting`. `weights`:
    see `analyze_pickle`.
    """
    return analyze_pickle(
        data,
        limits=limits,
        scanner_id=scanner_id,
        member=member,
        depth=depth,
        weights=weights,
        classify=classify,
    ).to_file_verdict()
