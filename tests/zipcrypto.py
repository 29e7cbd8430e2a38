"""Write zip archives whose members are really encrypted (traditional PKWARE encryption, the
"ZipCrypto" of PKWARE's APPNOTE.TXT section 6.1), for tests and the corpus.

Python's `zipfile` decrypts such members (`ZipFile.read(name, pwd=...)`) but cannot write
them; this writer is written from the APPNOTE description. Members are stored (method 0), and
the 11 header bytes that should be random are fixed, so the output is deterministic.
"""

from __future__ import annotations

import struct
import zlib


def _table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _table()


class _Keys:
    def __init__(self, password: bytes) -> None:
        self.k0, self.k1, self.k2 = 0x12345678, 0x23456789, 0x34567890
        for byte in password:
            self.update(byte)

    @staticmethod
    def _crc(crc: int, byte: int) -> int:
        return (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]

    def update(self, byte: int) -> None:
        self.k0 = self._crc(self.k0, byte)
        self.k1 = (self.k1 + (self.k0 & 0xFF)) & 0xFFFFFFFF
        self.k1 = (self.k1 * 134775813 + 1) & 0xFFFFFFFF
        self.k2 = self._crc(self.k2, self.k1 >> 24)

    def stream_byte(self) -> int:
        temp = (self.k2 | 2) & 0xFFFF
        return ((temp * (temp ^ 1)) >> 8) & 0xFF

    def encrypt(self, plain: bytes) -> bytes:
        out = bytearray()
        for byte in plain:
            out.append(byte ^ self.stream_byte())
            self.update(byte)
        return bytes(out)


def encrypt_member(data: bytes, password: bytes) -> bytes:
    """The encryption header (11 fixed bytes and the CRC check byte) and the ciphertext."""
    header = b"modelctl-zc" + bytes([zlib.crc32(data) >> 24])
    return _Keys(password).encrypt(header + data)


def encrypted_zip(
    members: list[tuple[str, bytes]], password: bytes, *, plain: frozenset[str] = frozenset()
) -> bytes:
    """A zip with every member stored and encrypted with `password` (those in `plain` not)."""
    out = bytearray()
    central = bytearray()
    for name, data in members:
        raw_name = name.encode()
        encrypted = name not in plain
        body = encrypt_member(data, password) if encrypted else data
        crc = zlib.crc32(data)
        offset = len(out)
        flags = 0x0001 if encrypted else 0
        fields = (flags, 0, 0, (1 << 5) | 1, crc, len(body), len(data), len(raw_name))
        out += struct.pack("<IH", 0x04034B50, 20) + struct.pack("<HHHHIIIH", *fields)
        out += struct.pack("<H", 0) + raw_name + body
        central += struct.pack("<IHH", 0x02014B50, 20, 20) + struct.pack("<HHHHIIIH", *fields)
        central += struct.pack("<HHHHII", 0, 0, 0, 0, 0, offset) + raw_name
    cd_offset = len(out)
    out += central
    count = len(members)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), cd_offset, 0)
    return bytes(out)
