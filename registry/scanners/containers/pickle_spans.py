"""Delimiting pickle streams inside containers.

No value is ever built: `genops` (pickletools', without its warnings) only decodes opcode
arguments and never resolves a global; the spans found here are handed to the pickle-machine
emulator by the scanner.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO

from registry.scanners.containers.opcodes import genops


@dataclass(frozen=True, slots=True)
class PickleSpan:
    start: int
    end: int  # just past STOP


def pickle_end(stream: IO[bytes], start: int) -> int:
    """Where the pickle that starts at `start` ends (just past its STOP opcode).

    Raises `ValueError` for a stream that does not disassemble (unknown opcode, truncation).
    """
    stream.seek(start)
    for op, _arg, _pos in genops(stream):
        if op.name == "STOP":
            return stream.tell()
    raise ValueError("pickle exhausted before seeing STOP")  # pragma: no cover - genops raises


def disassemble_until_stop(data: bytes) -> int | None:
    try:
        return pickle_end(io.BytesIO(data), 0)
    except ValueError:
        return None


def pickle_literal(stream: IO[bytes], span: PickleSpan) -> object | None:
    """The value of a pickle that is a single literal (int, str, bytes, bool, None), else None.

    Used for the legacy torch magic number, protocol version and counts: a *computed* value
    (a REDUCE producing the magic number, technique C8) is not a literal and yields None.
    """
    values: list[object] = []
    stream.seek(span.start)
    for op, arg, _pos in genops(stream):
        if op.name in ("PROTO", "FRAME", "STOP", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            continue
        if op.name in ("NONE",):
            values.append(None)
        elif op.name in ("NEWTRUE", "NEWFALSE"):
            values.append(op.name == "NEWTRUE")
        elif op.name in (
            "INT",
            "BININT",
            "BININT1",
            "BININT2",
            "LONG",
            "LONG1",
            "LONG4",
            "SHORT_BINUNICODE",
            "BINUNICODE",
            "BINUNICODE8",
            "UNICODE",
            "SHORT_BINBYTES",
            "BINBYTES",
            "BINBYTES8",
        ):
            values.append(arg)
        else:
            return None
    return values[0] if len(values) == 1 else None


def pickle_strings(stream: IO[bytes], span: PickleSpan) -> list[str] | None:
    """The strings of a pickle that is a flat list/tuple of string literals, else None."""
    out: list[str] = []
    allowed = {
        "PROTO",
        "FRAME",
        "STOP",
        "MARK",
        "EMPTY_LIST",
        "LIST",
        "APPEND",
        "APPENDS",
        "TUPLE",
        "EMPTY_TUPLE",
        "TUPLE1",
        "TUPLE2",
        "TUPLE3",
        "MEMOIZE",
        "PUT",
        "BINPUT",
        "LONG_BINPUT",
    }
    stream.seek(span.start)
    for op, arg, _pos in genops(stream):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            out.append(str(arg))
        elif op.name in ("SHORT_BINSTRING", "BINSTRING", "STRING"):
            out.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
        elif op.name not in allowed:
            return None
    return out


def pickle_globals(stream: IO[bytes], span: PickleSpan) -> list[str]:
    """`module.name` of the literal GLOBAL opcodes, and STACK_GLOBAL operands that are literal
    strings immediately before it. Only used to size legacy torch storages; the security
    decision is the emulator's."""
    names: list[str] = []
    recent: list[str] = []
    stream.seek(span.start)
    for op, arg, _pos in genops(stream):
        if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
            names.append(arg.replace(" ", "."))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            recent = [*recent[-1:], str(arg)]
        elif op.name == "STACK_GLOBAL" and len(recent) == 2:
            names.append(".".join(recent))
        elif op.name not in ("MEMOIZE", "BINPUT", "PUT", "LONG_BINPUT"):
            recent = []
    return names
