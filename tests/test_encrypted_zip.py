"""Encrypted zips (issue 14, class 7): refused in model archives, `unsupported` otherwise.

Archives are really encrypted (tests/zipcrypto.py, checked against `zipfile`'s decryption) or
carry only the flag over plain bytes (CVE-2025-1945); nothing in them is ever unpickled.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest

from registry.scanners.base import FileVerdict, ScanLimits, Verdict
from registry.scanners.pickle_scanner import PickleFamilyScanner
from registry.scanners.runner import LocalFile
from tests.zipcrypto import encrypted_zip

SCANNER = PickleFamilyScanner()
PASSWORD = b"correct horse"
EVIL = pickle.PROTO + b"\x02cposix\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R."  # never loaded


def _scan(tmp_path: Path, data: bytes, name: str = "archive.zip") -> FileVerdict:
    path = tmp_path / name
    path.write_bytes(data)
    target = LocalFile(name, path, len(data))
    assert SCANNER.applies_to(target)
    return SCANNER.scan(target, ScanLimits())


def _rules(result: FileVerdict) -> set[str]:
    return {f.rule for f in result.findings}


def _flag_encrypted(data: bytes) -> bytes:
    """Set the encryption flag on every member of a `zipfile` archive, bytes left plain."""
    out = bytearray(data)
    for signature, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = out.find(signature)
        while pos >= 0:
            out[pos + at] |= 0x01
            pos = out.find(signature, pos + 4)
    return bytes(out)


def _plain_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_the_writer_really_encrypts() -> None:
    data = encrypted_zip([("notes.txt", b"meeting at noon\n")], PASSWORD)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("notes.txt", pwd=PASSWORD) == b"meeting at noon\n"
        with pytest.raises(RuntimeError, match="Bad password"):
            zf.read("notes.txt", pwd=b"wrong")
    assert b"meeting" not in data


@pytest.mark.parametrize(
    "members",
    [
        [("notes.txt", b"meeting at noon\n")],
        [("docs/report.md", b"# Report\n" * 50), ("docs/summary.csv", b"a,b\n1,2\n")],
    ],
)
def test_an_encrypted_zip_holding_no_model_is_unsupported(
    tmp_path: Path, members: list[tuple[str, bytes]]
) -> None:
    result = _scan(tmp_path, encrypted_zip(members, PASSWORD))
    assert result.verdict is Verdict.UNSUPPORTED, result.findings
    assert _rules(result) == {"zip.encrypted-archive"}
    (finding,) = result.findings
    assert finding.evidence["encrypted"] == len(members)


def test_a_partly_encrypted_zip_without_a_model_is_unsupported(tmp_path: Path) -> None:
    members = [("readme.txt", b"see notes\n"), ("notes.txt", b"secret\n")]
    data = encrypted_zip(members, PASSWORD, plain=frozenset({"readme.txt"}))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("readme.txt") == b"see notes\n"
    result = _scan(tmp_path, data)
    assert result.verdict is Verdict.UNSUPPORTED
    assert result.findings[0].evidence["encrypted"] == 1
    assert (
        _scan(
            tmp_path, encrypted_zip(members, PASSWORD, plain=frozenset({"readme.txt", "notes.txt"}))
        ).verdict
        is Verdict.CLEAN
    )


def test_a_plain_model_member_beside_an_encrypted_document_keeps_the_refusal(
    tmp_path: Path,
) -> None:
    members = [("state.pkl", EVIL), ("notes.txt", b"secret\n")]
    result = _scan(tmp_path, encrypted_zip(members, PASSWORD, plain=frozenset({"state.pkl"})))
    assert result.verdict is Verdict.MALICIOUS
    assert "zip.encrypted" in _rules(result)


@pytest.mark.parametrize("name", ["model.pkl", "archive/data.pkl", "weights.NPY", "nested.zip"])
def test_encrypted_members_named_like_model_data_stay_refused(tmp_path: Path, name: str) -> None:
    data = encrypted_zip([(name, b"\x00" * 64), ("notes.txt", b"hi\n")], PASSWORD)
    result = _scan(tmp_path, data)
    assert result.verdict is not Verdict.UNSUPPORTED
    assert result.verdict is not Verdict.CLEAN
    assert "zip.encrypted" in _rules(result)
    assert "zip.encrypted-archive" not in _rules(result)


def test_the_flag_over_a_plain_pickle_under_any_name_is_still_scanned(tmp_path: Path) -> None:
    # CVE-2025-1945's trick: the flag makes zipfile refuse; the bytes are a readable pickle.
    data = _flag_encrypted(_plain_zip({"notes.txt": EVIL}))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.infolist()[0].flag_bits & 0x1
    result = _scan(tmp_path, data)
    assert result.verdict is Verdict.MALICIOUS, result.findings
    assert "zip.encrypted" in _rules(result)


def test_an_unencrypted_model_member_beside_an_encrypted_one_keeps_the_refusal(
    tmp_path: Path,
) -> None:
    flagged = _flag_encrypted(_plain_zip({"notes.txt": b"just text\n"}))
    assert _scan(tmp_path, flagged).verdict is Verdict.UNSUPPORTED
    with_pickle = _flag_encrypted(_plain_zip({"notes.txt": b"just text\n", "state.pkl": EVIL}))
    result = _scan(tmp_path, with_pickle)
    assert result.verdict is Verdict.MALICIOUS
    assert "zip.encrypted" in _rules(result)
