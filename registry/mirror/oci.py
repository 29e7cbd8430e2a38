"""An OCI registry as a mirror source: `oci://HOST[:PORT]/REPO[:TAG|@sha256:…]`.

The tag is pinned once, to the sha256 of the manifest bytes we received (never to a header),
and everything after reads by digest: a tag moved while the layers stream cannot change what
is mirrored. The manifest must be a ModelPack artifact with one file per layer. Uncompressed,
each layer digest is the file's sha256, which the blob upload checks while the bytes stream;
`+gzip`, the layer digest is checked over the compressed bytes while they are decompressed into
the upload, which hashes the file (`+zstd` is refused: see `_decompressor`). The checkpoint's
manifest digest is then computed from the files like any source's. The snapshot's commit is the
OCI manifest digest.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from attestations.bundle import BUNDLE_V03_MEDIA_TYPE
from registry.errors import InputError, IntegrityFailure, RegistryError
from registry.mirror.base import ByteSink, RemoteFile, Snapshot, SourceSpec
from registry.mirror.modelpack import Layer, layers_of_manifest
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
        self._layers: dict[str, Layer] = {}

    def close(self) -> None:
        self.client.close()

    def resolve(self) -> Snapshot:
        manifest = self.client.get_manifest(self.ref.reference)
        layers = layers_of_manifest(manifest.body, where=str(self.ref), compressed=True)
        self._layers = {layer.path: layer for layer in layers}
        files = tuple(layer.file for layer in layers)
        self.manifest_media_type = manifest.media_type or MANIFEST_TYPE
        for layer in layers:
            if layer.compression not in (None, "gzip"):
                _decompressor(layer.compression or "", f"{self.ref}: {layer.path}")
        if len(files) > self._limits.max_files:
            raise InputError(f"{self.ref}: more than {self._limits.max_files} files")
        if any(layer.size > self._limits.max_file_size for layer in layers):
            raise InputError(f"{self.ref}: a layer is larger than the file size limit")
        if sum(layer.size for layer in layers) > self._limits.max_total_size:
            raise InputError(f"{self.ref}: larger than the total size limit")
        return Snapshot(
            uri=self.spec.uri,
            requested_revision=self.spec.revision,
            commit=manifest.digest,
            files=files,
        )

    def fetch(self, snapshot: Snapshot, file: RemoteFile, sink: ByteSink) -> None:
        layer = self._layers.get(file.path)
        if layer is not None and layer.compression is not None:
            self._fetch_compressed(layer, sink)
            return
        with self.client.open_blob(f"sha256:{file.sha256}", offset=sink.resume_offset) as chunks:
            for chunk in chunks:
                sink.write(chunk)

    def _fetch_compressed(self, layer: Layer, sink: ByteSink) -> None:
        """Decompress while hashing: the layer digest is checked over the compressed bytes as
        they arrive, the sink hashes what they decompress to (the file's sha256). Output is
        bounded by the file size limit (a small layer may decompress to a huge one). A
        compressed stream cannot resume mid-way: the sink starts over."""
        if sink.resume_offset:
            sink.restart()
        where = f"{self.ref}: {layer.path}"
        decompress = _decompressor(layer.compression or "", where)
        h = hashlib.sha256()
        received = 0
        written = 0
        with self.client.open_blob(layer.digest) as chunks:
            for chunk in chunks:
                h.update(chunk)
                received += len(chunk)
                if received > layer.size:
                    raise IntegrityFailure(
                        f"{where}: the layer is longer than its {layer.size} bytes"
                    )
                for data in decompress(chunk):
                    written += len(data)
                    if written > self._limits.max_file_size:
                        raise InputError(f"{where}: decompresses past the file size limit")
                    sink.write(data)
        for data in decompress(None):
            written += len(data)
            if written > self._limits.max_file_size:
                raise InputError(f"{where}: decompresses past the file size limit")
            sink.write(data)
        if received != layer.size or f"sha256:{h.hexdigest()}" != layer.digest:
            raise IntegrityFailure(
                f"{where}: the {layer.compression} layer's bytes do not match {layer.digest[:23]}…"
            )


#: Decompressed output is produced in pieces of at most this size (bounded memory).
_PIECE = 1 << 20


def _decompressor(compression: str, where: str) -> Callable[[bytes | None], Iterator[bytes]]:
    """A streaming decompressor: call with each compressed chunk, then with None to finish;
    each call yields the output in bounded pieces. Raises `IntegrityFailure` on a corrupt or
    truncated stream, `InputError` for a compression we do not read."""
    if compression == "gzip":
        return _gzip_stream(where)
    # +zstd: Python 3.11 has no zstd decoder, and the `zstandard` package's streaming object
    # cannot bound its output per call (a decompression bomb in memory): refused for now.
    raise InputError(f"{where}: {compression} layers are not supported (raw or +gzip only)")


def _gzip_stream(where: str) -> Callable[[bytes | None], Iterator[bytes]]:
    state = {"d": zlib.decompressobj(wbits=31)}

    def feed(chunk: bytes | None) -> Iterator[bytes]:
        d = state["d"]
        if chunk is None:
            if not d.eof:
                raise IntegrityFailure(f"{where}: the gzip stream is truncated")
            return
        pending = chunk
        while pending:
            try:
                out = d.decompress(pending, _PIECE)
            except zlib.error as exc:
                raise IntegrityFailure(f"{where}: not a valid gzip stream ({exc})") from exc
            if out:
                yield out
            if d.eof:  # a multi-member gzip file: the next member starts here
                pending = d.unused_data
                if pending:
                    d = state["d"] = zlib.decompressobj(wbits=31)
                continue
            pending = d.unconsumed_tail

    return feed


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
