"""`modelctl verify oci://…` and `verify oci-layout:PATH[:TAG]`: an OCI artifact against its OMS
signature, without unpacking it to a model folder.

1. Fetch the manifest (a tag is pinned to the sha256 of the bytes received) and read its files
   from the ModelPack layers (uncompressed, one per file, `org.cncf.model.filepath` titles).
2. The signature bundle: `--signature`, else the referrers of the manifest (OCI 1.1 API or
   tag schema in a registry; manifests with a `subject` in a layout), each hash-checked; the
   first model signature that verifies with the given trust is the one.
3. The signed resources against the layers: the same paths (none missing, none extra) and the
   same digests, and the OMS manifest digest rebuilt from the layer digests equals the subject.
4. Every layer streamed and hashed: the bytes must hash to the layer digest (the file's sha256)
   and have the declared size. A missing blob is a missing file.
Anything that fails raises (`IntegrityFailure`, `ModelSignatureError`: exit 1; bad input: 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from attestations.bundle import BUNDLE_V03_MEDIA_TYPE, Bundle
from attestations.errors import AttestationError
from attestations.model_signature import (
    PREDICATE_TYPE as MODEL_SIGNATURE,
)
from attestations.model_signature import (
    ModelSignatureError,
    VerifiedModelSignature,
    compare_resources,
    resources_digest,
    verify_model_signature,
)
from attestations.serialization import Resource
from attestations.signing import SignatureVerifier
from registry.errors import InputError, IntegrityFailure, NotFound, RegistryError
from registry.mirror.base import RemoteFile
from registry.mirror.modelpack import CHECKPOINT_DIGEST, files_of_manifest
from registry.mirror.oci import MAX_BUNDLE, MAX_REFERRERS, PREDICATE_ANNOTATION
from registry.mirror.oci_client import (
    MAX_MANIFEST,
    READ_SIZE,
    FetchedManifest,
    OciClient,
    sha256_digest,
)
from registry.mirror.oci_ref import OciRef

LAYOUT_SCHEME = "oci-layout:"
REF_NAME = "org.opencontainers.image.ref.name"
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: Layers streamed and hashed at once by `verify`.
LAYER_WORKERS = 4
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


class ArtifactStore(Protocol):
    """Where an artifact's documents and blobs are read from: a registry or a layout."""

    where: str

    def manifest(self, reference: str) -> FetchedManifest: ...

    def open_blob(self, digest: str) -> AbstractContextManager[Iterator[bytes]]: ...

    def referrers(self, digest: str) -> list[dict[str, Any]]: ...


class RegistryStore:
    def __init__(self, client: OciClient) -> None:
        self.client = client
        self.where = client.ref.uri
        self.reference = client.ref.reference

    def manifest(self, reference: str) -> FetchedManifest:
        return self.client.get_manifest(reference)

    def open_blob(self, digest: str) -> AbstractContextManager[Iterator[bytes]]:
        return self.client.open_blob(digest)

    def referrers(self, digest: str) -> list[dict[str, Any]]:
        return self.client.referrers(digest)


