"""The manifest digest (checkpoint identity) and path rules of DESIGN §3."""

from __future__ import annotations

import hashlib

import pytest

from attestations.digests import Digest
from attestations.errors import InvalidInputError, UnsafePathError
from attestations.manifest import Manifest, ManifestEntry, is_ignored, sort_key, validate_path


def entry(path: str, data: bytes) -> ManifestEntry:
    return ManifestEntry(path, len(data), Digest.of(data))


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "../evil.bin",
        "a/../../b",
        "a/./b",
        "a//b",
        "a/",
        "nul\x00name",
        "esc\x1bname",
        "tab\tname",
        "line\nbreak",
        "zero\u200bwidth",
        "rtl\u202eoverride",
        "win\\path",
        "cafe\u0301.bin",  # NFD: 'e' + combining accent
        "x" * 256,
        "/".join(["d"] * 2049),
        "lone\udcffsurrogate",
    ],
)
def test_hostile_paths_are_refused(path: str) -> None:
    with pytest.raises(UnsafePathError):
        validate_path(path)


@pytest.mark.parametrize(
    "path", ["model.safetensors", "a/b/c.json", ".hidden", "café.bin", "日本語/モデル.bin"]
)
def test_ordinary_paths_pass(path: str) -> None:
    assert validate_path(path) == path


def test_order_is_by_path_components_not_by_string() -> None:
    # '/' (0x2f) sorts after '-' (0x2d) as a character, but model_signing compares components.
    paths = ["extra-notes.txt", "extra/x", "a.bin"]
    assert sorted(paths, key=sort_key) == ["a.bin", "extra/x", "extra-notes.txt"]
    assert sorted(paths) == ["a.bin", "extra-notes.txt", "extra/x"]


def test_digest_is_sha256_over_raw_file_digests_in_manifest_order() -> None:
    files = {"extra-notes.txt": b"notes", "extra/x": b"x", "config.json": b"{}"}
    manifest = Manifest.build(entry(p, d) for p, d in files.items())
    assert [e.path for e in manifest] == ["config.json", "extra/x", "extra-notes.txt"]
    expected = hashlib.sha256(
        hashlib.sha256(b"{}").digest()
        + hashlib.sha256(b"x").digest()
        + hashlib.sha256(b"notes").digest()
    ).hexdigest()
    assert manifest.digest == Digest(expected)
    assert str(manifest.digest) == f"sha256:{expected}"


def test_digest_fixes_content_and_order_but_building_is_order_independent() -> None:
    a = Manifest.build([entry("a", b"1"), entry("b", b"2")])
    b = Manifest.build([entry("b", b"2"), entry("a", b"1")])
    swapped = Manifest.build([entry("a", b"2"), entry("b", b"1")])
    assert a.digest == b.digest
    assert a.digest != swapped.digest


def test_empty_file_counts() -> None:
    with_empty = Manifest.build([entry("a", b"1"), entry("empty", b"")])
    without = Manifest.build([entry("a", b"1")])
    assert with_empty.digest != without.digest
    assert with_empty.total_size == 1


def test_unsorted_duplicate_and_nested_entries_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="order"):
        Manifest((entry("b", b""), entry("a", b"")))
    with pytest.raises(InvalidInputError, match="duplicate"):
        Manifest.build([entry("a", b"1"), entry("a", b"2")])
    with pytest.raises(InvalidInputError, match="both a file and a folder"):
        Manifest.build([entry("a", b"1"), entry("a/b", b"2")])


def test_git_metadata_at_the_root_is_ignored_like_model_signing() -> None:
    assert is_ignored(".gitattributes")
    assert is_ignored(".git/config")
    assert is_ignored(".github/workflows/ci.yml")
    assert not is_ignored("sub/.gitattributes")
    assert not is_ignored(".gitattributes-not")


@pytest.mark.parametrize(
    "text", ["sha256:" + "A" * 64, "sha256:" + "0" * 63, "sha1:" + "0" * 64, "0" * 64, "sha256:"]
)
def test_bad_digest_strings_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError):
        Digest.parse(text)
