"""The transparency log's trust core against independent computations and known vectors."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from attestations.errors import MalformedDocumentError, SignatureVerificationError
from attestations.tlog import (
    Checkpoint,
    ConsistencyProofError,
    InclusionProofError,
    NoteSigner,
    NoteVerifier,
    consistency_proof,
    decode_bundle,
    encode_bundle,
    entries_path,
    inclusion_proof,
    leaf_hash,
    open_checkpoint,
    tile_path,
    tiles,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

# The eight leaves of the RFC 6962 test data (certificate-transparency's merkle tests) and the
# root hash of the tree of the first n of them.
RFC6962_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
RFC6962_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def naive_root(entries: list[bytes]) -> bytes:
    """RFC 6962 MTH written straight from the definition, recursively, from raw entries."""
    if len(entries) == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < len(entries):
        k *= 2
    left, right = naive_root(entries[:k]), naive_root(entries[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def entries_of(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


@pytest.mark.parametrize("n", range(1, 9))
def test_rfc6962_vectors(n: int) -> None:
    hashes = [leaf_hash(e) for e in RFC6962_LEAVES[:n]]
    assert tree_hash(hashes).hex() == RFC6962_ROOTS[n - 1]


def test_tree_hash_matches_the_recursive_definition() -> None:
    for n in [*range(1, 70), 255, 256, 257, 513, 1000]:
        entries = entries_of(n)
        assert tree_hash([leaf_hash(e) for e in entries]) == naive_root(entries), n


def test_empty_tree_hash() -> None:
    assert tree_hash([]) == hashlib.sha256(b"").digest()


def test_every_inclusion_proof_verifies_and_a_tampered_one_fails() -> None:
    for n in range(1, 40):
        hashes = [leaf_hash(e) for e in entries_of(n)]
        root = tree_hash(hashes)
        for index in range(n):
            proof = inclusion_proof(hashes, index)
            verify_inclusion(hashes[index], index, n, proof, root)
            if proof:
                bad = [*proof]
                bad[0] = bytes(32)
                with pytest.raises(InclusionProofError):
                    verify_inclusion(hashes[index], index, n, bad, root)
                with pytest.raises(InclusionProofError):
                    verify_inclusion(hashes[index], index, n, proof[:-1], root)
            with pytest.raises(InclusionProofError):
                verify_inclusion(leaf_hash(b"other"), index, n, proof, root)
            with pytest.raises(InclusionProofError):
                verify_inclusion(hashes[index], index, n, [*proof, bytes(32)], root)
        with pytest.raises(InclusionProofError):
            verify_inclusion(hashes[0], n, n, [], root)


def test_inclusion_proof_of_a_wrong_index_fails() -> None:
    hashes = [leaf_hash(e) for e in entries_of(7)]
    root = tree_hash(hashes)
    proof = inclusion_proof(hashes, 2)
    with pytest.raises(InclusionProofError):
        verify_inclusion(hashes[2], 3, 7, proof, root)


def test_every_consistency_proof_verifies_and_a_rewritten_history_fails() -> None:
    for new in range(1, 34):
        hashes = [leaf_hash(e) for e in entries_of(new)]
        new_root = tree_hash(hashes)
        for old in range(1, new + 1):
            old_root = tree_hash(hashes[:old])
            proof = consistency_proof(hashes, old)
            verify_consistency(old, new, old_root, new_root, proof)
            forged = tree_hash([leaf_hash(b"forged"), *hashes[1:old]])
            with pytest.raises(ConsistencyProofError):
                verify_consistency(old, new, forged, new_root, proof)
            if proof:
                bad = [*proof]
                bad[-1] = bytes(32)
                with pytest.raises(ConsistencyProofError):
                    verify_consistency(old, new, old_root, new_root, bad)


def test_consistency_with_an_empty_proof_between_sizes_fails() -> None:
    hashes = [leaf_hash(e) for e in entries_of(5)]
    with pytest.raises(ConsistencyProofError):
        verify_consistency(3, 5, tree_hash(hashes[:3]), tree_hash(hashes), [])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(5, 3, tree_hash(hashes), tree_hash(hashes[:3]), [])


def test_go_note_verifier_key_vector() -> None:
    # The verifier key in the documentation of golang.org/x/mod/sumdb/note: its key id is the
    # hash of name and key, so parsing it checks our key id computation independently.
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    verifier = NoteVerifier.parse(vkey)
    assert verifier.key_id.hex() == "c74f20a3"
    assert verifier.vkey() == vkey
    with pytest.raises(MalformedDocumentError):
        NoteVerifier.parse(vkey.replace("c74f20a3", "c74f20a4"))


def test_verifier_key_with_plus_in_its_base64_round_trips() -> None:
    verifier = NoteVerifier("example.com/log", b"\xfb" * 32)
    assert "+" in verifier.vkey().split("+", 2)[2]
    assert NoteVerifier.parse(verifier.vkey()) == verifier


def test_checkpoint_round_trip_and_format() -> None:
    signer = NoteSigner("example.com/log", Ed25519PrivateKey.generate())
    checkpoint = Checkpoint("example.com/log", 7, bytes(range(32)))
    note = signer.sign(checkpoint)
    lines = note.decode().split("\n")
    assert lines[:4] == ["example.com/log", "7", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", ""]
    assert lines[4].startswith("\u2014 example.com/log ")
    assert open_checkpoint(note, signer.verifier) == checkpoint


def test_checkpoint_tampered_or_foreign_fails() -> None:
    signer = NoteSigner("example.com/log", Ed25519PrivateKey.generate())
    note = signer.sign(Checkpoint("example.com/log", 7, bytes(32)))
    with pytest.raises(SignatureVerificationError):
        open_checkpoint(note.replace(b"\n7\n", b"\n8\n"), signer.verifier)
    other = NoteSigner("example.com/log", Ed25519PrivateKey.generate())
    with pytest.raises(SignatureVerificationError):
        open_checkpoint(note, other.verifier)
    with pytest.raises(MalformedDocumentError):
        open_checkpoint(note.split(b"\n\n")[0] + b"\n", signer.verifier)


def test_tile_paths_follow_tlog_tiles() -> None:
    assert tile_path(0, 1234067, 256) == "tile/0/x001/x234/067"
    assert tile_path(1, 0, 17) == "tile/1/000.p/17"
    assert entries_path(1000, 3) == "tile/entries/x001/000.p/3"
    with pytest.raises(MalformedDocumentError):
        tile_path(0, 0, 0)


def test_tiles_of_the_spec_example_sizes() -> None:
    hashes = [leaf_hash(e) for e in entries_of(256)]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile
    # of width 1" (tlog-tiles)
    out = tiles(hashes)
    assert sorted(out) == ["tile/0/000", "tile/1/000.p/1"]
    assert out["tile/1/000.p/1"] == tree_hash(hashes)
    more = tiles([*hashes, leaf_hash(b"x")])
    assert sorted(more) == ["tile/0/000", "tile/0/001.p/1", "tile/1/000.p/1"]


def test_entry_bundles_round_trip_and_refuse_truncation() -> None:
    entries = [b"", b"a", b"x" * 300]
    bundle = encode_bundle(entries)
    assert bundle[:2] == b"\x00\x00"
    assert decode_bundle(bundle) == entries
    with pytest.raises(MalformedDocumentError):
        decode_bundle(bundle[:-1])
    with pytest.raises(MalformedDocumentError):
        encode_bundle([b"x" * 70000])
