"""A minimal protobuf wire-format reader: fields of a message, nothing more.

Scanners of protobuf-based formats whose schema library we do not ship (TensorFlow's
`SavedModel` / `GraphDef`) read only the few fields they judge. This walks the wire format
(varint, 64-bit, length-delimited, 32-bit) of one message at a time, over a `memoryview`, so
nested messages are read without copies. Groups (wire types 3 and 4, deprecated since proto2
and unused by the formats we read) and anything that runs past its message are a `WireError`:
a reader that skipped them could see other fields than the framework's parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

VARINT = 0
I64 = 1
LEN = 2
I32 = 5

_MAX_VARINT_BYTES = 10


class WireError(Exception):
    """The bytes are not a well-formed protobuf message."""


@dataclass(frozen=True, slots=True)
class Field:
    number: int
    wire: int
    value: int  # the number for VARINT / I64 / I32; unused (0) for LEN
    data: memoryview  # the payload of a LEN field; empty otherwise
    offset: int  # where the field's tag starts, relative to the message


def read_varint(data: memoryview | bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it. Raises WireError."""
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise WireError(f"varint at {pos} runs past the end")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise WireError(f"varint at {pos} is longer than {_MAX_VARINT_BYTES} bytes")


def fields(message: memoryview | bytes) -> Iterator[Field]:
    """Every field of `message`, in wire order. Raises WireError on the first bad one."""
    data = memoryview(message)
    pos = 0
    empty = data[0:0]
    while pos < len(data):
        start = pos
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at {start}")
        if wire == VARINT:
            value, pos = read_varint(data, pos)
            yield Field(number, wire, value, empty, start)
        elif wire == LEN:
            length, pos = read_varint(data, pos)
            if pos + length > len(data):
                raise WireError(f"field {number} at {start} claims {length} bytes past the end")
            yield Field(number, wire, 0, data[pos : pos + length], start)
            pos += length
        elif wire in (I64, I32):
            width = 8 if wire == I64 else 4
            if pos + width > len(data):
                raise WireError(f"field {number} at {start} runs past the end")
            value = int.from_bytes(data[pos : pos + width], "little")
            yield Field(number, wire, value, empty, start)
            pos += width
        else:
            raise WireError(f"wire type {wire} (group or invalid) at {start}")


def text(field: Field, limit: int = 4096) -> str:
    """A LEN field as text (protobuf `string`), undecodable bytes replaced, cut at `limit`."""
    if field.wire != LEN:
        raise WireError(f"field {field.number} is not length-delimited")
    return bytes(field.data[:limit]).decode("utf-8", "replace")
