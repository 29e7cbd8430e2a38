"""Pickles that a pickle carries as data: raw bytes, latin-1 text, hex or base64 (issue 14).

A pickle that holds another pickle stream as a bytes or string literal does not run it, but
whatever takes it out and loads it later does (a "multistage" payload: the first stage looks
like plain data). The pickle machine (`pickle_vm`) notes each literal of 8 bytes or more that
`may_carry` a stream while it runs (its C twin hands such literals to Python: they start with
`\x80` + a protocol, the UTF-8 of `\x80`, `80` or `gA`), then scans each with the same machine,
so that a reviewer sees what it would import. This module only recognises them; nothing is
decoded beyond hex and base64, and nothing is ever loaded. Embedded streams of protocol 0/1
(no PROTO, what `pickle.dumps` writes only when asked) are recognised as raw bytes only.
"""

from __future__ import annotations

import base64
import binascii
import re

#: An embedded stream must start like a pickle that imports: PROTO, or a protocol 0/1 GLOBAL
#: (optionally after MARK) naming a dotted Python identifier.
_PICKLE_START = re.compile(rb"\x80[\x00-\x05]|\(?c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n", re.ASCII)
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+", re.ASCII)
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]+={0,2}", re.ASCII)

#: Literals shorter than this (in the stream's bytes) cannot hold a pickle that imports.
MIN_CARRIER_BYTES = 8
#: Embedded streams scanned per pickle.
MAX_EMBEDDED = 16
#: First bytes (in the stream) of a str / bytes literal that `may_carry` a pickle.
CARRIER_FIRST_TEXT = frozenset(b"\xc28g")
CARRIER_FIRST_BYTES = frozenset(b"\x808g(c")


def may_carry(value: object) -> bool:
    """Whether a literal's value starts like an embedded pickle in one of the encodings:
    bytes `\x80` + protocol 0-5, text `\x80` (latin-1), `80` (hex) or `gA` (base64)."""
    if isinstance(value, str):
        return value.startswith(("\x80", "80", "gA"))
    if isinstance(value, bytes | bytearray):
        return (len(value) > 1 and value[0] == 0x80 and value[1] <= 5) or value.startswith(
            (b"80", b"gA", b"(c", b"c")
        )
    return False


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
        if _PICKLE_START.match(value):
            return bytes(value), "bytes"
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    decoded = _decode_text(text.strip())
    return decoded if decoded is not None and _PICKLE_START.match(decoded[0]) else None


def _decode_text(text: str) -> tuple[bytes, str] | None:
    """Hex or base64 (standard or URL-safe) text that starts like an encoded pickle."""
    if text.startswith("80") and _HEX.fullmatch(text):
        return bytes.fromhex(text), "hex"
    if text.startswith("gA") and _BASE64.fullmatch(text):
        try:
            padded = text + "=" * (-len(text) % 4)
            return base64.b64decode(padded, altchars=_altchars(text)), "base64"
        except (binascii.Error, ValueError):
            return None
    return None


def _altchars(text: str) -> bytes | None:
    """URL-safe base64 uses - and _ where the standard alphabet has + and /."""
    return b"-_" if "-" in text or "_" in text else None
