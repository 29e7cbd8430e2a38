"""The opcode walker the sniffers use: pickletools' answers, and never a warning."""

from __future__ import annotations

import io
import pickle
import pickletools
import random
import warnings
from pathlib import Path

import pytest

from registry.scanners import catalog
from registry.scanners.base import Verdict
from registry.scanners.containers.opcodes import genops
from registry.scanners.containers.sniff import looks_like_pickle
from registry.scanners.runner import local_targets, scan_targets

#: Python 3 warns on `\q` when pickletools unescapes a STRING (the test suite makes it an error).
ODD_ESCAPE = b"S'\\q\\x41\\101'\n."


def walk(walker: object, data: bytes) -> tuple[list[tuple[str, object, int | None]], str | None]:
    out: list[tuple[str, object, int | None]] = []
    try:
        for op, arg, pos in walker(io.BytesIO(data)):  # type: ignore[operator]
            out.append((op.name, arg, pos))
    except Exception as exc:  # the type of the error is what is compared
        return out, type(exc).__name__
    return out, None


def test_the_walk_is_pickletools_own() -> None:
    rng = random.Random(7)
    samples = [pickle.dumps([1, "a", {"b": b"c"}, (1.5, None)], protocol=p) for p in range(6)]
    samples += [ODD_ESCAPE, b"S'abc\n.", b"Sabc'\n.", b"S'\xc3'\n.", b"S'\\x4'\n."]
    # The "noescape" readers unescape too: GLOBAL, INST, INT, PERSID.
    samples += [b"c\\\xf3s\nsystem\n.", b"cos\\q\nsys\n.", b"I1\\u\n.", b"P\\q\n.", b"(iA\\z\nB\n."]
    alphabet = b"\\abcx01234567'\"nq+- _\t"
    samples += [
        b"S'" + bytes(rng.choice(alphabet) for _ in range(rng.randrange(12))) + b"'\n."
        for _ in range(2000)
    ]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) for _ in range(2000)]
    for data in samples:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            expected = walk(pickletools.genops, data)
        assert walk(genops, data) == expected, data


def test_an_odd_escape_is_no_warning_and_no_crash(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert looks_like_pickle(ODD_ESCAPE)
        # Random weights whose bytes read as a GLOBAL with `\\ó` in its operand (a `.safetensors`
        # of random bytes crashed the pickle scanner so, under `-W error`).
        assert not looks_like_pickle(b"c\\\xf3\n\x01\x02")
    payload = b"(S'\\q'\ncos\nsystem\n(S'echo pwned'\ntR."
    path = tmp_path / "weights.bin"
    path.write_bytes(payload)
    files, _ = catalog.all_scanners()
    (entry,) = scan_targets(local_targets(path)[0], files, []).files
    assert entry.verdict is Verdict.MALICIOUS
    assert not [f for f in entry.findings if f.rule == "scanner.crashed"]


@pytest.mark.parametrize("data", [b"", b"\x00", b"S'a'"])
def test_streams_that_are_not_pickles_fail_as_pickletools_does(data: bytes) -> None:
    assert walk(genops, data)[1] == "ValueError"
