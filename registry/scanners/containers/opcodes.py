"""`pickletools.genops` that never warns: the same opcodes, arguments and errors.

`pickletools` unescapes the text arguments of protocol 0 (STRING, and GLOBAL, INST, INT, PERSID
despite their readers' "noescape" names) with `codecs.escape_decode`, which emits a
DeprecationWarning for an escape Python no longer knows (`\\Ê` in random weights whose bytes
happen to read as a GLOBAL). Whether that warning is ignored, printed or raised depends on the
process's warning filters, which are global and not thread-safe to change around a call: under
`-W error` (the test suite's setting) a `.safetensors` of random weights crashed two scanners in
one run and passed in the next. Scanners walk opcodes with `genops` here, whose text readers
decode the escapes themselves, so a file's verdict never depends on the warning filters.
"""

from __future__ import annotations

import io
import pickletools
from collections.abc import Iterator
from typing import IO, Any

_BY_CODE = {op.code: op for op in pickletools.opcodes}

_HEX = frozenset(b"0123456789abcdefABCDEF")
_SIMPLE_ESCAPES = {
    ord("\\"): 0x5C, ord("'"): 0x27, ord('"'): 0x22, ord("a"): 0x07, ord("b"): 0x08,
    ord("f"): 0x0C, ord("n"): 0x0A, ord("r"): 0x0D, ord("t"): 0x09, ord("v"): 0x0B,
}  # fmt: skip


def escape_decode(raw: bytes) -> bytes:
    """`codecs.escape_decode` without its warnings: Python 2 `repr` string escapes (unknown
    escapes are kept verbatim, as Python does); ValueError where Python raises one."""
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != 0x5C or i + 1 >= n:
            if c == 0x5C:
                raise ValueError("trailing backslash in STRING")
            out.append(c)
            i += 1
            continue
        e = raw[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif e == 0x0A:  # line continuation
            i += 2
        elif e == ord("x"):
            digits = raw[i + 2 : i + 4]
            if len(digits) != 2 or not all(d in _HEX for d in digits):  # int() takes "+1", " 1"
                raise ValueError("invalid \\x escape")
            out.append(int(digits, 16))
            i += 4
        elif 0x30 <= e <= 0x37:
            j = i + 1
            while j < n and j < i + 4 and 0x30 <= raw[j] <= 0x37:
                j += 1
            out.append(int(raw[i + 1 : j], 8) & 0xFF)
            i = j
        else:
            out.append(c)
            i += 1
    return bytes(out)


def _read_stringnl(f: IO[bytes], *, stripquotes: bool = True) -> str:
    """`pickletools.read_stringnl` (escapes undone, ASCII), decoding quietly."""
    data = f.readline()
    if not data.endswith(b"\n"):
        raise ValueError("no newline found when trying to read stringnl")
    data = data[:-1]
    if stripquotes:
        quote = data[:1]
        if quote not in (b'"', b"'"):
            raise ValueError(f"no string quotes around {data!r}")
        if len(data) < 2 or not data.endswith(quote):
            raise ValueError(f"string quote {quote!r} not found at both ends of {data!r}")
        data = data[1:-1]
    return escape_decode(data).decode("ascii")


def _read_stringnl_noescape(f: IO[bytes]) -> str:
    # pickletools' "noescape" readers unescape all the same (GLOBAL, INST, PERSID, INT...).
    return _read_stringnl(f, stripquotes=False)


def _read_stringnl_noescape_pair(f: IO[bytes]) -> str:
    return f"{_read_stringnl_noescape(f)} {_read_stringnl_noescape(f)}"


#: pickletools' readers that call `codecs.escape_decode`, and their quiet twins.
_QUIET_READERS: dict[Any, Any] = {
    pickletools.read_stringnl: _read_stringnl,
    pickletools.read_stringnl_noescape: _read_stringnl_noescape,
    pickletools.read_stringnl_noescape_pair: _read_stringnl_noescape_pair,
}


def genops(data: bytes | IO[bytes]) -> Iterator[tuple[Any, Any, int | None]]:
    """`pickletools.genops`: (opcode, argument, position) up to STOP; ValueError (or
    struct.error) on a stream that is not one."""
    stream: IO[bytes] = io.BytesIO(data) if isinstance(data, bytes) else data
    while True:
        pos = stream.tell()
        code = stream.read(1)
        opcode = _BY_CODE.get(code.decode("latin-1"))
        if opcode is None:
            if code == b"":
                raise ValueError("pickle exhausted before seeing STOP")
            raise ValueError(f"at position {pos}, opcode {code!r} unknown")
        if opcode.arg is None:
            arg = None
        else:
            reader = opcode.arg.reader
            arg = _QUIET_READERS.get(reader, reader)(stream)
        yield opcode, arg, pos
        if code == b".":
            break
