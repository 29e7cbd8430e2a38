"""An OCI registry as a mirror source: `oci://HOST[:PORT]/REPO[:TAG|@sha256:…]`.

The tag is pinned once, to the sha256 of the manifest bytes we received (never to a header),
and everything after reads by digest: a tag moved while the layers stream cannot change what
is mirrored. The manifest must be a ModelPack artifact with uncompressed layers, so each
layer digest is the file's sha256; the blob upload checks it while the bytes stream, and the
checkpoint's manifest digest is then computed from the files like any source's. The snapshot's
commit is the OCI manifest digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from attestations.bundle import BUNDLE_V03_MEDIA_TYPE
from registry.errors import InputError, IntegrityFailure, RegistryError
from registry.mirror.base import ByteSink, RemoteFile, Snapshot, SourceSpec
from registry.mirror.modelpack import files_of_manifest
from registry.mirror.oci_auth import load_credentials
from registry.mirror.oci_client import MANIFEST_TYPE, OciClient, sha256_digest
from registry.mirror.oci_ref import OciRef, parse_oci_ref
from registry.settings import Limits

#: The annotation `push` puts on each referrer (registry/service/oci_push.py) naming its statement.
PREDICATE_ANNOTATION = "dev.modelctl.predicate-type"
MAX_REFERRERS = 256
MAX_BUNDLE = 16 << 20


class OciSource:
    def __init__(self, spec: SourceSpec, *, limits: Limits) -> None:
        self.spec = spec
        self._limits = limits
        revision = spec.revision or "latest"
        suffix = f"@{revision}" if revision.startswith("sha256:") else f":{revision}"
        self.ref: OciRef = parse_oci_ref(f"oci://{spec.repo_id}{suffix}")
        # httpx's client is safe to share between the transfer's worker threads.
        self.client = OciClient(self.ref, credentials=load_credentials(self.ref.host))
        #: The pinned manifest's media type, once resolved (recorded with the checkpoint).
        self.manifest_media_type = MANIFEST_TYPE

    def close(self) -> None:
        self.client.close()

    def resolve(self) -> Snapshot:
        manifest = self.client.get_manifest(self.ref.reference)
        files = files_of_manifest(manifest.body, where=str(self.ref))
        self.manifest_media_type = manifest.media_type or MANIFEST_TYPE
        if len(files) > self._limits.max_files:
            raise InputError(f"{self.ref}: more than {self._limits.max_files} files")
        if any((f.size or 0) > self._limits.max_file_size for f in files):
            raise InputError(f"{self.ref}: a layer is larger than the file size limit")
        if sum(f.size or 0 for f in files) > self._limits.max_total_size:
            raise InputError(f"{self.ref}: larger than the total size limit")
        return Snapshot(
            uri=self.spec.uri,
            requested_revision=self.spec.revision,
            commit=manifest.digest,
            files=files,
        )

    def fetch(self, snapshot: Snapshot, file: RemoteFile, sink: ByteSink) -> None:
        with self.client.open_blob(f"sha256:{file.sha256}", offset=sink.resume_offset) as chunks:
            for chunk in chunks:
                sink.write(chunk)


@dataclass(frozen=True, slots=True)
class FetchedReferrer:
    """A signed statement attached to the mirrored artifact; `bundle` is None when it could
    not be fetched intact (`problem` says why). Nothing here is trusted yet."""

    digest: str  # the referrer manifest's digest
    predicate_type: str  # as its annotation claims: a label, never evidence
    bundle: bytes | None
    problem: str = ""


def fetch_referrers(source: OciSource, snapshot: Snapshot) -> list[FetchedReferrer]:
    """The Sigstore bundles attached to `snapshot.commit`, each hash-checked on the way."""
    out: list[FetchedReferrer] = []
    client = source.client
    for descriptor in client.referrers(snapshot.commit)[:MAX_REFERRERS]:
        digest = str(descriptor.get("digest", ""))
        if descriptor.get("artifactType") != BUNDLE_V03_MEDIA_TYPE or not digest.startswith(
            "sha256:"
        ):
            continue
        claimed = str((descriptor.get("annotations") or {}).get(PREDICATE_ANNOTATION, ""))[:200]
        try:
            manifest = json.loads(client.get_manifest(digest).body)
            layer = manifest["layers"][0]
            layer_digest, size = str(layer["digest"]), int(layer["size"])
            if manifest.get("subject", {}).get("digest") != snapshot.commit:
                raise IntegrityFailure("its subject is not the mirrored manifest")
            if size > MAX_BUNDLE:
                raise InputError(f"its bundle is larger than {MAX_BUNDLE} bytes")
            with client.open_blob(layer_digest) as chunks:
                data = b"".join(chunks)
            if sha256_digest(data) != layer_digest or len(data) != size:
                raise IntegrityFailure("its bundle's bytes do not match the layer digest")
        except (RegistryError, ValueError, KeyError, IndexError, TypeError) as exc:
            problem = exc.message if isinstance(exc, RegistryError) else "malformed manifest"
            out.append(FetchedReferrer(digest, claimed, None, problem))
            continue
        out.append(FetchedReferrer(digest, claimed, data))
    return out
