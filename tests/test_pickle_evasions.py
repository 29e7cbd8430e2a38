"""Pickle evasions from other projects' test material (issue 14): frames, broken streams,
unhashable cycles, expansion bombs, pickles carried as data, harmless builtins.

Every sample is raw opcode bytes (or `pickle.dumps` of a harmless value); nothing here is ever
unpickled. Each behaviour is checked on the pure-Python machine and on its C twin.
"""

from __future__ import annotations
import __future__

import base64
import collections
import io
import pickle
import struct
from pathlib import Path
from typing import Any

import pytest

from registry.scanners import catalog, pickle_vm
from registry.scanners.base import FileVerdict, ScanLimits, Severity, Verdict
from registry.scanners.containers.sniff import looks_like_pickle
from registry.scanners.pickle_vm import analyze_pickle, scan_pickle_bytes
from registry.scanners.runner import local_targets, merge, scan_targets
from tests.test_pickle_containers import torch_zip_bytes

LIMITS = ScanLimits()
P2 = b"\x80\x02"
P4 = b"\x80\x04"


def su(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def frame(body: bytes, size: int | None = None) -> bytes:
    return b"\x95" + struct.pack("<Q", len(body) if size is None else size) + body


#: posix.system('true') as protocol-4 opcodes (never loaded).
SYSTEM_CALL = su("posix") + su("system") + b"\x93" + su("true") + b"\x85R"


@pytest.fixture(params=["c-twin", "pure"], autouse=True)
def machine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test on both paths: the C twin (when built) and the pure-Python loop."""
    if request.param == "pure":
        monkeypatch.setattr(pickle_vm, "_FAST", None)
    elif pickle_vm._FAST is None:
        pytest.skip("the C accelerator is not built here")  # test_pickle_vm fails for that
    return str(request.param)


def scan(data: bytes, **kw: Any) -> FileVerdict:
    return scan_pickle_bytes(data, limits=LIMITS, **kw)


def rules(result: FileVerdict) -> set[str]:
    return {f.rule for f in result.findings}


def reasons(result: FileVerdict) -> str:
    return " | ".join(f.message for f in result.findings)


# --- class 1: opcodes that cross a FRAME's end ----------------------------------------------


def test_binbytes_crossing_its_frame_is_malformed() -> None:
    # The sample: a FRAME of 2 bytes holding BINBYTES whose 4-byte length (263) ends
    # outside the frame. pickle.loads reads 263 bytes of data; pickle.load(file) leaves the
    # frame and runs the opcodes hidden in them.
    hidden = SYSTEM_CALL + b"."
    hidden += b"N" * (263 - len(hidden))
    length = struct.pack("<I", 263)
    data = P4 + frame(b"B" + length[:1]) + length[1:] + hidden + b"."
    result = scan(data)
    assert result.verdict is Verdict.MALFORMED, reasons(result)
    assert "crosses the end of its FRAME" in reasons(result)


@pytest.mark.parametrize(
    "opcode",
    [
        glob("posix", "system"),  # a text argument (two lines)
        su("abcdef"),  # a length-prefixed one
        b"J\x01\x02\x03\x04",  # a fixed-size one
        b"\x8a\x02\x01\x02",  # LONG1
        b"q\x00",  # BINPUT
    ],
)
def test_any_argument_crossing_the_frame_end_is_malformed(opcode: bytes) -> None:
    prefix = b"N" if opcode.startswith(b"q") else b""
    body = prefix + opcode
    for size in range(len(prefix) + 1, len(body)):  # the frame ends inside the opcode
        data = P4 + frame(body[:size], size) + body[size:] + b"0N."
        result = scan(data)
        # GLOBAL's import is reported as well (worse than malformed)
        assert result.verdict in (Verdict.MALFORMED, Verdict.MALICIOUS), size
        assert "crosses the end of its FRAME" in reasons(result)


def test_a_frame_opening_inside_another_frame_is_malformed() -> None:
    inner = frame(b"N.")
    data = P4 + frame(b"N0" + inner) + b""
    result = scan(data)
    assert result.verdict is Verdict.MALFORMED
    assert "FRAME opens inside another frame" in reasons(result)


def test_frames_as_the_picklers_write_them_are_clean() -> None:
    big = {"k": list(range(40_000)), "s": ["x" * 50] * 3000, "b": b"\x00" * 300_000}
    for protocol in (4, 5):
        dumped = pickle.dumps(big, protocol)  # frames of ~64 KiB, large bytes inside one
        assert dumped.count(b"\x95") >= 1
        result = scan(dumped)
        assert result.verdict is Verdict.CLEAN, reasons(result)
        out = io.BytesIO()
        pickle.dump(big, out, protocol)  # large bytes written unframed after a frame
        result = scan(out.getvalue())
        assert result.verdict is Verdict.CLEAN, reasons(result)
    # Frames back to back, an empty frame, and opcodes between frames are all valid.
    data = P4 + frame(b"](") + frame(b"") + b"K\x01" + frame(b"K\x02e") + b"."
    assert scan(data).verdict is Verdict.CLEAN


def test_a_second_pickle_inside_the_first_ones_frame_is_not_clean() -> None:
    # STOP before the frame's end: pickle.load(file) has buffered the rest of the frame,
    # pickle.loads reads it as the next pickle. The two readers disagree.
    data = P4 + frame(b"N." + P4 + b"N.")
    result = scan(data)
    assert result.verdict is not Verdict.CLEAN
    assert "pickle.trailing-data" in rules(result)


def test_c_twin_and_pure_loop_agree_on_frame_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"]q\x00(K\x01K\x02e" + su("posix") + su("system") + b"\x93" + b"N\x85R."
    samples = [P4 + frame(body, k) + body[k:] for k in range(len(body) + 1)]
    samples += [P4 + frame(body[:k] + frame(body[k:]), None) for k in range(len(body))]
    for data in samples:
        monkeypatch.setattr(pickle_vm, "_FAST", None)
        pure = analyze_pickle(data, limits=LIMITS)
        monkeypatch.undo()
        fast = analyze_pickle(data, limits=LIMITS)
        assert fast == pure, data


# --- class 3: broken streams, unhashable cycles, expansion bombs ------------------------------


def scan_file(tmp_path: Path, data: bytes, name: str = "model.bin") -> tuple[Verdict, set[str]]:
    """The whole scan a user runs: content sniffing, every scanner, the merged verdict."""
    path = tmp_path / name
    path.write_bytes(data)
    files, _folder_scanners = catalog.all_scanners()
    targets, refused = local_targets(path)
    report = merge(scan_targets(targets, files, []), refused)
    return report.verdict, {f.rule for entry in report.files for f in entry.findings}


@pytest.mark.parametrize(
    "data",
    [
        b"cos\nsystem\n(S'true'\ntR",  # the call runs, then the stream ends (nullifAI)
        b"cos\nsystem\n(S'tr",  # ends inside the argument, after the import
        b"(cos\nsystem\nS'true'\ni",  # INST, cut before its second line
        b"cmymodel\nNet\n)\x81\xff\xfe",  # an unknown class, then bytes that are no opcode
        b"(S'posix'\nS'system'\n\x93",  # STACK_GLOBAL and nothing after it
    ],
)
def test_a_broken_stream_that_imports_is_a_pickle_never_clean(tmp_path: Path, data: bytes) -> None:
    assert looks_like_pickle(data, len(data))
    verdict, found = scan_file(tmp_path, data)
    assert verdict in (Verdict.MALICIOUS, Verdict.MALFORMED, Verdict.SUSPICIOUS), found
    assert "pickle.malformed" in found
    assert found & {"pickle.global.dangerous", "pickle.global.not-allowed"}


@pytest.mark.parametrize(
    "text",
    [
        b"class Net:\n    pass\n",
        b"import os\nprint(os.name)\n",
        b"cuda 12.4 wheels\nsee README\n",
        b"(c) 2026 the authors\n",
    ],
)
def test_text_that_starts_like_an_opcode_is_still_not_a_pickle(text: bytes) -> None:
    assert not looks_like_pickle(text, len(text))


UNHASHABLE = [
    P2 + b"}q\x00h\x00K\x01s.",  # a dict as its own key (SETITEM)
    P2 + b"}q\x00(h\x00K\x01u.",  # the same through SETITEMS
    P4 + b"\x8f\x94(h\x00\x90.",  # a set added to itself (ADDITEMS)
    P2 + b"}(]K\x01u.",  # a list as a dict key
    P2 + b"}((]tK\x01u.",  # a tuple holding a list as a dict key
    b"(lp0\n(g0\nI1\nd.",  # protocol 0 DICT keyed by a list
    P4 + b"(]\x91.",  # a list in a frozenset
    P2 + glob("collections", "OrderedDict") + b")R(]K\x01u.",  # OrderedDict keyed by a list
]


@pytest.mark.parametrize("data", UNHASHABLE)
def test_unhashable_cycles_and_keys_are_malformed(data: bytes) -> None:
    result = scan(data)
    assert result.verdict is Verdict.MALFORMED, reasons(result)
    assert "which the loader cannot compute" in reasons(result)


def test_an_unhashable_key_after_a_call_is_the_nullifai_pattern() -> None:
    data = P4 + SYSTEM_CALL + b"0}q\x00h\x00K\x01s."
    result = scan(data)
    assert result.verdict is Verdict.MALICIOUS
    assert "pickle.broken-after-call" in rules(result)


def test_hashable_keys_stay_clean() -> None:
    value = {("a", 1, (2.0, None)): b"x", frozenset({1, 2}): [1], 7: {"k": (1,)}, True: 0.5}
    for protocol in range(6):
        assert scan(pickle.dumps(value, protocol)).verdict is Verdict.CLEAN
    # a global (a class) as a key is hashable as far as anyone can tell
    assert scan(P2 + b"}" + glob("collections", "OrderedDict") + b"K\x01s.").verdict is (
        Verdict.CLEAN
    )


def memo_fanout(levels: int, fan: int) -> bytes:
    """Each level is a list holding the previous level `fan` times by memo reference."""
    out = P2 + b"]q\x00"
    for level in range(1, levels + 1):
        out += b"](" + b"h" + bytes([level - 1]) + (b"h" + bytes([level - 1])) * (fan - 1)
        out += b"eq" + bytes([level])
    return out + b"."


def dup_fanout(levels: int, fan: int) -> bytes:
    """The same built with DUP only: no memo at all."""
    return P2 + b"(" * levels + b"]" + (b"2" * (fan - 1) + b"l") * levels + b"."


@pytest.mark.parametrize(
    ("data", "containers"),
    [(memo_fanout(9, 10), 9), (dup_fanout(8, 10), 8), (memo_fanout(40, 2), 40)],
)
def test_reference_expansion_bombs_carry_their_expansion_factor(
    data: bytes, containers: int
) -> None:
    result = scan(data)
    assert result.verdict is Verdict.SUSPICIOUS, reasons(result)
    bomb = next(f for f in result.findings if f.rule == "pickle.expansion-bomb")
    assert bomb.evidence["shared_objects"] == containers  # every level but the outermost
    assert bomb.evidence["stream_bytes"] == len(data)
    factor = bomb.evidence["expansion_factor"]
    assert isinstance(factor, int)
    assert factor >= 100
    assert f"{factor}x" in bomb.message


def test_a_small_fanout_and_honest_sharing_are_clean() -> None:
    assert scan(memo_fanout(3, 10)).verdict is Verdict.CLEAN  # about 1,000 visits
    shared = {"w": list(range(100))}
    for protocol in (2, 4):
        data = pickle.dumps([shared] * 2000 + [list(range(50_000))], protocol)
        assert scan(data).verdict is Verdict.CLEAN


# --- class 7: harmless builtins outside weights files ----------------------------------------


def harmless_values() -> list[bytes]:
    """Pickles of harmless values that name builtins, collections and __future__ globals."""
    out: list[bytes] = []
    values: list[object] = [
        collections.deque([1, 2, 3], maxlen=5),
        len,
        dict,
        [list, tuple, int, float, str, bool],
        __future__.annotations,
        {"feature": __future__.division, "names": __future__.all_feature_names},
        collections.OrderedDict(a=collections.deque()),
    ]
    for value in values:
        out.extend(pickle.dumps(value, protocol) for protocol in (2, 3, 4, 5))
    out.append(P2 + glob("builtins", "len") + b"](K\x01K\x02e\x85R.")  # len([1, 2]) is called
    out.append(P2 + glob("__builtin__", "dict") + b")R(X\x01\x00\x00\x00aK\x01u.")  # dict()
    return out


@pytest.mark.parametrize("data", harmless_values())
def test_harmless_builtins_in_a_plain_pickle_are_at_most_info(tmp_path: Path, data: bytes) -> None:
    result = scan(data, weights=False)
    assert result.verdict is Verdict.CLEAN, reasons(result)
    assert all(f.severity is Severity.INFO for f in result.findings)
    assert "pickle.global.harmless" in rules(result) or b"OrderedDict" in data
    verdict, found = scan_file(tmp_path, data, "model.pkl")  # a raw pickle is not weights
    assert verdict is Verdict.CLEAN, found


@pytest.mark.parametrize("data", [d for d in harmless_values() if b"OrderedDict" not in d])
def test_the_weights_allowlist_stays_as_strict(tmp_path: Path, data: bytes) -> None:
    assert scan(data).verdict is Verdict.SUSPICIOUS  # weights=True is the default
    verdict, found = scan_file(tmp_path, torch_zip_bytes(data), "model.pt")
    assert verdict is Verdict.SUSPICIOUS, found
    assert "pickle.global.not-allowed" in found
    assert "pickle.global.harmless" not in found


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("builtins", "dict.fromkeys"),
        ("collections", "defaultdict"),
        ("__future__", "sys"),
    ],
)
def test_other_builtins_stay_refused_outside_weights(module: str, name: str) -> None:
    result = scan(P2 + glob(module, name) + b"N\x85R.", weights=False)
    assert result.verdict in (Verdict.SUSPICIOUS, Verdict.MALICIOUS), reasons(result)


def test_future_feature_construction_takes_no_arguments() -> None:
    data = P2 + glob("__future__", "_Feature") + b"K\x01\x85\x81."
    assert scan(data, weights=False).verdict is Verdict.SUSPICIOUS


# --- class 6: pickles carried as data -----------------------------------------------------


#: os.system('true') as raw protocol-2 opcodes (never loaded).
INNER = P2 + glob("os", "system") + b"X\x04\x00\x00\x00true\x85R."


def carried(value: object, protocol: int = 4) -> bytes:
    """A benign outer pickle (pickle.dumps of plain data) that holds `value`."""
    return pickle.dumps({"config": {"lr": 0.1}, "blob": value}, protocol)


def embedded(result: FileVerdict) -> list[Any]:
    return [f for f in result.findings if f.rule == "pickle.embedded"]


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        (INNER, "bytes"),
        (bytearray(INNER), "bytes"),
        (INNER.decode("latin-1"), "latin-1 text"),
        (INNER.hex(), "hex"),
        (INNER.hex().upper().encode(), "hex"),
        (base64.b64encode(INNER).decode(), "base64"),
        (base64.urlsafe_b64encode(INNER + b"\xff\xfe").decode().rstrip("="), "base64"),
    ],
)
def test_a_pickle_carried_as_data_is_named_in_an_info_finding(value: object, encoding: str) -> None:
    for protocol in (2, 4) if not isinstance(value, bytes | bytearray) else (3, 4, 5):
        result = scan(carried(value, protocol))
        assert result.verdict is Verdict.CLEAN, reasons(result)
        (found,) = embedded(result)
        assert found.severity is Severity.INFO
        assert found.evidence["encoding"] == encoding
        assert found.evidence["globals"] == ["os.system"]
        assert found.evidence["embedded_verdict"] in ("malicious", "malformed")
        assert "os.system" in found.message


def test_a_multistage_payload_names_every_stage() -> None:
    second = carried(INNER.hex())  # stage 2 carries stage 3 as hex
    first = carried(base64.b64encode(second).decode())  # stage 1 carries stage 2 as base64
    result = scan(first)
    assert result.verdict is Verdict.CLEAN
    stages = embedded(result)
    assert [f.evidence["encoding"] for f in stages] == ["base64", "hex"]
    assert stages[0].evidence["globals"] == []  # stage 2 itself imports nothing
    assert stages[1].evidence["globals"] == ["os.system"]
    assert stages[1].message.startswith("in the pickle carried as data")


def test_data_carried_pickles_nest_only_to_max_nesting() -> None:
    stage = INNER
    for _ in range(5):
        stage = carried(stage)
    result = scan_pickle_bytes(stage, limits=ScanLimits(max_nesting=2))
    assert "pickle.limit.nesting" in rules(result)
    assert result.verdict is Verdict.ERROR


def test_a_pickle_handed_to_a_loader_is_reported_once_as_nested_not_as_data() -> None:
    data = P2 + glob("pickle", "loads") + b"C" + bytes([len(INNER)]) + INNER + b"\x85R."
    result = scan(data)
    assert result.verdict is Verdict.MALICIOUS
    assert "pickle.nested" in rules(result)
    assert not embedded(result)


@pytest.mark.parametrize(
    "value",
    [
        b"\x80\x02" + bytes(range(200)),  # starts like a pickle, is none
        "80" * 40,  # hex of no pickle
        "gAJ9" + "A" * 40,  # base64 of a broken one
        "cat and dog and bird",
        b"\x00" * 4096,
    ],
)
def test_data_that_only_looks_like_a_pickle_adds_nothing(value: object) -> None:
    result = scan(carried(value))
    assert result.verdict is Verdict.CLEAN
    assert not embedded(result)
