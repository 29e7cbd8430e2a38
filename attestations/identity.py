"""The identity statement: one checkpoint, every representation of it (docs/formats/identity.md).

Subject: the checkpoint's manifest digest (the OMS subject, what a model signature signs).
Predicate: the files (path and sha256: for a hub's LFS files, the LFS oid), the hub source it
came from (URI and pinned commit) and the OCI manifests that carry exactly these files (registry,
repository, manifest digest, media type). Signed by the registry's key like its other
statements, it lets one OMS signature vouch for a model fetched as files, from `/hf` or as an
OCI artifact: the OCI manifest digest is bound to the subject by a signature, not by a name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attestations.errors import MalformedDocumentError
from attestations.intoto import ResourceDescriptor, Statement

PREDICATE_TYPE = "https://modelctl.dev/attestations/identity/v1"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class IdentityError(MalformedDocumentError):
    """An identity statement that does not parse."""


@dataclass(frozen=True, slots=True, order=True)
class OciManifestRef:
    registry: str  # HOST[:PORT]
    repository: str
    digest: str  # "sha256:<hex>" of the OCI manifest bytes
    media_type: str

    def to_json(self) -> dict[str, str]:
        return {
            "registry": self.registry,
            "repository": self.repository,
            "digest": self.digest,
            "mediaType": self.media_type,
        }


@dataclass(frozen=True, slots=True)
class Identity:
    name: str  # NS/NAME in the registry that signed it
    checkpoint_digest: str  # hex
    files: tuple[tuple[str, str], ...]  # (path, sha256 hex), sorted by path
    source_uri: str
    source_commit: str
    oci: tuple[OciManifestRef, ...]  # sorted

    def statement(self) -> Statement:
        predicate: dict[str, Any] = {
            "checkpoint": {"name": self.name, "digest": f"sha256:{self.checkpoint_digest}"},
            "files": [{"path": p, "sha256": h} for p, h in self.files],
            "source": {"uri": self.source_uri, "commit": self.source_commit},
            "oci": [ref.to_json() for ref in self.oci],
        }
        subject = ResourceDescriptor(name=self.name, digest={"sha256": self.checkpoint_digest})
        return Statement(subjects=(subject,), predicate_type=PREDICATE_TYPE, predicate=predicate)


def build_identity(
    *,
    name: str,
    checkpoint_digest: str,
    files: Sequence[tuple[str, str]],
    source_uri: str,
    source_commit: str,
    oci: Sequence[OciManifestRef],
) -> Identity:
    return Identity(
        name=name,
        checkpoint_digest=checkpoint_digest.removeprefix("sha256:"),
        files=tuple(sorted(files)),
        source_uri=source_uri,
        source_commit=source_commit,
        oci=tuple(sorted(set(oci))),
    )


def parse_identity(statement: Statement) -> Identity:
    """An identity statement's content, checked for shape (not for trust: verify the bundle)."""
    if statement.predicate_type != PREDICATE_TYPE:
        raise IdentityError(f"not an identity statement: {statement.predicate_type!r:.100}")
    if len(statement.subjects) != 1 or "sha256" not in statement.subjects[0].digest:
        raise IdentityError("an identity statement has exactly one sha256 subject")
    subject = statement.subjects[0].digest["sha256"]
    p = statement.predicate
    try:
        checkpoint = p["checkpoint"]
        if checkpoint["digest"] != f"sha256:{subject}":
            raise IdentityError("the predicate's checkpoint digest is not the subject")
        files = tuple((str(f["path"]), str(f["sha256"])) for f in p["files"])
        if not all(_HEX64.fullmatch(h) for _, h in files):
            raise IdentityError("a file digest is not sha256 hex")
        oci = tuple(
            OciManifestRef(
                str(o["registry"]), str(o["repository"]), str(o["digest"]), str(o["mediaType"])
            )
            for o in p["oci"]
        )
        if not all(_DIGEST.fullmatch(o.digest) for o in oci):
            raise IdentityError("an OCI manifest digest is not sha256:<hex>")
        return Identity(
            name=str(checkpoint["name"]),
            checkpoint_digest=subject,
            files=files,
            source_uri=str(p["source"]["uri"]),
            source_commit=str(p["source"]["commit"]),
            oci=oci,
        )
    except (KeyError, TypeError) as exc:
        raise IdentityError(f"malformed identity predicate: missing {exc}") from exc
