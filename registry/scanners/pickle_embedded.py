"""Pickles that a pickle carries as data: raw bytes, latin-1 text, hex or base64 (issue 14).

A loaded object that holds another pickle stream does not run it, but whatever takes it out
and loads it later does (a "multistage" payload: the first stage looks like plain data). The
pickle machine (`pickle_vm`) therefore finds such streams among the values a pickle loads and
scans them with the same machine, so that a reviewer sees what they would import. This module
only finds them; nothing is decoded beyond hex and base64, and nothing is ever loaded.
"""

from __future__ import annotations

import base64
import binascii
import re

from registry.scanners.pickle_values import children

#: A cheap test of the raw stream before the loaded values are walked: a string or bytes
#: literal's header (SHORT_BINBYTES / SHORT_BINUNICODE / SHORT_BINSTRING, their 4- and 8-byte
#: forms) directly followed by what an embedded stream starts with: PROTO (as bytes, or as
#: latin-1 text in UTF-8), a protocol-0 GLOBAL, the hex of PROTO, or the base64 of PROTO
#: (`gA`), of `c` + a letter (`Y0`..`Y3`) or of `(c` (`KGN`), each with more text after it;
#: protocol 0's V and S literals only with the text forms. No stream that `decode_stream`
#: finds is present without one, and plain data (floats, ints, short names) rarely has one,
#: so the walk is skipped for it.
_TEXT_STARTS = rb"\(?c[A-Za-z_][\w.]*\n|800[0-5][0-9a-fA-F]{8}|(?:gA[A-Z]|Y[0-3]|KGN)[\w+/\-]{8}"
EMBEDDED_HINT = re.compile(
    rb"(?:[CU\x8c].|[BTX].{4}|[\x8d\x8e\x96].{8})(?:\x80[\x00-\x05]|\xc2\x80[\x00-\x05]|"
    + _TEXT_STARTS
    + rb")|(?:V|S'|S\")(?:"
    + _TEXT_STARTS
    + rb")",
    re.ASCII | re.DOTALL,
)

#: An embedded stream must start like a pickle that imports: PROTO, or a protocol 0/1 GLOBAL
#: (optionally after MARK) naming a dotted Python identifier.
_PICKLE_START = re.compile(rb"\x80[\x00-\x05]|\(?c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n", re.ASCII)
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+", re.ASCII)
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]+={0,2}", re.ASCII)

#: Shorter values cannot hold a pickle that imports anything.
_MIN_CHARS = 8
#: Values walked per loaded object, and embedded streams reported per pickle.
_MAX_VALUES = 1_000_000
MAX_EMBEDDED = 16

_SKIP = (int, float, bool, type(None))


def embedded_streams(
    root: object, skip: set[int], max_bytes: int
) -> list[tuple[bytes, str, object]]:
    """(stream, how it is encoded, the value holding it) for each pickle among `root`'s values.

    `skip` holds the ids of values already scanned as the argument of a loader call. Each
    container is visited once, so shared references cost nothing extra.
    """
    found: list[tuple[bytes, str, object]] = []
    seen: set[int] = set()
    todo: list[object] = [root]
    budget = _MAX_VALUES
    while todo and budget > 0 and len(found) < MAX_EMBEDDED:
        value = todo.pop()
        budget -= 1
        kind = type(value)
        if kind is str or kind is bytes or kind is bytearray:
            if len(value) >= _MIN_CHARS and id(value) not in skip:  # type: ignore[arg-type]
                decoded = decode_stream(value, max_bytes)  # type: ignore[arg-type]
                if decoded is not None:
                    found.append((*decoded, value))
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        todo.extend(child for child in children(value) if not isinstance(child, _SKIP))
    return found


def decode_stream(value: str | bytes | bytearray, max_bytes: int) -> tuple[bytes, str] | None:
    """The pickle stream `value` is or encodes, and the encoding's name; None if it is none."""
    if len(value) > 2 * max_bytes:
        return None
    if isinstance(value, str):
        text = value
        if text.startswith(("\x80", "c", "(c")):  # a stream kept as latin-1 text
            raw = text.encode("latin-1", "replace")
            if _PICKLE_START.match(raw):
                return raw, "latin-1 text"
    else:
        raw = bytes(value)
        if _PICKLE_START.match(raw):
            return raw, "bytes"
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    decoded = _decode_text(text.strip())
    return decoded if decoded is not None and _PICKLE_START.match(decoded[0]) else None


def _decode_text(text: str) -> tuple[bytes, str] | None:
    """Hex or base64 (standard or URL-safe) text that starts like an encoded pickle."""
    if text.startswith("80") and _HEX.fullmatch(text):
        return bytes.fromhex(text), "hex"
    if text.startswith(("gA", "KGN", "Y")) and _BASE64.fullmatch(text):
        try:
            padded = text + "=" * (-len(text) % 4)
            return base64.b64decode(padded, altchars=_altchars(text)), "base64"
        except (binascii.Error, ValueError):
            return None
    return None


def _altchars(text: str) -> bytes | None:
    """URL-safe base64 uses - and _ where the standard alphabet has + and /."""
    return b"-_" if "-" in text or "_" in text else None
