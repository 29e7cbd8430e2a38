"""Model signatures compatible with OpenSSF model signing v1.0.

Predicate type `https://model_signing/signature/v1.0`: `resources` (`name`, `algorithm`,
`digest`) and `serialization` (`method`, `hash_type`, `allow_symlinks`, `shard_size`,
`ignore_paths`). The statement has one subject whose sha256 digest is sha256 over the raw
resource digests in model_signing order (docs/formats/model-signature.md).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attestations.bundle import Bundle
from attestations.digests import Digest
from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.errors import (
    AttestationError,
    InvalidInputError,
    MalformedDocumentError,
    VerificationError,
)
from attestations.intoto import ResourceDescriptor, Statement
from attestations.manifest import Manifest
from attestations.serialization import (
    ALGORITHM_NAMES,
    DEFAULT_IGNORE_PATHS,
    DEFAULT_SHARD_SIZE,
    SINGLE_FILE_NAME,
    Resource,
    Serialization,
    parse_resource_name,
)
from attestations.signing import SignatureVerifier, SignerIdentity

PREDICATE_TYPE = "https://model_signing/signature/v1.0"
#: What model_signing 0.2.x signed: one subject per file, a dummy predicate. Verified (as
#: model_signing 1.x and the OMS spec allow), never produced.
LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"
_DIGEST_HEX_LENGTH = {"sha256": 64, "blake2b": 128}
_HEX = re.compile(r"[0-9a-f]+")


class ModelSignatureError(VerificationError):
    """A signed statement that is not a valid model signature, or bytes that do not match it."""


@dataclass(frozen=True, slots=True)
class ModelSignaturePredicate:
    resources: tuple[Resource, ...]
    serialization: Serialization

    @property
    def subject_digest(self) -> Digest:
        return resources_digest(self.resources)

    def to_json(self) -> dict[str, Any]:
        ser = self.serialization
        serialization: dict[str, Any] = {
            "method": ser.method,
            "hash_type": ser.hash_type,
            "allow_symlinks": ser.allow_symlinks,
            "ignore_paths": list(ser.ignore_paths),
        }
        if ser.method == "shards":
            serialization["shard_size"] = ser.shard_size
        return {
            "resources": [
                {"name": r.name, "algorithm": ser.algorithm, "digest": r.digest.hex()}
                for r in self.resources
            ],
            "serialization": serialization,
        }

    @classmethod
    def from_json(cls, predicate: Mapping[str, Any]) -> ModelSignaturePredicate:
        """Parse and check a predicate. Raises `MalformedDocumentError` naming the problem."""
        serialization = _parse_serialization(predicate.get("serialization"))
        raw = predicate.get("resources")
        if not isinstance(raw, list):
            raise MalformedDocumentError("model signature has no resources list")
        if not raw:
            raise MalformedDocumentError("model signature lists no resources (OMS 5.2.1)")
        resources: list[Resource] = []
        seen: set[tuple[str, int | None, int | None]] = set()
        for item in raw:
            if not isinstance(item, dict):
                raise MalformedDocumentError("a model signature resource must be an object")
            name, algorithm, digest = item.get("name"), item.get("algorithm"), item.get("digest")
            if not isinstance(name, str) or not isinstance(digest, str):
                raise MalformedDocumentError("a model signature resource needs a name and digest")
            # Shards: model_signing writes `sha256-sharded-<size>`, the OMS spec the plain
            # hash type (6.3.2). Both name the same hashing; anything else is refused.
            plain = ALGORITHM_NAMES[serialization.hash_type]
            if algorithm not in (serialization.algorithm, plain):
                raise MalformedDocumentError(
                    f"resource {name!r:.100} uses {algorithm!r}, the serialization says "
                    f"{serialization.algorithm!r}"
                )
            expected_len = _DIGEST_HEX_LENGTH[ALGORITHM_NAMES[serialization.hash_type]]
            if len(digest) != expected_len or not _HEX.fullmatch(digest):
                raise MalformedDocumentError(f"resource {name!r:.100} has a malformed digest")
            try:
                path, start, end = parse_resource_name(name, serialization.method)
            except InvalidInputError as exc:
                raise MalformedDocumentError(f"bad resource name: {exc.message}") from exc
            if (path, start, end) in seen:
                raise MalformedDocumentError(f"resource {name!r:.100} is listed twice")
            seen.add((path, start, end))
            resources.append(Resource(path, start, end, bytes.fromhex(digest)))
        if SINGLE_FILE_NAME in {r.path for r in resources} and len({r.path for r in resources}) > 1:
            raise MalformedDocumentError(
                "resource '.' names a single-file model, yet other files are listed"
            )
        _check_order(resources)
        return cls(resources=tuple(resources), serialization=serialization)

    @classmethod
    def from_legacy_subjects(
        cls, subjects: Sequence[ResourceDescriptor]
    ) -> ModelSignaturePredicate:
        """A model_signing 0.2 statement: each subject is a file (`files`, sha256)."""
        resources: list[Resource] = []
        seen: set[str] = set()
        for subject in subjects:
            digest = subject.digest.get("sha256")
            if not isinstance(subject.name, str) or digest is None or len(digest) != 64:
                raise MalformedDocumentError("a legacy subject needs a file name and a sha256")
            try:
                path, _, _ = parse_resource_name(subject.name, "files")
            except InvalidInputError as exc:
                raise MalformedDocumentError(f"bad subject name: {exc.message}") from exc
            if path in seen:
                raise MalformedDocumentError(f"subject {path!r:.100} is listed twice")
            seen.add(path)
            resources.append(Resource(path, None, None, bytes.fromhex(digest)))
        if SINGLE_FILE_NAME in seen and len(seen) > 1:
            raise MalformedDocumentError("subject '.' names a single-file model, yet not alone")
        # 0.2 recorded no serialization: it hashed whole files with sha256, ignoring nothing
        # beyond the git paths the verifier leaves out anyway.
        return cls(
            resources=tuple(sorted(resources, key=lambda r: r.key)),
            serialization=Serialization(),
        )


def _check_order(resources: Sequence[Resource]) -> None:
    """model_signing's order (path components, then integer offsets) or the OMS spec's (names
    by code point). Either fixes the subject digest; any other order is refused."""
    if sorted(resources, key=lambda r: r.key) == list(resources):
        return
    if sorted(resources, key=lambda r: r.name) == list(resources):
        return
    raise MalformedDocumentError(
        "resources are in neither model_signing order nor the OMS spec's name order"
    )


def _split_legacy_sharded(method: object, hash_type: object) -> tuple[object, str | None]:
    """model_signing 0.3.x wrote the per-resource name (`sha256-sharded-64`) as the shards
    hash type: (`sha256`, `"64"`), the size to be checked against `shard_size`."""
    if method != "shards" or not isinstance(hash_type, str):
        return hash_type, None
    base, sep, size_text = hash_type.partition("-sharded-")
    return (base, size_text) if sep else (hash_type, None)


def _parse_serialization(obj: object) -> Serialization:
    if not isinstance(obj, dict):
        raise MalformedDocumentError("model signature has no serialization object")
    method, hash_type = obj.get("method"), obj.get("hash_type")
    allow_symlinks = obj.get("allow_symlinks", False)
    if method not in ("files", "shards"):
        raise MalformedDocumentError(f"unknown serialization method {method!r:.40}")
    hash_type, legacy_sharded_size = _split_legacy_sharded(method, hash_type)
    if hash_type not in ("sha256", "blake2", "blake2b"):
        raise MalformedDocumentError(f"unsupported hash type {hash_type!r:.40} (sha256, blake2b)")
    if not isinstance(allow_symlinks, bool):
        raise MalformedDocumentError("allow_symlinks must be true or false")
    shard_size = DEFAULT_SHARD_SIZE
    if method == "shards":
        raw_size = obj.get("shard_size")
        # model_signing writes it through protobuf Struct, hence as a JSON float.
        if isinstance(raw_size, bool) or not isinstance(raw_size, int | float):
            raise MalformedDocumentError("shards serialization needs a numeric shard_size")
        if not (math.isfinite(raw_size) and raw_size == int(raw_size) and raw_size > 0):
            raise MalformedDocumentError(f"shard_size {raw_size!r} is not a positive integer")
        shard_size = int(raw_size)
        if legacy_sharded_size is not None and legacy_sharded_size != str(shard_size):
            raise MalformedDocumentError(
                f"hash type names shards of {legacy_sharded_size!r:.40} bytes, "
                f"shard_size says {shard_size}"
            )
    ignore = obj.get("ignore_paths", list(DEFAULT_IGNORE_PATHS))
    if not isinstance(ignore, list) or not all(isinstance(p, str) and p for p in ignore):
        raise MalformedDocumentError("ignore_paths must be a list of paths")
    for path in ignore:
        if path.startswith("/") or ".." in path.split("/"):
            raise MalformedDocumentError(
                f"ignore_paths entry {path!r:.100} leaves the model folder"
            )
    return Serialization(
        method=method,
        hash_type=hash_type,
        allow_symlinks=allow_symlinks,
        shard_size=shard_size,
        ignore_paths=tuple(ignore),
    )


def resources_digest(resources: Sequence[Resource]) -> Digest:
    """sha256 over the raw digests, in the order given (the order must already be canonical)."""
    h = hashlib.sha256()
    for resource in resources:
        h.update(resource.digest)
    return Digest(h.hexdigest())


def resources_from_manifest(manifest: Manifest) -> tuple[Resource, ...]:
    """A registry manifest as `files`/sha256 resources: no second hashing pass."""
    return tuple(Resource(e.path, None, None, e.sha256.raw) for e in manifest)


def build_statement(
    model_name: str, resources: Sequence[Resource], serialization: Serialization
) -> Statement:
    ordered = tuple(sorted(resources, key=lambda r: r.key))
    predicate = ModelSignaturePredicate(resources=ordered, serialization=serialization)
    subject = ResourceDescriptor(
        name=model_name or "model", digest={"sha256": predicate.subject_digest.hex}
    )
    return Statement(
        subjects=(subject,), predicate_type=PREDICATE_TYPE, predicate=predicate.to_json()
    )


@dataclass(frozen=True, slots=True)
class VerifiedModelSignature:
    statement: Statement
    predicate: ModelSignaturePredicate
    subject_digest: Digest
    signer: SignerIdentity
    checks: tuple[str, ...]
    #: The predicate type as signed: v1.0, or model_signing 0.2's legacy one (reported).
    predicate_type: str = PREDICATE_TYPE


def verify_model_signature(bundle: Bundle, verifier: SignatureVerifier) -> VerifiedModelSignature:
    """Check a model signature bundle, up to (not including) the model's bytes.

    1. The envelope signature, by `verifier` (raises `SignatureVerificationError`).
    2. The payload type is in-toto JSON.
    3. The payload is an in-toto Statement v1 with predicate type model_signing v1.0.
    4. Exactly one subject, with a sha256 digest.
    5. The predicate parses: known serialization, well-formed resources, no duplicates,
       canonical order, safe names.
    6. The subject digest equals sha256 over the resource digests.
    Steps 2 to 6 raise `ModelSignatureError`. Comparing with a folder is `compare_resources`.
    """
    verified = verifier.verify(bundle)
    checks = list(verified.checks)
    if verified.payload_type != INTOTO_PAYLOAD_TYPE:
        raise ModelSignatureError(
            f"signed payload type is {verified.payload_type!r:.80}, not in-toto JSON"
        )
    try:
        statement = Statement.from_payload(verified.payload)
    except AttestationError as exc:
        raise ModelSignatureError(f"signed payload: {exc.message}") from exc
    if statement.predicate_type == LEGACY_PREDICATE_TYPE:
        return _verified_legacy(statement, verified.signer, checks)
    if statement.predicate_type != PREDICATE_TYPE:
        raise ModelSignatureError(
            f"signed statement is a {statement.predicate_type!r:.100}, not a model signature"
        )
    if len(statement.subjects) != 1 or "sha256" not in statement.subjects[0].digest:
        raise ModelSignatureError("a model signature must have exactly one sha256 subject")
    checks.append("payload is an in-toto statement with the model_signing v1.0 predicate")
    try:
        predicate = ModelSignaturePredicate.from_json(statement.predicate)
    except AttestationError as exc:
        raise ModelSignatureError(f"model signature predicate: {exc.message}") from exc
    claimed = statement.subjects[0].digest["sha256"]
    if predicate.subject_digest.hex != claimed:
        raise ModelSignatureError(
            f"subject digest sha256:{claimed[:16]}… does not match the signed resources "
            f"(sha256:{predicate.subject_digest.hex[:16]}…)"
        )
    checks.append(f"subject digest {predicate.subject_digest} matches the signed resources")
    return VerifiedModelSignature(
        statement=statement,
        predicate=predicate,
        subject_digest=predicate.subject_digest,
        signer=verified.signer,
        checks=tuple(checks),
    )


def _verified_legacy(
    statement: Statement, signer: SignerIdentity, checks: list[str]
) -> VerifiedModelSignature:
    """A model_signing 0.2 statement: the per-file digests are the subjects themselves."""
    if "resources" in statement.predicate or "serialization" in statement.predicate:
        # A v1.0 body under the old type is neither format: refuse rather than guess.
        raise ModelSignatureError(
            f"signed statement is a {LEGACY_PREDICATE_TYPE!r} with a v1.0 predicate body: "
            "not a model signature"
        )
    try:
        predicate = ModelSignaturePredicate.from_legacy_subjects(statement.subjects)
    except AttestationError as exc:
        raise ModelSignatureError(f"legacy model signature: {exc.message}") from exc
    checks.append(
        "payload is an in-toto statement with model_signing 0.2's legacy Digests/v0.1 "
        f"predicate ({len(predicate.resources)} file subjects, files/sha256)"
    )
    return VerifiedModelSignature(
        statement=statement,
        predicate=predicate,
        subject_digest=predicate.subject_digest,
        signer=signer,
        checks=tuple(checks),
        predicate_type=LEGACY_PREDICATE_TYPE,
    )


def compare_resources(
    signed: Sequence[Resource], actual: Sequence[Resource], *, allow_unsigned: bool = False
) -> tuple[str, ...]:
    """The folder must hold exactly the signed resources. Raises `ModelSignatureError`.

    The message names the files: missing ones, extra ones, changed ones (a rename shows as
    one missing and one extra). With `allow_unsigned` (OMS 8.5, `--ignore-unsigned-files`)
    files nobody signed are returned instead of refused; every signed file must still be
    there, unchanged.
    """
    want = {r.name: r.digest for r in signed}
    have = {r.name: r.digest for r in actual}
    signed_files = {r.path for r in signed}
    actual_files = {r.path for r in actual}
    missing = sorted(signed_files - actual_files)
    extra = sorted(actual_files - signed_files)
    changed = sorted(
        {r.path for r in signed if r.path in actual_files and have.get(r.name) != r.digest}
        | {r.path for r in actual if r.path in signed_files and r.name not in want}
    )
    problems = []
    if changed:
        problems.append("changed: " + ", ".join(changed[:5]) + (" …" if len(changed) > 5 else ""))
    if missing:
        problems.append("missing: " + ", ".join(missing[:5]) + (" …" if len(missing) > 5 else ""))
    if extra and not allow_unsigned:
        problems.append("not signed: " + ", ".join(extra[:5]) + (" …" if len(extra) > 5 else ""))
    if problems:
        raise ModelSignatureError(
            "the model folder does not match its signature: " + "; ".join(problems)
        )
    return tuple(extra)