class LayoutStore:
    """An OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/…`), as
    `skopeo copy … oci:PATH:TAG` writes it. Outside paths are hostile: blobs are named by a
    checked digest only, and a blob that is not a regular file (a symlink) is refused."""

    def __init__(self, root: Path, tag: str | None) -> None:
        self.root = root
        self.tag = tag
        self.where = f"{LAYOUT_SCHEME}{root}" + (f":{tag}" if tag else "")
        if not (root / "oci-layout").is_file() or not (root / "index.json").is_file():
            raise InputError(f"{root}: not an OCI image layout (no oci-layout and index.json)")
        self.index = self._index()
        self.reference = self._pick()

    def _index(self) -> list[dict[str, Any]]:
        data = _read_capped(self.root / "index.json", f"{self.where}: index.json")
        try:
            manifests = json.loads(data)["manifests"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{self.where}: index.json is not an OCI image index") from exc
        if not isinstance(manifests, list):
            raise InputError(f"{self.where}: index.json lists no manifests")
        return [m for m in manifests if isinstance(m, dict)]

    def _pick(self) -> str:
        if self.tag is not None:
            named = [
                m for m in self.index if (m.get("annotations") or {}).get(REF_NAME) == self.tag
            ]
            if len(named) != 1:
                raise NotFound(f"{self.where}: no single manifest tagged {self.tag!r}")
            return str(named[0].get("digest", ""))
        if len(self.index) != 1:
            raise InputError(
                f"{self.where}: the layout holds {len(self.index)} manifests: name one, "
                f"{LAYOUT_SCHEME}PATH:TAG"
            )
        return str(self.index[0].get("digest", ""))

    def _blob_path(self, digest: str) -> Path:
        algorithm, _, hex_digest = digest.partition(":")
        if algorithm != "sha256" or not _HEX64.fullmatch(hex_digest):
            raise InputError(f"{self.where}: {digest[:80]!r} is not a sha256 digest")
        return self.root / "blobs" / "sha256" / hex_digest

    def manifest(self, reference: str) -> FetchedManifest:
        path = self._blob_path(reference)
        body = _read_capped(path, f"{self.where}: manifest {reference}")
        digest = sha256_digest(body)
        if digest != reference:
            raise IntegrityFailure(f"{self.where}: manifest {reference} hashes to {digest}")
        media = next(
            (str(m.get("mediaType", "")) for m in self.index if m.get("digest") == reference), ""
        )
        return FetchedManifest(body=body, media_type=media, digest=digest)

    @contextmanager
    def open_blob(self, digest: str) -> Iterator[Iterator[bytes]]:
        path = self._blob_path(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError as exc:
            raise NotFound(f"{self.where}: blob {digest}: not found") from exc
        except OSError as exc:
            raise InputError(f"{self.where}: blob {digest}: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise InputError(f"{self.where}: blob {digest} is not a regular file")
            yield iter(lambda: f.read(READ_SIZE), b"")

    def referrers(self, digest: str) -> list[dict[str, Any]]:
        """The layout's manifests whose `subject` is `digest` (a layout has no referrers API)."""
        found: list[dict[str, Any]] = []
        for descriptor in self.index[:MAX_REFERRERS]:
            candidate = str(descriptor.get("digest", ""))
            if candidate == digest:
                continue
            try:
                doc = json.loads(self.manifest(candidate).body)
            except (RegistryError, ValueError):
                continue
            if isinstance(doc, dict) and (doc.get("subject") or {}).get("digest") == digest:
                found.append(
                    {
                        "digest": candidate,
                        "artifactType": doc.get("artifactType"),
                        "annotations": doc.get("annotations") or {},
                    }
                )
        return found


def _read_capped(path: Path, what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError as exc:
        raise NotFound(f"{what}: not found") from exc
    except OSError as exc:
        raise InputError(f"{what}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise InputError(f"{what}: not a regular file")
        data = f.read(MAX_MANIFEST + 1)
    if len(data) > MAX_MANIFEST:
        raise InputError(f"{what}: larger than 4 MiB")
    return data


def parse_layout_target(text: str) -> tuple[Path, str | None] | None:
    """`oci-layout:PATH[:TAG]`, or a directory holding an OCI image layout; else None."""
    if text.startswith(LAYOUT_SCHEME):
        rest = text[len(LAYOUT_SCHEME) :]
        path, sep, tag = rest.rpartition(":")
        if sep and _TAG.fullmatch(tag) and not Path(rest).is_dir():
            return Path(path), tag
        return Path(rest), None
    if (Path(text) / "oci-layout").is_file():
        return Path(text), None
    return None


@dataclass(frozen=True, slots=True)
class VerifiedLayer:
    path: str
    size: int
    digest: str  # sha256:<hex>, equal to the file's signed digest


@dataclass(frozen=True, slots=True)
class OciVerification:
    where: str  # the artifact, pinned: oci://HOST/REPO@sha256:… or oci-layout:PATH@sha256:…
    oci_digest: str
    signature: VerifiedModelSignature
    signature_from: str  # "--signature" or "referrer sha256:…"
    layers: tuple[VerifiedLayer, ...]
    checks: tuple[str, ...]

    @property
    def bytes(self) -> int:
        return sum(layer.size for layer in self.layers)


def _signature_from_referrers(
    store: ArtifactStore, digest: str, verifier: SignatureVerifier
) -> tuple[VerifiedModelSignature, str]:
    """The first attached model signature that verifies with `verifier` (model signatures
    first, by their annotation: a label to order by, never evidence)."""
    candidates = [
        d
        for d in store.referrers(digest)[:MAX_REFERRERS]
        if d.get("artifactType") == BUNDLE_V03_MEDIA_TYPE
    ]
    candidates.sort(
        key=lambda d: (d.get("annotations") or {}).get(PREDICATE_ANNOTATION) != MODEL_SIGNATURE
    )
    problems: list[str] = []
    for descriptor in candidates:
        referrer = str(descriptor.get("digest", ""))
        try:
            bundle = Bundle.from_bytes(_referrer_bundle(store, referrer, digest))
            return verify_model_signature(bundle, verifier), f"referrer {referrer}"
        except (RegistryError, AttestationError) as exc:
            problems.append(f"{referrer[:19]}…: {exc.message}")
    if not candidates:
        raise ModelSignatureError(
            f"{store.where}@{digest}: no signature attached (no bundle referrer); "
            "pass --signature BUNDLE"
        )
    raise ModelSignatureError(
        f"{store.where}@{digest}: none of {len(candidates)} attached bundles is a model "
        f"signature that verifies ({problems[0]})"
    )


def _referrer_bundle(store: ArtifactStore, referrer: str, subject: str) -> bytes:
    try:
        doc = json.loads(store.manifest(referrer).body)
        layer = doc["layers"][0]
        layer_digest, size = str(layer["digest"]), int(layer["size"])
        if (doc.get("subject") or {}).get("digest") != subject:
            raise IntegrityFailure("its subject is not this artifact")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise IntegrityFailure("malformed referrer manifest") from exc
    if size > MAX_BUNDLE:
        raise InputError(f"its bundle is larger than {MAX_BUNDLE} bytes")
    data = bytearray()
    with store.open_blob(layer_digest) as chunks:
        for chunk in chunks:
            data += chunk
            if len(data) > size:
                break
    if len(data) != size or sha256_digest(bytes(data)) != layer_digest:
        raise IntegrityFailure("its bundle's bytes do not match the layer digest")
    return bytes(data)


def _hash_layer(store: ArtifactStore, file: RemoteFile) -> VerifiedLayer:
    digest = f"sha256:{file.sha256}"
    h = hashlib.sha256()
    size = 0
    try:
        with store.open_blob(digest) as chunks:
            for chunk in chunks:
                h.update(chunk)
                size += len(chunk)
    except NotFound as exc:
        raise IntegrityFailure(f"{store.where}: {file.path}: layer {digest} is missing") from exc
    if h.hexdigest() != file.sha256:
        raise IntegrityFailure(
            f"{store.where}: {file.path}: layer bytes hash to sha256:{h.hexdigest()[:16]}…, "
            f"not {digest[:23]}…"
        )
    if size != file.size:
        raise IntegrityFailure(
            f"{store.where}: {file.path}: {size} bytes, the layer says {file.size}"
        )
    return VerifiedLayer(path=file.path, size=size, digest=digest)


def verify_artifact(
    store: ArtifactStore,
    reference: str,
    verifier: SignatureVerifier,
    *,
    bundle: Bundle | None = None,
) -> OciVerification:
    """Check the artifact `reference` names in `store` against a model signature (see above)."""
    manifest = store.manifest(reference)
    pinned = f"{store.where}@{manifest.digest}"
    files = files_of_manifest(manifest.body, where=pinned)
    checks = [f"manifest {manifest.digest}: {len(files)} uncompressed ModelPack file layers"]
    if bundle is not None:
        signature, source = verify_model_signature(bundle, verifier), "--signature"
    else:
        signature, source = _signature_from_referrers(store, manifest.digest, verifier)
    checks += signature.checks
    serialization = signature.predicate.serialization
    if serialization.method != "files" or serialization.hash_type != "sha256":
        raise ModelSignatureError(
            f"{pinned}: the signature hashes {serialization.method}/{serialization.hash_type}; "
            "layer digests can only check files/sha256 (pull it and verify the folder)"
        )
    layers = [Resource(f.path, None, None, bytes.fromhex(f.sha256 or "")) for f in files]
    try:
        compare_resources(signature.predicate.resources, layers)
    except ModelSignatureError as exc:
        raise ModelSignatureError(
            exc.message.replace("the model folder does not match", f"{pinned} does not match")
        ) from exc
    rebuilt = resources_digest(sorted(layers, key=lambda r: r.key))
    if rebuilt != signature.subject_digest:
        raise ModelSignatureError(
            f"{pinned}: the layers give OMS digest {rebuilt}, "
            f"the signature {signature.subject_digest}"
        )
    checks.append(f"OMS manifest digest rebuilt from the layer digests: {rebuilt}")
    claimed = str((json.loads(manifest.body).get("annotations") or {}).get(CHECKPOINT_DIGEST, ""))
    if claimed and claimed != str(rebuilt):
        raise IntegrityFailure(f"{pinned}: its {CHECKPOINT_DIGEST} annotation says {claimed}")
    # Layers are hashed in parallel, as the mirror fetches them (hashlib and the socket reads
    # release the GIL; httpx's client is shared safely between threads); the result is in order.
    with ThreadPoolExecutor(max_workers=min(LAYER_WORKERS, len(files))) as pool:
        verified = tuple(pool.map(lambda f: _hash_layer(store, f), files))
    checks.append(f"streamed and hashed {len(verified)} layers: every one matches its digest")
    return OciVerification(
        where=pinned,
        oci_digest=manifest.digest,
        signature=signature,
        signature_from=source,
        layers=verified,
        checks=tuple(checks),
    )


def verify_target(
    target: str, verifier: SignatureVerifier, *, bundle: Bundle | None, credentials: Any = None
) -> OciVerification:
    """`oci://…` (a registry) or a layout (`parse_layout_target`)."""
    from registry.mirror.oci_auth import load_credentials  # noqa: PLC0415 - registries only
    from registry.mirror.oci_ref import parse_oci_ref  # noqa: PLC0415

    layout = parse_layout_target(target)
    if layout is not None:
        store = LayoutStore(*layout)
        return verify_artifact(store, store.reference, verifier, bundle=bundle)
    ref: OciRef = parse_oci_ref(target)
    with OciClient(ref, credentials=credentials or load_credentials(ref.host)) as client:
        return verify_artifact(RegistryStore(client), ref.reference, verifier, bundle=bundle)
