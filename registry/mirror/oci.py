"""An OCI registry as a mirror source: `oci://HOST[:PORT]/REPO[:TAG|@sha256:…]`.

The tag is pinned once, to the sha256 of the manifest bytes we received (never to a header),
and everything after reads by digest: a tag moved while the layers stream cannot change what
is mirrored. The manifest must be a ModelPack artifact with uncompressed layers, so each
layer digest is the file's sha256; the blob upload checks it while the bytes stream, and the
checkpoint's manifest digest is then computed from the files like any source's. The snapshot's
commit is the OCI manifest digest.
"""

from __future__ import annotations

from registry.errors import InputError
from registry.mirror.base import ByteSink, RemoteFile, Snapshot, SourceSpec
from registry.mirror.modelpack import files_of_manifest
from registry.mirror.oci_auth import load_credentials
from registry.mirror.oci_client import OciClient
from registry.mirror.oci_ref import OciRef, parse_oci_ref
from registry.settings import Limits


class OciSource:
    def __init__(self, spec: SourceSpec, *, limits: Limits) -> None:
        self.spec = spec
        self._limits = limits
        revision = spec.revision or "latest"
        suffix = f"@{revision}" if revision.startswith("sha256:") else f":{revision}"
        self.ref: OciRef = parse_oci_ref(f"oci://{spec.repo_id}{suffix}")
        # httpx's client is safe to share between the transfer's worker threads.
        self._client = OciClient(self.ref, credentials=load_credentials(self.ref.host))

    def close(self) -> None:
        self._client.close()

    def resolve(self) -> Snapshot:
        manifest = self._client.get_manifest(self.ref.reference)
        files = files_of_manifest(manifest.body, where=str(self.ref))
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
        with self._client.open_blob(f"sha256:{file.sha256}", offset=sink.resume_offset) as chunks:
            for chunk in chunks:
                sink.write(chunk)
