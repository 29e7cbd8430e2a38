"""The signed index of an air-gap bundle (docs/formats/airgap-bundle.md).

The index is an in-toto Statement whose subjects are the bundled checkpoints (name and
manifest digest) and whose predicate lists every other member of the archive with its SHA-256
and size: the registry's public key, each attestation bundle, each blob; and per checkpoint its
source, commit, license, files and recorded decisions. Member names are derived from digests
(`attestations/<sha256>.json`, `blobs/sha256/<hex>`), so a reader never takes a path from the
archive: anything not named here is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from attestations.digests import Digest
from attestations.errors import InvalidInputError, MalformedDocumentError
from attestations.intoto import ResourceDescriptor, Statement, rfc3339
from attestations.manifest import Manifest, ManifestEntry

PREDICATE_TYPE = "https://modelctl.dev/attestations/airgap-bundle/v1"
INDEX_MEMBER = "index.json"  # always the first member: a Sigstore bundle over the statement
KEY_MEMBER = "keys/registry.pub"
MAX_INDEX_BYTES = 64 * 1024 * 1024
MAX_ATTESTATION_BYTES = 64 * 1024 * 1024


def attestation_member(sha256: Digest) -> str:
    return f"attestations/{sha256.hex}.json"


def blob_member(sha256: Digest) -> str:
    return f"blobs/sha256/{sha256.hex}"


@dataclass(frozen=True, slots=True)
class Member:
    """An archive member the index vouches for."""

    path: str
    sha256: Digest
    size: int


@dataclass(frozen=True, slots=True)
class BundledCheckpoint:
    name: str
    manifest: Manifest
    source_uri: str
    commit: str
    revisions: tuple[str, ...] = ()
    license: str | None = None
    attestations: tuple[Member, ...] = ()
    decisions: tuple[Mapping[str, Any], ...] = ()  # as recorded; the importer decides anew

    @property
    def digest(self) -> Digest:
        return self.manifest.digest

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": str(self.digest),
            "source": {"uri": self.source_uri, "commit": self.commit},
            "revisions": list(self.revisions),
            "license": self.license,
            "files": [
                {"path": e.path, "size": e.size, "sha256": e.sha256.hex} for e in self.manifest
            ],
            "attestations": [_member_json(m) for m in self.attestations],
            "decisions": [dict(d) for d in self.decisions],
        }


@dataclass(frozen=True, slots=True)
class BundleIndex:
    checkpoints: tuple[BundledCheckpoint, ...]
    public_key: Member
    created_at: datetime
    tool_version: str
    #: Filled from the bytes that were signed when parsed; empty for an index being built.
    payload: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.checkpoints:
            raise InvalidInputError("a bundle holds at least one checkpoint")
        names = [str(c.digest) for c in self.checkpoints]
        if len(set(names)) != len(names):
            raise MalformedDocumentError("a checkpoint is listed twice in the bundle index")

    def blobs(self) -> list[Member]:
        """Every distinct file blob, in the order the archive holds them."""
        seen: dict[str, Member] = {}
        for checkpoint in self.checkpoints:
            for e in checkpoint.manifest:
                seen.setdefault(e.sha256.hex, Member(blob_member(e.sha256), e.sha256, e.size))
        return list(seen.values())

    def members(self) -> list[Member]:
        """Every member after the index, in archive order: key, attestations, blobs."""
        out = [self.public_key]
        seen = {self.public_key.path}
        for checkpoint in self.checkpoints:
            for m in checkpoint.attestations:
                if m.path not in seen:
                    seen.add(m.path)
                    out.append(m)
        out.extend(self.blobs())
        return out

    def to_statement(self) -> Statement:
        predicate = {
            "createdAt": rfc3339(self.created_at),
            "tool": {"modelctl": self.tool_version},
            "publicKey": _member_json(self.public_key),
            "checkpoints": [c.to_json() for c in self.checkpoints],
        }
        subjects = tuple(
            ResourceDescriptor(name=c.name, digest={"sha256": c.digest.hex})
            for c in self.checkpoints
        )
        return Statement(subjects=subjects, predicate_type=PREDICATE_TYPE, predicate=predicate)

    @classmethod
    def from_statement(cls, statement: Statement) -> BundleIndex:
        """Parse a verified statement. Raises `MalformedDocumentError` or `InvalidInputError`
        (hostile paths, digests that do not match the file lists)."""
        if statement.predicate_type != PREDICATE_TYPE:
            raise MalformedDocumentError(
                f"not a bundle index (predicate type {statement.predicate_type!r:.80})"
            )
        p = statement.predicate
        checkpoints = tuple(_checkpoint(c) for c in _list(p.get("checkpoints"), "checkpoints"))
        subjects = {(s.name, s.digest.get("sha256")) for s in statement.subjects}
        listed = {(c.name, c.digest.hex) for c in checkpoints}
        if subjects != listed:
            raise MalformedDocumentError("the index's subjects are not its checkpoints")
        created = p.get("createdAt")
        tool = p.get("tool")
        return cls(
            checkpoints=checkpoints,
            public_key=_member(p.get("publicKey"), expected_path=KEY_MEMBER),
            created_at=datetime.fromisoformat(_str(created, "createdAt").replace("Z", "+00:00")),
            tool_version=str(tool.get("modelctl", "")) if isinstance(tool, dict) else "",
            payload=statement.payload,
        )


def _member_json(m: Member) -> dict[str, Any]:
    return {"path": m.path, "sha256": m.sha256.hex, "size": m.size}


def _str(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedDocumentError(f"bundle index: {what} must be a non-empty string")
    return value


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedDocumentError(f"bundle index: {what} must be a non-negative integer")
    return value


def _list(value: object, what: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise MalformedDocumentError(f"bundle index: {what} must be a list")
    return value


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedDocumentError(f"bundle index: {what} must be an object")
    return value


def _digest(value: object, what: str) -> Digest:
    return Digest.parse(f"sha256:{_str(value, what)}")


def _member(value: object, *, expected_path: str | None = None) -> Member:
    obj = _obj(value, "member")
    member = Member(
        path=_str(obj.get("path"), "member path"),
        sha256=_digest(obj.get("sha256"), "member sha256"),
        size=_int(obj.get("size"), "member size"),
    )
    wanted = expected_path or attestation_member(member.sha256)
    if member.path != wanted:  # names follow from digests; no other path is ever accepted
        raise MalformedDocumentError(f"bundle index: unexpected member {ascii(member.path)[:120]}")
    if expected_path is None and member.size > MAX_ATTESTATION_BYTES:
        raise MalformedDocumentError("bundle index: an attestation is over the size limit")
    return member


def _checkpoint(value: object) -> BundledCheckpoint:
    obj = _obj(value, "checkpoint")
    source = _obj(obj.get("source"), "source")
    entries = [
        ManifestEntry(
            path=_str(_obj(f, "file").get("path"), "file path"),  # validate_path: no escapes
            size=_int(f.get("size"), "file size"),
            sha256=_digest(f.get("sha256"), "file sha256"),
        )
        for f in _list(obj.get("files"), "files")
    ]
    manifest = Manifest.build(entries)
    if str(manifest.digest) != _str(obj.get("digest"), "digest"):
        raise MalformedDocumentError(
            "bundle index: a checkpoint's digest does not match its file list"
        )
    license_value = obj.get("license")
    return BundledCheckpoint(
        name=_str(obj.get("name"), "name"),
        manifest=manifest,
        source_uri=_str(source.get("uri"), "source uri"),
        commit=_str(source.get("commit"), "source commit"),
        revisions=tuple(_str(r, "revision") for r in _list(obj.get("revisions", []), "revisions")),
        license=license_value if isinstance(license_value, str) else None,
        attestations=tuple(_member(m) for m in _list(obj.get("attestations"), "attestations")),
        decisions=tuple(_obj(d, "decision") for d in _list(obj.get("decisions", []), "decisions")),
    )
