"""Pickle evasions from other projects' test material (issue 14): frames, broken streams,
unhashable cycles, expansion bombs, pickles carried as data, harmless builtins.

Every sample is raw opcode bytes (or `pickle.dumps` of a harmless value); nothing here is ever
unpickled. Each behaviour is checked on the pure-Python machine and on its C twin.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any

import pytest

from registry.scanners import pickle_vm
from registry.scanners.base import FileVerdict, ScanLimits, Verdict
from registry.scanners.pickle_vm import analyze_pickle, scan_pickle_bytes

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
