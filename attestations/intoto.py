"""in-toto Statement v1 and ResourceDescriptor (https://in-toto.io/Statement/v1).

Statements are parsed from the exact payload bytes that were signed and keep those bytes; the
predicate is kept as the JSON object it was, unknown fields included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from attestations.errors import MalformedDocumentError
from attestations.jsonlimits import loads_bounded
from attestations.utc import aware

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


def rfc3339(ts: datetime) -> str:
    """A timestamp as predicates write it: UTC, `Z` suffix. Naive datetimes are taken as UTC."""
    return aware(ts).astimezone(UTC).isoformat().replace("+00:00", "Z")


_HEX = re.compile(r"[0-9a-f]+")
#: Digest algorithms whose values must be lowercase hex; others (gitCommit…) are taken as given.
_HEX_ALGORITHMS = frozenset({"sha256", "sha384", "sha512", "sha1", "gitBlob", "gitCommit"})
MAX_STATEMENT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ResourceDescriptor:
    name: str | None = None
    digest: Mapping[str, str] = field(default_factory=dict)
    uri: str | None = None
    annotations: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not (self.digest or self.uri):
            raise MalformedDocumentError("a resource descriptor needs a digest or a uri")
        for algorithm, value in self.digest.items():
            if not isinstance(value, str) or (
                algorithm in _HEX_ALGORITHMS and not _HEX.fullmatch(value)
            ):
                raise MalformedDocumentError(f"bad {algorithm} digest in resource descriptor")

    @classmethod
    def from_json(cls, obj: object) -> ResourceDescriptor:
        if not isinstance(obj, dict):
            raise MalformedDocumentError("a resource descriptor must be a JSON object")
        name, uri, digest = obj.get("name"), obj.get("uri"), obj.get("digest", {})
        annotations = obj.get("annotations")
        if name is not None and not isinstance(name, str):
            raise MalformedDocumentError("resource descriptor name must be a string")
        if uri is not None and not isinstance(uri, str):
            raise MalformedDocumentError("resource descriptor uri must be a string")
        if not isinstance(digest, dict) or not all(isinstance(k, str) for k in digest):
            raise MalformedDocumentError("resource descriptor digest must be an object")
        if annotations is not None and not isinstance(annotations, dict):
            raise MalformedDocumentError("resource descriptor annotations must be an object")
        return cls(name=name, digest=dict(digest), uri=uri, annotations=annotations)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.uri is not None:
            out["uri"] = self.uri
        if self.digest:
            out["digest"] = dict(self.digest)
        if self.annotations is not None:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True, slots=True)
class Statement:
    subjects: tuple[ResourceDescriptor, ...]
    predicate_type: str
    predicate: Mapping[str, Any]
    payload: bytes = field(default=b"", compare=False, repr=False)  # the signed bytes, if parsed

    @classmethod
    def from_payload(cls, payload: bytes) -> Statement:
        """Parse the bytes of a DSSE payload. Raises `MalformedDocumentError`."""
        if len(payload) > MAX_STATEMENT_BYTES:
            raise MalformedDocumentError("statement is too large")
        obj = loads_bounded(payload, what="statement")
        if not isinstance(obj, dict):
            raise MalformedDocumentError("statement must be a JSON object")
        if obj.get("_type") != STATEMENT_TYPE:
            raise MalformedDocumentError(
                f"not an in-toto Statement v1 (_type {obj.get('_type')!r:.80})"
            )
        subjects = obj.get("subject")
        if not isinstance(subjects, list) or not subjects:
            raise MalformedDocumentError("statement has no subject")
        predicate_type = obj.get("predicateType")
        if not isinstance(predicate_type, str) or not predicate_type:
            raise MalformedDocumentError("statement has no predicateType")
        predicate = obj.get("predicate", {})
        if not isinstance(predicate, dict):
            raise MalformedDocumentError("statement predicate must be an object")
        parsed = tuple(ResourceDescriptor.from_json(s) for s in subjects)
        if not all(s.digest for s in parsed):
            raise MalformedDocumentError("every statement subject needs a digest")
        return cls(
            subjects=parsed, predicate_type=predicate_type, predicate=predicate, payload=payload
        )

    def to_payload(self) -> bytes:
        """Serialise a statement we build (sorted keys, no whitespace): the bytes we sign."""
        return json.dumps(
            {
                "_type": STATEMENT_TYPE,
                "subject": [s.to_json() for s in self.subjects],
                "predicateType": self.predicate_type,
                "predicate": self.predicate,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
